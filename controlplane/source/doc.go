// Package source loads the control plane's fleet model from a directory of YAML
// manifests.
//
// Every regular file in the directory whose name ends in .yaml or .yml (not in
// subdirectories; names starting with "." are skipped, so a Kubernetes ConfigMap mount's
// ..data links are not read twice) is read as a stream of YAML documents. Exactly one
// document in the whole directory must be the geode manifest:
//
//	apiVersion: geode.io/v1alpha1
//	kind: Geode
//	regions:        # name, rtt (each pair once), state — as in the sidecar config
//	defaults:       # protocol, consistency, write_failover, cross_region_budget, replication_lag_bound
//	services:       # name, authorities, protocol, endpoints, policy strings, annotations
//
// Services have the shape of the sidecar config's services (proxy/config), restricted to
// what the control plane distributes: name, authorities, protocol, endpoints, the policy
// strings (consistency, affinity_key, home_regions, write_failover, residency,
// cross_region_budget, replication_lag_bound) or the same policy as geode.io/*
// annotations. Sidecar-local knobs (timeouts, retry, breaker, ops) are not accepted here.
// An endpoint is either "host:port" or {address: host:port, zone: NAME}.
//
// Decoding is strict: an unknown field is an error with its line. Every error names the
// file, and validation errors the field path within the manifest
// ("dir/geode.yaml: services[1].endpoints.us-east[0].address: ...").
//
// TODO(issue 4, later steps): Kubernetes Service (geode.io/* annotations) and
// EndpointSlice manifests decoded with the k8s.io/api types, so that documents of other
// kinds stop being an error; and reload on change with fsnotify (validate, then swap;
// an invalid directory never replaces the last good model). Neither exists yet.
//
// Imports: controlplane/model (and through it affinity, consistency). Load is safe to
// call concurrently; it keeps no state.
package source
