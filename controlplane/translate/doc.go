// Package translate turns the fleet model into Envoy-native xDS resources for one
// requesting region, and gates them: every resource passes its generated Validate() and
// the snapshot passes go-control-plane's Consistent() plus our own reference checks
// before anything is returned.
//
// For a requesting region R and each service S it produces:
//
//   - CDS: cluster S of type EDS (config source: ADS; EDS service_name S), lb_policy
//     ROUND_ROBIN (accepted by grpc-go and Envoy), circuit breakers, outlier detection,
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
//   - RDS: one RouteConfiguration, RouteConfigName, with a virtual host per service
//     (domains: its authorities, with and without port) routing "/" to cluster S.
//
// Consistent() does not follow RDS names inside an api_listener (go-control-plane PR
// #949), so Check runs it on a copy whose listeners also carry their HCM in a filter
// chain, and separately checks that every route's cluster exists in CDS.
//
// TODO(issue 4, later steps): an Envoy outbound listener with a socket address and a
// filter chain; hash policy for stickiness; SDS secrets for session-token keys.
//
// Imports: model, api. Functions are pure and safe for concurrent use.
package translate
