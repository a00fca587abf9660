package xds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/server"
	"github.com/geodemesh/geode/proxy/config"
	"github.com/geodemesh/geode/proxy/sidecar"
	"github.com/geodemesh/geode/proxy/xds"
)

// regionBackends starts one HTTP backend per region that answers with its region.
func regionBackends(t *testing.T, regions ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range regions {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Served-By", r)
			io.WriteString(w, r)
		}))
		t.Cleanup(srv.Close)
		out[r] = srv.Listener.Addr().String()
	}
	return out
}

// fleet is three regions with the RTTs of shared/data/regions.csv and the service web
// in each; extra services may be added.
func fleet(t *testing.T, backends map[string]string, extra ...model.ServiceSpec) *model.Model {
	t.Helper()
	eps := map[string][]model.Endpoint{}
	for r, a := range backends {
		eps[r] = []model.Endpoint{{Address: a, Zone: r + "-a"}}
	}
	m, err := model.New(model.Spec{
		Regions: []model.RegionSpec{
			{Name: "us-east", RTT: map[string]time.Duration{"eu-west": 81 * time.Millisecond, "us-west": 87 * time.Millisecond}},
			{Name: "eu-west", RTT: map[string]time.Duration{"us-west": 137 * time.Millisecond}},
			{Name: "us-west"},
		},
		Services: append([]model.ServiceSpec{{Name: "web", Authorities: []string{"web", "web.default.svc"}, Endpoints: eps}}, extra...),
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// controlPlane is a control plane on loopback that can be stopped and started again on
// the same address.
type controlPlane struct {
	t *testing.T
	*server.Server
	xdsAddr string
	admin   string
	cancel  context.CancelFunc
	done    chan error
}

func startControlPlane(t *testing.T, m *model.Model, xdsAddr string) *controlPlane {
	t.Helper()
	return startControlPlaneWith(t, server.Options{Model: m}, xdsAddr)
}

// startControlPlaneWith starts a control plane with opts; the listeners are the harness's.
func startControlPlaneWith(t *testing.T, opts server.Options, xdsAddr string) *controlPlane {
	t.Helper()
	xl, err := net.Listen("tcp", xdsAddr)
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	opts.XDS, opts.Admin = xl, al
	s, err := server.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cp := &controlPlane{t: t, Server: s, xdsAddr: xl.Addr().String(), admin: "http://" + al.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { cp.done <- s.Run(ctx) }()
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) stop() {
	if cp.cancel == nil {
		return
	}
	cp.cancel()
	cp.cancel = nil
	select {
	case err := <-cp.done:
		if err != nil {
			cp.t.Errorf("control plane Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		cp.t.Error("control plane did not stop within 10s")
	}
}

func (cp *controlPlane) post(path string) {
	cp.t.Helper()
	resp, err := http.Post(cp.admin+path, "", nil)
	if err != nil {
		cp.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		cp.t.Fatalf("POST %s: %s", path, resp.Status)
	}
}

// lastNACK reads GET /status and returns the last NACK error of node, if any.
func (cp *controlPlane) lastNACK(node string) string {
	cp.t.Helper()
	resp, err := http.Get(cp.admin + "/status")
	if err != nil {
		cp.t.Fatal(err)
	}
	defer resp.Body.Close()
	var st server.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		cp.t.Fatal(err)
	}
	for _, c := range st.Clients {
		if c.NodeID == node && c.LastNACK != nil {
			return c.LastNACK.Error
		}
	}
	return ""
}

// baseConfig is a sidecar's own file: its region and listeners, no services. It lists
// only its own region; the others come from the control plane.
const baseConfig = `
region: us-east
listeners: {outbound: "127.0.0.1:1"}
regions: [{name: us-east}]
limits: {drain_timeout: 2s}
`

// meshSidecar is a real sidecar fed by a real xDS client.
type meshSidecar struct {
	*sidecar.Sidecar
	client   *xds.Client
	outbound string
	http     *http.Client
	stop     func() // stops the sidecar and its xDS client; also at the test's end
}

func startSidecar(t *testing.T, xdsAddr, nodeID, cacheFile string) *meshSidecar {
	t.Helper()
	return startSidecarWith(t, baseConfig, xdsAddr, nodeID, cacheFile)
}

// startSidecarWith starts a sidecar whose own file is baseYAML. It reports its region
// outcomes to the control plane (Options.Outcomes).
func startSidecarWith(t *testing.T, baseYAML, xdsAddr, nodeID, cacheFile string) *meshSidecar {
	t.Helper()
	return startMeshSidecar(t, baseYAML, xdsAddr, nodeID, cacheFile, sidecarRegistration{})
}

// sidecarRegistration is what a sidecar registers at the control plane: its inbound
// listener (on inbound, when set) as an endpoint of service.
type sidecarRegistration struct {
	service string
	inbound net.Listener
}

func startMeshSidecar(t *testing.T, baseYAML, xdsAddr, nodeID, cacheFile string, reg sidecarRegistration) *meshSidecar {
	t.Helper()
	base, err := config.Parse([]byte(baseYAML))
	if err != nil {
		t.Fatal(err)
	}
	out, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var address string
	if reg.inbound != nil {
		address = reg.inbound.Addr().String()
	}
	sc, err := sidecar.New(sidecar.Options{Config: base, Outbound: out, Inbound: reg.inbound})
	if err != nil {
		t.Fatal(err)
	}
	client, err := xds.New(xds.Options{
		Server:      xdsAddr,
		DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
		NodeID:      nodeID, Zone: base.Region + "-a", Service: reg.service, Address: address,
		Base: base, Apply: sc.Apply, CacheFile: cacheFile, Outcomes: sc.TakeOutcomes,
		ColdStartAfter: 300 * time.Millisecond, MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	scDone, xdsDone := make(chan error, 1), make(chan error, 1)
	go func() { scDone <- sc.Run(ctx) }()
	go func() { xdsDone <- client.Run(ctx) }()
	m := &meshSidecar{Sidecar: sc, client: client, outbound: out.Addr().String(), http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}}
	m.stop = sync.OnceFunc(func() {
		cancel()
		for name, ch := range map[string]chan error{"sidecar": scDone, "xds client": xdsDone} {
			select {
			case err := <-ch:
				if err != nil {
					t.Errorf("%s Run: %v", name, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s did not stop within 10s", name)
			}
		}
		m.http.CloseIdleConnections()
	})
	t.Cleanup(m.stop)
	return m
}

// servedBy sends GET / for authority through the outbound listener and returns the
// region that answered, or the status when it failed.
func (m *meshSidecar) servedBy(authority string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.outbound+"/", nil)
	req.Host = authority
	resp, err := m.http.Do(req)
	if err != nil {
		return "error: " + err.Error()
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.Status
	}
	return resp.Header.Get("X-Served-By")
}

// eventually polls until cond holds, for at most limit, and returns how long it took.
func eventually(t *testing.T, limit time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > limit {
			t.Fatalf("%s: not within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return time.Since(start)
}

func TestSidecarFollowsTheControlPlane(t *testing.T) {
	backends := regionBackends(t, "us-east", "eu-west", "us-west")
	good := fleet(t, backends)
	cp := startControlPlane(t, good, "127.0.0.1:0")
	cache := filepath.Join(t.TempDir(), "xds-state.yaml")
	const node = "sidecar-us-east-1"
	sc := startSidecar(t, cp.xdsAddr, node, cache)

	// (a) Services and regions arrive; the sidecar routes to its own region, and
	// fails over to the nearest other one when the operator marks its region down.
	d := eventually(t, 5*time.Second, "web served by us-east", func() bool { return sc.servedBy("web") == "us-east" })
	t.Logf("first state applied and routed in %s", d)
	if got := sc.servedBy("web.default.svc:80"); got != "us-east" {
		t.Fatalf("second authority served by %q", got)
	}
	if got := sc.servedBy("nope"); !strings.HasPrefix(got, "4") {
		t.Fatalf("unknown authority: %q, want a 4xx", got)
	}
	eventually(t, 2*time.Second, "client status: connected, both types ACKed at the published version", func() bool {
		st := sc.client.Status()
		return st.Connected && st.Source == "xds" && st.Acked[xds.ClusterType] == cp.Versions()["us-east"] && st.Acked[xds.EndpointType] == cp.Versions()["us-east"]
	})
	cp.post("/regions/us-east/down")
	d = eventually(t, 5*time.Second, "failover to eu-west (81ms, nearer than us-west's 87ms)", func() bool { return sc.servedBy("web") == "eu-west" })
	t.Logf("us-east down → served by eu-west after %s", d)

	// (b) An update the model accepts but the sidecar cannot (1025 endpoints in one
	// region; the sidecar holds at most 1024) is NACKed with the sidecar's error, and
	// the previous state keeps serving.
	var many []model.Endpoint
	for i := range 1025 {
		many = append(many, model.Endpoint{Address: fmt.Sprintf("127.0.0.1:%d", 20000+i)})
	}
	bad := fleet(t, backends, model.ServiceSpec{Name: "big", Endpoints: map[string][]model.Endpoint{"eu-west": many}})
	nacksBefore := sc.client.Status().NACKs
	if err := cp.SetModel(context.Background(), bad); err != nil {
		t.Fatal(err)
	}
	d = eventually(t, 5*time.Second, "NACK visible in the control plane's /status", func() bool {
		return strings.Contains(cp.lastNACK(node), "1025 addresses; at most 1024 per region")
	})
	t.Logf("invalid update NACKed (seen in /status) after %s: %s", d, firstLine(cp.lastNACK(node)))
	for range 20 {
		if got := sc.servedBy("web"); got != "eu-west" {
			t.Fatalf("after the NACK web is served by %q, want eu-west (last good state)", got)
		}
	}
	if got := sc.servedBy("big"); !strings.HasPrefix(got, "4") {
		t.Fatalf("the rejected service is routed: %q", got)
	}
	// The control plane resends the NACKed version once (a NACK names the previous
	// version); the client's second NACK names the bad version, and the resending stops.
	time.Sleep(300 * time.Millisecond)
	settled := serverNACKs(cp, node)
	time.Sleep(300 * time.Millisecond)
	if n := serverNACKs(cp, node); n != settled || n > 4 {
		t.Fatalf("NACKs seen by the control plane went %d → %d: the bad version is being resent in a loop", settled, n)
	}
	t.Logf("NACKs: %d rejected update(s) in the client, %d NACK(s) seen by the control plane (CDS and EDS, each once more on the resend)",
		sc.client.Status().NACKs-nacksBefore, settled)
	// A good update after the bad one is applied.
	if err := cp.SetModel(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "the next good version ACKed", func() bool {
		return sc.client.Status().Acked[xds.ClusterType] == cp.Versions()["us-east"]
	})

	// (c) Control plane stopped: the sidecar keeps serving its last state.
	cp.stop()
	eventually(t, 5*time.Second, "client notices the control plane is gone", func() bool { return !sc.client.Status().Connected })
	stopped := time.Now()
	for time.Since(stopped) < time.Second {
		if got := sc.servedBy("web"); got != "eu-west" {
			t.Fatalf("with the control plane stopped, web is served by %q", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// It comes back on the same address with changes made meanwhile: a fresh control
	// plane has no operator override (us-east is healthy again) and a new service.
	late := regionBackends(t, "us-west")
	changed := fleet(t, backends, model.ServiceSpec{Name: "late", Endpoints: map[string][]model.Endpoint{"us-west": {{Address: late["us-west"]}}}})
	streamsBefore := sc.client.Status().Streams
	restarted := time.Now()
	cp2 := startControlPlane(t, changed, cp.xdsAddr)
	d = eventually(t, 10*time.Second, "resync after the control plane returns", func() bool {
		return sc.servedBy("late") == "us-west" && sc.servedBy("web") == "us-east"
	})
	t.Logf("control plane down for %s; resynced %s after it restarted", restarted.Sub(stopped).Round(time.Millisecond), d)
	eventually(t, 2*time.Second, "a new stream ACKed the new version", func() bool {
		st := sc.client.Status()
		return st.Streams > streamsBefore && st.Acked[xds.ClusterType] == cp2.Versions()["us-east"]
	})

	// (d) Cold start without a control plane: a new sidecar with the same cache file
	// and an unreachable control plane serves the persisted state.
	cp2.stop()
	cold := startSidecar(t, cp.xdsAddr, "sidecar-us-east-2", cache)
	d = eventually(t, 5*time.Second, "cold start from the cache", func() bool {
		return cold.servedBy("late") == "us-west" && cold.servedBy("web") == "us-east"
	})
	if st := cold.client.Status(); st.Source != "cache" || st.Connected {
		t.Fatalf("cold start status = %+v, want source cache, not connected", st)
	}
	t.Logf("cold start from %s served after %s", filepath.Base(cache), d)
}

func serverNACKs(cp *controlPlane, node string) int {
	for _, c := range cp.Status().Clients {
		if c.NodeID == node {
			return c.NACKs
		}
	}
	return 0
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}
