// Package api is the wire contract between Geode's control plane and its sidecars: the
// schema of the geode policy that travels inside Envoy-native xDS resources.
//
// The control plane puts each service's policy on its CDS cluster as
// Cluster.metadata.filter_metadata["geode"] (MetadataKey), a google.protobuf.Struct whose
// fields are listed on Policy. The sidecar's xDS client imports this package — and only
// this package of controlplane — to decode it. Keep it small: it imports nothing of
// Geode and no Envoy types, only protobuf's structpb.
//
// Regions: every policy also carries "regions", the fleet's regions as the requesting
// client's region sees them ([{name, rtt_ms, state}], down and fenced ones included), so
// a geode sidecar learns proximity and region state from CDS alone. It travels on every
// cluster rather than in a resource of its own: CDS is already per region, a region-state
// change already re-sends every cluster (EDS priorities change with it), the list is
// small (at most 16 entries), it can never be out of step with the policy strings that
// name regions (home_regions, residency), and Envoy and grpc-go need no new resource
// type they would not understand. Every cluster sent to one client carries the same
// list; the sidecar NACKs an update whose clusters disagree.
//
// Session keys: the fleet's session-token key ring travels as the SDS secret
// SessionKeysSecret, never in metadata (CDS is served to every client; secrets only to
// those that ask for them by name, over mTLS).
//
// Node metadata: a sidecar names its region, service and inbound address in its xDS
// node (Node*Key), registration data for the control plane: it serves the address as an
// endpoint of the service while the node's streams live. The control plane refuses a
// geode.* key other than these, and a service without an address or the reverse.
//
// Compatibility: field names are wire names; add fields, never rename or repurpose one.
// Decode rejects unknown fields and a SchemaVersion it does not know, so a sidecar that is
// older than its control plane NACKs instead of silently dropping a policy it cannot
// enforce. "regions" was added without a SchemaVersion bump: it is optional for
// Decode, and no decoder older than it has shipped.
//
// Concurrency: the functions are pure; values are safe to share once built.
package api
