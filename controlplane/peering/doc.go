// Package peering is control-plane peering, both sides of it: each region's control
// plane is authoritative for its own region, serves that region's summary to the other
// regions' control planes (Server), and learns the other regions' states by polling
// theirs (Peers).
//
// # Protocol
//
// A control plane with an own region (server.Options.Region, --region) serves
// GET /peer/summary?since=VERSION&wait=DURATION on its peering listener (--peer-listen):
// a JSON Summary {region, state, weight_factor_percent, override, endpoints, version,
// time} of its own region: the state its health machine computed from its own sidecars'
// reports; apart from it, the operator's override set on it for that region (geode
// region drain|fence|down against the region's own control plane); and the endpoints its
// own region's sidecars registered with it (through xDS node metadata), which it alone
// knows. The answer comes at
// once when the version differs from since, else when it changes or after wait (a long
// poll; at most MaxWait). The version is the publishing control plane's start time and
// a counter, so a restarted peer is always new to its followers.
//
// Peers.Run follows every --peer REGION=ADDR (ADDR is that control plane's
// --peer-listen) with one long poll at a time, applies each new summary through
// Options.Apply (server.ApplyPeerSummary) and backs off exponentially
// (MinBackoff..MaxBackoff) after a failure. Every failure — unreachable, refused
// certificate, error status, a summary of another region, a summary Apply refuses — is
// passed to Options.Failed (server.RecordPeerError: counted, and the last one shown with
// its time in /config_dump under peers). A peer with no good answer for StaleAfter is
// reported stale through Options.Stale (server.SetPeerStale) and its last applied
// summary stays in force: a control plane partitioned from us, or one we cannot
// authenticate, is not evidence that its region is down (fail static). It is cleared
// at the next good answer.
//
// # Mutual TLS
//
// With the control plane's TLS material (--tls-cert, --tls-key, --tls-ca: the same
// files as its xDS server, re-read on change by the same identity.Source) peering runs
// over mutual TLS, and a control plane's certificate must name its region:
// spiffe://<trust-domain>/geode/region/<region>/controlplane (see package identity).
//
//   - The poller of region X accepts only a server certificate that chains to the
//     current bundle and names X's control plane (identity.Source.PeeringClientConfig;
//     checked again on the response), and refuses a body whose region is not X. So "the
//     summary of X" is bound to "the certificate of X's control plane": a control plane
//     of another region, a sidecar, or anyone on the path cannot speak for X.
//   - The server requires a client certificate of the trust domain, verified against
//     the current bundle at the handshake, and answers 403, naming the identity, to a
//     client that is not a control plane (a sidecar's certificate): region states are
//     not for sidecars or anyone else who can reach the port. Any control plane of the
//     trust domain may read: the summary is what every region's control plane is meant
//     to know.
//   - One poll per connection (the server answers with Connection: close): every poll
//     is a fresh handshake against the current certificate and bundle, so a rotation,
//     or a CA removed from the bundle, applies within one wait, for the cost of one
//     handshake per peer per wait (DefaultWait, 10 s).
//   - New refuses to poll with a certificate that is not the own region's control
//     plane's (its peers would refuse it), and the control plane refuses to start, or to
//     reload, such a certificate when it peers.
//
// Without TLS material peering is plain HTTP, which the control plane allows only under
// --insecure, with a loud warning (demos and tests).
//
// # Where the endpoint lives: a listener of its own
//
// The summary is served on a dedicated listener (--peer-listen), not on the admin
// listener nor on the xDS port:
//
//   - The admin listener is for operators on loopback: `geode status` and
//     `geode region` use it over plain HTTP, and POST /reports and the region actions are
//     unauthenticated by design there. Peers are in other regions, so the peering port
//     must be reachable across the WAN; putting mTLS on the admin listener would break the
//     operator commands, and exposing the admin listener would expose its writes.
//   - The xDS port's TLS policy is "clients are sidecars" (identity.Source.ServerConfig
//     refuses other identities at the handshake) and it is a gRPC server; serving HTTP
//     beside it means a connection multiplexer or grpc.Server.ServeHTTP (experimental,
//     and the slower of grpc-go's two transports) in front of every sidecar's stream.
//   - A listener of its own has its own TLS policy (control planes only), can be firewalled
//     to the other regions' control planes alone, and is off unless asked for.
//
// # How a summary is applied (server, peer.go)
//
// A peer's summary is that region's computed state, merged with this control plane's
// own evidence (reports from its own sidecars about that region): the worse state counts,
// and on equal states the lower weight factor (so a peer's ramp propagates). The peer's
// override, when set, counts as its state when it is worse, so an operator who drains
// a region at its own control plane drains it for every region's clients, and a restore
// there lifts it everywhere. This control plane's own override of the region and the
// configured state still win as before (health.Effective). A summary of this control
// plane's own region, of a region not in the model, with a state the health machine does
// not compute, or with an override that is not draining, down or fenced is refused.
// Overrides of other regions set here stay local. A peer's endpoints are served as that
// region's registered endpoints (checked like a registration: a service name, an address
// other regions can dial, a valid zone, at most the registration cap), replaced whole by
// each new summary and kept, like its state, while the peer is unreachable.
//
// # Why a long-poll over HTTP and not xDS or gossip
//
//   - Region summaries are a handful of bytes per region, changing a few times an hour,
//     among a handful of control planes that are configured anyway (one per region): a
//     full mesh of long polls is N×(N-1) idle requests, with no membership protocol to
//     get wrong. Gossip (memberlist/serf) solves membership and scale problems this does
//     not have, adds its own UDP/TCP ports, failure detector and tuning, and its
//     suspicion/dead machinery is precisely what must not mark a region down.
//   - "Over xDS itself" would mean a custom resource type on ADS with a go-control-plane
//     cache per peer and a grpc-go ADS client in the control plane: workable, but the
//     SnapshotCache is keyed by the requesting node's region and its NACK/hold logic is
//     tuned for sidecars; a second cache and client state machine for one small struct
//     is more code and more failure modes than a 200-line long poll. The long poll gives
//     the same push latency (the answer is sent when the version changes) and the same
//     versioned, level-triggered semantics (a follower that missed versions just gets the
//     latest).
//   - The peering listener's JSON is inspectable with curl (with a control plane's
//     certificate, or in --insecure mode).
//
// Concurrency: Peers.Run starts one goroutine per peer and returns when they have
// ended, after ctx is done; Server.Run serves until ctx is done and ends held long
// polls then; New and NewServer start nothing. The request timeout is StaleAfter, so a
// request hung by a partition ends, and marks the peer stale, within the bound.
package peering
