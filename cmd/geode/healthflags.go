package main

import (
	"errors"
	"flag"
	"fmt"
	"strings"

	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/server"
)

// healthFlags are the flags of `geode controlplane` that set the region state machine's
// thresholds (health.Config, see controlplane/health): one --health-NAME per field, NAME
// its JSON name with '-' for '_', defaulting to health.DefaultConfig's value.
type healthFlags struct {
	cfg health.Config
	// names maps a field's JSON name (as health.Config.Validate names it) to its flag.
	names map[string]string
}

// addHealthFlags registers the --health-* flags on fs.
func addHealthFlags(fs *flag.FlagSet) *healthFlags {
	h := &healthFlags{cfg: health.DefaultConfig(), names: map[string]string{}}
	c := &h.cfg
	name := func(field string) string {
		f := "health-" + strings.ReplaceAll(field, "_", "-")
		h.names[field] = "--" + f
		return f
	}
	fs.DurationVar(&c.Interval, name("interval"), c.Interval, "evaluate region health this often; also the bucket width of --health-window")
	fs.DurationVar(&c.Window, name("window"), c.Window, "aggregate sidecars' reports over this sliding window (at least --health-interval)")
	fs.IntVar(&c.MinRequests, name("min_requests"), c.MinRequests, "fewer requests than this in the window is no data, never judged unhealthy")
	fs.Float64Var(&c.DegradedFailureRatio, name("degraded_failure_ratio"), c.DegradedFailureRatio, "a window failure ratio above this makes an evaluation bad; in (0,1)")
	fs.Float64Var(&c.DownFailureRatio, name("down_failure_ratio"), c.DownFailureRatio, "a window failure ratio above this makes an evaluation bad-down; in (--health-degraded-failure-ratio,1]")
	fs.DurationVar(&c.LatencyBound, name("latency_bound"), c.LatencyBound, "a request-weighted mean reported p99 above this makes an evaluation bad; 0: no latency check")
	fs.IntVar(&c.BadEvaluations, name("bad_evaluations"), c.BadEvaluations, "consecutive bad evaluations to move a region one state worse (healthy → degraded → down)")
	fs.IntVar(&c.GoodEvaluations, name("good_evaluations"), c.GoodEvaluations, "consecutive good evaluations to move a region one state better")
	fs.DurationVar(&c.ProbeAfter, name("probe_after"), c.ProbeAfter, "a non-healthy region with no data this long moves one state better (a half-open probe); at least --health-window")
	fs.IntVar(&c.RampStepPercent, name("ramp_step_percent"), c.RampStepPercent, "the most a region's weight factor moves per ramp step, in percent (1..100)")
	fs.DurationVar(&c.RampInterval, name("ramp_interval"), c.RampInterval, "time between ramp steps")
	fs.IntVar(&c.MaxReporters, name("max_reporters"), c.MaxReporters, "reporters per region; reports from further ones are refused")
	return h
}

// config returns the thresholds the flags give, checked as health.New checks them, with
// every error naming its flag. Zero is never silently replaced by a default: a zero that
// health.Config would take as "unset" is refused (--health-latency-bound 0 is "off").
func (h *healthFlags) config() (health.Config, error) {
	c := h.cfg
	var errs []error
	if c.RampInterval == 0 {
		errs = append(errs, fmt.Errorf("%s: must be positive, got 0s", h.names["ramp_interval"]))
	}
	for _, e := range unjoin(c.Validate()) {
		errs = append(errs, h.rename(e))
	}
	if err := errors.Join(errs...); err != nil {
		return health.Config{}, err
	}
	if c.WithDefaults() != c {
		// A zero Validate accepts but WithDefaults replaces: a field this file misses.
		return health.Config{}, fmt.Errorf("--health-*: a zero value would be replaced by its default: %+v", c)
	}
	return c, nil
}

// rename turns health.Config.Validate's "health.FIELD: ..." into "--health-FIELD: ...",
// and other fields it mentions into their flags.
func (h *healthFlags) rename(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "health."); ok {
		if field, detail, ok := strings.Cut(rest, ": "); ok {
			if f, ok := h.names[field]; ok {
				msg = f + ": " + detail
			}
		}
	}
	for field, f := range h.names {
		if strings.Contains(field, "_") {
			msg = strings.ReplaceAll(msg, "("+field, "("+f)
		}
	}
	return errors.New(msg)
}

// unjoin splits an errors.Join error; nil gives nil.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// maxRegistrationsOption checks --max-registrations for server.Options.MaxRegistrations,
// where zero would mean the default: the flag takes a positive count.
func maxRegistrationsOption(n int) (int, error) {
	if n < 1 {
		return 0, fmt.Errorf("--max-registrations: must be at least 1, got %d (default %d)", n, server.DefaultMaxRegistrations)
	}
	return n, nil
}
