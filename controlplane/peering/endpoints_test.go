package peering_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/geodemesh/geode/controlplane/peering"
	"github.com/geodemesh/geode/controlplane/server"
)

// register opens an ADS stream to a control plane for a sidecar of region that
// registers address as an endpoint of service; cancel ends the stream.
func register(t *testing.T, xdsAddr, id, region, service, address string) (cancel func()) {
	t.Helper()
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancelCtx := context.WithCancel(context.Background())
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := structpb.NewStruct(map[string]any{"geode.service": service, "geode.address": address})
	node := &corev3.Node{Id: id, Locality: &corev3.Locality{Region: region, Zone: region + "-b"}, Metadata: meta}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatalf("registering %s: %v", address, err)
	}
	cancel = func() { cancelCtx(); cc.Close() }
	t.Cleanup(cancel)
	return cancel
}

// servedEndpoints returns the endpoints a control plane publishes for service in region.
func servedEndpoints(s *server.Server, service, region string) []string {
	var out []string
	for _, svc := range s.ConfigDump().Services {
		if svc.Name == service {
			for _, e := range svc.Endpoints[region] {
				out = append(out, e.Address)
			}
		}
	}
	return out
}

// Endpoints sidecars register with their region's control plane reach the other
// regions' control planes in that region's summary, so their clients can fail over to
// them; they leave when the registering stream ends. Without peering they would be
// known to their own region's control plane only.
func TestRegisteredEndpointsTravelInSummaries(t *testing.T) {
	lis := map[string]net.Listener{"us-east": listen(t, "127.0.0.1:0"), "eu-west": listen(t, "127.0.0.1:0")}
	other := map[string]string{"us-east": "eu-west", "eu-west": "us-east"}
	cps := map[string]*cp{}
	for r := range lis {
		cps[r] = startCP(t, cpConfig{region: r, peer: lis[r], peers: []peering.Peer{{Region: other[r], Addr: lis[other[r]].Addr().String()}}})
	}
	const addr = "10.7.7.7:8080"
	start := time.Now()
	stop := register(t, cps["us-east"].xds, "sidecar-us-east-1", "us-east", "where", addr)
	eventually(t, 5*time.Second, "the registration served by eu-west's control plane", func() error {
		if got := servedEndpoints(cps["eu-west"].srv, "where", "us-east"); !slices.Contains(got, addr) {
			return fmt.Errorf("us-east endpoints at eu-west: %v", got)
		}
		return nil
	})
	t.Logf("a us-east registration reached eu-west's control plane in %s", time.Since(start).Round(time.Millisecond))
	own, _, err := cps["us-east"].srv.OwnSummary()
	if err != nil || !slices.Contains(own.Endpoints, peering.Endpoint{Service: "where", Address: addr, Zone: "us-east-b"}) {
		t.Fatalf("us-east's own summary = %+v, %v", own, err)
	}

	start = time.Now()
	stop()
	eventually(t, 5*time.Second, "the deregistration at eu-west", func() error {
		if got := servedEndpoints(cps["eu-west"].srv, "where", "us-east"); slices.Contains(got, addr) {
			return fmt.Errorf("us-east endpoints at eu-west: %v", got)
		}
		return nil
	})
	t.Logf("its deregistration reached eu-west in %s", time.Since(start).Round(time.Millisecond))
}
