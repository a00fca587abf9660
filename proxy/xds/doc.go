// Package xds is the geode sidecar's xDS client: it keeps an ADS (state-of-the-world)
// stream to the control plane, turns what it receives into the regions and services of
// the sidecar's configuration, and hands that to the sidecar's Apply.
//
// Wire: one AggregatedDiscoveryService stream (google.golang.org/grpc). The node carries
// id, locality.region/zone and metadata geode.region, geode.service, geode.address
// (controlplane/api's Node*Key: registration data). The client subscribes to CDS
// (wildcard) and to EDS for the clusters' EDS names. Each cluster must be an EDS cluster
// whose metadata.filter_metadata["geode"] decodes with api.Decode (policy, authorities,
// and the regions as this sidecar's region sees them: name, RTT, state and, while the
// control plane ramps a region, its ramp_percent, which the sidecar's routing follows
// (affinity.View.Preferred); every cluster must carry the same list). EDS localities give each region's endpoints; endpoints
// neither HEALTHY nor UNKNOWN are skipped. LDS/RDS are not needed: the sidecar routes
// by the authorities in the geode metadata.
//
// Session keys: the client also subscribes to SDS for the one secret
// api.SessionKeysSecret, a generic secret holding the fleet's session-token key ring
// (key-file format, checked with consistency.ParseKeyRing: an invalid ring is NACKed).
// When the control plane sends it, the sidecar signs and verifies tokens with that ring
// (config.Session.Keys, which wins over the local session.keys_file); when it sends none,
// the keys file applies. The ring is part of the persisted state, so a cold start can
// still verify tokens; the cache file is created with mode 0600.
//
// Updates: CDS, EDS and SDS arrive as separate responses; the client stages them, waits
// Settle for the rest of an update, and once CDS and SDS have answered and every cluster
// has its assignment builds a Part (regions, services, session keys), merges it into the sidecar's base config (listeners, app,
// limits, session, tracing and debug stay local) through config.Parse — the same
// defaults and validation as a config file — and calls Apply. Success ACKs every
// pending response; a decoding, validation or Apply error NACKs them with the error in
// error_detail, and the last good state keeps serving (fail static). If the control
// plane sends a NACKed version again, the client NACKs it naming that version, so a
// SnapshotCache waits for a new version instead of resending the bad one in a loop.
//
// Regions come from the control plane; the sidecar's own region must be among them. A
// service with no usable endpoint in any region (all its regions down or fenced) is kept
// without endpoints: its calls are answered 503 naming it (not 404, as for an unknown
// authority); it is logged and listed in Status.NoEndpoints.
//
// Faults: when the stream breaks the sidecar keeps its state and the client reconnects
// with exponential backoff (MinBackoff doubling to MaxBackoff, jittered over the upper
// half), a fresh gRPC connection per attempt so gRPC's own backoff does not stack on
// top; the new stream asks for everything again (resync). With CacheFile set, every
// applied state is persisted (atomic rename) and, if no update arrives ColdStartAfter
// after Run starts, the cached state is applied: a cold start without a control plane.
// LoadCache lets a cmd use it as the sidecar's first config instead.
//
// Load reports: with Options.Outcomes set (the sidecar's TakeOutcomes), each ADS
// connection also carries an LRS stream (envoy.service.load_stats.v3): the client sends
// its node, and once the control plane answers (clusters, interval), sends every
// interval one ClusterStats per service (cluster name = service) with one
// UpstreamLocalityStats per region: attempts succeeded and failed since the last report.
// Nothing is sent for an interval with nothing counted; counts taken before the first
// answer of a stream are dropped as stale, and so are those of a report that fails to
// send. A broken LRS stream is retried with the same backoff as ADS on the same
// connection; Unimplemented stops reports for that connection. Status.LoadReports
// counts reports sent.
//
// Concurrency: Run starts the client's only goroutines (a stream reader per stream, the
// load-report loop and its reader, and the cold-start timer) and waits for them before returning. Status is safe for
// concurrent use. New starts nothing.
package xds
