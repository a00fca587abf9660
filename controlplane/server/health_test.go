package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/geodemesh/geode/controlplane/health"
)

// newHealthServer builds a Server (not running: the test drives Evaluate with its own
// clock) over the three-region fleet.
func newHealthServer(t *testing.T, cfg health.Config) *Server {
	t.Helper()
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { xl.Close() })
	m := fleet(t, map[string]string{"us-east": "127.0.0.1:1001", "eu-west": "127.0.0.1:2001", "us-west": "127.0.0.1:3001"})
	s, err := New(Options{Model: m, XDS: xl, Health: cfg})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// eds renders the published "where" assignment for clients in region as
// "priority:region*weight" entries, decoded from the cache's wire-only copy.
func eds(t *testing.T, s *Server, region string) string {
	t.Helper()
	snap, err := s.cache.GetSnapshot(region)
	if err != nil {
		t.Fatal(err)
	}
	b, err := proto.Marshal(snap.GetResources(resource.EndpointType)["where"])
	if err != nil {
		t.Fatal(err)
	}
	cla := &endpointv3.ClusterLoadAssignment{}
	if err := proto.Unmarshal(b, cla); err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, l := range cla.GetEndpoints() {
		parts = append(parts, fmt.Sprintf("%d:%s*%d", l.GetPriority(), l.GetLocality().GetRegion(), l.GetLoadBalancingWeight().GetValue()))
	}
	return strings.Join(parts, " ")
}

func post(t *testing.T, h http.Handler, path string, body any) *httptest.ResponseRecorder {
	t.Helper()
	var buf bytes.Buffer
	if body != nil {
		if err := json.NewEncoder(&buf).Encode(body); err != nil {
			t.Fatal(err)
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, path, &buf))
	return rec
}

func regionDump(t *testing.T, s *Server, name string) RegionDump {
	t.Helper()
	for _, r := range s.ConfigDump().Regions {
		if r.Name == name {
			return r
		}
	}
	t.Fatalf("no region %q in config dump", name)
	return RegionDump{}
}

// TestHealthDrivesFailoverWithRamp: failure reports for us-east make it degraded then
// down after the hysteresis, with EDS shifting us-east's traffic to eu-west in 25%
// steps; recovery reports bring it back to healthy after M good evaluations and ramp it
// back up; an operator fence overrides the computed state and restore returns to it.
func TestHealthDrivesFailoverWithRamp(t *testing.T) {
	// Defaults (N=3, M=5, 25% steps) but a step every evaluation and a 2s window, to keep
	// the script short.
	s := newHealthServer(t, health.Config{Window: 2 * time.Second, RampInterval: time.Second})
	h := s.Handler()
	ctx := context.Background()
	// The test's clock starts at the wall clock, so the report posted over HTTP (stamped
	// time.Now()) falls in the first window.
	now := time.Now().Truncate(time.Second)
	report := func(succ, fail uint64) {
		t.Helper()
		for _, reporter := range []string{"sidecar-eu", "sidecar-us"} {
			rec := post(t, h, "/reports", Report{Reporter: reporter, RegionOutcomes: map[string]RegionOutcome{
				"us-east": {Success: succ, Failure: fail, P99ms: 12},
				"eu-west": {Success: 50},
			}})
			if rec.Code != http.StatusNoContent {
				t.Fatalf("POST /reports: %d %s", rec.Code, rec.Body)
			}
		}
	}
	// tick records a report per reporter and evaluates, both at the test's clock.
	tick := func(succ, fail uint64) {
		t.Helper()
		now = now.Add(time.Second)
		for _, rep := range []string{"sidecar-eu", "sidecar-us"} {
			if err := s.RecordReport(now, Report{Reporter: rep, RegionOutcomes: map[string]RegionOutcome{
				"us-east": {Success: succ, Failure: fail}, "eu-west": {Success: 50},
			}}); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Evaluate(ctx, now); err != nil {
			t.Fatal(err)
		}
	}
	expect := func(step, state string, factor int, want string) {
		t.Helper()
		rd := regionDump(t, s, "us-east")
		if rd.Computed != state || rd.Health.Factor != factor {
			t.Fatalf("%s: us-east computed %s at %d%%, want %s at %d%% (%+v)", step, rd.Computed, rd.Health.Factor, state, factor, rd.Health)
		}
		if got := eds(t, s, "us-east"); got != want {
			t.Fatalf("%s: EDS for us-east clients = %s\nwant %s", step, got, want)
		}
	}
	report(100, 0) // the HTTP intake works and a healthy report changes nothing
	expect("start", "healthy", 100, "0:us-east*1 1:eu-west*1 2:us-west*1")

	// 30% failures: bad (degraded level) evaluations.
	tick(70, 30)
	tick(70, 30)
	expect("two bad evaluations: hysteresis holds", "healthy", 100, "0:us-east*1 1:eu-west*1 2:us-west*1")
	tick(70, 30)
	expect("third bad evaluation: degraded, first ramp step", "degraded", 75, "0:us-east*750 0:eu-west*250 1:us-west*1")
	tick(70, 30)
	expect("ramp step 2", "degraded", 50, "0:us-east*500 0:eu-west*500 1:us-west*1")
	// 80% failures: bad-down evaluations; the ramp keeps stepping meanwhile.
	tick(20, 80)
	expect("ramp step 3", "degraded", 25, "0:us-east*250 0:eu-west*750 1:us-west*1")
	tick(20, 80)
	expect("ramp done: degraded goes behind the healthy regions", "degraded", 0, "0:eu-west*1 1:us-west*1 2:us-east*1")
	tick(20, 80)
	expect("two bad-down evaluations (the 2s window still held 30% seconds before)", "degraded", 0, "0:eu-west*1 1:us-west*1 2:us-east*1")
	tick(20, 80)
	expect("third bad-down evaluation: down", "down", 0, "0:eu-west*1 1:us-west*1")
	if rd := regionDump(t, s, "us-east"); rd.State != "down" || rd.Override != "" || rd.Health.FailureRatio < 0.5 {
		t.Fatalf("config dump: %+v", rd)
	}

	// Operator fence overrides the computed state; restore returns to the computed one.
	if rec := post(t, h, "/regions/us-east/fence", nil); rec.Code != http.StatusOK {
		t.Fatalf("fence: %d %s", rec.Code, rec.Body)
	}
	if rd := regionDump(t, s, "us-east"); rd.State != "fenced" || rd.Override != "fenced" || rd.Computed != "down" {
		t.Fatalf("after fence: %+v", rd)
	}
	if rec := post(t, h, "/regions/us-east/restore", nil); rec.Code != http.StatusOK {
		t.Fatalf("restore: %d %s", rec.Code, rec.Body)
	}
	if rd := regionDump(t, s, "us-east"); rd.State != "down" || rd.Override != "" {
		t.Fatalf("after restore: %+v", rd)
	}

	// Recovery: the window (2s) first has to forget the failures.
	tick(100, 0) // the window still holds two seconds at 80%: bad-down, not counted
	for range 5 {
		tick(100, 0)
	}
	expect("M evaluations not bad-down: degraded", "degraded", 0, "0:eu-west*1 1:us-west*1 2:us-east*1")
	for range 4 {
		tick(100, 0)
	}
	expect("M-1 good evaluations: still degraded", "degraded", 0, "0:eu-west*1 1:us-west*1 2:us-east*1")
	tick(100, 0)
	expect("M good evaluations: healthy, ramping up", "healthy", 25, "0:us-east*250 0:eu-west*750 1:us-west*1")
	tick(100, 0)
	expect("ramp up 2", "healthy", 50, "0:us-east*500 0:eu-west*500 1:us-west*1")
	tick(100, 0)
	tick(100, 0)
	expect("ramp up done", "healthy", 100, "0:us-east*1 1:eu-west*1 2:us-west*1")

	// An operator fence during a computed ramp wins at once.
	for range 3 {
		tick(0, 100)
	}
	if rd := regionDump(t, s, "us-east"); rd.Computed != "degraded" || rd.Health.Factor != 75 {
		t.Fatalf("not ramping: %+v", rd)
	}
	if rec := post(t, h, "/regions/us-east/fence", nil); rec.Code != http.StatusOK {
		t.Fatalf("fence: %d %s", rec.Code, rec.Body)
	}
	if got := eds(t, s, "us-east"); got != "0:eu-west*1 1:us-west*1" {
		t.Fatalf("fenced during ramp: EDS = %s", got)
	}
}

func TestReportIntakeRejectsBadInput(t *testing.T) {
	s := newHealthServer(t, health.Config{})
	h := s.Handler()
	for _, tc := range []struct {
		name string
		body string
		code int
		want string
	}{
		{"unknown region", `{"reporter":"a","region_outcomes":{"mars":{"success":1}}}`, 400, "region_outcomes.mars"},
		{"no reporter", `{"region_outcomes":{"us-east":{"success":1}}}`, 400, "reporter is required"},
		{"negative p99", `{"reporter":"a","region_outcomes":{"us-east":{"success":1,"p99_ms":-1}}}`, 400, "p99_ms"},
		{"unknown field", `{"reporter":"a","regions":{}}`, 400, "unknown field"},
		{"negative count", `{"reporter":"a","region_outcomes":{"us-east":{"success":-1}}}`, 400, "decoding"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/reports", strings.NewReader(tc.body)))
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
				t.Fatalf("%d %s, want %d containing %q", rec.Code, rec.Body, tc.code, tc.want)
			}
		})
	}
	if _, err := New(Options{Model: s.base, XDS: s.xdsLis, Health: health.Config{DownFailureRatio: 2}}); err == nil || !strings.Contains(err.Error(), "health.down_failure_ratio") {
		t.Fatalf("bad health config: %v", err)
	}
}

// TestRunLoopEvaluates: with Run's own ticker (fast settings), reports posted to the
// admin API over loopback move a region to degraded, visible in /config_dump.
func TestRunLoopEvaluates(t *testing.T) {
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := fleet(t, map[string]string{"us-east": "127.0.0.1:1001", "eu-west": "127.0.0.1:2001", "us-west": "127.0.0.1:3001"})
	s, err := New(Options{Model: m, XDS: xl, Admin: al, Health: health.Config{Interval: 20 * time.Millisecond, Window: 100 * time.Millisecond, RampInterval: 20 * time.Millisecond}})
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
	url := "http://" + al.Addr().String()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		body := `{"reporter":"sidecar-1","region_outcomes":{"us-east":{"success":10,"failure":90,"p99_ms":250}}}`
		resp, err := http.Post(url+"/reports", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNoContent {
			t.Fatalf("POST /reports: %s", resp.Status)
		}
		resp, err = http.Get(url + "/config_dump")
		if err != nil {
			t.Fatal(err)
		}
		var d ConfigDump
		err = json.NewDecoder(resp.Body).Decode(&d)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Regions {
			if r.Name == "us-east" && r.Computed == "down" && r.State == "down" {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("us-east never computed down from reports posted to the running server")
}
