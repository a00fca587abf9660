package affinity

import (
	"slices"
	"testing"

	"github.com/geodemesh/geode/consistency"
)

// fakeBudget is a Spender whose answers the test sets.
type fakeBudget struct {
	allow, over     bool
	records, spends int
}

func (b *fakeBudget) Record() { b.records++ }
func (b *fakeBudget) Spend() (bool, bool) {
	b.spends++
	return b.allow, b.over
}

func set(rs ...Region) RegionSet {
	var s RegionSet
	for _, r := range rs {
		s.Add(r)
	}
	return s
}

func TestPolicyChain(t *testing.T) {
	type tc struct {
		name       string
		states     map[Region]RegionState
		failover   bool
		budget     *fakeBudget
		req        Request
		want       []Region
		wantReason Reason
		required   bool
	}
	write := func(home Region) Request {
		return Request{Write: true, Home: home, HasHome: true, Level: consistency.Session}
	}
	session := Request{Level: consistency.Session, NeedsSession: true}
	for _, c := range []tc{
		// Residency.
		{name: "residency keeps only allowed regions", req: Request{Restricted: true, Allowed: set(euWest)}, want: []Region{euWest}, wantReason: ReasonResidency, required: true},
		{name: "residency that allows the local region changes nothing", req: Request{Restricted: true, Allowed: set(usEast, euWest)}, want: []Region{usEast, euWest}, wantReason: ReasonLocal},
		{name: "residency with no allowed region healthy refuses", states: map[Region]RegionState{euWest: Down}, req: Request{Restricted: true, Allowed: set(euWest)}, want: []Region{}, wantReason: ReasonResidency},
		{name: "residency wins over a home region outside the allowed set", req: Request{Write: true, Home: usWest, HasHome: true, Restricted: true, Allowed: set(usEast, euWest)}, want: []Region{}, wantReason: ReasonHomeWrite},

		// Home-region writes and strong reads.
		{name: "a write goes to its key's home region only", req: write(euWest), want: []Region{euWest}, wantReason: ReasonHomeWrite, required: true},
		{name: "a write whose home is local stays local", req: write(usEast), want: []Region{usEast}, wantReason: ReasonHomeWrite, required: true},
		{name: "write-failover nearest keeps the others behind the home", failover: true, req: write(euWest), want: []Region{euWest, usEast, usWest}, wantReason: ReasonHomeWrite, required: true},
		{name: "home down, write-failover deny: refused", states: map[Region]RegionState{euWest: Down}, req: write(euWest), want: []Region{}, wantReason: ReasonHomeWrite},
		{name: "home down, write-failover nearest: nearest healthy", failover: true, states: map[Region]RegionState{euWest: Down}, req: write(euWest), want: []Region{usEast, usWest}, wantReason: ReasonFailover, required: true},
		{name: "home fenced, strong write: refused even with write-failover", failover: true, states: map[Region]RegionState{euWest: Fenced}, req: Request{Write: true, Home: euWest, HasHome: true, Level: consistency.Strong}, want: []Region{}, wantReason: ReasonHomeWrite},
		{name: "a strong read goes home", req: Request{Home: usWest, HasHome: true, Level: consistency.Strong}, want: []Region{usWest}, wantReason: ReasonStrong, required: true},
		{name: "a strong read with its home down is refused", states: map[Region]RegionState{usWest: Down}, req: Request{Home: usWest, HasHome: true, Level: consistency.Strong}, want: []Region{}, wantReason: ReasonStrong},
		{name: "an eventual read ignores the home region", req: Request{Home: usWest, HasHome: true, Level: consistency.Eventual}, want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},

		// Read-your-writes.
		{name: "session read goes to the nearest region known to satisfy the token", req: with(session, func(r *Request) { r.Satisfying = set(usWest) }), want: []Region{usWest, usEast, euWest}, wantReason: ReasonRYW, required: true},
		{name: "session read stays local when local satisfies", req: with(session, func(r *Request) { r.Satisfying = set(usEast, usWest) }), want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},
		{name: "nothing known to satisfy: the region that took the write", req: with(session, func(r *Request) { r.Written = set(euWest) }), want: []Region{euWest, usEast, usWest}, wantReason: ReasonRYW, required: true},
		{name: "nothing known at all: local, and the inbound sidecar decides", req: session, want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},
		{name: "an eventual read ignores the token", req: Request{Level: consistency.Eventual, NeedsSession: true, Satisfying: set(usWest)}, want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},

		// Bounded staleness.
		{name: "bounded staleness: local is fresh enough", req: Request{Level: consistency.BoundedStaleness, Fresh: set(usEast, euWest)}, want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},
		{name: "bounded staleness: nearest fresh region", req: Request{Level: consistency.BoundedStaleness, Fresh: set(usWest)}, want: []Region{usWest, usEast, euWest}, wantReason: ReasonStaleness, required: true},
		{name: "bounded staleness: nothing fresh, the home region", req: Request{Level: consistency.BoundedStaleness, Home: euWest, HasHome: true}, want: []Region{euWest, usEast, usWest}, wantReason: ReasonStaleness, required: true},

		// Stickiness.
		{name: "a session stays on its healthy sticky region", req: Request{Sticky: usWest, HasSticky: true}, want: []Region{usWest, usEast, euWest}, wantReason: ReasonSticky},
		{name: "a degraded sticky region is not kept", states: map[Region]RegionState{usWest: Degraded}, req: Request{Sticky: usWest, HasSticky: true}, want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},
		{name: "a down sticky region is dropped", states: map[Region]RegionState{usWest: Down}, req: Request{Sticky: usWest, HasSticky: true}, want: []Region{usEast, euWest}, wantReason: ReasonLocal},
		{name: "a home write beats stickiness", req: with(write(euWest), func(r *Request) { r.Sticky, r.HasSticky = usWest, true }), want: []Region{euWest}, wantReason: ReasonHomeWrite, required: true},
		{name: "stickiness yields to a region that has the session's data", req: with(session, func(r *Request) { r.Satisfying = set(usEast); r.Sticky, r.HasSticky = usWest, true }), want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},

		// Health.
		{name: "local down: fail over, and leaving is required", states: map[Region]RegionState{usEast: Down}, req: Request{}, want: []Region{euWest, usWest}, wantReason: ReasonFailover, required: true},

		// Budget.
		{name: "within budget: a sticky hop goes", budget: &fakeBudget{allow: true}, req: Request{Sticky: usWest, HasSticky: true}, want: []Region{usWest, usEast, euWest}, wantReason: ReasonSticky},
		{name: "budget spent: an optional hop stays local", budget: &fakeBudget{over: true}, req: Request{Sticky: usWest, HasSticky: true}, want: []Region{usEast, usWest, euWest}, wantReason: ReasonBudgetDenied},
		{name: "budget spent: a required hop is refused", budget: &fakeBudget{over: true}, req: write(euWest), want: []Region{}, wantReason: ReasonBudgetDenied},
		{name: "budget spent: a failover hop is refused", budget: &fakeBudget{over: true}, states: map[Region]RegionState{usEast: Down}, req: Request{}, want: []Region{}, wantReason: ReasonBudgetDenied},
		{name: "shadow mode: the hop goes, marked over budget", budget: &fakeBudget{allow: true, over: true}, req: write(euWest), want: []Region{euWest}, wantReason: ReasonHomeWrite, required: true},
		{name: "a local call spends nothing", budget: &fakeBudget{}, req: Request{}, want: []Region{usEast, euWest, usWest}, wantReason: ReasonLocal},
	} {
		t.Run(c.name, func(t *testing.T) {
			v := view(c.states, usEast, euWest, usWest)
			v.WriteFailover = c.failover
			if c.budget != nil {
				v.Budget = c.budget
			}
			var got Candidates
			Decide(v, &c.req, Chain(), &got)
			if l := list(&got); !slices.Equal(l, c.want) {
				t.Fatalf("candidates = %v, want %v", l, c.want)
			}
			if got.Reason() != c.wantReason {
				t.Fatalf("reason = %v, want %v", got.Reason(), c.wantReason)
			}
			if got.Len() > 0 && got.Required() != c.required {
				t.Fatalf("required = %v, want %v", got.Required(), c.required)
			}
			if c.budget != nil {
				if c.budget.records != 1 {
					t.Fatalf("budget recorded %d calls, want 1", c.budget.records)
				}
				if c.budget.over && got.Len() > 0 && got.At(0) != usEast && !got.OverBudget() {
					t.Fatal("an over-budget hop is not marked")
				}
			}
		})
	}
}

func with(r Request, edit func(*Request)) Request {
	edit(&r)
	return r
}

// The whole chain, with a budget, decides without allocating and in well under a
// microsecond (see BenchmarkDecideAllPolicies).
func TestDecideWithAllPoliciesDoesNotAllocate(t *testing.T) {
	v := view(map[Region]RegionState{usWest: Degraded}, usEast, euWest, usWest)
	v.Budget = &fakeBudget{allow: true}
	req := Request{Level: consistency.Session, NeedsSession: true, Satisfying: set(euWest), Sticky: usWest, HasSticky: true, Restricted: true, Allowed: set(usEast, euWest, usWest)}
	policies := Chain()
	var c Candidates
	if n := testing.AllocsPerRun(1000, func() { Decide(v, &req, policies, &c) }); n != 0 {
		t.Fatalf("Decide with every policy allocates %v times, want 0", n)
	}
}

func BenchmarkDecideAllPolicies(b *testing.B) {
	v := view(map[Region]RegionState{usWest: Degraded}, usEast, euWest, usWest)
	v.Budget = &fakeBudget{allow: true}
	req := Request{Level: consistency.Session, NeedsSession: true, Satisfying: set(euWest), Sticky: usWest, HasSticky: true, Restricted: true, Allowed: set(usEast, euWest, usWest)}
	policies := Chain()
	var c Candidates
	b.ReportAllocs()
	for b.Loop() {
		Decide(v, &req, policies, &c)
	}
}

// A region in a capped ramp takes the requests whose roll is inside its share, on the
// way out (degraded) and back (healthy); the others go where they would if it were not
// preferred. A sticky session follows its roll too. Down regions never take any.
func TestRampingRegionTakesItsShare(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state RegionState
		ramp  uint8
		want  int // requests out of rolls 0..99 that go to us-east first
	}{
		{"healthy, not ramping", Healthy, 0, 100},
		{"degraded, settled", Degraded, 0, 0},
		{"degraded, leaving at 75%", Degraded, 75, 75},
		{"degraded, leaving at 25%", Degraded, 25, 25},
		{"healthy, returning at 25%", Healthy, 25, 25},
		{"down while ramping: none", Down, 50, 0},
		{"draining (an operator's) ignores a ramp", Draining, 50, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := &View{Local: usEast, Order: []Region{usEast, euWest, usWest}}
			v.States[usEast] = tc.state
			v.Ramp[usEast] = tc.ramp
			local, sticky := 0, 0
			for roll := range uint8(100) {
				var c Candidates
				Decide(v, &Request{Roll: roll}, Chain(), &c)
				if c.Len() > 0 && c.At(0) == usEast {
					local++
				}
				// A session sticky to eu-west stays there whatever us-east does.
				Decide(v, &Request{Roll: roll, Sticky: euWest, HasSticky: true}, Chain(), &c)
				if c.At(0) == euWest {
					sticky++
				}
			}
			if local != tc.want {
				t.Fatalf("%d of 100 rolls go to us-east first, want %d", local, tc.want)
			}
			if sticky != 100 {
				t.Fatalf("%d of 100 sessions sticky to eu-west stayed there", sticky)
			}
		})
	}
	// A session sticky to a region leaving in a ramp keeps it only inside the share.
	v := &View{Local: euWest, Order: []Region{euWest, usEast, usWest}}
	v.States[usEast], v.Ramp[usEast] = Degraded, 40
	kept := 0
	for roll := range uint8(100) {
		var c Candidates
		Decide(v, &Request{Roll: roll, Sticky: usEast, HasSticky: true}, Chain(), &c)
		if c.At(0) == usEast {
			kept++
		}
	}
	if kept != 40 {
		t.Fatalf("%d of 100 sessions sticky to us-east (ramping out at 40%%) kept it, want 40", kept)
	}
}
