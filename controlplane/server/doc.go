// Package server is the control plane's xDS server: it serves ADS, state-of-the-world
// and Delta, with go-control-plane over a grpc.Server, and an admin HTTP API.
//
// Snapshots are published per region: translate.ForRegion builds, validates and checks
// one snapshot for each region, and they are set in a go-control-plane SnapshotCache
// keyed by region (NodeHash maps a node to node.locality.region, or to its metadata
// "geode.region"). A node with no region, or one the model does not know, is refused
// with InvalidArgument on its first request and counted; it never gets a watch.
// Publishing is all or nothing: if any region fails to translate, no region's snapshot
// changes and the last good ones keep being served.
//
// Why SnapshotCache and not LinearCache/MuxCache: what a client receives depends only on
// its region, and a region-state change alters every resource type of a region at once
// (EDS priorities of every service). A SnapshotCache keyed by region holds exactly one
// consistent, Consistent()-checked set per region, shared by every client in it, so the
// cache's size grows with regions, not clients, and a snapshot can never mix types from
// two model versions. A LinearCache holds one type per cache and versions resources
// individually — good for a large, churning EDS set — but it would need a MuxCache of
// four linear caches per region and could not offer an all-types gate. If EDS churn
// becomes the bottleneck (the scale benchmark of issue 4 will tell), EDS can move to
// per-region LinearCaches behind a MuxCache without changing the wire.
//
// Each published resource is encoded to its wire form once (encode.go): the
// SnapshotCache otherwise re-marshals every resource for every client on every push,
// which was the largest CPU cost of a region-state change reaching 10,000 clients. The
// cache's copies are wire-only; read resources from translate.
//
// Two caches hold the same snapshots: Envoy and geode sidecars are served in ADS mode;
// proxyless gRPC clients (their node's user agent starts with "gRPC") from a cache that
// answers a request naming some resources of a type with those — a gRPC client names
// only its own service, and in ADS mode the cache would wait for a request naming every
// resource of the type, forever, as soon as a fleet has two services.
//
// A NACK of the version in force is held (nack.go): the SnapshotCache would answer it,
// since it carries the client's previous version, with the rejected version again, in a
// loop. The client keeps its last good state and gets the next snapshot.
//
// Admin API (bind it to loopback): POST /regions/{name}/drain|fence|down|restore sets
// or clears an operator override of the region's state, re-translates and republishes;
// GET /config_dump shows the model and each region's snapshot versions; GET /status lists
// connected xDS clients (node id, region, last ACKed version per type, last NACK).
//
// Region health (controlplane/health): POST /reports takes {reporter, region_outcomes:
// {REGION: {success, failure, p99_ms}}} from sidecars; Run evaluates the state machine
// every health interval (1s) and republishes when a computed state or a ramp weight
// changed. A region's published state is the operator override if set, else the worse
// of its configured and computed states; while a computed transition ramps, translate
// splits its priority with the next region (ForRegionRamped). An operator action takes
// effect at once, without a ramp. /config_dump shows each region's computed state and
// health (weight factor, window requests and failure ratio, last verdict) next to its
// override.
//
// Load reports (lrs.go): the xDS grpc.Server also serves LRS
// (envoy.service.load_stats.v3.LoadReportingService), which is how sidecars report
// region outcomes on their xDS connection. The first message's node is checked like an
// ADS node (NodeRegion, a known region, and over mTLS the same certificate binding);
// the answer asks for all clusters every Options.LoadReportInterval (default 2s). Each
// LoadStatsRequest becomes one Report, reporter = node id: per locality.region,
// total_successful_requests and total_error_requests summed over clusters (latency is
// not carried). Localities with no or an unknown region are skipped and counted; a
// report the state machine refuses is logged and counted; neither ends the stream.
// /status shows the counts under load_reports.
//
// Registration (registry.go): a sidecar registers its own endpoint, so a fleet works
// without Kubernetes. When the first request of an ADS stream (SotW or delta) or of an
// LRS stream carries node metadata geode.service and geode.address (host:port of its
// inbound listener), the address becomes an endpoint of that service in the node's
// region, zone node.locality.zone, for as long as one of the node's streams carrying
// it lives. Registered endpoints are kept apart from the manifests' model (base) and
// merged into it at every publish (model.WithEndpoints): a manifest reload keeps them,
// and they never outlive their streams. The manifests stay the source of services and
// their policy: registering for a service they do not declare is refused; one a reload
// removes keeps its registration, unserved, until the service comes back or the
// stream ends. An address the manifests list already is served once, as listed.
// Changes are gathered for Options.RegistrationDelay (100ms) and published together:
// 100 sidecars registering at once cost one republish, not 100.
//
// Refused registrations end the stream with a status naming the field, are logged and
// counted (/status registrations.refused_by_reason), and change nothing else:
// InvalidArgument for an unknown geode.* metadata key (keys outside the geode. prefix
// are other software's and ignored), a non-string value, geode.service without
// geode.address or the reverse, an address that is not host:port with a port in
// [1,65535], a host that is unspecified (0.0.0.0) or neither an IP address nor a DNS
// name, a bad zone, no node id, or an unknown service; ResourceExhausted for a node
// that already registers a different endpoint (one per node id, which over mTLS is
// its certificate's), a node registering more often than its churn limit (a token
// bucket: 10 streams at once, then one a second), or past Options.MaxRegistrations
// (10,000) registered endpoints. /config_dump lists the registrations: node id,
// identity, service, region, zone, address, since, streams, and whether each is
// served.
//
// Session keys: a model with a session key ring (the manifests' Secret
// geode-session-keys) is published with an SDS secret of that name in every region's
// snapshot (translate); /config_dump shows the ring's fingerprint and key ids, never a
// secret. Served to whoever asks for it by name: over mTLS, fleet members only.
//
// Slow clients (stall.go): each stream's queue is bounded by go-control-plane itself (one
// pending response per type), and SetSnapshot never waits for a client, so a client that
// does not read holds up no push. A response that waits longer than
// Options.SendTimeout (default 30s, --send-timeout) for the client to read ends that
// stream with ResourceExhausted; /status counts it as slow_disconnected.
//
// Concurrency: Server's methods are safe for concurrent use. Run starts the only
// goroutines (the gRPC and HTTP servers, the health ticker, the registration publisher
// and the stall sweep; gRPC runs each stream's handler, and the stall guard runs it on a
// goroutine of its own so it can end a stalled stream) and returns when ctx is done and
// they have stopped. New starts nothing.
package server
