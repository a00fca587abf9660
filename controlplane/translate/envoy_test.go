package translate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	maglevv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/maglev/v3"
	wrrlocalityv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/wrr_locality/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	stream "github.com/envoyproxy/go-control-plane/pkg/server/stream/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"

	"github.com/geodemesh/geode/controlplane/model"
)

func withOutbound(t *testing.T, m *model.Model, region string, opts Options) *cache.Snapshot {
	t.Helper()
	opts.Outbound = true
	snap, err := ForRegionWith(m, region, nil, opts)
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// validate fails t unless every resource of snap passes its generated Validate().
func validateAll(t *testing.T, snap *cache.Snapshot) {
	t.Helper()
	for _, typ := range []resource.Type{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		for name, r := range snap.GetResources(typ) {
			if err := r.(interface{ Validate() error }).Validate(); err != nil {
				t.Errorf("%s %q: %v", typ, name, err)
			}
		}
	}
}

// outboundHCM returns the outbound listener's one filter chain's HCM, checked.
func outboundHCM(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	if len(l.GetFilterChains()) != 1 || len(l.GetFilterChains()[0].GetFilters()) != 1 {
		t.Fatalf("filter chains = %v, want one chain with one filter", l.GetFilterChains())
	}
	f := l.GetFilterChains()[0].GetFilters()[0]
	if f.GetName() != wellknown.HTTPConnectionManager {
		t.Fatalf("filter = %q, want %q", f.GetName(), wellknown.HTTPConnectionManager)
	}
	m := new(hcmv3.HttpConnectionManager)
	if err := f.GetTypedConfig().UnmarshalTo(m); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

// The listener Envoy binds, per region and port: golden summary of the settings that
// matter, the HCM's RDS name the same as the api_listeners', every resource valid.
func TestOutboundListenerPerRegion(t *testing.T) {
	m := testModel(t)
	for _, tc := range []struct {
		region string
		port   uint32
		want   string
	}{
		{"us-east", 0, "geode-outbound 0.0.0.0:15001 OUTBOUND"},
		{"eu-west", 0, "geode-outbound 0.0.0.0:15001 OUTBOUND"},
		{"us-west", 16001, "geode-outbound 0.0.0.0:16001 OUTBOUND"},
	} {
		t.Run(fmt.Sprintf("%s port %d", tc.region, tc.port), func(t *testing.T) {
			snap := withOutbound(t, m, tc.region, Options{OutboundPort: tc.port})
			validateAll(t, snap)
			ls := snap.GetResources(resource.ListenerType)
			if len(ls) != 3 || ls["greeter"] == nil || ls["greeter.default.svc"] == nil {
				t.Fatalf("listeners = %v, want the two api_listeners and the outbound one", ls)
			}
			l := ls[OutboundListenerName].(*listenerv3.Listener)
			sa := l.GetAddress().GetSocketAddress()
			got := fmt.Sprintf("%s %s:%d %s", l.GetName(), sa.GetAddress(), sa.GetPortValue(), l.GetTrafficDirection())
			if got != tc.want || sa.GetProtocol() != corev3.SocketAddress_TCP || l.GetApiListener() != nil {
				t.Fatalf("listener = %s (api_listener %v), want %s", got, l.GetApiListener(), tc.want)
			}
			h := outboundHCM(t, l)
			gotHCM := fmt.Sprintf("stat=%s rds=%s ads=%t filters=%s remote=%t normalize=%t merge=%t idle=%s headers=%dKiB headers_timeout=%s conn_idle=%s",
				h.GetStatPrefix(), h.GetRds().GetRouteConfigName(), h.GetRds().GetConfigSource().GetAds() != nil,
				h.GetHttpFilters()[len(h.GetHttpFilters())-1].GetName(),
				h.GetUseRemoteAddress().GetValue(), h.GetNormalizePath().GetValue(), h.GetMergeSlashes(),
				h.GetStreamIdleTimeout().AsDuration(), h.GetMaxRequestHeadersKb().GetValue(),
				h.GetRequestHeadersTimeout().AsDuration(), h.GetCommonHttpProtocolOptions().GetIdleTimeout().AsDuration())
			const wantHCM = "stat=geode_outbound rds=geode ads=true filters=envoy.filters.http.router remote=false normalize=true merge=true idle=5m0s headers=60KiB headers_timeout=10s conn_idle=2m0s"
			if gotHCM != wantHCM || len(h.GetHttpFilters()) != 1 || h.GetUseRemoteAddress() == nil {
				t.Fatalf("hcm = %s\nwant  %s", gotHCM, wantHCM)
			}
			// The api_listeners follow the same route config.
			for _, name := range []string{"greeter", "greeter.default.svc"} {
				api := new(hcmv3.HttpConnectionManager)
				if err := ls[name].(*listenerv3.Listener).GetApiListener().GetApiListener().UnmarshalTo(api); err != nil {
					t.Fatal(err)
				}
				if api.GetRds().GetRouteConfigName() != h.GetRds().GetRouteConfigName() {
					t.Fatalf("api_listener %s routes by %q, outbound by %q", name, api.GetRds().GetRouteConfigName(), h.GetRds().GetRouteConfigName())
				}
			}
		})
	}
}

// Without Options.Outbound (what ForRegion gives) there is no socket listener.
func TestOutboundListenerIsOptIn(t *testing.T) {
	snap, err := ForRegion(testModel(t), "us-east")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := snap.GetResources(resource.ListenerType)[OutboundListenerName]; ok {
		t.Fatal("ForRegion emitted the outbound listener")
	}
}

// Why Outbound is opt-in today: go-control-plane's SnapshotCache in ADS mode does not
// answer a grpc-go LDS request naming only its authority once the snapshot holds another
// listener; without ADS mode it answers with the subset. The same already holds without
// the outbound listener for a service with two authorities (two api_listeners).
func TestSnapshotCacheADSModeWithholdsPartialLDS(t *testing.T) {
	plain, err := ForRegion(testModel(t), "us-east")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ads  bool
		snap *cache.Snapshot
	}{
		{true, withOutbound(t, testModel(t), "us-east", Options{})},
		{false, withOutbound(t, testModel(t), "us-east", Options{})},
		{true, plain},
	} {
		ads, snap := tc.ads, tc.snap
		c := cache.NewSnapshotCache(ads, cache.IDHash{}, nil)
		if err := c.SetSnapshot(t.Context(), "n", snap); err != nil {
			t.Fatal(err)
		}
		ch := make(chan cache.Response, 1)
		req := &cache.Request{Node: &corev3.Node{Id: "n"}, TypeUrl: resource.ListenerType, ResourceNames: []string{"greeter"}}
		cancel, err := c.CreateWatch(req, stream.NewSotwSubscription(req.GetResourceNames(), false), ch)
		if err != nil {
			t.Fatal(err)
		}
		var answered bool
		select {
		case <-ch:
			answered = true
		case <-time.After(50 * time.Millisecond):
		}
		if cancel != nil {
			cancel()
		}
		if answered == ads {
			t.Errorf("ads=%t: answered=%t; the default of Options.Outbound rests on ADS mode withholding it", ads, answered)
		}
	}
}

// Each virtual host's route: its cluster, stickiness on the geode-session header (then
// cookie), no route timeout, one retry that is safe for any method.
func TestRouteStickinessAndRetry(t *testing.T) {
	m := testModel(t)
	for _, region := range []string{"us-east", "eu-west", "us-west"} {
		t.Run(region, func(t *testing.T) {
			snap := withOutbound(t, m, region, Options{})
			rc := snap.GetResources(resource.RouteType)[RouteConfigName].(*routev3.RouteConfiguration)
			if err := rc.Validate(); err != nil {
				t.Fatal(err)
			}
			if len(rc.GetVirtualHosts()) != 1 {
				t.Fatalf("virtual hosts = %v", rc.GetVirtualHosts())
			}
			vh := rc.GetVirtualHosts()[0]
			if got := strings.Join(vh.GetDomains(), ","); vh.GetName() != "greeter" || got != "greeter,greeter:*,greeter.default.svc,greeter.default.svc:*" {
				t.Fatalf("virtual host %q domains %s", vh.GetName(), got)
			}
			ra := vh.GetRoutes()[0].GetRoute()
			var hp []string
			for _, p := range ra.GetHashPolicy() {
				switch {
				case p.GetHeader() != nil:
					hp = append(hp, fmt.Sprintf("header:%s terminal=%t", p.GetHeader().GetHeaderName(), p.GetTerminal()))
				case p.GetCookie() != nil:
					hp = append(hp, fmt.Sprintf("cookie:%s ttl=%v terminal=%t", p.GetCookie().GetName(), p.GetCookie().GetTtl() != nil, p.GetTerminal()))
				default:
					hp = append(hp, fmt.Sprintf("other:%v", p))
				}
			}
			rp := ra.GetRetryPolicy()
			var preds []string
			for _, p := range rp.GetRetryHostPredicate() {
				preds = append(preds, p.GetName())
			}
			got := fmt.Sprintf("cluster=%s timeout=%v hash=[%s] retry_on=%s retries=%d predicates=%s",
				ra.GetCluster(), ra.GetTimeout().AsDuration(), strings.Join(hp, "; "),
				rp.GetRetryOn(), rp.GetNumRetries().GetValue(), strings.Join(preds, ","))
			const want = "cluster=greeter timeout=0s hash=[header:geode-session terminal=true; cookie:geode-session ttl=false terminal=false] retry_on=connect-failure,refused-stream retries=1 predicates=envoy.retry_host_predicates.previous_hosts"
			if got != want || ra.GetTimeout() == nil {
				t.Fatalf("route = %s\nwant    %s", got, want)
			}
		})
	}
}

// The cluster's load_balancing_policy: maglev first (Envoy takes it and hashes), then
// wrr_locality{round_robin}, which grpc-go takes (it has no maglev); lb_policy stays
// ROUND_ROBIN for clients that ignore the list. The grpc-go side is proven by
// controlplane/server's TestProxylessGRPC* tests.
func TestClusterLoadBalancingPolicy(t *testing.T) {
	snap := withOutbound(t, testModel(t), "us-east", Options{})
	c := snap.GetResources(resource.ClusterType)["greeter"].(*clusterv3.Cluster)
	if c.GetLbPolicy() != clusterv3.Cluster_ROUND_ROBIN {
		t.Fatalf("lb_policy = %v", c.GetLbPolicy())
	}
	var got []string
	for _, p := range c.GetLoadBalancingPolicy().GetPolicies() {
		tc := p.GetTypedExtensionConfig()
		msg, err := tc.GetTypedConfig().UnmarshalNew()
		if err != nil {
			t.Fatal(err)
		}
		if err := msg.(interface{ Validate() error }).Validate(); err != nil {
			t.Fatalf("%s: %v", tc.GetName(), err)
		}
		switch v := msg.(type) {
		case *maglevv3.Maglev:
			got = append(got, fmt.Sprintf("%s(locality_weighted=%t)", tc.GetName(), v.GetLocalityWeightedLbConfig() != nil))
		case *wrrlocalityv3.WrrLocality:
			var inner []string
			for _, ip := range v.GetEndpointPickingPolicy().GetPolicies() {
				inner = append(inner, ip.GetTypedExtensionConfig().GetName())
			}
			got = append(got, fmt.Sprintf("%s(%s)", tc.GetName(), strings.Join(inner, ",")))
		default:
			got = append(got, fmt.Sprintf("%s(%T)", tc.GetName(), v))
		}
	}
	const want = "envoy.load_balancing_policies.maglev(locality_weighted=true) envoy.load_balancing_policies.wrr_locality(envoy.load_balancing_policies.round_robin)"
	if strings.Join(got, " ") != want {
		t.Fatalf("load_balancing_policy = %s\nwant                    %s", strings.Join(got, " "), want)
	}
}

// With the socket listener, plain Consistent() follows its RDS name and passes, and so
// does Check; without the route config, or with the listener pointing elsewhere, both
// fail. Without the socket listener plain Consistent() still trips over api_listeners
// (the pitfall Check works around) while Check passes.
func TestOutboundSnapshotConsistent(t *testing.T) {
	m := testModel(t)
	snap := withOutbound(t, m, "us-east", Options{})
	if err := snap.Consistent(); err != nil {
		t.Fatalf("Consistent() = %v", err)
	}
	if err := Check(snap); err != nil {
		t.Fatalf("Check = %v", err)
	}
	res, err := ResourcesWith(m, "us-east", nil, Options{Outbound: true})
	if err != nil {
		t.Fatal(err)
	}
	variant := func(edit func(map[resource.Type][]types.Resource)) *cache.Snapshot {
		r := map[resource.Type][]types.Resource{}
		for k, v := range res {
			r[k] = v
		}
		edit(r)
		s, err := cache.NewSnapshot("1", r)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	noRoutes := variant(func(r map[resource.Type][]types.Resource) { delete(r, resource.RouteType) })
	if noRoutes.Consistent() == nil || Check(noRoutes) == nil {
		t.Fatal("a snapshot without the route config passed")
	}
	wrongRDS := variant(func(r map[resource.Type][]types.Resource) {
		var ls []types.Resource
		for _, l := range r[resource.ListenerType] {
			if cache.GetResourceName(l) == OutboundListenerName {
				l = retargetRDS(t, l.(*listenerv3.Listener), "elsewhere")
			}
			ls = append(ls, l)
		}
		r[resource.ListenerType] = ls
	})
	if err := wrongRDS.Consistent(); err == nil {
		t.Fatal("Consistent() passed a socket listener naming a missing route config")
	}
	if err := Check(wrongRDS); err == nil {
		t.Fatal("Check passed a socket listener naming a missing route config")
	}
	apiOnly, err := ForRegion(m, "us-east")
	if err != nil {
		t.Fatal(err)
	}
	if apiOnly.Consistent() == nil {
		t.Log("note: Consistent() now follows api_listener RDS names; Check's shadow copy may be dropped")
	}
}

func retargetRDS(t *testing.T, l *listenerv3.Listener, name string) *listenerv3.Listener {
	t.Helper()
	cp := proto.Clone(l).(*listenerv3.Listener)
	h := outboundHCM(t, cp)
	h.GetRds().RouteConfigName = name
	f := cp.GetFilterChains()[0].GetFilters()[0]
	if err := f.GetTypedConfig().MarshalFrom(h); err != nil {
		t.Fatal(err)
	}
	return cp
}

func TestOutboundOptionErrors(t *testing.T) {
	if _, err := ForRegionWith(testModel(t), "us-east", nil, Options{Outbound: true, OutboundPort: 70000}); err == nil || !strings.Contains(err.Error(), "70000") {
		t.Fatalf("port 70000: err = %v", err)
	}
	m, err := model.New(model.Spec{
		Regions: []model.RegionSpec{{Name: "us-east"}},
		Services: []model.ServiceSpec{{
			Name: "svc", Protocol: "grpc", Authorities: []string{OutboundListenerName},
			Endpoints: map[string][]model.Endpoint{"us-east": {{Address: "127.0.0.1:1"}}},
		}},
	})
	if err != nil {
		t.Skipf("model refuses the authority itself: %v", err)
	}
	if _, err := ForRegion(m, "us-east"); err == nil || !strings.Contains(err.Error(), "outbound listener") {
		t.Fatalf("authority %q: err = %v", OutboundListenerName, err)
	}
}
