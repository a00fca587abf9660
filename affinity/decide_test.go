package affinity

import (
	"slices"
	"testing"
)

// Regions of the tests: 0 us-east (local), 1 eu-west (81 ms), 2 us-west (87 ms).
const (
	usEast Region = iota
	euWest
	usWest
)

func view(states map[Region]RegionState, order ...Region) *View {
	v := &View{Local: usEast, Order: order}
	for r, s := range states {
		v.States[r] = s
	}
	return v
}

func list(c *Candidates) []Region {
	out := []Region{}
	for i := range c.Len() {
		out = append(out, c.At(i))
	}
	return out
}

func TestDecideWithHealth(t *testing.T) {
	for _, tc := range []struct {
		name       string
		v          *View
		want       []Region
		wantReason Reason
	}{
		{"all healthy: local first", view(nil, usEast, euWest, usWest), []Region{usEast, euWest, usWest}, ReasonLocal},
		{"not deployed locally: nearest", view(nil, euWest, usWest), []Region{euWest, usWest}, ReasonNearest},
		{"local down: fail over to the next nearest", view(map[Region]RegionState{usEast: Down}, usEast, euWest, usWest), []Region{euWest, usWest}, ReasonFailover},
		{"local fenced: removed", view(map[Region]RegionState{usEast: Fenced}, usEast, euWest), []Region{euWest}, ReasonFailover},
		{"draining local goes last but stays", view(map[Region]RegionState{usEast: Draining}, usEast, euWest, usWest), []Region{euWest, usWest, usEast}, ReasonFailover},
		{"degraded nearer region after healthy farther one", view(map[Region]RegionState{euWest: Degraded}, usEast, euWest, usWest), []Region{usEast, usWest, euWest}, ReasonLocal},
		{"everything down: no candidates", view(map[Region]RegionState{usEast: Down, euWest: Down}, usEast, euWest), []Region{}, ReasonNone},
		{"only degraded left: still served", view(map[Region]RegionState{usEast: Down, euWest: Degraded}, usEast, euWest), []Region{euWest}, ReasonFailover},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c Candidates
			Decide(tc.v, &Request{}, []Policy{AvoidUnhealthy{}}, &c)
			if got := list(&c); !slices.Equal(got, tc.want) {
				t.Fatalf("candidates = %v, want %v", got, tc.want)
			}
			if c.Reason() != tc.wantReason {
				t.Fatalf("reason = %v, want %v", c.Reason(), tc.wantReason)
			}
		})
	}
}

func TestFailoverReason(t *testing.T) {
	if got := FailoverReason(ReasonLocal, 0); got != ReasonLocal {
		t.Fatalf("first choice keeps its reason, got %v", got)
	}
	if got := FailoverReason(ReasonLocal, 1); got != ReasonFailover {
		t.Fatalf("a later choice is a failover, got %v", got)
	}
}

func TestReasonNamesAreStable(t *testing.T) {
	want := []string{"local", "nearest", "failover", "home-write", "ryw", "sticky", "budget-denied", "residency", "strong", "staleness"}
	var got []string
	for _, r := range Reasons() {
		got = append(got, r.String())
	}
	if !slices.Equal(got, want) {
		t.Fatalf("reasons = %v, want %v (wire names: change only with a migration)", got, want)
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	v := view(map[Region]RegionState{usEast: Down, euWest: Degraded}, usEast, euWest, usWest)
	policies := []Policy{AvoidUnhealthy{}}
	var c Candidates
	var req Request
	if n := testing.AllocsPerRun(1000, func() { Decide(v, &req, policies, &c) }); n != 0 {
		t.Fatalf("Decide allocates %v times per call, want 0", n)
	}
}

func BenchmarkDecide(b *testing.B) {
	v := view(map[Region]RegionState{usEast: Down, euWest: Degraded}, usEast, euWest, usWest)
	policies := []Policy{AvoidUnhealthy{}}
	var c Candidates
	var req Request
	b.ReportAllocs()
	for b.Loop() {
		Decide(v, &req, policies, &c)
	}
}

func TestPromoteMovesOnlyUntriedCandidates(t *testing.T) {
	var c Candidates
	c.Reset([]Region{usEast, euWest, usWest})
	if c.Promote(1, usEast) || c.Has(1, usEast) {
		t.Fatal("a candidate already tried (position 0) must not be promoted again")
	}
	if !c.Promote(1, usWest) || !slices.Equal(list(&c), []Region{usEast, usWest, euWest}) {
		t.Fatalf("after Promote(1, us-west): %v", list(&c))
	}
}
