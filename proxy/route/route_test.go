package route

import (
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/proxy/config"
)

const conf = `
region: us-east
listeners: {outbound: "127.0.0.1:1"}
regions:
  - name: ap-northeast
    rtt: {us-east: 145ms, us-west: 89ms, eu-west: 212ms}
  - name: eu-west
    rtt: {us-east: 81ms, us-west: 137ms}
  - name: us-east
    rtt: {us-west: 87ms}
  - name: us-west
    state: draining
services:
  - name: profiles
    authorities: [profiles, profiles.prod.svc]
    endpoints:
      us-east: ["127.0.0.1:1", "127.0.0.1:2"]
      us-west: ["127.0.0.1:3"]
      ap-northeast: ["127.0.0.1:4"]
  - name: billing
    endpoints:
      eu-west: ["127.0.0.1:5"]
`

func build(t testing.TB, text string, reg *Registry) *State {
	t.Helper()
	c, err := config.Parse([]byte(text))
	if err != nil {
		t.Fatal(err)
	}
	st, err := Build(c, "test", reg)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func names(st *State, rs []affinity.Region) []string {
	out := []string{}
	for _, r := range rs {
		out = append(out, st.RegionName(r))
	}
	return out
}

func TestBuildOrdersRegionsByProximityFromTheLocalRegion(t *testing.T) {
	st := build(t, conf, NewRegistry())
	if st.LocalName() != "us-east" {
		t.Fatalf("local = %s", st.LocalName())
	}
	p := st.Service("profiles")
	if got, want := names(st, p.View.Order), []string{"us-east", "us-west", "ap-northeast"}; !slices.Equal(got, want) {
		t.Fatalf("profiles proximity = %v, want %v (eu-west has no endpoints)", got, want)
	}
	if got := names(st, st.Service("billing").View.Order); !slices.Equal(got, []string{"eu-west"}) {
		t.Fatalf("billing proximity = %v", got)
	}
	if p.View.States[p.View.Order[1]] != affinity.Draining {
		t.Fatal("us-west's draining state is lost")
	}
	if len(p.Pools[st.Local].Endpoints) != 2 || p.Pools[p.View.Order[0]].Name != "us-east" {
		t.Fatal("pools not indexed by region")
	}
}

func TestServiceLookupByAuthority(t *testing.T) {
	st := build(t, conf, NewRegistry())
	for _, a := range []string{"profiles", "profiles:80", "PROFILES", "profiles.prod.svc.", "profiles.prod.svc:8080"} {
		if svc := st.Service(a); svc == nil || svc.Name != "profiles" {
			t.Errorf("Service(%q) = %v", a, svc)
		}
	}
	for _, a := range []string{"", "profile", "evil.example", "profiles.evil"} {
		if svc := st.Service(a); svc != nil {
			t.Errorf("Service(%q) = %s, want none", a, svc.Name)
		}
	}
}

func TestRuntimeObjectsSurviveASwap(t *testing.T) {
	reg := NewRegistry()
	a := build(t, conf, reg)
	b := build(t, conf, reg)
	pa, pb := a.Service("profiles").Pools[a.Local], b.Service("profiles").Pools[b.Local]
	if pa.Breaker != pb.Breaker || pa.Endpoints[0] != pb.Endpoints[0] || a.Service("profiles").RetryBudget != b.Service("profiles").RetryBudget {
		t.Fatal("a swap to an identical config replaced runtime objects: breakers and load would reset")
	}
	if a.Service("profiles").Transport != b.Service("profiles").Transport {
		t.Fatal("a swap replaced the transport: pooled connections would be lost")
	}
	// Changing breaker settings gives a fresh breaker; removing an endpoint forgets it.
	c := build(t, conf+"    breaker: {consecutive_failures: 9}\n", reg)
	if c.Service("billing").Pools[c.Service("billing").View.Order[0]].Breaker == b.Service("billing").Pools[b.Service("billing").View.Order[0]].Breaker {
		t.Fatal("new breaker settings were not applied")
	}
	if len(reg.endpoints) != 5 {
		t.Fatalf("registry holds %d endpoints, want 5", len(reg.endpoints))
	}
}

func TestPickPrefersLessLoadedAndSkipsEjected(t *testing.T) {
	st := build(t, conf, NewRegistry())
	pool := st.Service("profiles").Pools[st.Local]
	busy, idle := pool.Endpoints[0], pool.Endpoints[1]
	for range 5 {
		busy.Start()
	}
	defer func() {
		for range 5 {
			busy.Done()
		}
	}()
	counts := map[*Endpoint]int{}
	for range 1000 {
		counts[pool.Pick()]++
	}
	// P2C picks the busy one only when both draws land on it: about a quarter.
	if counts[idle] < 650 {
		t.Fatalf("idle endpoint picked %d/1000 times, want most", counts[idle])
	}
	idle.Eject(time.Minute)
	for range 100 {
		if pool.Pick() != busy {
			t.Fatal("picked an ejected endpoint while another was available")
		}
	}
	busy.Eject(2 * time.Minute)
	if pool.Pick() != idle {
		t.Fatal("with all ejected, Pick must return the one back soonest")
	}
}

func TestRetryBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewRegistry().retryBudget("s", 0.2, 1, liveSet{})
		for range 100 {
			b.Record()
		}
		// 10 s window: 1/s floor gives 10, ratio 0.2 of 100 requests gives 20.
		n := 0
		for spend(b) {
			n++
		}
		if n != 30 {
			t.Fatalf("%d retries allowed, want 30", n)
		}
		time.Sleep(11 * time.Second) // the window has passed: only the floor is left
		n = 0
		for spend(b) {
			n++
		}
		if n != 10 {
			t.Fatalf("%d retries allowed after the window, want 10", n)
		}
	})
}

// The routing decision on a built state: authority lookup plus the ordered policies.
func TestDecisionOnAStateDoesNotAllocate(t *testing.T) {
	st := build(t, conf, NewRegistry())
	policies := affinity.Chain()
	var c affinity.Candidates
	req := affinity.Request{}
	if n := testing.AllocsPerRun(1000, func() {
		svc := st.Service("profiles:8080")
		affinity.Decide(&svc.View, &req, policies, &c)
	}); n != 0 {
		t.Fatalf("lookup + decide allocates %v times, want 0", n)
	}
	if c.Len() != 3 || st.RegionName(c.At(2)) != "us-west" || c.Reason() != affinity.ReasonLocal {
		t.Fatalf("decision: len %d reason %s", c.Len(), c.Reason())
	}
}

func BenchmarkDecision(b *testing.B) {
	st := build(b, conf, NewRegistry())
	policies := affinity.Chain()
	var c affinity.Candidates
	req := affinity.Request{}
	b.ReportAllocs()
	for b.Loop() {
		svc := st.Service("profiles:8080")
		affinity.Decide(&svc.View, &req, policies, &c)
	}
}

func spend(b *affinity.Budget) bool {
	allowed, _ := b.Spend()
	return allowed
}
