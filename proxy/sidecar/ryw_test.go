package sidecar

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
)

// watermarkApp is an app whose replica watermark the test moves; it reports it on
// every response and on GET /watermark, and counts the reads that reached it.
type watermarkApp struct {
	wm    atomic.Value // string
	reads atomic.Int32
}

func (a *watermarkApp) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set(consistency.HeaderWatermark, a.wm.Load().(string))
	if r.URL.Path != "/watermark" {
		a.reads.Add(1)
	}
}

func sessionToken(t *testing.T, ring *consistency.KeyRing, origin string, seq uint64) string {
	t.Helper()
	now := time.Now()
	tok := consistency.Token{SessionID: consistency.NewSessionID(), Region: origin, StickyUntil: now.Add(time.Minute), Issued: now, Expires: now.Add(time.Hour)}
	tok.Vector = tok.Vector.Merge(consistency.Version{Origin: origin, Position: consistency.Position{Epoch: 1, Seq: seq}})
	s, err := ring.Sign(tok, now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// The inbound sidecar is the authority on read-your-writes: a session read its replica
// cannot serve yet waits a bounded time, then is answered 421 naming the region that
// has the data.
func TestInboundAnswers421WhenTheReplicaIsBehind(t *testing.T) {
	ring := testKeyRing(t)
	app := &watermarkApp{}
	app.wm.Store("us-east:1:3")
	backend := startBackend(t, app)
	conf := strings.Replace(policyConfig("eu-west", "127.0.0.1:1", "127.0.0.1:1", policyLines("consistency: session"), nil),
		`app: {address: "127.0.0.1:1"}`, `app: {address: "`+backend.addr+`", watermark_path: /watermark}`, 1) +
		"session: {read_wait: 100ms}\n"
	sc := startPolicySidecar(t, conf, ring)
	read := func(token string) (*http.Response, time.Duration) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+sc.inbound+"/users/x", nil)
		req.Host = "web"
		req.Header.Set(consistency.HeaderSession, token)
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp, time.Since(start)
	}

	if resp, _ := read(sessionToken(t, ring, "us-east", 3)); resp.StatusCode != 200 {
		t.Fatalf("a replica that has the session's write must serve it: %d", resp.StatusCode)
	}
	resp, took := read(sessionToken(t, ring, "us-east", 5))
	if resp.StatusCode != http.StatusMisdirectedRequest || resp.Header.Get(headerRegionHint) != "us-east" {
		t.Fatalf("replica behind: %d hint %q, want 421 naming us-east", resp.StatusCode, resp.Header.Get(headerRegionHint))
	}
	if took < 100*time.Millisecond || took > 2*time.Second {
		t.Fatalf("421 after %v, want after the 100ms wait", took)
	}
	before := app.reads.Load()
	// The replica catches up during the wait: the read is served, late but correct.
	go func() { time.Sleep(30 * time.Millisecond); app.wm.Store("us-east:1:5") }()
	if resp, _ := read(sessionToken(t, ring, "us-east", 5)); resp.StatusCode != 200 {
		t.Fatalf("replica caught up within the wait: %d", resp.StatusCode)
	}
	if app.reads.Load() != before+1 {
		t.Fatal("the app must see exactly the read that was served")
	}
	if m := scrape(t, sc.admin); !containsMetric(m, `geode_ryw_misdirected_total{service="web"}`) {
		t.Error("421s not counted")
	}

	// The only region with the session's write is down: serve what this replica has
	// rather than fail the read (session level; strong would not), and count it.
	down := strings.Replace(conf, "  - name: us-east\n", "  - name: us-east\n    state: down\n", 1)
	sc = startPolicySidecar(t, down, ring)
	if resp, _ := read(sessionToken(t, ring, "us-east", 50)); resp.StatusCode != 200 || resp.Header.Get(headerDegraded) != "read-your-writes" {
		t.Fatalf("origin down: %d %v, want the read served best-effort and flagged", resp.StatusCode, resp.Header)
	}
	if m := scrape(t, sc.admin); !containsMetric(m, `geode_ryw_unavailable_total{service="web"}`) {
		t.Error("degraded session reads not counted")
	}
}

// The calling sidecar follows a 421 to the region it names, with reason ryw.
func TestOutboundFollowsA421ToTheRegionWithTheData(t *testing.T) {
	ring := testKeyRing(t)
	behind, ahead := &watermarkApp{}, &watermarkApp{}
	behind.wm.Store("us-east:1:1")
	ahead.wm.Store("us-east:1:9")
	eastApp, westApp := startBackend(t, ahead), startBackend(t, behind)
	inbound := func(region, app string) *running {
		conf := strings.Replace(policyConfig(region, "127.0.0.1:1", "127.0.0.1:1", policyLines("consistency: session"), nil),
			`app: {address: "127.0.0.1:1"}`, `app: {address: "`+app+`"}`, 1) + "session: {read_wait: 20ms}\n"
		return startPolicySidecar(t, conf, ring)
	}
	east, west := inbound("us-east", eastApp.addr), inbound("eu-west", westApp.addr)
	// The caller in eu-west knows nothing of replicas yet: it tries its own region first.
	caller := startPolicySidecar(t, policyConfig("eu-west", east.inbound, west.inbound, policyLines("consistency: session"), nil), ring)
	got := call(t, caller, "GET", "x", sessionToken(t, ring, "us-east", 5))
	if got.status != 200 || got.region != "us-east" || got.reason != "ryw" {
		t.Fatalf("got %d from %s (%s), want 200 from us-east (ryw)", got.status, got.region, got.reason)
	}
	if behind.reads.Load() != 0 {
		t.Fatal("the replica behind served the read")
	}

	// The caller cannot use the region the 421 names (down in its view): it asks the
	// region it reached to serve what it has, which does so flagged, rather than failing.
	cut := startPolicySidecar(t, policyConfig("eu-west", east.inbound, west.inbound, policyLines("consistency: session"), map[string]string{"us-east": "down"}), ring)
	got = call(t, cut, "GET", "x", sessionToken(t, ring, "us-east", 5))
	if got.status != 200 || got.region != "eu-west" || got.degraded != "read-your-writes" {
		t.Fatalf("data region down for the caller: %d from %s (degraded %q), want 200 from eu-west, flagged", got.status, got.region, got.degraded)
	}
	if behind.reads.Load() != 1 {
		t.Fatalf("the flagged read reached the app %d times, want 1", behind.reads.Load())
	}

	// Residency outranks read-your-writes: a 421 never takes a request out of its set.
	resident := startPolicySidecar(t, policyConfig("eu-west", east.inbound, west.inbound, policyLines("consistency: session", `residency: "eu-west"`), nil), ring)
	got = call(t, resident, "GET", "x", sessionToken(t, ring, "us-east", 5))
	if got.status != 200 || got.region != "eu-west" || behind.reads.Load() != 2 {
		t.Fatalf("resident read: %d from %s, want eu-west to serve what it has (flagged)", got.status, got.region)
	}
}
