package peering_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/peering"
	"github.com/geodemesh/geode/controlplane/server"
)

var regions = []string{"us-east", "eu-west", "us-west"}

func fleet(t *testing.T) *model.Model {
	t.Helper()
	eps := map[string][]model.Endpoint{}
	for i, r := range regions {
		eps[r] = []model.Endpoint{{Address: fmt.Sprintf("127.0.0.1:%d", 1001+i), Zone: r + "-a"}}
	}
	m, err := model.New(model.Spec{
		Regions: []model.RegionSpec{
			{Name: "us-east", RTT: map[string]time.Duration{"eu-west": 81 * time.Millisecond, "us-west": 87 * time.Millisecond}},
			{Name: "eu-west", RTT: map[string]time.Duration{"us-west": 137 * time.Millisecond}},
			{Name: "us-west"},
		},
		Services: []model.ServiceSpec{{Name: "where", Protocol: "grpc", Endpoints: eps}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// cp is one region's control plane with its peering client and server, run until stop.
type cp struct {
	region string
	srv    *server.Server
	admin  string
	peer   string // peering listener address
	xds    string // xDS listener address
	stop   func()
}

// cpConfig is what startCP runs.
type cpConfig struct {
	region string
	// admin and peer are the listeners of the admin API and of peering; nil for a
	// fresh loopback port.
	admin, peer net.Listener
	peers       []peering.Peer
	// ids, if set, peers over mutual TLS (polling and serving).
	ids *identity.Source
}

// startCP runs a region's control plane peered with c.peers.
func startCP(t *testing.T, c cpConfig) *cp {
	t.Helper()
	if c.admin == nil {
		c.admin = listen(t, "127.0.0.1:0")
	}
	if c.peer == nil {
		c.peer = listen(t, "127.0.0.1:0")
	}
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Options{
		Model: fleet(t), XDS: xl, Admin: c.admin, Region: c.region,
		// Fast and decisive: one bad evaluation of a 200ms window degrades; no-data
		// recovery (ProbeAfter) is far beyond the test.
		Health: health.Config{Interval: 20 * time.Millisecond, Window: 200 * time.Millisecond, MinRequests: 1,
			BadEvaluations: 1, RampStepPercent: 100, ProbeAfter: time.Minute},
	})
	if err != nil {
		t.Fatal(err)
	}
	p, err := peering.New(peering.Options{
		Region: c.region, Peers: c.peers, Apply: s.ApplyPeerSummary, Stale: s.SetPeerStale, Failed: s.RecordPeerError,
		Identity: c.ids,
		Wait:     200 * time.Millisecond, StaleAfter: 600 * time.Millisecond,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := peering.NewServer(peering.ServerOptions{Listener: c.peer, Identity: c.ids, Summary: s.OwnSummary})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runs := []func(context.Context) error{s.Run, p.Run, ps.Run}
	done := make(chan error, len(runs))
	for _, run := range runs {
		go func() { done <- run(ctx) }()
	}
	stopped := false
	out := &cp{region: c.region, srv: s, admin: c.admin.Addr().String(), peer: c.peer.Addr().String(), xds: xl.Addr().String()}
	out.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		for range runs {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: %v", c.region, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: not stopped 10s after cancel", c.region)
				return
			}
		}
	}
	t.Cleanup(out.stop)
	return out
}

func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if l, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func configDump(t *testing.T, admin string) server.ConfigDump {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + admin + "/config_dump")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var d server.ConfigDump
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

func regionOf(d server.ConfigDump, name string) server.RegionDump {
	for _, r := range d.Regions {
		if r.Name == name {
			return r
		}
	}
	return server.RegionDump{}
}

func peerOf(d server.ConfigDump, name string) (server.PeerDump, bool) {
	for _, p := range d.Peers {
		if p.Region == name {
			return p, true
		}
	}
	return server.PeerDump{}, false
}

// eventually retries check every 20ms until it returns nil or within expires.
func eventually(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func report(t *testing.T, admin, region string, failure uint64) {
	t.Helper()
	body, _ := json.Marshal(server.Report{Reporter: "sidecar-" + region, RegionOutcomes: map[string]server.RegionOutcome{region: {Success: 10, Failure: failure}}})
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Post("http://"+admin+"/reports", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("POST /reports: %s", resp.Status)
	}
}

func TestThreeRegionsPeered(t *testing.T) {
	lis := map[string]net.Listener{}
	for _, r := range regions {
		lis[r] = listen(t, "127.0.0.1:0")
	}
	peersOf := func(own string) []peering.Peer {
		var ps []peering.Peer
		for _, r := range regions {
			if r != own {
				ps = append(ps, peering.Peer{Region: r, Addr: lis[r].Addr().String()})
			}
		}
		return ps
	}
	cps := map[string]*cp{}
	for _, r := range regions {
		cps[r] = startCP(t, cpConfig{region: r, peer: lis[r], peers: peersOf(r)})
	}
	euAdmin := cps["eu-west"].admin

	// Everyone has every peer's first summary.
	for _, r := range regions {
		eventually(t, 5*time.Second, r+" synced", func() error {
			d := configDump(t, cps[r].admin)
			if len(d.Peers) != 2 {
				return fmt.Errorf("peers %+v", d.Peers)
			}
			for _, p := range d.Peers {
				if p.Version == "" || p.Stale {
					return fmt.Errorf("peer %+v", p)
				}
			}
			return nil
		})
	}
	if got := regionOf(configDump(t, cps["us-east"].admin), "us-east").Order; !slices.Equal(got, []string{"us-east", "eu-west", "us-west"}) {
		t.Fatalf("us-east priority order at start = %v", got)
	}

	// eu-west's own sidecars report eu-west failing, to eu-west's control plane only.
	eventually(t, 5*time.Second, "eu-west degraded at eu-west", func() error {
		report(t, euAdmin, "eu-west", 10)
		if st := regionOf(configDump(t, euAdmin), "eu-west").State; st != "degraded" {
			return fmt.Errorf("state %s", st)
		}
		return nil
	})
	for _, r := range []string{"us-east", "us-west"} {
		eventually(t, 3*time.Second, "eu-west degraded at "+r+" through peering", func() error {
			d := configDump(t, cps[r].admin)
			rd := regionOf(d, "eu-west")
			if rd.State != "degraded" || rd.Computed != "degraded" {
				return fmt.Errorf("eu-west %+v", rd)
			}
			if p, _ := peerOf(d, "eu-west"); p.State != "degraded" {
				return fmt.Errorf("peer %+v", p)
			}
			return nil
		})
	}
	// The EDS priorities follow: us-east's clients now prefer us-west over eu-west.
	if got := regionOf(configDump(t, cps["us-east"].admin), "us-east").Order; !slices.Equal(got, []string{"us-east", "us-west", "eu-west"}) {
		t.Fatalf("us-east priority order with eu-west degraded = %v", got)
	}

	// Partition: eu-west's control plane stops. The others keep its last known state
	// (degraded, not down) and show the peer stale.
	cps["eu-west"].stop()
	for _, r := range []string{"us-east", "us-west"} {
		eventually(t, 3*time.Second, "eu-west stale at "+r, func() error {
			d := configDump(t, cps[r].admin)
			p, _ := peerOf(d, "eu-west")
			if !p.Stale || p.StaleReason == "" || p.Errors == 0 || p.LastError == "" {
				return fmt.Errorf("peer %+v", p)
			}
			if rd := regionOf(d, "eu-west"); rd.State != "degraded" {
				t.Fatalf("eu-west at %s with its control plane partitioned = %s, want its last known degraded", r, rd.State)
			}
			return nil
		})
	}
	// Staying partitioned changes nothing (fail static).
	time.Sleep(500 * time.Millisecond)
	if rd := regionOf(configDump(t, cps["us-west"].admin), "eu-west"); rd.State != "degraded" {
		t.Fatalf("eu-west at us-west after a long partition = %s", rd.State)
	}

	// eu-west's control plane returns on the same address with a fresh state machine:
	// the others resync to what it now says (healthy) and clear the stale mark.
	cps["eu-west"] = startCP(t, cpConfig{region: "eu-west", admin: listen(t, euAdmin), peer: listen(t, cps["eu-west"].peer), peers: peersOf("eu-west")})
	own, _, err := cps["eu-west"].srv.OwnSummary()
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"us-east", "us-west"} {
		eventually(t, 5*time.Second, "resync at "+r, func() error {
			d := configDump(t, cps[r].admin)
			p, _ := peerOf(d, "eu-west")
			if p.Stale || p.Version != own.Version {
				return fmt.Errorf("peer %+v, want version %s", p, own.Version)
			}
			if rd := regionOf(d, "eu-west"); rd.State != "healthy" {
				return fmt.Errorf("eu-west %s", rd.State)
			}
			return nil
		})
	}
	// And the restarted one learned its peers again.
	eventually(t, 5*time.Second, "restarted eu-west synced", func() error {
		d := configDump(t, euAdmin)
		if len(d.Peers) != 2 {
			return fmt.Errorf("peers %+v", d.Peers)
		}
		return nil
	})

	// An operator drains eu-west at eu-west's control plane: every region's clients
	// follow, and a restore there lifts it everywhere.
	operator := func(action string) {
		t.Helper()
		resp, err := http.Post("http://"+euAdmin+"/regions/eu-west/"+action, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s eu-west: %s", action, resp.Status)
		}
	}
	for _, step := range []struct{ action, state, override string }{{"drain", "draining", "draining"}, {"restore", "healthy", ""}} {
		operator(step.action)
		start := time.Now()
		for _, r := range []string{"us-east", "us-west"} {
			eventually(t, 3*time.Second, "eu-west "+step.state+" at "+r+" after "+step.action+" at eu-west", func() error {
				d := configDump(t, cps[r].admin)
				if p, _ := peerOf(d, "eu-west"); p.Override != step.override {
					return fmt.Errorf("peer %+v", p)
				}
				if rd := regionOf(d, "eu-west"); rd.State != step.state || rd.Override != "" {
					return fmt.Errorf("eu-west %+v", rd)
				}
				return nil
			})
		}
		t.Logf("%s of eu-west at its own control plane reached both peers in %s", step.action, time.Since(start).Round(time.Millisecond))
	}
}
