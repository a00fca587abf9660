package health

import (
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geodemesh/geode/affinity"
)

func TestConfigValidation(t *testing.T) {
	if err := (Config{}).WithDefaults().Validate(); err != nil {
		t.Fatalf("defaults rejected: %v", err)
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		field string
	}{
		{"negative interval", Config{Interval: -time.Second}, "health.interval"},
		{"window shorter than interval", Config{Interval: 5 * time.Second, Window: 2 * time.Second}, "health.window"},
		{"min requests", Config{MinRequests: -1}, "health.min_requests"},
		{"degraded ratio above 1", Config{DegradedFailureRatio: 1.5}, "health.degraded_failure_ratio"},
		{"down ratio below degraded", Config{DegradedFailureRatio: 0.3, DownFailureRatio: 0.2}, "health.down_failure_ratio"},
		{"latency bound", Config{LatencyBound: -time.Millisecond}, "health.latency_bound"},
		{"bad evaluations", Config{BadEvaluations: -2}, "health.bad_evaluations"},
		{"good evaluations", Config{GoodEvaluations: -1}, "health.good_evaluations"},
		{"probe shorter than window", Config{Window: 20 * time.Second, ProbeAfter: 5 * time.Second}, "health.probe_after"},
		{"ramp step", Config{RampStepPercent: 101}, "health.ramp_step_percent"},
		{"ramp interval", Config{RampInterval: -time.Second}, "health.ramp_interval"},
		{"max reporters", Config{MaxReporters: -1}, "health.max_reporters"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, []string{"a"})
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("err = %v, want one naming %s", err, tc.field)
			}
		})
	}
}

// step is one evaluation: the outcome reported (by one reporter) just before it, and the
// computed state and factor expected after it.
type step struct {
	succ, fail uint64
	p99        time.Duration
	want       affinity.RegionState
	factor     int
}

func TestTransitions(t *testing.T) {
	cfg := Config{Window: 3 * time.Second, BadEvaluations: 2, GoodEvaluations: 3, RampStepPercent: 50, RampInterval: time.Second, LatencyBound: 200 * time.Millisecond}
	H, D, X := affinity.Healthy, affinity.Degraded, affinity.Down
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"no data is not unhealthy", []step{{0, 0, 0, H, 100}, {5, 5, 0, H, 100}, {0, 0, 0, H, 100}, {0, 0, 0, H, 100}}},
		{"below min requests: no judgment", []step{{1, 9, 0, H, 100}, {1, 8, 0, H, 100}}},
		{"healthy to degraded after N bad evaluations, ramping down", []step{
			{80, 20, 0, H, 100}, {80, 20, 0, D, 50}, {80, 20, 0, D, 0}, {80, 20, 0, D, 0}}},
		{"a good evaluation resets the bad streak", []step{
			{80, 20, 0, H, 100}, {1000, 0, 0, H, 100}, {80, 20, 0, H, 100}}},
		{"latency above the bound is bad", []step{
			{100, 0, 300 * time.Millisecond, H, 100}, {100, 0, 300 * time.Millisecond, D, 50}}},
		{"degraded to down above 50%, then recovery one state at a time", []step{
			{0, 100, 0, H, 100}, {0, 100, 0, D, 50}, {0, 100, 0, D, 0}, {0, 100, 0, X, 0},
			// Good reports: the window (3s) still holds failures for a while.
			{1000, 0, 0, X, 0}, {1000, 0, 0, X, 0}, {1000, 0, 0, D, 0},
			{1000, 0, 0, D, 0}, {1000, 0, 0, D, 0}, {1000, 0, 0, H, 50}, {1000, 0, 0, H, 100}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := New(cfg, []string{"us-east"})
			if err != nil {
				t.Fatal(err)
			}
			now := time.Unix(1000, 0)
			for i, s := range tc.steps {
				now = now.Add(time.Second)
				if s.succ+s.fail > 0 {
					if err := tr.Record(now, "sidecar-1", "us-east", Outcome{Success: s.succ, Failure: s.fail, P99: s.p99}); err != nil {
						t.Fatal(err)
					}
				}
				tr.Evaluate(now)
				st, _ := tr.Status("us-east")
				if st.Computed != s.want || st.Factor != s.factor {
					t.Fatalf("after step %d: %s at %d%% (verdict %s, ratio %.2f), want %s at %d%%", i, st.Computed, st.Factor, st.Verdict, st.FailureRatio, s.want, s.factor)
				}
			}
		})
	}
}

func TestRecordErrors(t *testing.T) {
	tr, err := New(Config{MaxReporters: 1}, []string{"us-east"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(0, 0)
	if err := tr.Record(now, "", "us-east", Outcome{}); err == nil {
		t.Error("empty reporter accepted")
	}
	if err := tr.Record(now, "a", "mars", Outcome{}); err == nil {
		t.Error("unknown region accepted")
	}
	if err := tr.Record(now, "a", "us-east", Outcome{Success: 1}); err != nil {
		t.Fatal(err)
	}
	if err := tr.Record(now, "b", "us-east", Outcome{Success: 1}); err == nil {
		t.Error("reporter beyond MaxReporters accepted")
	}
}

func TestEffective(t *testing.T) {
	fence := affinity.Fenced
	if got := Effective(&fence, affinity.Healthy, affinity.Down); got != affinity.Fenced {
		t.Errorf("override: %s", got)
	}
	if got := Effective(nil, affinity.Healthy, affinity.Degraded); got != affinity.Degraded {
		t.Errorf("restore returns to computed: %s", got)
	}
	if got := Effective(nil, affinity.Draining, affinity.Healthy); got != affinity.Draining {
		t.Errorf("configured worse than computed: %s", got)
	}
}

// A region whose failure ratio oscillates around the degraded threshold, with real
// (fake, synctest) time: a report and an evaluation every second for ten minutes.
func TestOscillatingRegionDoesNotFlap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{}, []string{"us-east"})
		if err != nil {
			t.Fatal(err)
		}
		transitions := 0
		last := affinity.Healthy
		for i := range 600 {
			fail := uint64(8) // 8% and 12% alternately: window average 10%, not above
			if i%2 == 1 {
				fail = 12
			}
			if err := tr.Record(time.Now(), "sidecar-1", "us-east", Outcome{Success: 100 - fail, Failure: fail}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			tr.Evaluate(time.Now())
			st, _ := tr.Status("us-east")
			if st.Computed != last {
				transitions++
				last = st.Computed
			}
		}
		if transitions != 0 {
			t.Fatalf("%d transitions for a region oscillating around the threshold", transitions)
		}
	})
}

// Bursts of failures shorter than the hysteresis do not move a region either way, and a
// degraded region seeing bursts of good seconds does not recover.
func TestBurstsShorterThanHysteresis(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{Window: time.Second, ProbeAfter: time.Minute}, []string{"r"})
		if err != nil {
			t.Fatal(err)
		}
		run := func(pattern string, want affinity.RegionState) {
			t.Helper()
			for i, c := range strings.Repeat(pattern, 20) {
				o := Outcome{Success: 100}
				if c == 'x' {
					o = Outcome{Success: 30, Failure: 70}
				}
				if err := tr.Record(time.Now(), "s", "r", o); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Second)
				tr.Evaluate(time.Now())
				if st, _ := tr.Status("r"); st.Computed != want {
					t.Fatalf("pattern %q step %d: %s, want %s", pattern, i, st.Computed, want)
				}
			}
		}
		run("xx.", affinity.Healthy) // 2 bad < N=3
		for range 3 {
			tr.Record(time.Now(), "s", "r", Outcome{Success: 80, Failure: 20})
			time.Sleep(time.Second)
			tr.Evaluate(time.Now())
		}
		if st, _ := tr.Status("r"); st.Computed != affinity.Degraded {
			t.Fatalf("after 3 bad: %s", st.Computed)
		}
		run("....x", affinity.Degraded) // 4 good < M=5
	})
}

// A region with no traffic (it was failed away from) probes back: after ProbeAfter it
// moves one state better and the ramp lets traffic in again.
func TestNoDataProbesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tr, err := New(Config{}, []string{"r"})
		if err != nil {
			t.Fatal(err)
		}
		for range 6 {
			tr.Record(time.Now(), "s", "r", Outcome{Failure: 100})
			time.Sleep(time.Second)
			tr.Evaluate(time.Now())
		}
		if st, _ := tr.Status("r"); st.Computed != affinity.Down {
			t.Fatalf("after 6 bad-down: %s", st.Computed)
		}
		var seen []string
		for range 90 {
			time.Sleep(time.Second)
			if ch := tr.Evaluate(time.Now()); len(ch) > 0 {
				st, _ := tr.Status("r")
				seen = append(seen, st.Computed.String())
			}
		}
		st, _ := tr.Status("r")
		if st.Computed != affinity.Healthy || st.Factor != 100 {
			t.Fatalf("after 90s without data: %s at %d%% (changes %v)", st.Computed, st.Factor, seen)
		}
	})
}
