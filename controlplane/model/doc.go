// Package model owns the control plane's fleet model: the regions (with their RTTs and
// states) and the services (protocol, authorities, per-region endpoints with zones, and
// the geode policy strings).
//
// A Model is built from a Spec by New, which validates everything — the policy strings
// with the same parsers the sidecar uses (consistency.ParseLevel,
// affinity.ParseKeySource, ParseHomeRegions, ParseResidency, ParseBudget) — and returns
// every problem at once, each prefixed with the path of its field ("services[1].residency:
// ..."). Callers that read the Spec from files prefix the file name.
//
// A Model is immutable once built: accessors return copies, and a change (for example an
// operator setting a region's state) builds a new Model with WithRegionState. Its
// Version is a hash of its content, so equal models have equal versions.
//
// Endpoints come from the spec (manifests) and, through WithEndpoints, from sidecars
// registering their own address over xDS node metadata. The spec stays the source of
// services and regions: WithEndpoints adds endpoints to services and regions the model
// has and leaves out the rest. A service may be declared without endpoints, for its
// sidecars to register them.
//
// Imports: affinity and consistency (parsers and region states) only; never proxy.
// Concurrency: a *Model is safe for concurrent use by any number of goroutines.
package model
