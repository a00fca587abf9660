package sidecar

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
)

// Policy tests run real sidecars on loopback in front of backends that say which
// region served. us-east is 81 ms from eu-west; alice's home is eu-west, bob's us-east.

func testKeyRing(t *testing.T) *consistency.KeyRing {
	t.Helper()
	secret := make([]byte, 32)
	rand.Read(secret)
	ring, err := consistency.NewKeyRing([]consistency.Key{{ID: "test", Secret: secret, SignFrom: time.Now().Add(-time.Hour), Expires: time.Now().Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// policyConfig is twoRegions with the web service's policy lines added and the local
// region set; states sets region states.
func policyConfig(local, east, west, policy string, states map[string]string) string {
	c := fmt.Sprintf(twoRegions, "http1", east, west) + policy
	c = strings.Replace(c, "region: us-east\n", "region: "+local+"\n", 1)
	for region, state := range states {
		c = strings.Replace(c, "  - name: "+region+"\n", "  - name: "+region+"\n    state: "+state+"\n", 1)
	}
	return c
}

// policyLines indents service policy fields under the web service.
func policyLines(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

type callResult struct {
	status         int
	region, reason string
	body           string
	token          string
	degraded       string
}

func call(t *testing.T, sc *running, method, user, token string) callResult {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+sc.outbound+"/users/"+user, nil)
	req.Host = "web"
	req.Header.Set("X-User", user)
	if token != "" {
		req.Header.Set("Geode-Session", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return callResult{status: resp.StatusCode, region: resp.Header.Get("Geode-Region"), reason: resp.Header.Get("Geode-Reason"), body: string(b), token: resp.Header.Get("Geode-Session"), degraded: resp.Header.Get("Geode-Degraded")}
}

func startPolicySidecar(t *testing.T, yaml string, ring *consistency.KeyRing) *running {
	t.Helper()
	c := parseConfig(t, yaml)
	out, in, adm := listen(t), listen(t), listen(t)
	return runSidecar(t, Options{Config: c, Outbound: out, Inbound: in, Admin: adm, KeyRing: ring})
}

func TestHomeRegionWrites(t *testing.T) {
	east, west := startBackend(t, regionHandler("us-east")), startBackend(t, regionHandler("eu-west"))
	policy := policyLines(`affinity_key: "header:X-User"`, `home_regions: "table=alice:eu-west,bob:us-east"`)
	for _, tc := range []struct {
		name           string
		extra          string
		states         map[string]string
		method, user   string
		wantStatus     int
		wantRegion     string
		wantReason     string
		wantBodyPhrase string
	}{
		{name: "a write goes to its key's home region", method: "PUT", user: "alice", wantStatus: 200, wantRegion: "eu-west", wantReason: "home-write"},
		{name: "a write whose home is local stays", method: "POST", user: "bob", wantStatus: 200, wantRegion: "us-east", wantReason: "home-write"},
		{name: "a read stays local", method: "GET", user: "alice", wantStatus: 200, wantRegion: "us-east", wantReason: "local"},
		{name: "a key outside the table has no home: local", method: "PUT", user: "carol", wantStatus: 200, wantRegion: "us-east", wantReason: "local"},
		{name: "home down, write-failover deny: 503 naming the home region and its state", states: map[string]string{"eu-west": "down"}, method: "PUT", user: "alice",
			wantStatus: 503, wantBodyPhrase: `key "alice": home region eu-west is down; writes go to the home region only`},
		{name: "home down, write-failover nearest: the nearest healthy region", extra: policyLines("write_failover: nearest"), states: map[string]string{"eu-west": "down"}, method: "PUT", user: "alice",
			wantStatus: 200, wantRegion: "us-east", wantReason: "failover"},
		{name: "a strong read goes home", extra: policyLines("consistency: strong"), method: "GET", user: "alice", wantStatus: 200, wantRegion: "eu-west", wantReason: "strong"},
		{name: "a strong write with its home fenced fails fast, whatever write-failover says", extra: policyLines("consistency: strong", "write_failover: nearest"), states: map[string]string{"eu-west": "fenced"},
			method: "PUT", user: "alice", wantStatus: 503, wantBodyPhrase: "home region eu-west is fenced"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, policy+tc.extra, tc.states), nil)
			got := call(t, sc, tc.method, tc.user, "")
			if got.status != tc.wantStatus || got.region != tc.wantRegion || got.reason != tc.wantReason || !strings.Contains(got.body, tc.wantBodyPhrase) {
				t.Fatalf("got %d from %q (reason %q) %q; want %d from %q (reason %q) containing %q",
					got.status, got.region, got.reason, got.body, tc.wantStatus, tc.wantRegion, tc.wantReason, tc.wantBodyPhrase)
			}
		})
	}
}

// A session stays on its region when the caller's nearest region changes, and is
// re-issued with a new region when its region fails.
func TestStickinessAcrossARegionChange(t *testing.T) {
	east, west := startBackend(t, regionHandler("us-east")), startBackend(t, regionHandler("eu-west"))
	ring := testKeyRing(t)
	inEast := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, "", nil), ring)
	inWest := startPolicySidecar(t, policyConfig("eu-west", east.addr, west.addr, "", nil), ring)

	first := call(t, inEast, "GET", "dave", "")
	if first.region != "us-east" || first.token == "" {
		t.Fatalf("first call: %+v", first)
	}
	tok, _, err := consistency.Decode(first.token)
	if err != nil || tok.Region != "us-east" {
		t.Fatalf("issued token %+v, %v: want sticky region us-east", tok, err)
	}

	// The user travels: their app now calls through eu-west, carrying the token.
	moved := call(t, inWest, "GET", "dave", first.token)
	if moved.region != "us-east" || moved.reason != "sticky" {
		t.Fatalf("after the move: served by %s (%s), want us-east (sticky)", moved.region, moved.reason)
	}
	// Without the token, eu-west serves locally: stickiness comes from the session only.
	if anon := call(t, inWest, "GET", "dave", ""); anon.region != "eu-west" || anon.reason != "local" {
		t.Fatalf("no token: %s (%s)", anon.region, anon.reason)
	}

	// us-east goes down: the session fails over and its token names the new region.
	c := parseConfig(t, policyConfig("eu-west", east.addr, west.addr, "", map[string]string{"us-east": "down"}))
	if err := inWest.Apply(c); err != nil {
		t.Fatal(err)
	}
	after := call(t, inWest, "GET", "dave", moved.token)
	tok, _, _ = consistency.Decode(after.token)
	if after.region != "eu-west" || tok.Region != "eu-west" {
		t.Fatalf("after us-east went down: served by %s, token region %q; want eu-west for both", after.region, tok.Region)
	}
}

func TestCrossRegionBudget(t *testing.T) {
	east, west := startBackend(t, regionHandler("us-east")), startBackend(t, regionHandler("eu-west"))
	ring := testKeyRing(t)
	homes := policyLines(`affinity_key: "header:X-User"`, `home_regions: "table=alice:eu-west"`)
	// A session made sticky to eu-west by a call through an eu-west sidecar.
	inWest := startPolicySidecar(t, policyConfig("eu-west", east.addr, west.addr, homes, nil), ring)
	sticky := call(t, inWest, "GET", "erin", "").token

	t.Run("enforce: an optional hop stays local, a required one is refused with 429", func(t *testing.T) {
		sc := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, homes+policyLines(`cross_region_budget: "ratio=0,min=0,window=10s,mode=enforce"`), nil), ring)
		if got := call(t, sc, "GET", "erin", sticky); got.status != 200 || got.region != "us-east" || got.reason != "budget-denied" {
			t.Fatalf("sticky read over budget: %+v, want served locally with reason budget-denied", got)
		}
		got := call(t, sc, "PUT", "alice", "")
		if got.status != http.StatusTooManyRequests || !strings.Contains(got.body, `cross-region budget from us-east is spent (ratio=0,min=0,window=10s,mode=enforce)`) {
			t.Fatalf("home write over budget: %d %q, want 429 naming the budget", got.status, got.body)
		}
		m := scrape(t, sc.admin)
		if !containsMetric(m, `geode_cross_region_over_budget_total{mode="enforce",service="web"}`) {
			t.Error("over-budget hops not counted")
		}
		if !strings.Contains(m, `geode_cross_region_budget_remaining{mode="enforce",service="web",src_region="us-east"} 0`) {
			t.Error("budget remaining not reported as 0")
		}
	})
	t.Run("shadow: hops go, and are counted as over budget", func(t *testing.T) {
		sc := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, homes+policyLines(`cross_region_budget: "ratio=0,min=0,window=10s,mode=shadow"`), nil), ring)
		if got := call(t, sc, "GET", "erin", sticky); got.region != "eu-west" || got.reason != "sticky" {
			t.Fatalf("sticky read in shadow mode: %+v", got)
		}
		if got := call(t, sc, "PUT", "alice", ""); got.status != 200 || got.region != "eu-west" {
			t.Fatalf("home write in shadow mode: %+v", got)
		}
		if m := scrape(t, sc.admin); !containsMetric(m, `geode_cross_region_over_budget_total{mode="shadow",service="web"}`) {
			t.Error("shadow over-budget hops not counted")
		}
	})
	t.Run("within budget: no refusal", func(t *testing.T) {
		sc := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, homes+policyLines(`cross_region_budget: "ratio=0,min=5,window=10s,mode=enforce"`), nil), ring)
		if got := call(t, sc, "PUT", "alice", ""); got.status != 200 || got.region != "eu-west" {
			t.Fatalf("home write within budget: %+v", got)
		}
	})
}

func TestResidency(t *testing.T) {
	east, west := startBackend(t, regionHandler("us-east")), startBackend(t, regionHandler("eu-west"))
	policy := policyLines(`affinity_key: "header:X-User"`, `residency: "us-east;prefix=eu-:eu-west"`)
	sc := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, policy, nil), nil)
	if got := call(t, sc, "GET", "eu-anna", ""); got.region != "eu-west" || got.reason != "residency" {
		t.Fatalf("EU key: served by %s (%s), want eu-west (residency)", got.region, got.reason)
	}
	if got := call(t, sc, "GET", "bob", ""); got.region != "us-east" {
		t.Fatalf("other key: served by %s", got.region)
	}

	// The only allowed region is down: no failover outside the set, a clear error.
	down := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, policy, map[string]string{"eu-west": "down"}), nil)
	got := call(t, down, "GET", "eu-anna", "")
	if got.status != 503 || !strings.Contains(got.body, `key "eu-anna" may only be served in eu-west (residency)`) {
		t.Fatalf("allowed region down: %d %q", got.status, got.body)
	}
	// Its breaker opening instead of its state: still never served outside the set.
	west.stop()
	for range 8 {
		if got := call(t, sc, "GET", "eu-anna", ""); got.status == 200 {
			t.Fatalf("EU key served by %s while eu-west is unreachable", got.region)
		}
	}
}

func TestForgedAndForeignTokensAreTreatedAsAbsent(t *testing.T) {
	east, west := startBackend(t, regionHandler("us-east")), startBackend(t, regionHandler("eu-west"))
	ring := testKeyRing(t)
	inWest := startPolicySidecar(t, policyConfig("eu-west", east.addr, west.addr, "", nil), ring)
	sc := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, "", nil), ring)
	good := call(t, inWest, "GET", "f", "").token // sticky to eu-west

	raw := []byte(good)
	raw[len(raw)/2] ^= 1 // one flipped bit
	forged := string(raw)
	otherRing := startPolicySidecar(t, policyConfig("eu-west", east.addr, west.addr, "", nil), testKeyRing(t))
	foreign := call(t, otherRing, "GET", "f", "").token

	for name, tok := range map[string]string{"forged": forged, "signed by another fleet": foreign, "garbage": "not-a-token", "oversized": strings.Repeat("A", 2000)} {
		got := call(t, sc, "GET", "f", tok)
		if got.region != "us-east" || got.reason != "local" {
			t.Errorf("%s token: served by %s (%s); it must count as no token", name, got.region, got.reason)
		}
		if got.token == "" || got.token == tok {
			t.Errorf("%s token: no fresh token issued", name)
		}
	}
	if got := call(t, sc, "GET", "f", good); got.region != "eu-west" {
		t.Fatalf("the genuine token was not honoured: %+v", got)
	}
	m := scrape(t, sc.admin)
	for _, cause := range []string{"forged", "malformed", "too_large", "valid"} {
		if !containsMetric(m, fmt.Sprintf(`geode_session_tokens_total{result=%q}`, cause)) {
			t.Errorf("tokens with result %s not counted", cause)
		}
	}
}

// A session sticks to where it lives, not to where its data lives: a first request that
// is a write sent to its key's home region leaves the session sticky to the caller's
// region.
func TestAHomeWriteDoesNotMakeASessionStickToTheHome(t *testing.T) {
	east, west := startBackend(t, regionHandler("us-east")), startBackend(t, regionHandler("eu-west"))
	sc := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, policyLines(`affinity_key: "header:X-User"`, `home_regions: "table=alice:eu-west"`), nil), testKeyRing(t))
	got := call(t, sc, "PUT", "alice", "")
	tok, _, err := consistency.Decode(got.token)
	if got.region != "eu-west" || err != nil || tok.Region != "us-east" {
		t.Fatalf("write served by %s; token sticky region %q (%v), want us-east", got.region, tok.Region, err)
	}
}

// A write that failed over away from its home pins the session's reads of the service
// to the region that took it, since replication has not brought it home yet.
func TestAFailedOverWritePinsTheSessionsReads(t *testing.T) {
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(consistency.HeaderVersion, "us-east:1:7")
	}))
	west := startBackend(t, regionHandler("eu-west"))
	ring := testKeyRing(t)
	policy := policyLines(`consistency: session`, `affinity_key: "header:X-User"`, `home_regions: "table=alice:eu-west"`, `write_failover: nearest`)
	inEast := startPolicySidecar(t, policyConfig("us-east", east.addr, west.addr, policy, map[string]string{"eu-west": "down"}), ring)
	w := call(t, inEast, "PUT", "alice", "")
	if w.region != "us-east" || w.reason != "failover" {
		t.Fatalf("write: %+v, want a failover to us-east", w)
	}
	tok, _, _ := consistency.Decode(w.token)
	svc := inEast.state.Load().Service("web")
	if region, ok := tok.PinnedRegion(pinName(svc, "alice"), time.Now()); !ok || region != "us-east" {
		t.Fatalf("token pins %+v, want alice's reads of web pinned to us-east", tok.Pins)
	}
	if _, ok := tok.PinnedRegion(pinName(svc, "bob"), time.Now()); ok {
		t.Fatal("a pin for alice's key pins bob's too")
	}
	// eu-west is back, but has not got the write: the session's read goes to us-east.
	inWest := startPolicySidecar(t, policyConfig("eu-west", east.addr, west.addr, policy, nil), ring)
	if r := call(t, inWest, "GET", "alice", w.token); r.region != "us-east" || r.reason != "ryw" {
		t.Fatalf("read after the failed-over write: %s (%s), want us-east (ryw)", r.region, r.reason)
	}
}
