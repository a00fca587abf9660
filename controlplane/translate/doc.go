// Package translate turns the fleet model into Envoy-native xDS resources for one
// requesting region, and gates them: every resource passes its generated Validate() and
// the snapshot passes go-control-plane's Consistent() plus our own reference checks
// before anything is returned.
//
// For a requesting region R and each service S it produces:
//
//   - CDS: cluster S of type EDS (config source: ADS; EDS service_name S), a
//     load_balancing_policy [maglev, wrr_locality{round_robin}] with lb_policy
//     ROUND_ROBIN as the fallback (see "Load balancing" below), circuit breakers, outlier detection,
//     HTTP/2 upstream options for grpc/http2 services, and S's geode policy as
//     metadata.filter_metadata["geode"] (schema: controlplane/api), including the
//     regions as R sees them (RegionView: every region, its RTT from R, its state —
//     down and fenced ones too, so a geode sidecar knows why they are missing from EDS).
//   - EDS: ClusterLoadAssignment S with one LocalityLbEndpoints per (region, zone),
//     locality.region/zone set, every locality weighted (grpc-go ignores unweighted
//     ones) by its endpoint count, and priorities by proximity from R: R first, then by
//     RTT, with degraded and then draining regions after every healthy one, and down and
//     fenced regions left out. grpc-go does no overprovisioning, so this ordering is how
//     the control plane moves traffic. Priorities are contiguous from 0, as grpc-go
//     requires.
//   - Ramps (ForRegionRamped, Groups): a region whose weight factor f (controlplane/health)
//     is strictly between 0 and 100 keeps its proximity position and shares that priority
//     with the next non-ramping region, scaled so they get f% and (100-f)% of its
//     traffic (locality weights sum to 10×percent per region); the next region leaves
//     its own later priority, so no locality appears twice. At f = 0 or 100 the region
//     is placed by its state as above.
//   - LDS: one api_listener per authority of S (the name a proxyless gRPC client dials
//     as xds:///AUTHORITY), an HttpConnectionManager with RDS (ADS) and the router filter.
//     With Options.Outbound, also the socket listener Envoy binds, OutboundListenerName
//     ("geode-outbound") on 0.0.0.0:Options.OutboundPort (default 15001), traffic
//     direction OUTBOUND, one filter chain: an HCM (stat_prefix geode_outbound, RDS over
//     ADS for the same RouteConfigName, router; use_remote_address false, normalize_path,
//     merge_slashes, stream idle timeout 5m, request headers ≤ 60 KiB read within 10s,
//     connections idle 120s — the geode sidecar's limits), so Envoy routes like grpc-go
//     and the sidecars. The two kinds do not collide: grpc-go asks for listeners by
//     name (its authority) and never names geode-outbound (an authority equal to it is an
//     error); Envoy binds socket listeners and does not install api_listeners it gets
//     over LDS (it logs that only one, from bootstrap, is allowed) — no NACK.
//     Outbound is off by default because go-control-plane's SnapshotCache in ADS mode
//     (what controlplane/server uses) answers a named request only if it names every
//     resource of the type in the snapshot, and grpc-go names only its authority: with a
//     second listener its LDS watch is never answered (pinned by a test). The same rule
//     already withholds CDS/LDS from grpc-go once there are two services or authorities;
//     the server needs ads=false (or another cache) before Outbound can be on.
//   - RDS: one RouteConfiguration, RouteConfigName, with a virtual host per service
//     (domains: its authorities, with and without port) routing "/" to cluster S, with
//     hash policies header geode-session (terminal) then cookie geode-session (no TTL:
//     Envoy never mints it), timeout 0 (none: streams), and retry_on
//     connect-failure,refused-stream, 1 retry on another host (previous_hosts) — the
//     request never reached the application, so it is safe for any method. grpc-go
//     ignores the cookie policy, hashes on nothing under round_robin, and retries only on
//     gRPC status codes, of which there are none here.
//
// Load balancing. Stickiness in Geode is per region: the geode policy (metadata) and the
// sidecars keep a session in its region. What the hash policy adds for Envoy users is
// endpoint affinity inside the priority Envoy picked (its maglev picks the priority, then
// the endpoint in that priority's table, with locality weights): while the requesting
// region is healthy, a session stays on one endpoint of it; it moves when the region
// fails over, when endpoints change (maglev: minimal disruption), and during a ramp step,
// whose shared priority is reweighted. Envoy and grpc-go each take the first policy of
// load_balancing_policy they support (gRFC A52): Envoy takes maglev; grpc-go has no
// maglev, skips it and takes wrr_locality{round_robin} — exactly what lb_policy
// ROUND_ROBIN gives it, so the priorities and ramps grpc-go follows (and the
// controlplane/server grpc-go tests) are unchanged. ring_hash for both was the
// alternative; it would change grpc-go's picking (lazy connects per priority, a random
// hash per RPC without the header) for no gain, since region stickiness is not its job.
// If grpc-go ever gains maglev it would take it; that would show in those tests.
//
// Consistent() does not follow RDS names inside an api_listener (go-control-plane PR
// #949), so Check runs it on a copy whose listeners also carry their HCM in a filter
// chain, and separately checks that every route's cluster exists in CDS. The outbound
// listener is a plain filter-chain listener, so Consistent() follows its RDS name as is.
//
// TODO(issue 4, later steps): SDS secrets for session-token keys; Options.Outbound on by
// default once the server's cache answers partial named requests.
//
// Imports: model, api. Functions are pure and safe for concurrent use.
package translate
