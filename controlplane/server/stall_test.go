package server

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/geodemesh/geode/controlplane/model"
)

// bigFleet has n services with an endpoint in each region: its CDS is well over a
// 64 KiB flow-control window.
func bigFleet(t *testing.T, n int) *model.Model {
	t.Helper()
	spec := fleet(t, map[string]string{"us-east": "127.0.0.1:1001", "eu-west": "127.0.0.1:2001", "us-west": "127.0.0.1:3001"}).Spec()
	for i := range n {
		spec.Services = append(spec.Services, model.ServiceSpec{
			Name: fmt.Sprintf("svc-%04d", i), Protocol: "http1",
			Endpoints: map[string][]model.Endpoint{
				"us-east": {{Address: fmt.Sprintf("10.1.%d.%d:80", i/250, i%250)}},
				"eu-west": {{Address: fmt.Sprintf("10.2.%d.%d:80", i/250, i%250)}},
			},
			Policy: model.Policy{Consistency: "session", AffinityKey: "header:x-user", HomeRegions: "hash=us-east,eu-west"},
		})
	}
	m, err := model.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// stuckClient opens a SotW stream with 64 KiB windows (no window growth), takes and
// ACKs the clusters and endpoints of the n services of bigFleet, and then stops reading:
// the next update (both types change with a region state) fills its window.
func stuckClient(t *testing.T, addr string, n int) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	names := []string{"where"}
	for i := range n {
		names = append(names, fmt.Sprintf("svc-%04d", i))
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node("stuck", "us-east"), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.EndpointType, ResourceNames: names}); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		resp, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		req := &discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}
		if resp.GetTypeUrl() == resource.EndpointType {
			req.ResourceNames = names
		}
		if err := st.Send(req); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

// ackingClient keeps a SotW CDS stream for region and ACKs every response; it returns
// the channel of versions it ACKed.
func ackingClient(t *testing.T, addr, id, region string) <-chan string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := adsClient(t, addr).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&discoveryv3.DiscoveryRequest{Node: node(id, region), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	acked := make(chan string, 16)
	go func() {
		for {
			resp, err := st.Recv()
			if err != nil {
				return
			}
			if st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}) != nil {
				return
			}
			select {
			case acked <- resp.GetVersionInfo():
			default:
			}
		}
	}()
	return acked
}

func connected(s *Server, id string) bool {
	for _, c := range s.Status().Clients {
		if c.NodeID == id {
			return true
		}
	}
	return false
}

// A client that does not read blocks nobody: a region-state change reaches the other
// clients at once, and the stalled client is disconnected after SendTimeout and
// counted. With the guard off (SendTimeout < 0) the same client stays connected, stuck,
// so the test can tell the difference.
func TestSlowClientIsDisconnectedAndBlocksNobody(t *testing.T) {
	for _, guard := range []bool{true, false} {
		t.Run(fmt.Sprintf("guard=%v", guard), func(t *testing.T) {
			timeout := 500 * time.Millisecond
			if !guard {
				timeout = -1
			}
			s, addr, admin := startControlPlaneWith(t, Options{Model: bigFleet(t, 150), SendTimeout: timeout})
			stuck := stuckClient(t, addr, 150)
			var others []<-chan string
			for i := range 3 {
				others = append(others, ackingClient(t, addr, fmt.Sprintf("ok-%d", i), "us-east"))
			}
			for _, c := range others {
				select {
				case <-c:
				case <-time.After(5 * time.Second):
					t.Fatal("a reading client got no CDS")
				}
			}
			start := time.Now()
			r, err := http.Post(admin+"/regions/eu-west/down", "", nil)
			if err != nil || r.StatusCode != http.StatusOK {
				t.Fatalf("down: %v %v", r.Status, err)
			}
			r.Body.Close()
			want := s.Versions()["us-east"]
			for i, c := range others {
				select {
				case v := <-c:
					if v != want {
						t.Fatalf("client %d ACKed %s, want %s", i, v, want)
					}
				case <-time.After(5 * time.Second):
					t.Fatalf("client %d did not get the region-state change while a client is stuck", i)
				}
			}
			t.Logf("3 reading clients ACKed the region-state change in %s with a stuck client connected", time.Since(start).Round(time.Millisecond))

			deadline := time.Now().Add(3 * time.Second)
			for guard && connected(s, "stuck") && time.Now().Before(deadline) {
				time.Sleep(20 * time.Millisecond)
			}
			if !guard {
				time.Sleep(4*timeout.Abs() + time.Second)
			}
			st := s.Status()
			if guard {
				if connected(s, "stuck") || st.SlowDisconnected != 1 {
					t.Fatalf("stuck client connected=%v, slow_disconnected=%d; want it disconnected and counted once", connected(s, "stuck"), st.SlowDisconnected)
				}
				// The client learns why once it reads.
				var err error
				for err == nil {
					_, err = stuck.Recv()
				}
				if status.Code(err) != codes.ResourceExhausted {
					t.Fatalf("stuck client's stream ended with %v, want ResourceExhausted", err)
				}
				t.Logf("stuck client disconnected after %s: %v", time.Since(start).Round(time.Millisecond), err)
				return
			}
			if !connected(s, "stuck") || st.SlowDisconnected != 0 {
				t.Fatalf("without the guard: stuck client connected=%v, slow_disconnected=%d; want it still there", connected(s, "stuck"), st.SlowDisconnected)
			}
		})
	}
}
