// Package fleet runs a whole Geode deployment on loopback, in one process: for each
// region a profiles app (examples/profiles) and a geode sidecar in front of it, and
// optionally emulated WAN links between the regions. It is the harness of the e2e tests
// and of `geode demo`; it is ordinary (non-test) code so both can use it.
//
// # What it owns
//
// A Fleet owns, per region, four loopback listeners bound up front on 127.0.0.1:0 (app,
// sidecar outbound, inbound and admin), the app's Store and the Sidecar; and, with
// Options.WAN, one toxiproxy link per ordered pair of regions (source, destination).
//
// Every sidecar's config lists every region with the RTTs of the embedded regions.csv (a
// copy of the published AWS inter-region averages; the module never reads files outside
// itself at run time) and two services, "profiles" (http1) and "profiles-grpc" (grpc),
// whose endpoints are each region's sidecar inbound listener: the caller's own region's
// directly, every other region's through the link (source → destination), which adds a
// one-way latency of rtt/2 in each direction (toxiproxy "latency" toxics on the upstream
// and downstream streams). The configs set debug.reason_header, a 5s request timeout for
// "profiles" and a 2s drain timeout, and go through config.Parse like a file would;
// Options.Configure may adjust them.
//
// With Options.ControlPlanes each region also runs its own control plane
// (controlplane/server; regional autonomy: no region depends on another's), whose model
// is that region's config minus what only the sidecar knows: every region with its RTTs,
// and the services with their policy and this region's view of the endpoints (through
// its WAN links). The region's sidecar starts from a base config (its listeners, app,
// session, limits, debug, only its own region, each service with its own region's
// endpoints and its timeouts, retry and breaker) and an xDS client (proxy/xds, plaintext
// on loopback) that replaces regions and services with the control plane's; xds.Merge
// keeps the base's per-service timeouts, retry and breaker, which xDS does not carry.
// Start then also waits, within the same bound, until every sidecar routes the state
// from its control plane (every region, every service with a pool per region).
//
// Replication between the apps does NOT go through the WAN links or the sidecars: each
// app pushes its writes straight to its peers' app addresses, delayed by Options.Lag, or
// by Options.LagInto[peer] for a peer it names (one region's replica lagging far behind
// the others'). These are therefore the whole replication delay.
//
// StopApp stops a region's app and leaves its sidecar running (the inbound listener then
// answers 503, marked unprocessed, so callers go elsewhere); StartApp starts a new, empty Store on the same address with the next
// epoch, so peers accept its restarted sequence.
//
// # Imports
//
// It may import proxy/config, proxy/sidecar, proxy/xds, controlplane/model,
// controlplane/server, examples/profiles, toxiproxy, grpc and the standard library. Nothing in the product (proxy/..., controlplane/..., affinity/...)
// may import it; only e2e tests, e2e/demo and cmd.
//
// # Concurrency contract
//
// Start is the run method: it starts the control planes' (if any), apps', sidecars' and
// xDS clients' goroutines and returns when
// every sidecar's /ready and every app's /healthz answer 200 (bounded at 10s), or with
// an error after stopping whatever it started. The fleet runs until Close or until
// Start's ctx ends. Close cancels everything, joins every goroutine the fleet started
// (sidecar drains are bounded at 2s, app shutdowns at 5s), then stops the WAN links;
// it must be called exactly once per successful Start (more calls are harmless).
// Region methods are safe for concurrent use; StopApp and StartApp are serialized per
// region. StartApp after Close returns ErrClosed.
package fleet
