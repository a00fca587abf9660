package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/geodemesh/geode/controlplane/model"
)

// startControlPlane runs a Server on loopback for the test's lifetime and returns it
// with its xDS address and admin base URL.
func startControlPlane(t *testing.T, m *model.Model) (s *Server, xdsAddr, adminURL string) {
	t.Helper()
	return startControlPlaneWith(t, Options{Model: m})
}

// startControlPlaneWith is startControlPlane with options; the listeners are the
// harness's.
func startControlPlaneWith(t *testing.T, o Options) (s *Server, xdsAddr, adminURL string) {
	t.Helper()
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	o.XDS, o.Admin = xl, al
	s, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after its context was cancelled")
		}
	})
	return s, xl.Addr().String(), "http://" + al.Addr().String()
}

// whereService is a tiny unary gRPC service whose one method answers the region of the
// server: /geode.test.Where/Region(StringValue) returns (StringValue).
const whereMethod = "/geode.test.Where/Region"

func whereDesc(region string) *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "geode.test.Where",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Region",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				in := new(wrapperspb.StringValue)
				if err := dec(in); err != nil {
					return nil, err
				}
				return wrapperspb.String(region), nil
			},
		}},
	}
}

// startBackend serves the Where service for region on a loopback port.
func startBackend(t *testing.T, region string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	gs.RegisterService(whereDesc(region), struct{}{})
	done := make(chan error, 1)
	go func() { done <- gs.Serve(l) }()
	t.Cleanup(func() {
		gs.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("backend %s: %v", region, err)
		}
	})
	return l.Addr().String()
}

// fleet is three regions with the RTTs of shared/data/regions.csv and one gRPC service,
// "where", with one endpoint per region.
func fleet(t *testing.T, addrs map[string]string) *model.Model {
	t.Helper()
	eps := map[string][]model.Endpoint{}
	for region, a := range addrs {
		eps[region] = []model.Endpoint{{Address: a, Zone: region + "-a"}}
	}
	m, err := model.New(model.Spec{
		Regions: []model.RegionSpec{
			{Name: "us-east", RTT: map[string]time.Duration{"eu-west": 81 * time.Millisecond, "us-west": 87 * time.Millisecond}},
			{Name: "eu-west", RTT: map[string]time.Duration{"us-west": 137 * time.Millisecond}},
			{Name: "us-west"},
		},
		Services: []model.ServiceSpec{{
			Name: "where", Protocol: "grpc", Endpoints: eps,
			Policy: model.Policy{Consistency: "session", AffinityKey: "grpc:user-id", HomeRegions: "hash=us-east,eu-west"},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func bootstrap(xdsAddr, nodeID, region string) []byte {
	return fmt.Appendf(nil, `{
  "xds_servers": [{"server_uri": %q, "channel_creds": [{"type": "insecure"}], "server_features": ["xds_v3"]}],
  "node": {"id": %q, "locality": {"region": %q, "zone": %q}}
}`, xdsAddr, nodeID, region, region+"-a")
}
