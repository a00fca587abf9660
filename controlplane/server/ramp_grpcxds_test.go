package server

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/xds"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/geodemesh/geode/controlplane/health"
)

// TestProxylessGRPCFollowsRamp: grpc-go's own xDS client accepts the ramped EDS (one
// priority shared by us-east and eu-west) and splits its calls by the weights, step by
// step. The test drives the state machine itself (an hour-long Interval keeps Run's
// ticker out of the way).
func TestProxylessGRPCFollowsRamp(t *testing.T) {
	backends := map[string]string{}
	for _, r := range []string{"us-east", "eu-west", "us-west"} {
		backends[r] = startBackend(t, r)
	}
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Model: fleet(t, backends), XDS: xl, Health: health.Config{
		Interval: time.Hour, Window: time.Hour, ProbeAfter: time.Hour, BadEvaluations: 1, RampInterval: time.Nanosecond,
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap(xl.Addr().String(), "client-1", "us-east"))
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///where", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	where := func() string {
		cctx, ccancel := context.WithTimeout(ctx, 2*time.Second)
		defer ccancel()
		out := new(wrapperspb.StringValue)
		if err := cc.Invoke(cctx, whereMethod, wrapperspb.String("?"), out); err != nil {
			return "error: " + err.Error()
		}
		return out.GetValue()
	}
	deadline := time.Now().Add(20 * time.Second)
	for where() != "us-east" {
		if time.Now().After(deadline) {
			t.Fatal("never reached us-east")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// share waits for the client to have the version just published, then returns the
	// fraction of 400 calls answered by us-east.
	share := func() float64 {
		t.Helper()
		want := s.Versions()["us-east"]
		deadline := time.Now().Add(5 * time.Second)
		for {
			acked := ""
			for _, c := range s.Status().Clients {
				if c.NodeID == "client-1" {
					acked = c.Acked["type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"]
					if c.LastNACK != nil {
						t.Fatalf("client NACKed: %+v", c.LastNACK)
					}
				}
			}
			if acked == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("client did not ACK EDS %s (has %q)", want, acked)
			}
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(200 * time.Millisecond) // new picker, connections to the added localities
		n := 0
		for range 400 {
			switch got := where(); got {
			case "us-east":
				n++
			case "eu-west":
			default:
				t.Fatalf("call answered by %q during the ramp", got)
			}
		}
		return float64(n) / 400
	}
	step := func(wantFactor int) {
		t.Helper()
		now := time.Now()
		if err := s.RecordReport(now, Report{Reporter: "r", RegionOutcomes: map[string]RegionOutcome{"us-east": {Failure: 100}}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Evaluate(ctx, now); err != nil {
			t.Fatal(err)
		}
		if f := regionDump(t, s, "us-east").Health.Factor; f != wantFactor {
			t.Fatalf("factor %d, want %d", f, wantFactor)
		}
	}
	for _, f := range []int{75, 50, 25} {
		step(f)
		got := share()
		t.Logf("weight factor %d%%: us-east answered %.0f%% of calls", f, got*100)
		if d := got - float64(f)/100; d < -0.15 || d > 0.15 {
			t.Errorf("factor %d%%: us-east answered %.2f of calls", f, got)
		}
	}
	step(0)
	if got := share(); got != 0 {
		t.Errorf("ramp done: us-east still answered %.2f of calls", got)
	}
}
