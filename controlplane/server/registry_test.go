package server

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/controlplane/model"
)

// sidecarNode is a node as a geode sidecar sends it: region and zone in its locality,
// registration data (and anything in extra) in its metadata.
func sidecarNode(t *testing.T, id, region, zone, service, address string, extra map[string]any) *corev3.Node {
	t.Helper()
	fields := map[string]any{api.NodeRegionKey: region}
	if service != "" {
		fields[api.NodeServiceKey] = service
	}
	if address != "" {
		fields[api.NodeAddressKey] = address
	}
	for k, v := range extra {
		fields[k] = v
	}
	meta, err := structpb.NewStruct(fields)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: id, Locality: &corev3.Locality{Region: region, Zone: zone}, Metadata: meta}
}

// openSotW opens a SotW stream for node and waits for its first answer (a CDS
// response) or refusal; the stream ends with the returned cancel.
func openSotW(t *testing.T, ads discoveryv3.AggregatedDiscoveryServiceClient, n *corev3.Node) (context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	st, err := ads.StreamAggregatedResources(ctx)
	if err == nil {
		if err = st.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType}); err == nil {
			_, err = st.Recv()
		}
	}
	if err != nil {
		cancel()
	}
	return cancel, err
}

func openDelta(t *testing.T, ads discoveryv3.AggregatedDiscoveryServiceClient, n *corev3.Node) (context.CancelFunc, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	st, err := ads.DeltaAggregatedResources(ctx)
	if err == nil {
		if err = st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: n, TypeUrl: resource.ClusterType}); err == nil {
			_, err = st.Recv()
		}
	}
	if err != nil {
		cancel()
	}
	return cancel, err
}

func openLRS(t *testing.T, xdsAddr string, n *corev3.Node) (context.CancelFunc, error) {
	t.Helper()
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	st, err := lrsv3.NewLoadReportingServiceClient(cc).StreamLoadStats(ctx)
	if err == nil {
		if err = st.Send(&lrsv3.LoadStatsRequest{Node: n}); err == nil {
			_, err = st.Recv()
		}
	}
	if err != nil {
		cancel()
	}
	return cancel, err
}

// edsWatch is a client of one region subscribed to one service's assignment: the judge
// of what the control plane serves.
type edsWatch struct {
	t       *testing.T
	st      discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	service string
	last    map[string][]string
}

func watchEDS(t *testing.T, xdsAddr, id, region, service string) *edsWatch {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	st, err := adsClient(t, xdsAddr).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node(id, region), TypeUrl: resource.EndpointType, ResourceNames: []string{service}}); err != nil {
		t.Fatal(err)
	}
	return &edsWatch{t: t, st: st, service: service}
}

// await reads assignments (ACKing each) until want(region → "address/zone", sorted)
// holds, and returns how long that took.
func (w *edsWatch) await(desc string, want func(map[string][]string) bool) time.Duration {
	w.t.Helper()
	start := time.Now()
	for w.last == nil || !want(w.last) {
		resp, err := w.st.Recv()
		if err != nil {
			w.t.Fatalf("waiting for %s: %v (last assignment %v)", desc, err, w.last)
		}
		cla := new(endpointv3.ClusterLoadAssignment)
		if err := resp.GetResources()[0].UnmarshalTo(cla); err != nil {
			w.t.Fatal(err)
		}
		w.last = map[string][]string{}
		for _, l := range cla.GetEndpoints() {
			for _, e := range l.GetLbEndpoints() {
				sa := e.GetEndpoint().GetAddress().GetSocketAddress()
				w.last[l.GetLocality().GetRegion()] = append(w.last[l.GetLocality().GetRegion()],
					fmt.Sprintf("%s:%d/%s", sa.GetAddress(), sa.GetPortValue(), l.GetLocality().GetZone()))
			}
		}
		for _, v := range w.last {
			slices.Sort(v)
		}
		if err := w.st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{w.service},
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			w.t.Fatal(err)
		}
	}
	return time.Since(start)
}

func has(region, entry string) func(map[string][]string) bool {
	return func(m map[string][]string) bool { return slices.Contains(m[region], entry) }
}

func not(f func(map[string][]string) bool) func(map[string][]string) bool {
	return func(m map[string][]string) bool { return !f(m) }
}

// eventually polls cond for up to 5s.
func eventually(t *testing.T, desc string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", desc)
		}
	}
}

func registrations(t *testing.T, admin string) []RegistrationDump {
	t.Helper()
	resp, err := http.Get(admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d ConfigDump
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d.Registrations
}

func TestRegisteredEndpointIsServedToOtherRegionsWhileAStreamCarriesIt(t *testing.T) {
	s, xdsAddr, admin := testFleet(t)
	ads := adsClient(t, xdsAddr)
	judge := watchEDS(t, xdsAddr, "judge-us-east", "us-east", "where")
	judge.await("the manifest's endpoints", has("eu-west", "127.0.0.1:2001/eu-west-a"))

	n := sidecarNode(t, "where-eu-1", "eu-west", "eu-west-b", "where", "10.1.0.5:8080", map[string]any{"istio.io/version": "1.2"})
	closeSotW, err := openSotW(t, ads, n)
	if err != nil {
		t.Fatalf("registering over SotW: %v", err)
	}
	took := judge.await("the registered endpoint in eu-west", has("eu-west", "10.1.0.5:8080/eu-west-b"))
	t.Logf("registration reached a us-east client in %s", took)
	if !has("eu-west", "127.0.0.1:2001/eu-west-a")(judge.last) {
		t.Fatalf("the manifest's endpoint went away: %v", judge.last)
	}

	// The same node over delta (and LRS) with the same data: one registration, three
	// streams; it lives until the last closes.
	closeDelta, err := openDelta(t, ads, n)
	if err != nil {
		t.Fatalf("the same registration over delta: %v", err)
	}
	closeLRS, err := openLRS(t, xdsAddr, n)
	if err != nil {
		t.Fatalf("the same registration over LRS: %v", err)
	}
	regs := registrations(t, admin)
	if len(regs) != 1 || regs[0].NodeID != "where-eu-1" || regs[0].Streams != 3 || regs[0].Served != "registered" ||
		regs[0].Region != "eu-west" || regs[0].Zone != "eu-west-b" || regs[0].Address != "10.1.0.5:8080" || regs[0].Since.IsZero() {
		t.Fatalf("config_dump registrations = %+v", regs)
	}
	for _, c := range s.Status().Clients {
		if c.NodeID == "where-eu-1" && c.Registered != "where@10.1.0.5:8080" {
			t.Fatalf("/status client %s/%d registered %q, want where@10.1.0.5:8080", c.Protocol, c.Stream, c.Registered)
		}
	}
	closeSotW()
	closeLRS()
	eventually(t, "two streams to close", func() bool { r := registrations(t, admin); return len(r) == 1 && r[0].Streams == 1 })
	closeDelta()
	judge.await("the endpoint gone with the node's last stream", not(has("eu-west", "10.1.0.5:8080/eu-west-b")))
	// The publish counter moves once publishLocked returns, just after the judge saw it.
	eventually(t, "two publishes counted", func() bool { return s.Status().Registrations.Publishes >= 2 })
	if st := s.Status().Registrations; st.Active != 0 || st.Registered != 1 || st.Deregistered != 1 || st.Refused != 0 {
		t.Fatalf("registration status = %+v", st)
	}
}

func TestRegistrationRefusals(t *testing.T) {
	s, xdsAddr, admin := testFleet(t)
	ads := adsClient(t, xdsAddr)
	// A node that registered before: it stays registered through every refusal.
	keep, err := openSotW(t, ads, sidecarNode(t, "keeper", "us-west", "", "where", "10.3.0.1:80", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer keep()
	eventually(t, "the keeper's registration published", func() bool { return s.Status().Registrations.Publishes == 1 })
	before := s.Versions()

	type opener func(*testing.T, *corev3.Node) (context.CancelFunc, error)
	sotwOpen := func(t *testing.T, n *corev3.Node) (context.CancelFunc, error) { return openSotW(t, ads, n) }
	deltaOpen := func(t *testing.T, n *corev3.Node) (context.CancelFunc, error) { return openDelta(t, ads, n) }
	lrsOpen := func(t *testing.T, n *corev3.Node) (context.CancelFunc, error) { return openLRS(t, xdsAddr, n) }
	for _, tc := range []struct {
		name   string
		open   opener
		node   *corev3.Node
		code   codes.Code
		want   string
		reason string
	}{
		{"unknown geode metadata key", sotwOpen, sidecarNode(t, "n1", "us-east", "", "", "", map[string]any{"geode.colour": "blue"}),
			codes.InvalidArgument, `unknown node metadata "geode.colour"`, RefusedUnknownMetadata},
		{"unknown geode metadata key over delta", deltaOpen, sidecarNode(t, "n2", "us-east", "", "where", "10.0.0.2:80", map[string]any{"geode.servce": "where"}),
			codes.InvalidArgument, `unknown node metadata "geode.servce"`, RefusedUnknownMetadata},
		{"service without address", sotwOpen, sidecarNode(t, "n3", "us-east", "", "where", "", nil),
			codes.InvalidArgument, `metadata geode.service "where" needs geode.address`, RefusedIncomplete},
		{"address without service", deltaOpen, sidecarNode(t, "n4", "us-east", "", "", "10.0.0.4:80", nil),
			codes.InvalidArgument, `metadata geode.address "10.0.0.4:80" needs geode.service`, RefusedIncomplete},
		{"address not host:port", sotwOpen, sidecarNode(t, "n5", "us-east", "", "where", "10.0.0.5", nil),
			codes.InvalidArgument, `metadata geode.address: "10.0.0.5" is not host:port`, RefusedBadAddress},
		{"bad port", sotwOpen, sidecarNode(t, "n6", "us-east", "", "where", "10.0.0.6:0", nil),
			codes.InvalidArgument, `metadata geode.address: "10.0.0.6:0": port must be a number in [1,65535]`, RefusedBadAddress},
		{"unspecified host", sotwOpen, sidecarNode(t, "n7", "us-east", "", "where", "0.0.0.0:15006", nil),
			codes.InvalidArgument, `host 0.0.0.0 is unspecified`, RefusedBadAddress},
		{"unknown service", sotwOpen, sidecarNode(t, "n8", "us-east", "", "billing", "10.0.0.8:80", nil),
			codes.InvalidArgument, `metadata geode.service: unknown service "billing"`, RefusedUnknownService},
		{"unknown service over LRS", lrsOpen, sidecarNode(t, "n9", "us-east", "", "billing", "10.0.0.9:80", nil),
			codes.InvalidArgument, `unknown service "billing"`, RefusedUnknownService},
		{"service not a string", sotwOpen, sidecarNode(t, "n10", "us-east", "", "", "10.0.0.10:80", map[string]any{api.NodeServiceKey: 7.0}),
			codes.InvalidArgument, `metadata geode.service must be a string`, RefusedBadMetadata},
		{"bad zone", sotwOpen, sidecarNode(t, "n11", "us-east", "Zone A", "where", "10.0.0.11:80", nil),
			codes.InvalidArgument, `locality.zone "Zone A"`, RefusedBadZone},
		{"no node id", sotwOpen, sidecarNode(t, "", "us-east", "", "where", "10.0.0.12:80", nil),
			codes.InvalidArgument, `registering needs node.id`, RefusedNoNodeID},
		{"a second address for a registered node", deltaOpen, sidecarNode(t, "keeper", "us-west", "", "where", "10.3.0.2:80", nil),
			codes.ResourceExhausted, `node "keeper": already registers 10.3.0.1:80 for service "where" in us-west`, RefusedConflict},
		{"unknown region", sotwOpen, sidecarNode(t, "n13", "mars", "", "where", "10.0.0.13:80", nil),
			codes.InvalidArgument, `unknown region "mars"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Status().Registrations.RefusedByReason[tc.reason]
			cancel, err := tc.open(t, tc.node)
			if err == nil {
				cancel()
				t.Fatal("accepted")
			}
			if status.Code(err) != tc.code || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v\nwant %s containing %q", err, tc.code, tc.want)
			}
			if got := s.Status().Registrations.RefusedByReason[tc.reason]; tc.reason != "" && got != before+1 {
				t.Fatalf("refused_by_reason[%s] = %d, want %d", tc.reason, got, before+1)
			}
		})
	}
	// Metadata outside the geode. prefix is other software's: ignored.
	cancel, err := openSotW(t, ads, sidecarNode(t, "envoy-1", "us-east", "", "", "", map[string]any{"istio.io/mesh": "m", "geodesic": 1.0}))
	if err != nil {
		t.Fatalf("foreign metadata: %v", err)
	}
	cancel()

	st := s.Status()
	if st.Registrations.Refused != 13 || st.Refused != 14 || st.Registrations.Active != 1 || st.Registrations.Registered != 1 {
		t.Fatalf("status = refused %d, registrations %+v; want 13 registrations refused, 14 streams, the keeper active", st.Refused, st.Registrations)
	}
	time.Sleep(3 * DefaultRegistrationDelay)
	if after := s.Versions(); !maps.Equal(before, after) {
		t.Fatalf("refusals changed the snapshots: %v → %v", before, after)
	}
	if regs := registrations(t, admin); len(regs) != 1 || regs[0].Address != "10.3.0.1:80" || regs[0].Streams != 1 {
		t.Fatalf("registrations after the refusals = %+v", regs)
	}
}

// One node opening and closing registering streams in a loop is refused once it spent
// its churn budget; another node registers meanwhile. The global cap refuses the
// registration past it, and frees a place when a registration ends.
func TestRegistrationFloodIsRefused(t *testing.T) {
	s, xdsAddr, _ := startControlPlaneWith(t, Options{Model: fleet(t, map[string]string{"us-east": "127.0.0.1:1001"}), MaxRegistrations: 3})
	ads := adsClient(t, xdsAddr)
	flood := sidecarNode(t, "flood", "us-east", "", "where", "10.0.0.1:80", nil)
	var refused error
	for i := 0; i < 3*registrationBurst && refused == nil; i++ {
		cancel, err := openSotW(t, ads, flood)
		if err != nil {
			refused = err
			break
		}
		cancel()
	}
	if status.Code(refused) != codes.ResourceExhausted || !strings.Contains(refused.Error(), `node "flood": registering too often`) {
		t.Fatalf("a node flooding registrations: %v, want ResourceExhausted", refused)
	}
	calm, err := openSotW(t, ads, sidecarNode(t, "calm", "us-east", "", "where", "10.0.0.2:80", nil))
	if err != nil {
		t.Fatalf("another node during the flood: %v", err)
	}
	defer calm()
	if got := s.Status().Registrations.RefusedByReason[RefusedRateLimited]; got < 1 {
		t.Fatalf("rate_limited = %d", got)
	}

	// The cap: calm holds one place, two more fit, the fourth is refused. The
	// flooder's last streams may still be closing: wait for them to leave.
	eventually(t, "the flooder's registration to end", func() bool { return s.Status().Registrations.Active == 1 })
	var cancels []context.CancelFunc
	for i, id := range []string{"a", "b"} {
		c, err := openSotW(t, ads, sidecarNode(t, id, "us-east", "", "where", fmt.Sprintf("10.0.1.%d:80", i+1), nil))
		if err != nil {
			t.Fatalf("registration %s under the cap: %v", id, err)
		}
		cancels = append(cancels, c)
	}
	if got := s.Status().Registrations.Active; got != 3 {
		t.Fatalf("%d registrations, want 3", got)
	}
	_, err = openSotW(t, ads, sidecarNode(t, "c", "us-east", "", "where", "10.0.2.1:80", nil))
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "holds 3 registered endpoints, its limit") {
		t.Fatalf("registration past the cap: %v, want ResourceExhausted", err)
	}
	cancels[0]()
	eventually(t, "a place to free", func() bool { return s.Status().Registrations.Active == 2 })
	c, err := openSotW(t, ads, sidecarNode(t, "c", "us-east", "", "where", "10.0.2.1:80", nil))
	if err != nil {
		t.Fatalf("registration after a place freed: %v", err)
	}
	c()
	cancels[1]()
	if got := s.Status().Registrations.RefusedByReason[RefusedCapacity]; got != 1 {
		t.Fatalf("capacity = %d, want 1", got)
	}
}

// A manifest reload keeps the registrations, and registrations never change the base
// model: a service the reload removes stops being served, and comes back with it.
func TestManifestReloadKeepsRegistrations(t *testing.T) {
	s, xdsAddr, admin := testFleet(t)
	ads := adsClient(t, xdsAddr)
	judge := watchEDS(t, xdsAddr, "judge-eu", "eu-west", "where")
	cancel, err := openSotW(t, ads, sidecarNode(t, "where-us-1", "us-west", "us-west-c", "where", "10.3.0.9:80", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer cancel()
	judge.await("the registration", has("us-west", "10.3.0.9:80/us-west-c"))

	// Reload: us-west's manifest endpoint moves.
	reloaded := fleet(t, map[string]string{"us-east": "127.0.0.1:1001", "eu-west": "127.0.0.1:2001", "us-west": "127.0.0.1:3999"})
	if err := s.SetModel(context.Background(), reloaded); err != nil {
		t.Fatal(err)
	}
	judge.await("the reloaded manifest with the registration", func(m map[string][]string) bool {
		return slices.Equal(m["us-west"], []string{"10.3.0.9:80/us-west-c", "127.0.0.1:3999/us-west-a"})
	})

	// A reload without the service: the registration stays, unserved.
	spec := reloaded.Spec()
	spec.Services[0].Name, spec.Services[0].Authorities = "elsewhere", nil
	without, err := model.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetModel(context.Background(), without); err != nil {
		t.Fatal(err)
	}
	if regs := registrations(t, admin); len(regs) != 1 || regs[0].Served != "service not in model" {
		t.Fatalf("registrations after the service left the model: %+v", regs)
	}
	if err := s.SetModel(context.Background(), reloaded); err != nil {
		t.Fatal(err)
	}
	if regs := registrations(t, admin); len(regs) != 1 || regs[0].Served != "registered" {
		t.Fatalf("registrations after the service came back: %+v", regs)
	}
	for _, svc := range s.ConfigDump().Services {
		if svc.Name == "where" && !slices.Contains(svc.Endpoints["us-west"], model.Endpoint{Address: "10.3.0.9:80", Zone: "us-west-c"}) {
			t.Fatalf("config_dump services: where in us-west = %v, want the registration", svc.Endpoints["us-west"])
		}
	}
	// The address the manifest lists already: served once, from the manifest.
	c2, err := openSotW(t, ads, sidecarNode(t, "where-us-2", "us-west", "", "where", "127.0.0.1:3999", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer c2()
	eventually(t, "the second registration", func() bool { return len(registrations(t, admin)) == 2 })
	if regs := registrations(t, admin); regs[1].NodeID != "where-us-2" || regs[1].Served != "manifest" {
		t.Fatalf("a registration of a manifest address: %+v", regs[1])
	}
}

// Many sidecars connecting at once share a few republishes, not one each.
func TestRegistrationsAreCoalesced(t *testing.T) {
	const sidecars = 100
	s, xdsAddr, _ := testFleet(t)
	judge := watchEDS(t, xdsAddr, "judge", "us-east", "where")
	judge.await("the manifest", has("us-east", "127.0.0.1:1001/us-east-a"))
	ads := adsClient(t, xdsAddr)
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, sidecars)
	cancels := make([]context.CancelFunc, sidecars)
	for i := range sidecars {
		wg.Go(func() {
			c, err := openSotW(t, ads, sidecarNode(t, fmt.Sprintf("sc-%03d", i), "eu-west", "", "where", fmt.Sprintf("10.2.%d.%d:80", i/250, i%250+1), nil))
			cancels[i] = c
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	judge.await("every registration", func(m map[string][]string) bool { return len(m["eu-west"]) == sidecars+1 })
	took := time.Since(start)
	eventually(t, "the publish counted", func() bool { return s.Status().Registrations.Publishes >= 1 })
	pubs := s.Status().Registrations.Publishes
	t.Logf("%d sidecars registered and reached a client of another region in %s with %d republishes", sidecars, took, pubs)
	if pubs > 10 {
		t.Fatalf("%d republishes for %d registrations, want a few", pubs, sidecars)
	}
	for _, c := range cancels {
		c()
	}
	judge.await("every registration gone", func(m map[string][]string) bool { return len(m["eu-west"]) == 1 })
	t.Logf("and deregistered with %d republishes in all", s.Status().Registrations.Publishes)
}
