package server

import (
	"context"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func locality(region string, ok, failed uint64) *endpointv3.UpstreamLocalityStats {
	return &endpointv3.UpstreamLocalityStats{Locality: &corev3.Locality{Region: region}, TotalSuccessfulRequests: ok, TotalErrorRequests: failed}
}

// LRS: the node is checked like an ADS node; the server asks for all clusters at its
// interval; each request becomes one report per region (summed over clusters), and
// localities naming no or an unknown region are skipped and counted, not fatal.
func TestLoadReportsFeedRegionHealth(t *testing.T) {
	addrs := map[string]string{"us-east": "127.0.0.1:1", "eu-west": "127.0.0.1:2", "us-west": "127.0.0.1:3"}
	s, xdsAddr, _ := startControlPlane(t, fleet(t, addrs))
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lrs := lrsv3.NewLoadReportingServiceClient(cc)

	// A node without a region is refused.
	st, err := lrs.StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&lrsv3.LoadStatsRequest{Node: &corev3.Node{Id: "n0"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("node without region: %v, want InvalidArgument", err)
	}

	st, err = lrs.StreamLoadStats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	node := &corev3.Node{Id: "sidecar-1", Locality: &corev3.Locality{Region: "us-east"}}
	if err := st.Send(&lrsv3.LoadStatsRequest{Node: node}); err != nil {
		t.Fatal(err)
	}
	resp, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if !resp.GetSendAllClusters() || resp.GetLoadReportingInterval().AsDuration() != DefaultLoadReportInterval {
		t.Fatalf("response %v: want send_all_clusters and interval %s", resp, DefaultLoadReportInterval)
	}
	err = st.Send(&lrsv3.LoadStatsRequest{ClusterStats: []*endpointv3.ClusterStats{
		{ClusterName: "where", UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{locality("us-east", 4, 6), locality("mars", 1, 1), locality("", 1, 0)}},
		{ClusterName: "other", UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{locality("us-east", 6, 14), locality("eu-west", 30, 0)}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.Status().LoadReports.Recorded < 1 {
		if time.Now().After(deadline) {
			t.Fatalf("report not recorded within 5s: %+v", s.Status().LoadReports)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.Status().LoadReports; got != (LoadReports{Streams: 1, Recorded: 1, SkippedLocalities: 2}) {
		t.Fatalf("LoadReports = %+v", got)
	}
	if err := s.Evaluate(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, r := range s.ConfigDump().Regions {
		want := map[string]uint64{"us-east": 30, "eu-west": 30}[r.Name]
		if r.Health.Requests != want {
			t.Errorf("%s: window requests %d, want %d", r.Name, r.Health.Requests, want)
		}
		if r.Name == "us-east" && r.Health.FailureRatio != 20.0/30 {
			t.Errorf("us-east failure ratio %v, want 20/30", r.Health.FailureRatio)
		}
	}
	// The stream lives on after bad localities.
	if err := st.Send(&lrsv3.LoadStatsRequest{ClusterStats: []*endpointv3.ClusterStats{{ClusterName: "where", UpstreamLocalityStats: []*endpointv3.UpstreamLocalityStats{locality("us-west", 1, 0)}}}}); err != nil {
		t.Fatal(err)
	}
	for s.Status().LoadReports.Recorded < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("second report not recorded: %+v", s.Status().LoadReports)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLoadReportIntervalOption(t *testing.T) {
	for _, d := range []time.Duration{time.Millisecond, 2 * time.Hour} {
		if _, err := checkLoadReportInterval(d); err == nil {
			t.Errorf("interval %s accepted", d)
		}
	}
}
