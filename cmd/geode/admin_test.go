package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/geodemesh/geode/controlplane/server"
	"github.com/geodemesh/geode/controlplane/source"
)

// startControlPlane runs an in-process control plane on loopback with the shipped
// example fleet and returns it with its xDS and admin addresses.
func startControlPlane(t *testing.T) (*server.Server, string, string) {
	t.Helper()
	m, err := source.Load("../../controlplane/source/testdata/fleet")
	if err != nil {
		t.Fatal(err)
	}
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Options{Model: m, XDS: xl, Admin: al})
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
	return s, xl.Addr().String(), al.Addr().String()
}

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

// eventually polls cond every 5 ms for at most 2 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatalf("%s: not within 2s", what)
}

func TestStatus(t *testing.T) {
	s, xdsAddr, admin := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// A SotW client in us-east that ACKs CDS.
	sotw, err := adsClient(t, xdsAddr).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := sotw.Send(&discoveryv3.DiscoveryRequest{Node: node("sidecar-east-1", "us-east"), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	resp, err := sotw.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := sotw.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
		t.Fatal(err)
	}
	// A second SotW client, in eu-west, that NACKs CDS. (Not a Delta client: the
	// server keys its clients by go-control-plane's stream id, which SotW and Delta
	// count separately, so SotW stream 1 and Delta stream 1 overwrite each other in
	// /status. TestStatusTable covers the delta column from a recorded /status.)
	nacker, err := adsClient(t, xdsAddr).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := nacker.Send(&discoveryv3.DiscoveryRequest{Node: node("grpc-eu-7", "eu-west"), TypeUrl: resource.ClusterType}); err != nil {
		t.Fatal(err)
	}
	dresp, err := nacker.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if err := nacker.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resource.ClusterType, ResponseNonce: dresp.GetNonce(),
		ErrorDetail: &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: "cluster profiles: bad\nlb policy"}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "ACK and NACK recorded", func() bool {
		st := s.Status()
		return len(st.Clients) == 2 && st.Clients[1].Acked[resource.ClusterType] != "" && st.Clients[0].LastNACK != nil
	})

	var out, errOut bytes.Buffer
	if err := runStatus(ctx, []string{"--admin", admin}, &out, &errOut); err != nil {
		t.Fatalf("status: %v (%s)", err, errOut.String())
	}
	t.Logf("geode status:\n%s", out.String())
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want a header, 2 clients and a summary:\n%s", out.String())
	}
	if f := strings.Fields(lines[0]); strings.Join(f, " ") != "NODE REGION PROTOCOL LDS RDS CDS EDS LAST NACK" {
		t.Errorf("header %q", lines[0])
	}
	// Columns are aligned: every row's CDS column starts where the header's does.
	col := strings.Index(lines[0], "CDS")
	euVersion := s.Versions()["eu-west"][:8]
	eastVersion := s.Versions()["us-east"][:8]
	for _, want := range []struct{ line, prefix, cds, rest string }{
		{lines[1], "grpc-eu-7", "NACKED", "CDS " + euVersion + ": cluster profiles: bad lb policy"},
		{lines[2], "sidecar-east-1", "SYNCED (" + eastVersion + ")", "-"},
	} {
		f := strings.Fields(want.line)
		if !strings.HasPrefix(want.line, want.prefix) || !strings.HasPrefix(want.line[col:], want.cds) || !strings.HasSuffix(want.line, want.rest) {
			t.Errorf("row %q: want %s ... CDS %q at column %d ... %q", want.line, want.prefix, want.cds, col, want.rest)
		}
		if len(f) < 3 {
			t.Fatalf("row %q", want.line)
		}
	}
	if !strings.Contains(lines[1], "eu-west   sotw") || !strings.Contains(lines[2], "us-east   sotw") || !strings.Contains(lines[2], "NOT SENT") {
		t.Errorf("region/protocol/state columns:\n%s", out.String())
	}
	if lines[3] != "2 clients; 0 streams refused, 1 NACKs since start" {
		t.Errorf("summary %q", lines[3])
	}

	// --json is the server's Status.
	out.Reset()
	if err := runStatus(ctx, []string{"--json", "--admin", "http://" + admin}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var st server.Status
	if err := json.Unmarshal(out.Bytes(), &st); err != nil || len(st.Clients) != 2 || st.Clients[0].LastNACK.Error != "cluster profiles: bad\nlb policy" {
		t.Fatalf("--json: %v\n%s", err, out.String())
	}
}

func TestStatusErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := runStatus(context.Background(), []string{"extra"}, &out, &errOut); exitCode(err) != 2 || !strings.Contains(errOut.String(), `unexpected argument "extra"`) {
		t.Fatalf("extra argument: %v %q", err, errOut.String())
	}
	// Nothing listens there (the port was just released).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	err = runStatus(context.Background(), []string{"--admin", addr, "--timeout", "2s"}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "control plane admin API at "+addr) {
		t.Fatalf("unreachable control plane: %v", err)
	}
}

func TestRegion(t *testing.T) {
	s, _, admin := startControlPlane(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var out, errOut bytes.Buffer
	// Flags before and after the arguments.
	if err := runRegion(ctx, []string{"--admin", admin, "drain", "eu-west"}, &out, &errOut); err != nil {
		t.Fatalf("drain: %v (%s)", err, errOut.String())
	}
	if !strings.HasPrefix(out.String(), "region eu-west: draining (model ") || !strings.Contains(out.String(), "eu-west="+s.Versions()["eu-west"][:8]) {
		t.Errorf("drain output %q", out.String())
	}
	if d := s.ConfigDump(); d.Regions[1].Name != "eu-west" || d.Regions[1].State != "draining" || d.Regions[1].Override != "draining" {
		t.Errorf("after drain: %+v", d.Regions[1])
	}
	for _, tc := range []struct{ action, state string }{{"fence", "fenced"}, {"down", "down"}, {"restore", "healthy"}} {
		out.Reset()
		if err := runRegion(ctx, []string{tc.action, "eu-west", "--admin", admin, "--json"}, &out, &errOut); err != nil {
			t.Fatalf("%s: %v", tc.action, err)
		}
		var got struct{ Region, State string }
		if err := json.Unmarshal(out.Bytes(), &got); err != nil || got.Region != "eu-west" || got.State != tc.state {
			t.Errorf("%s --json: %v %q", tc.action, err, out.String())
		}
	}
	if d := s.ConfigDump(); d.Regions[1].State != "healthy" || d.Regions[1].Override != "" {
		t.Errorf("after restore: %+v", d.Regions[1])
	}

	// An unknown region: the server's 404, named.
	err := runRegion(ctx, []string{"drain", "mars", "--admin", admin}, &out, &errOut)
	if err == nil || exitCode(err) != 1 || !strings.Contains(err.Error(), `region "mars": the control plane at `+admin+` does not know it`) ||
		!strings.Contains(err.Error(), "404 Not Found") {
		t.Fatalf("unknown region: %v", err)
	}
}

func TestRegionUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "an action and a region are required"},
		{[]string{"evacuate", "eu-west"}, `unknown action "evacuate": want drain, fence, down or restore`},
		{[]string{"drain"}, "geode region drain: exactly one REGION is required (got 0 arguments)"},
		{[]string{"drain", "a", "b"}, "exactly one REGION is required (got 2 arguments)"},
		{[]string{"drain", "a", "--bogus"}, "flag provided but not defined: -bogus"},
	} {
		var out, errOut bytes.Buffer
		err := runRegion(context.Background(), append(tc.args, "--admin", "127.0.0.1:1"), &out, &errOut)
		if exitCode(err) != 2 || !strings.Contains(errOut.String(), tc.want) {
			t.Errorf("%q: err %v, stderr %q, want exit 2 and %q", tc.args, err, errOut.String(), tc.want)
		}
	}
}

// TestStatusTable renders a recorded /status: every state, a delta client, a type
// outside LDS..EDS, and a client that has not sent its node yet.
func TestStatusTable(t *testing.T) {
	st := server.Status{Refused: 3, NACKs: 2, Clients: []server.ClientStatus{
		{Stream: 4, Protocol: "delta", NodeID: "grpc-eu-7", Region: "eu-west",
			Sent:     map[string]string{resource.ClusterType: "bbbbbbbbbbbb", resource.EndpointType: "bbbbbbbbbbbb", resource.SecretType: "s2"},
			Acked:    map[string]string{resource.ClusterType: "bbbbbbbbbbbb", resource.EndpointType: "aaaaaaaaaaaa"},
			LastNACK: &server.NACK{TypeURL: resource.EndpointType, Version: "bbbbbbbbbbbb", Error: "bad locality"}},
		{Stream: 5, Protocol: "sotw", NodeID: "sidecar-1", Region: "us-east",
			Sent:  map[string]string{resource.ListenerType: "cccccccccccc", resource.ClusterType: "cccccccccccc"},
			Acked: map[string]string{resource.ListenerType: "cccccccccccc", resource.ClusterType: "aaaaaaaaaaaa"}},
		{Stream: 6, Protocol: "sotw"},
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if err := runStatus(context.Background(), []string{"--admin", srv.URL}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	want := `NODE         REGION    PROTOCOL   LDS                 RDS        CDS                 EDS                 SDS        LAST NACK
grpc-eu-7    eu-west   delta      NOT SENT            NOT SENT   SYNCED (bbbbbbbb)   NACKED (aaaaaaaa)   STALE      EDS bbbbbbbb: bad locality
sidecar-1    us-east   sotw       SYNCED (cccccccc)   NOT SENT   STALE (aaaaaaaa)    NOT SENT            NOT SENT   -
(stream 6)   -         sotw       NOT SENT            NOT SENT   NOT SENT            NOT SENT            NOT SENT   -
3 clients; 3 streams refused, 2 NACKs since start
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
