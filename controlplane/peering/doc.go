// Package peering is the client side of control-plane peering: each region's control
// plane is authoritative for its own region and learns the other regions' states from
// their control planes.
//
// # Protocol
//
// A control plane with an own region (server.Options.Region, --region) serves
// GET /peer/summary?since=VERSION&wait=DURATION on its admin listener: a JSON Summary
// {region, state, weight_factor_percent, version, time} of its own region's state as
// computed by its health machine from its own sidecars' reports (operator overrides are
// local to a control plane and not sent). The answer comes at once when the version
// differs from since, else when it changes or after wait (a long poll; at most MaxWait).
// The version is the publishing control plane's start time and a counter, so a
// restarted peer is always new to its followers.
//
// Peers.Run follows every --peer REGION=ADDR with one long poll at a time, applies
// each new summary through Options.Apply (server.ApplyPeerSummary) and backs off
// exponentially (MinBackoff..MaxBackoff) after a failure. A peer with no answer for
// StaleAfter is reported stale through Options.Stale (server.SetPeerStale, shown in
// /config_dump under peers) and its last applied summary stays in force: a control plane
// partitioned from us is not evidence that its region is down (fail static). It is
// cleared at the next answer.
//
// # How a summary is applied (server, peer.go)
//
// A peer's summary is that region's computed state, merged with this control plane's
// own evidence (reports from its own sidecars about that region): the worse state counts,
// and on equal states the lower weight factor (so a peer's ramp propagates). Operator
// overrides and the configured state still win as before (health.Effective). A summary
// of this control plane's own region, of a region not in the model, or with a state the
// health machine does not compute is refused.
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
//   - The admin listener already exists, is bound to loopback or a private network, and
//     its JSON is inspectable with curl.
//
// Concurrency: Run starts one goroutine per peer and returns when they have ended,
// after ctx is done; New starts nothing. The request timeout is StaleAfter, so a request
// hung by a partition ends, and marks the peer stale, within the bound.
//
// TODO: peering over mTLS (the admin listener is plaintext today); propagating operator
// overrides of a region to the other regions' control planes.
package peering
