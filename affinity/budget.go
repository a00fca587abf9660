package affinity

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// BudgetMode says whether a Budget refuses calls over budget or only reports them.
type BudgetMode uint8

// Budget modes.
const (
	// BudgetShadow allows every call and reports the ones that would have been refused:
	// the way to roll a budget out and watch it before it bites.
	BudgetShadow BudgetMode = iota
	// BudgetEnforce refuses calls over budget.
	BudgetEnforce
)

func (m BudgetMode) String() string {
	switch m {
	case BudgetShadow:
		return "shadow"
	case BudgetEnforce:
		return "enforce"
	}
	return fmt.Sprintf("BudgetMode(%d)", uint8(m))
}

// Limits of a budget window: it is counted in one-second buckets.
const (
	MinBudgetWindow = time.Second
	MaxBudgetWindow = 5 * time.Minute
)

// BudgetConfig is a budget's shape: a ratio of calls plus a floor per second over a
// sliding window (Linkerd's retry-budget shape). Within any window, a Budget lets
// MinPerSecond × window-seconds + Ratio × calls-in-window calls spend.
type BudgetConfig struct {
	// Ratio is the share of all calls that may spend, in [0,1].
	Ratio float64
	// MinPerSecond is how many calls per second may spend whatever the traffic, ≥ 0.
	MinPerSecond int
	// Window is how far back calls and spending count: whole seconds in
	// [MinBudgetWindow, MaxBudgetWindow].
	Window time.Duration
	// Mode says whether calls over budget are refused or only reported.
	Mode BudgetMode
}

// DefaultBudgetConfig returns the budget used for keys the geode.io/cross-region-budget
// annotation leaves out: ratio=0.1,min=1,window=10s,mode=shadow.
func DefaultBudgetConfig() BudgetConfig {
	return BudgetConfig{Ratio: 0.1, MinPerSecond: 1, Window: 10 * time.Second, Mode: BudgetShadow}
}

// Validate reports every field out of range, joined.
func (c BudgetConfig) Validate() error {
	var errs []error
	if !(c.Ratio >= 0 && c.Ratio <= 1) { // also catches NaN
		errs = append(errs, fmt.Errorf("ratio %v must be in [0,1]", c.Ratio))
	}
	if c.MinPerSecond < 0 {
		errs = append(errs, fmt.Errorf("min %d must not be negative", c.MinPerSecond))
	}
	if c.Window < MinBudgetWindow || c.Window > MaxBudgetWindow || c.Window%time.Second != 0 {
		errs = append(errs, fmt.Errorf("window %v must be whole seconds in [%v,%v]", c.Window, MinBudgetWindow, MaxBudgetWindow))
	}
	if c.Mode != BudgetShadow && c.Mode != BudgetEnforce {
		errs = append(errs, fmt.Errorf("unknown mode %v", c.Mode))
	}
	return errors.Join(errs...)
}

// String formats c as ParseBudget reads it.
func (c BudgetConfig) String() string {
	return "ratio=" + strconv.FormatFloat(c.Ratio, 'g', -1, 64) +
		",min=" + strconv.Itoa(c.MinPerSecond) +
		",window=" + c.Window.String() +
		",mode=" + c.Mode.String()
}

// ParseBudget parses the geode.io/cross-region-budget annotation: a ","-separated list
// of key=value pairs, each at most once, any of them left out taking its default from
// DefaultBudgetConfig:
//
//	ratio=0.1     share of all calls that may leave the region, in [0,1]
//	min=1         calls per second that may leave the region whatever the traffic, ≥ 0
//	window=10s    sliding window, a Go duration of whole seconds from 1s to 5m
//	mode=shadow   shadow (report only) or enforce
//
// for example "ratio=0.1,min=5,window=10s,mode=enforce". Unknown keys are errors.
func ParseBudget(s string) (BudgetConfig, error) {
	c := DefaultBudgetConfig()
	seen := map[string]bool{}
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		k, v, ok := strings.Cut(item, "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || v == "" {
			errs = append(errs, fmt.Errorf("item %q: want <key>=<value>", item))
			continue
		}
		if seen[k] {
			errs = append(errs, fmt.Errorf("key %s given twice", k))
			continue
		}
		seen[k] = true
		switch k {
		case "ratio":
			r, err := strconv.ParseFloat(v, 64)
			if err != nil || !(r >= 0 && r <= 1) {
				errs = append(errs, fmt.Errorf("ratio %q: want a number in [0,1]", v))
			}
			c.Ratio = r
		case "min":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				errs = append(errs, fmt.Errorf("min %q: want a whole number ≥ 0", v))
			}
			c.MinPerSecond = n
		case "window":
			d, err := time.ParseDuration(v)
			if err != nil || d < MinBudgetWindow || d > MaxBudgetWindow || d%time.Second != 0 {
				errs = append(errs, fmt.Errorf("window %q: want whole seconds from %v to %v", v, MinBudgetWindow, MaxBudgetWindow))
			}
			c.Window = d
		case "mode":
			switch v {
			case "shadow":
				c.Mode = BudgetShadow
			case "enforce":
				c.Mode = BudgetEnforce
			default:
				errs = append(errs, fmt.Errorf("mode %q: want shadow or enforce", v))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown key %q, want ratio, min, window or mode", k))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return BudgetConfig{}, err
	}
	return c, nil
}

// Budget limits how many calls may spend (leave the region, be retried) relative to all
// calls, over a sliding window of one-second buckets. It backs both the cross-region
// budget and the sidecar's retry budget.
//
// The window moves in whole seconds, counted from NewBudget: a call counts from the start
// of its second until Window has passed since then, so a 10s window holds the current
// second and the 9 before it.
//
// A Budget is safe for concurrent use; Record, Spend and Remaining take a short mutex
// and do not allocate. Time is read with time.Now (its monotonic clock).
type Budget struct {
	cfg     BudgetConfig
	floor   float64 // MinPerSecond × window seconds
	start   time.Time
	mu      sync.Mutex
	buckets []budgetBucket // ring: second s lives in buckets[s % len]
	head    int64          // the newest second the ring holds, counted from start
	calls   int64          // sum over the ring
	spent   int64          // sum over the ring
}

type budgetBucket struct{ calls, spent int64 }

// NewBudget returns a budget of the given shape, empty. The config should be valid (see
// Validate); a window outside [MinBudgetWindow, MaxBudgetWindow] is clamped to it and
// rounded up to whole seconds, a negative floor counts as 0 and the ratio is clamped to
// [0,1].
func NewBudget(cfg BudgetConfig) *Budget {
	cfg.Window = min(max(cfg.Window, MinBudgetWindow), MaxBudgetWindow)
	if rem := cfg.Window % time.Second; rem != 0 {
		cfg.Window += time.Second - rem
	}
	cfg.MinPerSecond = max(cfg.MinPerSecond, 0)
	if !(cfg.Ratio >= 0) {
		cfg.Ratio = 0
	}
	cfg.Ratio = min(cfg.Ratio, 1)
	n := int(cfg.Window / time.Second)
	return &Budget{
		cfg:     cfg,
		floor:   float64(cfg.MinPerSecond) * float64(n),
		start:   time.Now(),
		buckets: make([]budgetBucket, n),
	}
}

// Config returns the budget's shape, after NewBudget's clamping.
func (b *Budget) Config() BudgetConfig { return b.cfg }

// Record counts one call: every call, whether it spends or not.
func (b *Budget) Record() {
	b.mu.Lock()
	i := b.advance()
	b.buckets[i].calls++
	b.calls++
	b.mu.Unlock()
}

// Spend tries to spend one call (a cross-region hop, a retry). It is over budget when
// the calls spent in the window already reach MinPerSecond × window-seconds + Ratio ×
// calls-in-window. In shadow mode allowed is always true, overBudget reports a would-be
// refusal, and the call counts as spent either way. In enforce mode a refused call
// (allowed false, overBudget true) is not counted as spent.
func (b *Budget) Spend() (allowed, overBudget bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	i := b.advance()
	overBudget = float64(b.spent) >= b.limit()
	if overBudget && b.cfg.Mode == BudgetEnforce {
		return false, true
	}
	b.buckets[i].spent++
	b.spent++
	return true, overBudget
}

// Remaining returns how many more calls may spend in the current window if no other
// call came, for a gauge. It is negative when shadow mode has let more through than the
// budget allows.
func (b *Budget) Remaining() float64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.advance()
	return b.limit() - float64(b.spent)
}

// limit is the number of calls that may spend in the window. b.mu must be held.
func (b *Budget) limit() float64 {
	return b.floor + b.cfg.Ratio*float64(b.calls)
}

// advance moves the ring to the current second, dropping the buckets that left the
// window, and returns the current bucket's index. b.mu must be held.
func (b *Budget) advance() int {
	n := int64(len(b.buckets))
	now := int64(time.Since(b.start) / time.Second)
	if now > b.head {
		if now-b.head >= n {
			clear(b.buckets)
			b.calls, b.spent = 0, 0
		} else {
			for s := b.head + 1; s <= now; s++ {
				old := &b.buckets[s%n]
				b.calls -= old.calls
				b.spent -= old.spent
				*old = budgetBucket{}
			}
		}
		b.head = now
	}
	return int(b.head % n)
}
