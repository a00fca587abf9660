package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
)

func adsClient(t *testing.T, addr string) discoveryv3.AggregatedDiscoveryServiceClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return discoveryv3.NewAggregatedDiscoveryServiceClient(cc)
}

func node(id, region string) *corev3.Node {
	return &corev3.Node{Id: id, Locality: &corev3.Locality{Region: region}}
}

// render shows a CLA's localities as "priority:region*weight".
func render(t *testing.T, cla *endpointv3.ClusterLoadAssignment) string {
	t.Helper()
	var parts []string
	for _, l := range cla.GetEndpoints() {
		if l.GetLoadBalancingWeight().GetValue() == 0 {
			t.Errorf("locality %v has no weight", l.GetLocality())
		}
		parts = append(parts, strings.Join([]string{string(rune('0' + l.GetPriority())), l.GetLocality().GetRegion()}, ":"))
	}
	return strings.Join(parts, " ")
}

func testFleet(t *testing.T) (*Server, string, string) {
	return startControlPlane(t, fleet(t, map[string]string{"us-east": "127.0.0.1:1001", "eu-west": "127.0.0.1:2001", "us-west": "127.0.0.1:3001"}))
}

func TestSotWStreamGetsRegionalPriorities(t *testing.T) {
	s, xdsAddr, admin := testFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := adsClient(t, xdsAddr).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A client in eu-west; the region travels in node metadata this time.
	meta, _ := structpb.NewStruct(map[string]any{RegionMetadataKey: "eu-west"})
	n := &corev3.Node{Id: "sotw-1", Metadata: meta}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: resource.EndpointType, ResourceNames: []string{"where"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	cla := new(endpointv3.ClusterLoadAssignment)
	if err := resp.GetResources()[0].UnmarshalTo(cla); err != nil {
		t.Fatal(err)
	}
	if got, want := render(t, cla), "0:eu-west 1:us-east 2:us-west"; got != want {
		t.Fatalf("eu-west priorities = %s, want %s", got, want)
	}
	if resp.GetVersionInfo() != s.Versions()["eu-west"] {
		t.Fatalf("version %s, want eu-west's %s", resp.GetVersionInfo(), s.Versions()["eu-west"])
	}
	// NACK it: the control plane records the error against this client.
	if err := stream.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: []string{"where"},
		ResponseNonce: resp.GetNonce(), ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "geode: bad locality"}}); err != nil {
		t.Fatal(err)
	}
	var nack *NACK
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && nack == nil; time.Sleep(5 * time.Millisecond) {
		for _, c := range s.Status().Clients {
			if c.NodeID == "sotw-1" {
				nack = c.LastNACK
			}
		}
	}
	if nack == nil || nack.Error != "geode: bad locality" || nack.Version != resp.GetVersionInfo() || nack.TypeURL != resource.EndpointType {
		t.Fatalf("last NACK = %+v, want the error and version %s", nack, resp.GetVersionInfo())
	}

	// The rejected version is not sent again (a client that cannot take it would be
	// sent it in a loop): nothing comes until there is a new snapshot.
	time.Sleep(300 * time.Millisecond)

	// An operator fences eu-west: the open stream gets a new assignment without it.
	r, err := http.Post(admin+"/regions/eu-west/fence", "", nil)
	if err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("fence: %v %v", r.Status, err)
	}
	r.Body.Close()
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersionInfo() != s.Versions()["eu-west"] {
		t.Fatalf("after the NACK the stream got version %s, want the next one %s: the rejected version was sent again",
			resp.GetVersionInfo(), s.Versions()["eu-west"])
	}
	if err := resp.GetResources()[0].UnmarshalTo(cla); err != nil {
		t.Fatal(err)
	}
	if got, want := render(t, cla), "0:us-east 1:us-west"; got != want {
		t.Fatalf("after fencing eu-west, its clients' priorities = %s, want %s", got, want)
	}
}

func TestDeltaStreamGetsRegionalPriorities(t *testing.T) {
	s, xdsAddr, _ := testFleet(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := adsClient(t, xdsAddr).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{Node: node("delta-1", "us-west"), TypeUrl: resource.EndpointType, ResourceNamesSubscribe: []string{"where"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) != 1 || resp.GetResources()[0].GetName() != "where" {
		t.Fatalf("delta response = %v", resp)
	}
	cla := new(endpointv3.ClusterLoadAssignment)
	if err := resp.GetResources()[0].GetResource().UnmarshalTo(cla); err != nil {
		t.Fatal(err)
	}
	// us-west: itself, then us-east (87 ms), then eu-west (137 ms).
	if got, want := render(t, cla), "0:us-west 1:us-east 2:eu-west"; got != want {
		t.Fatalf("us-west priorities = %s, want %s", got, want)
	}
	// ACK, then check /status shows it against the version sent.
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.EndpointType, ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	var acked string
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline) && acked == ""; time.Sleep(5 * time.Millisecond) {
		for _, c := range s.Status().Clients {
			if c.NodeID == "delta-1" && c.Protocol == "delta" && c.Region == "us-west" {
				acked = c.Acked[resource.EndpointType]
			}
		}
	}
	if acked == "" || acked != resp.GetSystemVersionInfo() {
		t.Fatalf("ACKed version %q, want %q", acked, resp.GetSystemVersionInfo())
	}
	// Delta also works for wildcard CDS.
	if err := stream.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if resp, err = stream.Recv(); err != nil || len(resp.GetResources()) != 1 || resp.GetTypeUrl() != resource.ClusterType {
		t.Fatalf("delta CDS = %v, %v", resp, err)
	}
}

func TestUnknownRegionIsRefused(t *testing.T) {
	s, xdsAddr, _ := testFleet(t)
	ads := adsClient(t, xdsAddr)
	for _, tc := range []struct {
		name  string
		node  *corev3.Node
		delta bool
		want  string
	}{
		{"sotw, unknown region", node("mars-1", "mars"), false, `node "mars-1": unknown region "mars"`},
		{"delta, unknown region", node("mars-2", "mars"), true, `node "mars-2": unknown region "mars"`},
		{"sotw, no region", &corev3.Node{Id: "lost-1"}, false, `node "lost-1" has no region`},
		{"sotw, conflicting region claims", &corev3.Node{Id: "two-1", Locality: &corev3.Locality{Region: "us-east"},
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{RegionMetadataKey: structpb.NewStringValue("eu-west")}}}, false, "differ"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var err error
			if tc.delta {
				var st discoveryv3.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
				if st, err = ads.DeltaAggregatedResources(ctx); err == nil {
					if err = st.Send(&discoveryv3.DeltaDiscoveryRequest{Node: tc.node, TypeUrl: resource.ClusterType}); err == nil {
						_, err = st.Recv()
					}
				}
			} else {
				var st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
				if st, err = ads.StreamAggregatedResources(ctx); err == nil {
					if err = st.Send(&discoveryv3.DiscoveryRequest{Node: tc.node, TypeUrl: resource.ClusterType}); err == nil {
						_, err = st.Recv()
					}
				}
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want InvalidArgument containing %q", err, tc.want)
			}
		})
	}
	if got := s.Status().Refused; got != 4 {
		t.Fatalf("refused = %d, want 4", got)
	}
}

func TestAdminAPI(t *testing.T) {
	s, _, admin := testFleet(t)
	call := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, admin+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	before := s.Versions()
	if code, body := call("POST", "/regions/mars/down"); code != http.StatusNotFound || !strings.Contains(body, `unknown region \"mars\"`) {
		t.Fatalf("unknown region: %d %s", code, body)
	}
	if code, body := call("POST", "/regions/us-east/explode"); code != http.StatusNotFound || !strings.Contains(body, "unknown action") {
		t.Fatalf("unknown action: %d %s", code, body)
	}
	if code, _ := call("GET", "/regions/us-east/down"); code != http.StatusMethodNotAllowed {
		t.Fatalf("GET on a POST route: %d", code)
	}
	if after := s.Versions(); after["us-east"] != before["us-east"] {
		t.Fatal("a refused admin call changed a snapshot")
	}
	if code, body := call("POST", "/regions/us-west/drain"); code != http.StatusOK || !strings.Contains(body, `"state": "draining"`) {
		t.Fatalf("drain: %d %s", code, body)
	}
	code, body := call("GET", "/config_dump")
	if code != http.StatusOK {
		t.Fatalf("config_dump: %d", code)
	}
	var dump ConfigDump
	if err := json.Unmarshal([]byte(body), &dump); err != nil {
		t.Fatal(err)
	}
	var usWest RegionDump
	for _, r := range dump.Regions {
		if r.Name == "us-west" {
			usWest = r
		}
	}
	if usWest.State != "draining" || usWest.Configured != "healthy" || usWest.Override != "draining" ||
		strings.Join(usWest.Order, ",") != "us-east,eu-west,us-west" || len(dump.Snapshots) != 3 || len(dump.Services) != 1 {
		t.Fatalf("config dump = %s", body)
	}
	if code, body := call("POST", "/regions/us-west/restore"); code != http.StatusOK || !strings.Contains(body, `"state": "healthy"`) {
		t.Fatalf("restore: %d %s", code, body)
	}
	if after := s.Versions(); after["us-east"] != before["us-east"] {
		t.Fatal("drain + restore did not return us-east to the same snapshot version")
	}
}
