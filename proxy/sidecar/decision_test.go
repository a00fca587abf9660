package sidecar

import (
	"net/http"
	"testing"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
)

// decisionFixture is a sidecar with every policy on and a keyed write request.
func decisionFixture(t testing.TB) (*Sidecar, *http.Request, *sessionState) {
	t.Helper()
	conf := policyConfig("us-east", "127.0.0.1:1", "127.0.0.1:2", policyLines(
		`consistency: session`,
		`affinity_key: "header:X-User"`,
		`home_regions: "table=alice:eu-west;hash=us-east,eu-west"`,
		`write_failover: nearest`,
		`residency: "us-east,eu-west"`,
		`cross_region_budget: "ratio=0.5,min=1000,window=10s,mode=enforce"`,
	), nil)
	s, err := New(Options{Config: parseConfig(t.(*testing.T), conf)})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest(http.MethodGet, "http://web/users/alice", nil)
	r.Header.Set("X-User", "alice")
	now := time.Now()
	tok := consistency.Token{Region: "eu-west", StickyUntil: now.Add(time.Hour)}
	tok.Vector = tok.Vector.Merge(consistency.Version{Origin: "eu-west", Position: consistency.Position{Epoch: 1, Seq: 3}})
	return s, r, &sessionState{tok: tok, valid: true}
}

// Steps 3 and 5 of the request path — classify (op, level, affinity key, home region,
// residency, session sets) and decide (every policy, budget included) — do not allocate.
func TestDecisionPathWithAllPoliciesDoesNotAllocate(t *testing.T) {
	s, r, sess := decisionFixture(t)
	st := s.state.Load()
	now := time.Now()
	var key string
	if n := testing.AllocsPerRun(1000, func() {
		svc := st.Service("web")
		d := s.decisions.scratch()
		d.req, key = s.classify(r, st, svc, sess, now, true)
		affinity.Decide(&svc.View, &d.req, s.policies, &d.cands)
		s.decisions.release(d)
	}); n != 0 {
		t.Fatalf("classify + decide allocate %v times per request, want 0", n)
	}
	if key != "alice" {
		t.Fatalf("key = %q", key)
	}
}

func BenchmarkDecisionPathAllPolicies(b *testing.B) {
	s, r, sess := decisionFixture(&testing.T{})
	st := s.state.Load()
	now := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		svc := st.Service("web")
		d := s.decisions.scratch()
		d.req, _ = s.classify(r, st, svc, sess, now, true)
		affinity.Decide(&svc.View, &d.req, s.policies, &d.cands)
		s.decisions.release(d)
	}
}
