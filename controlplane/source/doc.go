// Package source loads the control plane's fleet model from a directory of YAML
// manifests.
//
// Every regular file in the directory whose name ends in .yaml or .yml (not in
// subdirectories; names starting with "." are skipped, so a Kubernetes ConfigMap mount's
// ..data links are not read twice, and an editor's or tool's ".name.tmp" neither) is read
// as a stream of YAML documents (empty documents are skipped). Exactly one document in
// the whole directory must be the geode manifest:
//
//	apiVersion: geode.io/v1alpha1
//	kind: Geode
//	regions:        # name, rtt (each pair once), state, zones — as in the sidecar config, plus zones
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
// # Kubernetes manifests
//
// The other documents may be Kubernetes Services (apiVersion: v1), EndpointSlices
// (apiVersion: discovery.k8s.io/v1) and the session-keys Secret (below), decoded strictly
// with the k8s.io/api types. Any other kind is an error.
//
//   - A Service becomes a model service named metadata.name, with the authorities name,
//     name.NAMESPACE, name.NAMESPACE.svc and name.NAMESPACE.svc.cluster.local (namespace
//     "default" when unset). geode routes to its first port, spec.ports[0], whose
//     appProtocol gives the protocol: grpc → grpc, kubernetes.io/h2c → http2, http →
//     http1; unset → the geode manifest's defaults.protocol, else http1. Its policy comes
//     from the geode.io/* annotations (affinity.PolicyFromAnnotations,
//     consistency.ParseLevel); the geode manifest's defaults fill what they leave unset
//     (write_failover has no annotation: always the default). Other annotations are
//     ignored. A service name may be defined once in the whole directory: in the geode
//     manifest or as one Service (in one namespace).
//   - An EndpointSlice labelled kubernetes.io/service-name=NAME, in the Service's
//     namespace, gives endpoints to that Service: for each endpoint whose
//     conditions.ready is true or unset, address = addresses[0] and the slice's port of
//     the same name as the Service's spec.ports[0] (as Kubernetes names them). An endpoint
//     in two slices counts once.
//   - Region: an endpoint's zone (endpoints[].zone, set by Kubernetes from the node's
//     topology.kubernetes.io/zone) is looked up in the zones the geode manifest lists per
//     region (regions[].zones; a zone belongs to one region). A ready endpoint without a
//     zone, or with a zone no region lists, is an error: topology hints and node labels
//     are not consulted, so the zone → region map is the single source of truth.
//   - A slice must name an existing Service and may not feed a service of the geode
//     manifest (which lists its own endpoints).
//   - A Service without a ready endpoint (scaled to zero, every pod unready during a
//     rollout, no EndpointSlice yet) is valid: it becomes a model service without
//     endpoints (Endpoints nil), which the control plane publishes with an empty
//     endpoint set and /config_dump lists as such; its sidecars may still register
//     endpoints for it (controlplane/server). Refusing it would hold up every reload of
//     the directory for one Deployment.
//
// # Session keys
//
// A Kubernetes Secret (apiVersion: v1) named geode-session-keys, in any namespace, gives
// the fleet's session-token key ring: its data (or stringData) key "keys.yaml" holds
// the ring in the key-file format of consistency.ParseKeyRing. The control plane hands
// it to sidecars as an SDS secret (translate), so every region signs and verifies with
// the same keys and a rotation is a manifest change. At most one such Secret; any other
// Secret is an error (geode reads no other secrets). Errors name the field, never a
// secret's value.
//
// Decoding is strict: an unknown field is an error (with its line, for the geode
// manifest always, for Kubernetes objects when the field name occurs once). Every error
// names the file, the document's 1-based index in it (and for Kubernetes objects their
// kind and namespace/name) and the field path:
//
//	dir/geode.yaml: document 1: services[1].endpoints.us-east[0].address: ...
//	dir/shop.yaml: document 2 (EndpointSlice shop/profiles-abc): endpoints[3].zone: ...
//	dir/shop.yaml: document 1 (Service shop/profiles): metadata.annotations["geode.io/residency"]: ...
//
// # Reload
//
// Watcher (and Watch) reload the directory with fsnotify: after any change in it
// (create, write, remove, rename; debounced, 200 ms by default), Load runs again; a valid
// model whose version differs from the last one applied goes to Apply (the server's
// SetModel); an invalid directory, or an Apply error, goes to Report, and the last good
// model stays in service. Run loads once right after its watch is set up, so a change
// made between the first Load and Run is not missed. If the directory itself is removed
// or renamed, Run reports it and re-watches it once a second until it is back.
//
// Imports: controlplane/model (and through it affinity, consistency), k8s.io/api,
// sigs.k8s.io/yaml, fsnotify. Load is safe to call concurrently; it keeps no state.
// Watcher.Run starts no goroutine of its own beyond fsnotify's reader.
package source
