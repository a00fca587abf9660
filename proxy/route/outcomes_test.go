package route

import "testing"

func TestOutcomesCountResetOnTakeAndSurviveSwaps(t *testing.T) {
	reg := NewRegistry()
	st := build(t, conf, reg)
	if got := reg.TakeOutcomes(); got != nil {
		t.Fatalf("nothing counted yet, TakeOutcomes = %v", got)
	}
	east, _ := st.Region("us-east")
	west, _ := st.Region("us-west")
	p := st.Service("profiles").Pools
	for range 3 {
		p[east].Outcomes.Success()
	}
	p[east].Outcomes.Failure()
	p[west].Outcomes.Failure()

	// A swap to an equal configuration keeps the counters (and their counts).
	st2 := build(t, conf, reg)
	if st2.Service("profiles").Pools[east].Outcomes != p[east].Outcomes {
		t.Fatal("a swap replaced the outcome counters")
	}
	st2.Service("profiles").Pools[east].Outcomes.Success()

	got := reg.TakeOutcomes()
	want := map[string]map[string]Outcome{"profiles": {"us-east": {Success: 4, Failure: 1}, "us-west": {Failure: 1}}}
	if len(got) != 1 || len(got["profiles"]) != 2 || got["profiles"]["us-east"] != want["profiles"]["us-east"] || got["profiles"]["us-west"] != want["profiles"]["us-west"] {
		t.Fatalf("TakeOutcomes = %v, want %v", got, want)
	}
	if got := reg.TakeOutcomes(); got != nil {
		t.Fatalf("after a take, TakeOutcomes = %v, want nil (reset)", got)
	}
	if n := testing.AllocsPerRun(100, func() { p[east].Outcomes.Success(); p[east].Outcomes.Failure() }); n != 0 {
		t.Fatalf("counting allocates: %v allocs per run", n)
	}
}
