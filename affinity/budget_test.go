package affinity

import (
	"math"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

func TestParseBudget(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    BudgetConfig
		wantErr []string
	}{
		{in: "ratio=0.1,min=5,window=10s,mode=enforce", want: BudgetConfig{Ratio: 0.1, MinPerSecond: 5, Window: 10 * time.Second, Mode: BudgetEnforce}},
		{in: "", want: DefaultBudgetConfig()},
		{in: "mode=enforce", want: BudgetConfig{Ratio: 0.1, MinPerSecond: 1, Window: 10 * time.Second, Mode: BudgetEnforce}},
		{in: " ratio = 0 , min=0 ,window=5m, ", want: BudgetConfig{Ratio: 0, MinPerSecond: 0, Window: 5 * time.Minute, Mode: BudgetShadow}},
		{in: "ratio=1,window=1s,mode=shadow", want: BudgetConfig{Ratio: 1, MinPerSecond: 1, Window: time.Second, Mode: BudgetShadow}},
		{in: "ratio=1.5", wantErr: []string{`ratio "1.5": want a number in [0,1]`}},
		{in: "ratio=-0.1", wantErr: []string{`ratio "-0.1"`}},
		{in: "ratio=NaN", wantErr: []string{`ratio "NaN"`}},
		{in: "ratio=ten", wantErr: []string{`ratio "ten"`}},
		{in: "min=-1", wantErr: []string{`min "-1": want a whole number ≥ 0`}},
		{in: "min=1.5", wantErr: []string{`min "1.5"`}},
		{in: "window=500ms", wantErr: []string{`window "500ms": want whole seconds from 1s to 5m0s`}},
		{in: "window=1500ms", wantErr: []string{`window "1500ms"`}},
		{in: "window=6m", wantErr: []string{`window "6m"`}},
		{in: "window=10", wantErr: []string{`window "10"`}},
		{in: "mode=strict", wantErr: []string{`mode "strict": want shadow or enforce`}},
		{in: "burst=3", wantErr: []string{`unknown key "burst"`}},
		{in: "ratio", wantErr: []string{`item "ratio": want <key>=<value>`}},
		{in: "ratio=", wantErr: []string{`item "ratio=": want <key>=<value>`}},
		{in: "min=1,min=2", wantErr: []string{"key min given twice"}},
		{in: "ratio=2,burst=1,mode=x", wantErr: []string{`ratio "2"`, `unknown key "burst"`, `mode "x"`}},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseBudget(tc.in)
			if tc.wantErr != nil {
				if err == nil {
					t.Fatalf("no error, want %q", tc.wantErr)
				}
				for _, w := range tc.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if err := got.Validate(); err != nil {
				t.Fatalf("Validate of a parsed config: %v", err)
			}
			if again, err := ParseBudget(got.String()); err != nil || again != got {
				t.Fatalf("String() %q does not round-trip: %+v, %v", got.String(), again, err)
			}
		})
	}
}

func TestBudgetConfigValidate(t *testing.T) {
	err := BudgetConfig{Ratio: math.NaN(), MinPerSecond: -1, Window: 1500 * time.Millisecond, Mode: 7}.Validate()
	for _, w := range []string{"ratio NaN must be in [0,1]", "min -1 must not be negative", "window 1.5s must be whole seconds", "unknown mode BudgetMode(7)"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v does not contain %q", err, w)
		}
	}
	if err := DefaultBudgetConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}

// spendN spends n times and returns how many were allowed and how many were over budget.
func spendN(b *Budget, n int) (allowed, over int) {
	for range n {
		a, o := b.Spend()
		if a {
			allowed++
		}
		if o {
			over++
		}
	}
	return allowed, over
}

func recordN(b *Budget, n int) {
	for range n {
		b.Record()
	}
}

func TestBudgetFloorPerSecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0, MinPerSecond: 5, Window: 10 * time.Second, Mode: BudgetEnforce})
		// With no traffic at all, the floor alone allows 5/s × 10s.
		if got := b.Remaining(); got != 50 {
			t.Fatalf("Remaining = %v, want 50", got)
		}
		if allowed, over := spendN(b, 60); allowed != 50 || over != 10 {
			t.Fatalf("allowed %d, over %d; want 50, 10", allowed, over)
		}
		if got := b.Remaining(); got != 0 {
			t.Fatalf("Remaining = %v after denials, want 0 (denied calls are not spent)", got)
		}
		time.Sleep(9 * time.Second)
		if a, _ := b.Spend(); a {
			t.Fatal("allowed after 9s: the window is 10s")
		}
		time.Sleep(time.Second)
		if allowed, _ := spendN(b, 60); allowed != 50 {
			t.Fatalf("after the window: allowed %d, want 50", allowed)
		}
	})
}

func TestBudgetRatio(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: 0, Window: 10 * time.Second, Mode: BudgetEnforce})
		if a, over := b.Spend(); a || !over {
			t.Fatalf("no calls, no floor: Spend = %v, %v; want refused", a, over)
		}
		recordN(b, 100)
		if allowed, over := spendN(b, 15); allowed != 10 || over != 5 {
			t.Fatalf("100 calls at 10%%: allowed %d, over %d; want 10, 5", allowed, over)
		}
		recordN(b, 10) // 110 calls: one more may spend
		if allowed, _ := spendN(b, 5); allowed != 1 {
			t.Fatalf("110 calls at 10%%: allowed %d more, want 1", allowed)
		}
	})
}

func TestBudgetRatioPlusFloor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0.2, MinPerSecond: 1, Window: 5 * time.Second, Mode: BudgetEnforce})
		recordN(b, 50) // 5 (floor) + 10 (ratio)
		if got := b.Remaining(); got != 15 {
			t.Fatalf("Remaining = %v, want 15", got)
		}
		if allowed, _ := spendN(b, 20); allowed != 15 {
			t.Fatalf("allowed %d, want 15", allowed)
		}
	})
}

func TestBudgetWindowSlides(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0.5, MinPerSecond: 0, Window: 10 * time.Second, Mode: BudgetEnforce})
		recordN(b, 20) // t=0: 20 calls, 10 may spend
		spendN(b, 4)   // t=0: 4 spent
		time.Sleep(5 * time.Second)
		recordN(b, 10) // t=5: 30 calls → 15 may spend, 4 spent
		if got := b.Remaining(); got != 11 {
			t.Fatalf("t=5s: Remaining = %v, want 11", got)
		}
		spendN(b, 6) // t=5: 10 spent
		time.Sleep(5 * time.Second)
		// t=10: the t=0 second left the window: 10 calls → 5 may spend, 6 spent.
		if got := b.Remaining(); got != -1 {
			t.Fatalf("t=10s: Remaining = %v, want -1", got)
		}
		if a, over := b.Spend(); a || !over {
			t.Fatalf("t=10s: Spend = %v, %v; want refused", a, over)
		}
		time.Sleep(5 * time.Second)
		// t=15: everything left the window.
		if got := b.Remaining(); got != 0 {
			t.Fatalf("t=15s: Remaining = %v, want 0", got)
		}
		// A long idle gap (more than a window) clears everything at once.
		recordN(b, 4)
		spendN(b, 2)
		time.Sleep(time.Hour)
		if got := b.Remaining(); got != 0 {
			t.Fatalf("after an hour: Remaining = %v, want 0", got)
		}
	})
}

func TestBudgetShadowAllowsAndReports(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0, MinPerSecond: 2, Window: time.Second, Mode: BudgetShadow})
		allowed, over := spendN(b, 5)
		if allowed != 5 || over != 3 {
			t.Fatalf("shadow: allowed %d, over %d; want 5, 3", allowed, over)
		}
		if got := b.Remaining(); got != -3 {
			t.Fatalf("shadow spending counts: Remaining = %v, want -3", got)
		}
		time.Sleep(time.Second)
		if a, o := b.Spend(); !a || o {
			t.Fatalf("next second: Spend = %v, %v; want allowed, within budget", a, o)
		}
	})
}

func TestBudgetEnforceDeniedCallsAreNotSpent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0.5, MinPerSecond: 0, Window: 10 * time.Second, Mode: BudgetEnforce})
		recordN(b, 2)
		spendN(b, 100) // 1 allowed, 99 refused and not counted
		recordN(b, 2)  // 4 calls → 2 may spend: one more
		if a, _ := b.Spend(); !a {
			t.Fatal("refused calls were counted as spent")
		}
	})
}

func TestNewBudgetClamps(t *testing.T) {
	for _, tc := range []struct {
		in   BudgetConfig
		want BudgetConfig
	}{
		{BudgetConfig{}, BudgetConfig{Window: time.Second}},
		{BudgetConfig{Ratio: 2, MinPerSecond: -3, Window: time.Hour, Mode: BudgetEnforce}, BudgetConfig{Ratio: 1, Window: MaxBudgetWindow, Mode: BudgetEnforce}},
		{BudgetConfig{Ratio: math.NaN(), Window: 1500 * time.Millisecond}, BudgetConfig{Window: 2 * time.Second}},
	} {
		if got := NewBudget(tc.in).Config(); got != tc.want {
			t.Errorf("NewBudget(%+v).Config() = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func TestBudgetConcurrentUse(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBudget(BudgetConfig{Ratio: 0.1, MinPerSecond: 0, Window: 10 * time.Second, Mode: BudgetEnforce})
		var wg sync.WaitGroup
		var mu sync.Mutex
		allowedTotal := 0
		for range 8 {
			wg.Go(func() {
				n := 0
				for range 1000 {
					b.Record()
					if a, _ := b.Spend(); a {
						n++
					}
				}
				mu.Lock()
				allowedTotal += n
				mu.Unlock()
			})
		}
		wg.Wait()
		// 8000 calls at 10%: at most 800 spent, and (interleaved) close to it.
		if allowedTotal > 800 || allowedTotal < 790 {
			t.Fatalf("allowed %d of 8000, want about 800 and never more", allowedTotal)
		}
	})
}

func TestBudgetDoesNotAllocate(t *testing.T) {
	b := NewBudget(DefaultBudgetConfig())
	if n := testing.AllocsPerRun(1000, func() {
		b.Record()
		b.Spend()
		b.Remaining()
	}); n != 0 {
		t.Fatalf("Record+Spend+Remaining allocate %v times, want 0", n)
	}
}

func BenchmarkBudget(b *testing.B) {
	bu := NewBudget(DefaultBudgetConfig())
	b.ReportAllocs()
	for b.Loop() {
		bu.Record()
		bu.Spend()
	}
}

func FuzzParseBudget(f *testing.F) {
	for _, s := range []string{"ratio=0.1,min=5,window=10s,mode=enforce", "", "ratio=1e-3", "window=1m30s", "min=1,min=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseBudget(s)
		if err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("%q parsed into an invalid config: %v", s, err)
		}
		if again, err := ParseBudget(c.String()); err != nil || again != c {
			t.Fatalf("%q: String() %q does not round-trip: %+v, %v", s, c.String(), again, err)
		}
	})
}
