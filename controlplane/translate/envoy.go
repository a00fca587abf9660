package translate

import (
	"fmt"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	lbcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/common/v3"
	maglevv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	wrrlocalityv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/wrr_locality/v3"
	previoushostsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// Options tune what ForRegionWith produces. The zero value is what ForRegion produces.
type Options struct {
	// Outbound adds the Envoy outbound listener (OutboundListenerName) to LDS. It needs a
	// server whose cache answers a request naming some listeners with those (grpc-go
	// names only its authority): go-control-plane's SnapshotCache in ADS mode would wait
	// for a request naming every listener. controlplane/server turns it on.
	Outbound bool
	// OutboundPort is the port of the outbound listener, bound on 0.0.0.0; 0 means
	// DefaultOutboundPort.
	OutboundPort uint32
}

const (
	// OutboundListenerName is the socket listener Envoy binds for outbound traffic. It
	// must not be a service authority: grpc-go looks listeners up by authority.
	OutboundListenerName = "geode-outbound"
	// DefaultOutboundPort is the outbound listener's port unless Options say otherwise.
	DefaultOutboundPort = 15001

	// SessionHeader and SessionCookie carry the geode session; Envoy hashes on them.
	SessionHeader = "geode-session"
	SessionCookie = "geode-session"
)

// Limits of the outbound HCM, in line with the geode sidecar's defaults (proxy/config
// Limits): 60 KiB of request headers, 10 s to read them, 120 s idle connections.
const (
	maxRequestHeadersKB   = 60
	requestHeadersTimeout = 10 * time.Second
	connIdleTimeout       = 120 * time.Second
	streamIdleTimeout     = 5 * time.Minute
)

func (o Options) outboundPort() uint32 {
	if o.OutboundPort == 0 {
		return DefaultOutboundPort
	}
	return o.OutboundPort
}

// validate checks o on its own: a port beyond 16 bits is an error.
func (o Options) validate() error {
	if o.OutboundPort > 65535 {
		return fmt.Errorf("outbound port %d is not a TCP port", o.OutboundPort)
	}
	return nil
}

// buildOutboundListener is the socket listener Envoy binds: one filter chain, an HCM
// with RDS (ADS) for RouteConfigName — the route config the api_listeners use too —
// and the router, with the options a sidecar proxy wants.
func buildOutboundListener(o Options) (*listenerv3.Listener, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	m := &hcmv3.HttpConnectionManager{
		StatPrefix: "geode_outbound",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: RouteConfigName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
		// The application is the client: keep its X-Forwarded-For, don't append ours.
		UseRemoteAddress:      wrapperspb.Bool(false),
		NormalizePath:         wrapperspb.Bool(true),
		MergeSlashes:          true,
		StreamIdleTimeout:     durationpb.New(streamIdleTimeout),
		RequestHeadersTimeout: durationpb.New(requestHeadersTimeout),
		MaxRequestHeadersKb:   wrapperspb.UInt32(maxRequestHeadersKB),
		CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{
			IdleTimeout: durationpb.New(connIdleTimeout),
		},
	}
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("outbound http connection manager: %w", err)
	}
	cfg, err := anypb.New(m)
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name: OutboundListenerName,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Protocol:      corev3.SocketAddress_TCP,
			Address:       "0.0.0.0",
			PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: o.outboundPort()},
		}}},
		TrafficDirection: corev3.TrafficDirection_OUTBOUND,
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: cfg},
			}},
		}},
	}, nil
}

// routeAction routes to cluster with session stickiness for hash-based load balancers
// (the geode-session header, else the geode-session cookie), no route timeout (streams
// may be long) and one retry on failures where the request never reached the upstream
// application (connect failure, REFUSED_STREAM), on another host. That retry is safe for
// any method.
func routeAction(cluster string) (*routev3.RouteAction, error) {
	prev, err := anypb.New(&previoushostsv3.PreviousHostsPredicate{})
	if err != nil {
		return nil, err
	}
	return &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
		Timeout:          durationpb.New(0),
		HashPolicy: []*routev3.RouteAction_HashPolicy{
			{
				PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: SessionHeader}},
				Terminal:        true,
			},
			{
				// No TTL: Envoy hashes on the cookie when present and never mints one;
				// geode session tokens are issued by geode.
				PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: SessionCookie}},
				Terminal:        false,
			},
		},
		RetryPolicy: &routev3.RetryPolicy{
			RetryOn:    "connect-failure,refused-stream",
			NumRetries: wrapperspb.UInt32(1),
			RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{
				Name:       "envoy.retry_host_predicates.previous_hosts",
				ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: prev},
			}},
			HostSelectionRetryMaxAttempts: 3,
		},
	}, nil
}

// loadBalancingPolicy is every cluster's load_balancing_policy: a list each client walks
// in order, taking the first policy it supports (Envoy; grpc-go per gRFC A52).
//
//   - Envoy supports maglev: consistent hashing on the route's hash policies within the
//     priority it picked, honoring locality weights (the ramp).
//   - grpc-go has no maglev, skips it, and takes wrr_locality{round_robin}: exactly what
//     lb_policy ROUND_ROBIN gives it, so its priorities and ramps are unchanged.
//
// lb_policy stays ROUND_ROBIN for clients that ignore load_balancing_policy.
func loadBalancingPolicy() (*clusterv3.LoadBalancingPolicy, error) {
	maglev := &maglevv3.Maglev{
		LocalityWeightedLbConfig: &lbcommonv3.LocalityLbConfig_LocalityWeightedLbConfig{},
	}
	rr, err := typedPolicy("envoy.load_balancing_policies.round_robin", &roundrobinv3.RoundRobin{})
	if err != nil {
		return nil, err
	}
	wrr := &wrrlocalityv3.WrrLocality{EndpointPickingPolicy: &clusterv3.LoadBalancingPolicy{
		Policies: []*clusterv3.LoadBalancingPolicy_Policy{rr},
	}}
	var policies []*clusterv3.LoadBalancingPolicy_Policy
	for _, p := range []struct {
		name string
		cfg  proto.Message
	}{
		{"envoy.load_balancing_policies.maglev", maglev},
		{"envoy.load_balancing_policies.wrr_locality", wrr},
	} {
		pol, err := typedPolicy(p.name, p.cfg)
		if err != nil {
			return nil, err
		}
		policies = append(policies, pol)
	}
	return &clusterv3.LoadBalancingPolicy{Policies: policies}, nil
}

// typedPolicy validates cfg (Validate does not look inside an Any) and wraps it.
func typedPolicy(name string, cfg proto.Message) (*clusterv3.LoadBalancingPolicy_Policy, error) {
	if v, ok := cfg.(interface{ Validate() error }); ok {
		if err := v.Validate(); err != nil {
			return nil, fmt.Errorf("lb policy %s: %w", name, err)
		}
	}
	a, err := anypb.New(cfg)
	if err != nil {
		return nil, err
	}
	return &clusterv3.LoadBalancingPolicy_Policy{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: name, TypedConfig: a}}, nil
}
