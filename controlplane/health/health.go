package health

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/geodemesh/geode/affinity"
)

// Config holds the state machine's thresholds. Zero fields take the DefaultConfig value;
// Validate rejects the rest, naming the field.
type Config struct {
	// Interval between evaluations (the server's ticker) and bucket width of the window.
	Interval time.Duration `json:"interval"`
	// Window over which reports are aggregated; at least Interval.
	Window time.Duration `json:"window"`
	// MinRequests in the window before any judgment; below it is "no data".
	MinRequests int `json:"min_requests"`
	// DegradedFailureRatio: failure ratio above which an evaluation is bad; in (0,1).
	DegradedFailureRatio float64 `json:"degraded_failure_ratio"`
	// DownFailureRatio: failure ratio above which an evaluation is bad-down; in
	// (DegradedFailureRatio,1].
	DownFailureRatio float64 `json:"down_failure_ratio"`
	// LatencyBound: a request-weighted mean reported p99 above it makes an evaluation
	// bad (degraded level). Zero disables the latency check.
	LatencyBound time.Duration `json:"latency_bound"`
	// BadEvaluations (N): consecutive bad evaluations to move one state worse.
	BadEvaluations int `json:"bad_evaluations"`
	// GoodEvaluations (M): consecutive good evaluations to move one state better.
	GoodEvaluations int `json:"good_evaluations"`
	// ProbeAfter: a non-healthy region with no data for this long moves one state better.
	ProbeAfter time.Duration `json:"probe_after"`
	// RampStepPercent: the most the weight factor moves per step, in percent (1..100).
	RampStepPercent int `json:"ramp_step_percent"`
	// RampInterval: time between ramp steps.
	RampInterval time.Duration `json:"ramp_interval"`
	// MaxReporters per region; reports from further reporters are refused.
	MaxReporters int `json:"max_reporters"`
}

// DefaultConfig returns the default thresholds.
func DefaultConfig() Config {
	return Config{
		Interval:             time.Second,
		Window:               10 * time.Second,
		MinRequests:          20,
		DegradedFailureRatio: 0.10,
		DownFailureRatio:     0.50,
		BadEvaluations:       3,
		GoodEvaluations:      5,
		ProbeAfter:           30 * time.Second,
		RampStepPercent:      25,
		RampInterval:         3 * time.Second,
		MaxReporters:         10000,
	}
}

// WithDefaults returns c with its zero fields set from DefaultConfig (LatencyBound stays
// zero: off).
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	set := func(p *time.Duration, v time.Duration) {
		if *p == 0 {
			*p = v
		}
	}
	seti := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	set(&c.Interval, d.Interval)
	set(&c.Window, d.Window)
	set(&c.ProbeAfter, d.ProbeAfter)
	set(&c.RampInterval, d.RampInterval)
	seti(&c.MinRequests, d.MinRequests)
	seti(&c.BadEvaluations, d.BadEvaluations)
	seti(&c.GoodEvaluations, d.GoodEvaluations)
	seti(&c.RampStepPercent, d.RampStepPercent)
	seti(&c.MaxReporters, d.MaxReporters)
	if c.DegradedFailureRatio == 0 {
		c.DegradedFailureRatio = d.DegradedFailureRatio
	}
	if c.DownFailureRatio == 0 {
		c.DownFailureRatio = d.DownFailureRatio
	}
	return c
}

// Validate reports every bad field of c (after WithDefaults), each named.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("health.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if c.Interval <= 0 {
		bad("interval", "must be positive, got %s", c.Interval)
	}
	if c.Window < c.Interval {
		bad("window", "%s is shorter than interval %s", c.Window, c.Interval)
	} else if c.Interval > 0 && c.Window/c.Interval > 3600 {
		bad("window", "%s holds more than 3600 intervals of %s", c.Window, c.Interval)
	}
	if c.MinRequests < 1 {
		bad("min_requests", "must be at least 1, got %d", c.MinRequests)
	}
	if !(c.DegradedFailureRatio > 0 && c.DegradedFailureRatio < 1) {
		bad("degraded_failure_ratio", "must be in (0,1), got %v", c.DegradedFailureRatio)
	}
	if !(c.DownFailureRatio > c.DegradedFailureRatio && c.DownFailureRatio <= 1) {
		bad("down_failure_ratio", "must be in (degraded_failure_ratio,1], got %v", c.DownFailureRatio)
	}
	if c.LatencyBound < 0 {
		bad("latency_bound", "must not be negative, got %s", c.LatencyBound)
	}
	if c.BadEvaluations < 1 {
		bad("bad_evaluations", "must be at least 1, got %d", c.BadEvaluations)
	}
	if c.GoodEvaluations < 1 {
		bad("good_evaluations", "must be at least 1, got %d", c.GoodEvaluations)
	}
	if c.ProbeAfter < c.Window {
		bad("probe_after", "%s is shorter than window %s", c.ProbeAfter, c.Window)
	}
	if c.RampStepPercent < 1 || c.RampStepPercent > 100 {
		bad("ramp_step_percent", "must be in [1,100], got %d", c.RampStepPercent)
	}
	if c.RampInterval < 0 {
		bad("ramp_interval", "must not be negative, got %s", c.RampInterval)
	}
	if c.MaxReporters < 1 {
		bad("max_reporters", "must be at least 1, got %d", c.MaxReporters)
	}
	return errors.Join(errs...)
}

// Outcome is what one reporter saw of one region over its report period.
type Outcome struct {
	Success uint64        `json:"success"`
	Failure uint64        `json:"failure"`
	P99     time.Duration `json:"-"`
}

// Errors of Record.
var (
	ErrUnknownRegion  = errors.New("unknown region")
	ErrTooManyReports = errors.New("too many reporters")
)

// Status is a region's computed health.
type Status struct {
	// Computed is healthy, degraded or down.
	Computed affinity.RegionState `json:"-"`
	// Factor is the weight factor in percent (0..100); see the package doc.
	Factor int `json:"weight_factor_percent"`
	// Requests and FailureRatio are the window's at the last evaluation.
	Requests     uint64        `json:"window_requests"`
	FailureRatio float64       `json:"window_failure_ratio"`
	MeanP99      time.Duration `json:"window_mean_p99_ns"`
	// Verdict of the last evaluation: no-data, good, degraded, down.
	Verdict string `json:"last_verdict"`
}

// Ramping reports whether the region sits strictly between its two settled factors.
func (s Status) Ramping() bool { return s.Factor > 0 && s.Factor < 100 }

type bucket struct {
	success, failure uint64
	p99Weighted      float64 // sum of p99 (ns) × requests
}

type region struct {
	reporters map[string]map[int64]*bucket // reporter → bucket start (unix ns) → counts
	status    Status
	bad, good int // streaks
	lastData  time.Time
	lastStep  time.Time
	since     time.Time // of the last computed transition
}

// Tracker is the state machine of every region.
type Tracker struct {
	cfg     Config
	mu      sync.Mutex
	regions map[string]*region
}

// New returns a Tracker for regions (all healthy, factor 100) with cfg (zero fields
// defaulted); an invalid cfg is an error naming the field.
func New(cfg Config, regions []string) (*Tracker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Tracker{cfg: cfg, regions: map[string]*region{}}
	t.SetRegions(regions)
	return t, nil
}

// Config returns the effective configuration.
func (t *Tracker) Config() Config { return t.cfg }

// SetRegions sets the tracked regions: new ones start healthy, gone ones are forgotten.
func (t *Tracker) SetRegions(names []string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	keep := map[string]bool{}
	for _, n := range names {
		keep[n] = true
		if _, ok := t.regions[n]; !ok {
			t.regions[n] = &region{reporters: map[string]map[int64]*bucket{}, status: Status{Computed: affinity.Healthy, Factor: 100, Verdict: "no-data"}}
		}
	}
	maps.DeleteFunc(t.regions, func(n string, _ *region) bool { return !keep[n] })
}

// Record adds one reporter's outcome for a region, at now.
func (t *Tracker) Record(now time.Time, reporter, regionName string, o Outcome) error {
	if reporter == "" {
		return errors.New("reporter is required")
	}
	if o.P99 < 0 {
		return errors.New("p99 must not be negative")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.regions[regionName]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownRegion, regionName)
	}
	bs, ok := r.reporters[reporter]
	if !ok {
		if len(r.reporters) >= t.cfg.MaxReporters {
			return fmt.Errorf("%w for region %q (max %d)", ErrTooManyReports, regionName, t.cfg.MaxReporters)
		}
		bs = map[int64]*bucket{}
		r.reporters[reporter] = bs
	}
	key := now.Truncate(t.cfg.Interval).UnixNano()
	b := bs[key]
	if b == nil {
		b = &bucket{}
		bs[key] = b
		t.pruneLocked(r, now)
	}
	b.success += o.Success
	b.failure += o.Failure
	b.p99Weighted += float64(o.P99) * float64(o.Success+o.Failure)
	return nil
}

// pruneLocked drops buckets that left the window, and reporters left with none.
func (t *Tracker) pruneLocked(r *region, now time.Time) {
	oldest := now.Add(-t.cfg.Window).UnixNano()
	for rep, bs := range r.reporters {
		maps.DeleteFunc(bs, func(k int64, _ *bucket) bool { return k < oldest })
		if len(bs) == 0 {
			delete(r.reporters, rep)
		}
	}
}

// Verdicts of one evaluation, worst last.
const (
	verdictNoData = iota
	verdictGood
	verdictDegraded
	verdictDown
)

var verdictNames = [...]string{"no-data", "good", "degraded", "down"}

// Evaluate judges every region's window at now, advances the state machine and the
// ramps, and returns the regions whose computed state or factor changed, sorted.
func (t *Tracker) Evaluate(now time.Time) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var changed []string
	for name, r := range t.regions {
		before := r.status
		t.evaluateLocked(r, now)
		if r.status.Computed != before.Computed || r.status.Factor != before.Factor {
			changed = append(changed, name)
		}
	}
	slices.Sort(changed)
	return changed
}

func (t *Tracker) evaluateLocked(r *region, now time.Time) {
	t.pruneLocked(r, now)
	var succ, fail uint64
	var p99w float64
	for _, bs := range r.reporters {
		for _, b := range bs {
			succ += b.success
			fail += b.failure
			p99w += b.p99Weighted
		}
	}
	total := succ + fail
	st := &r.status
	st.Requests, st.FailureRatio, st.MeanP99 = total, 0, 0
	verdict := verdictNoData
	if total > 0 {
		st.FailureRatio = float64(fail) / float64(total)
		st.MeanP99 = time.Duration(p99w / float64(total))
	}
	if total >= uint64(t.cfg.MinRequests) {
		r.lastData = now
		switch {
		case st.FailureRatio > t.cfg.DownFailureRatio:
			verdict = verdictDown
		case st.FailureRatio > t.cfg.DegradedFailureRatio,
			t.cfg.LatencyBound > 0 && st.MeanP99 > t.cfg.LatencyBound:
			verdict = verdictDegraded
		default:
			verdict = verdictGood
		}
	}
	st.Verdict = verdictNames[verdict]

	// worse: the verdict argues for a worse state than the current one;
	// better: for a better one.
	var worse, better bool
	switch st.Computed {
	case affinity.Healthy:
		worse = verdict >= verdictDegraded
	case affinity.Degraded:
		worse, better = verdict == verdictDown, verdict == verdictGood
	case affinity.Down:
		better = verdict == verdictGood || verdict == verdictDegraded
	}
	switch {
	case worse:
		r.bad++
		r.good = 0
	case better:
		r.good++
		r.bad = 0
	case verdict == verdictNoData:
		// No data judges nothing: streaks hold, neither grows.
	default:
		r.bad, r.good = 0, 0
	}
	move := func(to affinity.RegionState) {
		st.Computed, r.bad, r.good, r.since = to, 0, 0, now
		r.lastStep = time.Time{} // the first ramp step is immediate
	}
	switch {
	case r.bad >= t.cfg.BadEvaluations:
		if st.Computed == affinity.Healthy {
			move(affinity.Degraded)
		} else {
			move(affinity.Down)
		}
	case r.good >= t.cfg.GoodEvaluations:
		if st.Computed == affinity.Down {
			move(affinity.Degraded)
		} else {
			move(affinity.Healthy)
		}
	case verdict == verdictNoData && st.Computed != affinity.Healthy &&
		now.Sub(laterOf(r.lastData, r.since)) >= t.cfg.ProbeAfter:
		// Half-open probe: a region without traffic cannot prove itself healthy.
		if st.Computed == affinity.Down {
			move(affinity.Degraded)
		} else {
			move(affinity.Healthy)
		}
	}

	target := 0
	if st.Computed == affinity.Healthy {
		target = 100
	}
	if st.Factor != target && (r.lastStep.IsZero() || now.Sub(r.lastStep) >= t.cfg.RampInterval) {
		step := min(t.cfg.RampStepPercent, abs(target-st.Factor))
		if target < st.Factor {
			step = -step
		}
		st.Factor += step
		r.lastStep = now
	}
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// Status returns a region's computed health.
func (t *Tracker) Status(regionName string) (Status, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	r, ok := t.regions[regionName]
	if !ok {
		return Status{}, false
	}
	return r.status, true
}

// Statuses returns every region's computed health.
func (t *Tracker) Statuses() map[string]Status {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]Status, len(t.regions))
	for n, r := range t.regions {
		out[n] = r.status
	}
	return out
}

// Effective is a region's state: the operator override when there is one (drain, fence,
// down always win), else the worse of the configured and the computed state.
func Effective(override *affinity.RegionState, configured, computed affinity.RegionState) affinity.RegionState {
	if override != nil {
		return *override
	}
	return max(configured, computed)
}
