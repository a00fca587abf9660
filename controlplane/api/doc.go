// Package api is the wire contract between Geode's control plane and its sidecars: the
// schema of the geode policy that travels inside Envoy-native xDS resources.
//
// The control plane puts each service's policy on its CDS cluster as
// Cluster.metadata.filter_metadata["geode"] (MetadataKey), a google.protobuf.Struct whose
// fields are listed on Policy. The sidecar's xDS client imports this package — and only
// this package of controlplane — to decode it. Keep it small: it imports nothing of
// Geode and no Envoy types, only protobuf's structpb.
//
// Compatibility: field names are wire names; add fields, never rename or repurpose one.
// Decode rejects unknown fields and a SchemaVersion it does not know, so a sidecar that is
// older than its control plane NACKs instead of silently dropping a policy it cannot
// enforce.
//
// Concurrency: the functions are pure; values are safe to share once built.
package api
