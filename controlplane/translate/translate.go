package translate

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/controlplane/model"
)

// RouteConfigName is the name of the one RDS resource, holding a virtual host per
// service.
const RouteConfigName = "geode"

// Order returns the regions that may take traffic for clients in region from, best
// first: healthy regions by RTT (from itself first), then degraded, then draining ones.
// Down and fenced regions are left out.
func Order(m *model.Model, from string) ([]string, error) {
	if _, ok := m.Region(from); !ok {
		return nil, fmt.Errorf("unknown region %q", from)
	}
	type cand struct {
		name  string
		state affinity.RegionState
		rtt   time.Duration
	}
	var cands []cand
	for _, r := range m.Regions() {
		if !r.State.Serves() {
			continue
		}
		rtt, ok := m.RTT(from, r.Name)
		if !ok {
			return nil, fmt.Errorf("no RTT between %q and %q", from, r.Name)
		}
		cands = append(cands, cand{name: r.Name, state: r.State, rtt: rtt})
	}
	slices.SortFunc(cands, func(a, b cand) int {
		return cmp.Or(cmp.Compare(a.state, b.state), cmp.Compare(a.rtt, b.rtt), cmp.Compare(a.name, b.name))
	})
	out := make([]string, len(cands))
	for i, c := range cands {
		out[i] = c.name
	}
	return out, nil
}

// ForRegion translates m for clients in region and returns a snapshot that has passed
// every resource's Validate() and Check. Its version is a hash of the resources, so a
// model change that does not change what region sees does not produce a new version.
// Clusters and endpoints carry it; listeners and routes, and the session-key secret, have
// versions of their own (see ForRegionWith).
func ForRegion(m *model.Model, region string) (*cache.Snapshot, error) {
	return ForRegionRamped(m, region, nil)
}

// ForRegionRamped is ForRegion with some regions in the middle of a ramp: ramp maps a
// region to its weight factor in percent, strictly between 0 and 100 (see Groups).
func ForRegionRamped(m *model.Model, region string, ramp map[string]int) (*cache.Snapshot, error) {
	return ForRegionWith(m, region, ramp, Options{})
}

// ForRegionWith is ForRegionRamped with Options (the Envoy outbound listener).
func ForRegionWith(m *model.Model, region string, ramp map[string]int, opts Options) (*cache.Snapshot, error) {
	res, err := ResourcesWith(m, region, ramp, opts)
	if err != nil {
		return nil, err
	}
	version, err := hashResources(res)
	if err != nil {
		return nil, err
	}
	snap, err := cache.NewSnapshot(version, res)
	if err != nil {
		return nil, fmt.Errorf("region %q: %w", region, err)
	}
	// Listeners and routes get a version of their own: they do not change with region
	// states, so a state-of-the-world push after a region-state change sends only
	// clusters and endpoints (which keep the snapshot-wide version callers compare
	// against) instead of re-sending the unchanged listeners and routes to every client.
	staticVersion, err := hashResources(map[resource.Type][]types.Resource{
		resource.ListenerType: res[resource.ListenerType], resource.RouteType: res[resource.RouteType],
	})
	if err != nil {
		return nil, err
	}
	for _, typ := range []resource.Type{resource.ListenerType, resource.RouteType} {
		snap.Resources[cache.GetResponseType(typ)].Version = staticVersion
	}
	// The session key ring (SDS) is versioned by its fingerprint: a rotation re-sends
	// the secret alone, and a region-state change does not re-send it.
	snap.Resources[cache.GetResponseType(resource.SecretType)].Version = sessionKeysVersion(m.SessionKeys())
	if err := Check(snap); err != nil {
		return nil, fmt.Errorf("region %q: %w", region, err)
	}
	return snap, nil
}

// Resources returns the resources for clients in region, by type URL, each already
// checked with its Validate().
func Resources(m *model.Model, region string) (map[resource.Type][]types.Resource, error) {
	return ResourcesRamped(m, region, nil)
}

// ResourcesRamped is Resources with some regions ramping (see ForRegionRamped).
func ResourcesRamped(m *model.Model, region string, ramp map[string]int) (map[resource.Type][]types.Resource, error) {
	return ResourcesWith(m, region, ramp, Options{})
}

// ResourcesWith is ResourcesRamped with Options.
func ResourcesWith(m *model.Model, region string, ramp map[string]int, opts Options) (map[resource.Type][]types.Resource, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	groups, err := Groups(m, region, ramp)
	if err != nil {
		return nil, err
	}
	var (
		clusters, endpoints, listeners []types.Resource
		vhosts                         []*routev3.VirtualHost
		errs                           []error
	)
	view, err := RegionView(m, region, ramp)
	if err != nil {
		return nil, err
	}
	for _, svc := range m.Services() {
		c, err := buildCluster(svc, view)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		cla, err := buildAssignment(svc, groups)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		clusters = append(clusters, c)
		endpoints = append(endpoints, cla)
		vh, err := buildVirtualHost(svc)
		if err != nil {
			errs = append(errs, fmt.Errorf("service %q: %w", svc.Name, err))
			continue
		}
		vhosts = append(vhosts, vh)
		for _, a := range svc.Authorities {
			if a == OutboundListenerName {
				errs = append(errs, fmt.Errorf("service %q: authority %q is the Envoy outbound listener's name", svc.Name, a))
				continue
			}
			l, err := buildAPIListener(a)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %q: %w", svc.Name, err))
				continue
			}
			listeners = append(listeners, l)
		}
	}
	if opts.Outbound {
		// Envoy binds this one; grpc-go only asks for listeners named by its authorities.
		outbound, err := buildOutboundListener(opts)
		if err != nil {
			return nil, err
		}
		listeners = append(listeners, outbound)
	}
	rc := &routev3.RouteConfiguration{Name: RouteConfigName, VirtualHosts: vhosts}
	secrets, err := sessionKeys(m.SessionKeys())
	if err != nil {
		return nil, err
	}
	out := map[resource.Type][]types.Resource{
		resource.ClusterType:  clusters,
		resource.EndpointType: endpoints,
		resource.ListenerType: listeners,
		resource.RouteType:    {rc},
		resource.SecretType:   secrets,
	}
	for typ, list := range out {
		for _, r := range list {
			v, ok := r.(interface{ Validate() error })
			if !ok {
				errs = append(errs, fmt.Errorf("%s %q: no Validate method", typ, cache.GetResourceName(r)))
				continue
			}
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("%s %q: %w", typ, cache.GetResourceName(r), err))
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("translating for region %q: %w", region, err)
	}
	return out, nil
}

// Circuit breaker and outlier detection defaults for every cluster.
const (
	maxConnections     = 1024
	maxPendingRequests = 1024
	maxRequests        = 1024
	maxRetries         = 3
)

// RegionView returns every region of m, in configuration order, with its RTT from
// region from, its current state and, for a ramping region (ramp, as in Groups), its
// ramp percent: what a geode sidecar in from needs to order, skip and ramp regions
// itself. It travels on every cluster as the geode metadata's regions.
func RegionView(m *model.Model, from string, ramp map[string]int) ([]api.Region, error) {
	if _, ok := m.Region(from); !ok {
		return nil, fmt.Errorf("unknown region %q", from)
	}
	var out []api.Region
	for _, r := range m.Regions() {
		rtt, ok := m.RTT(from, r.Name)
		if !ok {
			return nil, fmt.Errorf("no RTT between %q and %q", from, r.Name)
		}
		out = append(out, api.Region{Name: r.Name, RTT: rtt, State: r.State.String(), RampPercent: ramp[r.Name]})
	}
	return out, nil
}

func buildCluster(svc model.Service, regions []api.Region) (*clusterv3.Cluster, error) {
	pol, err := api.Encode(api.Policy{
		Service: svc.Name, Protocol: svc.Protocol, Authorities: svc.Authorities,
		Consistency: svc.Policy.Consistency, AffinityKey: svc.Policy.AffinityKey,
		HomeRegions: svc.Policy.HomeRegions, WriteFailover: svc.Policy.WriteFailover,
		Residency: svc.Policy.Residency, CrossRegionBudget: svc.Policy.CrossRegionBudget,
		ReplicationLagBound: svc.Policy.ReplicationLagBound,
		Regions:             regions,
	})
	if err != nil {
		return nil, err
	}
	lb, err := loadBalancingPolicy()
	if err != nil {
		return nil, err
	}
	c := &clusterv3.Cluster{
		Name:                 svc.Name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{
			EdsConfig:   adsSource(),
			ServiceName: svc.Name,
		},
		ConnectTimeout:      durationpb.New(time.Second),
		LbPolicy:            clusterv3.Cluster_ROUND_ROBIN,
		LoadBalancingPolicy: lb, // supersedes LbPolicy: maglev for Envoy, round_robin for grpc-go
		CircuitBreakers: &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     wrapperspb.UInt32(maxConnections),
			MaxPendingRequests: wrapperspb.UInt32(maxPendingRequests),
			MaxRequests:        wrapperspb.UInt32(maxRequests),
			MaxRetries:         wrapperspb.UInt32(maxRetries),
		}}},
		OutlierDetection: &clusterv3.OutlierDetection{
			Consecutive_5Xx:                    wrapperspb.UInt32(5),
			Interval:                           durationpb.New(10 * time.Second),
			BaseEjectionTime:                   durationpb.New(30 * time.Second),
			MaxEjectionPercent:                 wrapperspb.UInt32(50),
			EnforcingConsecutive_5Xx:           wrapperspb.UInt32(100),
			EnforcingSuccessRate:               wrapperspb.UInt32(0),
			EnforcingConsecutiveGatewayFailure: wrapperspb.UInt32(0),
		},
		Metadata: &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{api.MetadataKey: pol}},
	}
	if svc.Protocol == model.ProtocolGRPC || svc.Protocol == model.ProtocolHTTP2 {
		opts, err := anypb.New(&upstreamhttpv3.HttpProtocolOptions{
			UpstreamProtocolOptions: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_{
				ExplicitHttpConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &upstreamhttpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
						Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
					},
				},
			},
		})
		if err != nil {
			return nil, err
		}
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": opts,
		}
	}
	return c, nil
}

// Share is one region's part of a priority, in percent of the priority's traffic.
type Share struct {
	Region  string
	Percent int
}

// Groups returns the priorities for clients in region from, best first, each with the
// regions sharing it. Without ramps every priority holds one region at 100%, in Order.
//
// A ramping region R (ramp[R] = f, 0 < f < 100) keeps the place it would have if it
// were healthy, whatever its state, and shares that priority with the next region S of
// that order that is not ramping itself: R gets f% of the priority's traffic and S
// (100-f)%; S then leaves its own, later, priority (a locality appears once). grpc-go
// does no overprovisioning, so this is how traffic leaves (or returns to) R in steps.
// A ramp entry outside (0,100) or for an unknown region is an error.
func Groups(m *model.Model, from string, ramp map[string]int) ([][]Share, error) {
	for r, f := range ramp {
		if _, ok := m.Region(r); !ok {
			return nil, fmt.Errorf("ramp: unknown region %q", r)
		}
		if f <= 0 || f >= 100 {
			return nil, fmt.Errorf("ramp: region %q: factor %d%% is not strictly between 0 and 100", r, f)
		}
	}
	view := m
	for _, r := range slices.Sorted(maps.Keys(ramp)) {
		var err error
		if view, err = view.WithRegionState(r, affinity.Healthy); err != nil {
			return nil, err
		}
	}
	order, err := Order(view, from)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	var out [][]Share
	for i, r := range order {
		if used[r] {
			continue
		}
		used[r] = true
		f, ramping := ramp[r]
		if !ramping {
			out = append(out, []Share{{Region: r, Percent: 100}})
			continue
		}
		group := []Share{{Region: r, Percent: f}}
		for _, next := range order[i+1:] {
			if _, alsoRamping := ramp[next]; !alsoRamping && !used[next] {
				used[next] = true
				group = append(group, Share{Region: next, Percent: 100 - f})
				break
			}
		}
		if len(group) == 1 {
			group[0].Percent = 100 // nowhere to shift to
		}
		out = append(out, group)
	}
	return out, nil
}

// rampScale is the locality weight a region gets per percent of a shared priority.
const rampScale = 10

// buildAssignment places svc's endpoints in priorities following groups (see Groups);
// regions outside them (down, fenced) are left out. A priority one region has alone
// weighs its localities by endpoint count; a shared one scales each region's localities
// so their sum is rampScale × its percent.
func buildAssignment(svc model.Service, groups [][]Share) (*endpointv3.ClusterLoadAssignment, error) {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: svc.Name}
	priority := uint32(0)
	for _, group := range groups {
		shared := 0
		for _, sh := range group {
			if len(svc.Endpoints[sh.Region]) > 0 {
				shared++
			}
		}
		if shared == 0 {
			continue
		}
		for _, sh := range group {
			region := sh.Region
			eps := svc.Endpoints[region]
			if len(eps) == 0 {
				continue
			}
			// One locality per zone, in order of first appearance.
			var zones []string
			byZone := map[string][]*endpointv3.LbEndpoint{}
			for _, e := range eps {
				lbe, err := lbEndpoint(e.Address)
				if err != nil {
					return nil, fmt.Errorf("service %q: region %q: %w", svc.Name, region, err)
				}
				if _, ok := byZone[e.Zone]; !ok {
					zones = append(zones, e.Zone)
				}
				byZone[e.Zone] = append(byZone[e.Zone], lbe)
			}
			for _, z := range zones {
				w := uint32(len(byZone[z]))
				if shared > 1 {
					w = max(1, uint32((rampScale*sh.Percent*len(byZone[z])+len(eps)/2)/len(eps)))
				}
				cla.Endpoints = append(cla.Endpoints, &endpointv3.LocalityLbEndpoints{
					Locality:            &corev3.Locality{Region: region, Zone: z},
					LbEndpoints:         byZone[z],
					LoadBalancingWeight: wrapperspb.UInt32(w),
					Priority:            priority,
				})
			}
		}
		priority++
	}
	return cla, nil
}

func lbEndpoint(addr string) (*endpointv3.LbEndpoint, error) {
	host, portText, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", addr, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: bad port", addr)
	}
	return &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Protocol:      corev3.SocketAddress_TCP,
				Address:       host,
				PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
			}}},
		}},
		LoadBalancingWeight: wrapperspb.UInt32(1),
	}, nil
}

func buildVirtualHost(svc model.Service) (*routev3.VirtualHost, error) {
	var domains []string
	for _, a := range svc.Authorities {
		domains = append(domains, a)
		if _, _, err := net.SplitHostPort(a); err != nil {
			domains = append(domains, a+":*")
		}
	}
	action, err := routeAction(svc.Name)
	if err != nil {
		return nil, err
	}
	return &routev3.VirtualHost{
		Name:    svc.Name,
		Domains: domains,
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: action},
		}},
	}, nil
}

// hcm is the HttpConnectionManager every listener uses: RDS over ADS, then the router.
func hcm() (*anypb.Any, error) {
	router, err := anypb.New(&routerv3.Router{})
	if err != nil {
		return nil, err
	}
	m := &hcmv3.HttpConnectionManager{
		StatPrefix: "geode",
		CodecType:  hcmv3.HttpConnectionManager_AUTO,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: RouteConfigName,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       wellknown.Router,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: router},
		}},
	}
	// Validate before packing: a Listener's Validate does not look inside Any.
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("http connection manager: %w", err)
	}
	return anypb.New(m)
}

func buildAPIListener(authority string) (*listenerv3.Listener, error) {
	cfg, err := hcm()
	if err != nil {
		return nil, err
	}
	return &listenerv3.Listener{
		Name:        authority,
		ApiListener: &listenerv3.ApiListener{ApiListener: cfg},
	}, nil
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

// Check verifies the references of a snapshot: go-control-plane's Consistent() (EDS
// names referenced by CDS, RDS names referenced by LDS) on a copy whose api_listeners
// also carry their HCM in a filter chain, because Consistent() does not look inside an
// api_listener; and every cluster a route names exists in CDS.
func Check(snap *cache.Snapshot) error {
	shadow := &cache.Snapshot{}
	for i, r := range snap.Resources {
		items := make(map[string]types.ResourceWithTTL, len(r.Items))
		for name, item := range r.Items {
			if l, ok := item.Resource.(*listenerv3.Listener); ok && l.GetApiListener() != nil {
				cp := proto.Clone(l).(*listenerv3.Listener)
				cp.FilterChains = append(cp.FilterChains, &listenerv3.FilterChain{Filters: []*listenerv3.Filter{{
					Name:       wellknown.HTTPConnectionManager,
					ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: l.GetApiListener().GetApiListener()},
				}}})
				item.Resource = cp
			}
			items[name] = item
		}
		shadow.Resources[i] = cache.Resources{Version: r.Version, Items: items}
	}
	if err := shadow.Consistent(); err != nil {
		return fmt.Errorf("snapshot is not consistent: %w", err)
	}
	clusters := snap.GetResources(resource.ClusterType)
	var errs []error
	for name, r := range snap.GetResources(resource.RouteType) {
		for _, vh := range r.(*routev3.RouteConfiguration).GetVirtualHosts() {
			for i, rt := range vh.GetRoutes() {
				c := rt.GetRoute().GetCluster()
				if c == "" {
					continue
				}
				if _, ok := clusters[c]; !ok {
					errs = append(errs, fmt.Errorf("route %q: virtual host %q: routes[%d]: cluster %q is not in CDS", name, vh.GetName(), i, c))
				}
			}
		}
	}
	return errors.Join(errs...)
}

func hashResources(res map[resource.Type][]types.Resource) (string, error) {
	h := sha256.New()
	opts := proto.MarshalOptions{Deterministic: true}
	for _, typ := range []resource.Type{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		list := slices.Clone(res[typ])
		slices.SortFunc(list, func(a, b types.Resource) int {
			return cmp.Compare(cache.GetResourceName(a), cache.GetResourceName(b))
		})
		for _, r := range list {
			b, err := opts.Marshal(r)
			if err != nil {
				return "", err
			}
			fmt.Fprintf(h, "%s\x00%d\x00", typ, len(b))
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil)[:8]), nil
}
