package demo

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/geodemesh/geode/e2e/fleet"
)

// Report is what the demo's sessions saw. Its JSON form is the output of
// `geode demo --json`; field names are stable. The top level is the geode arm (the
// fields of Arm), next to the naive arm under "naive" and the fault under "fault".
type Report struct {
	Arm
	DurationMS float64 `json:"duration_ms"`
	Naive      *Arm    `json:"naive"`
	Fault      *Fault  `json:"fault"`
	// Config is how the sidecars got their configuration: ConfigControlPlanes or
	// ConfigStatic.
	Config string `json:"config"`
}

// Values of Report.Config.
const (
	ConfigControlPlanes = "control-planes" // one control plane per region, xDS to its sidecar
	ConfigStatic        = "static"         // every sidecar given its whole config up front
)

// Arm is what the sessions of one arm saw, over all regions.
type Arm struct {
	Name    string `json:"arm"`
	Service string `json:"service"`
	// Requests counts every request sent; Errors those that got no response, or a 5xx
	// or 429 status.
	Requests int `json:"requests"`
	Reads    int `json:"reads"`
	Writes   int `json:"writes"`
	Errors   int `json:"errors"`
	// NotFound counts 404 answers.
	NotFound int `json:"not_found"`
	// ReadsChecked counts reads of a key the session had written (and not errors):
	// those the read-your-writes check applies to. RYWViolations are the checked reads
	// that did not show the session's last write of the key; LostByFault those that did
	// not because the fault destroyed the write (see doc.go), not counted as violations.
	ReadsChecked  int `json:"reads_checked"`
	RYWViolations int `json:"ryw_violations"`
	LostByFault   int `json:"lost_by_fault"`
	// Flagged counts checked reads that did not show the write and said so
	// (Geode-Degraded): served during an outage of the only region that had it.
	Flagged int `json:"ryw_flagged"`
	// LocalFraction is the fraction of requests served in the caller's region;
	// LocalReadFraction the same for reads only (writes of a key go to its home).
	LocalFraction     float64 `json:"local_fraction"`
	LocalReadFraction float64 `json:"local_read_fraction"`
	// CrossRegionCalls counts responses served outside the caller's region, by
	// Geode-Reason.
	CrossRegionCalls map[string]int `json:"cross_region_calls"`
	Regions          []RegionReport `json:"regions"`
	// ErrorSamples and ViolationSamples are the first few, for a human to read.
	ErrorSamples     []string `json:"error_samples,omitempty"`
	ViolationSamples []string `json:"violation_samples,omitempty"`
}

// RegionReport is what one arm's requests sent through one region's sidecar saw.
type RegionReport struct {
	Region            string  `json:"region"`
	Requests          int     `json:"requests"`
	Reads             int     `json:"reads"`
	Writes            int     `json:"writes"`
	Errors            int     `json:"errors"`
	NotFound          int     `json:"not_found"`
	P50MS             float64 `json:"p50_ms"`
	P99MS             float64 `json:"p99_ms"`
	LocalFraction     float64 `json:"local_fraction"`
	LocalReadFraction float64 `json:"local_read_fraction"`
	ReadsChecked      int     `json:"reads_checked"`
	RYWViolations     int     `json:"ryw_violations"`
	LostByFault       int     `json:"lost_by_fault"`
	Flagged           int     `json:"ryw_flagged"`
	// CrossRegion counts responses served by another region, by Geode-Reason.
	CrossRegion map[string]int `json:"cross_region"`
	// DuringFault is the same, for requests sent while the fault region's app was down.
	DuringFault *Window `json:"during_fault,omitempty"`
}

// Window is a slice of a region's requests.
type Window struct {
	Requests      int            `json:"requests"`
	Errors        int            `json:"errors"`
	LocalFraction float64        `json:"local_fraction"`
	CrossRegion   map[string]int `json:"cross_region"`

	local int // requests served in the caller's region
}

// Fault says whether the fault was injected and when, in ms since the workload started.
type Fault struct {
	Region        string  `json:"region"`
	Enabled       bool    `json:"enabled"`
	StoppedAtMS   float64 `json:"stopped_at_ms"`
	RestartedAtMS float64 `json:"restarted_at_ms"`

	stopped, restarted time.Duration
}

// lost reports whether the fault explains a missed read: the write's origin is the
// fault region, the write was sent before its app was stopped, and the read finished
// after that (the app, and every write of it not yet replicated, was gone; the app that
// came back is empty, with a new epoch).
func (f *Fault) lost(s *sample) bool {
	return f != nil && f.stopped > 0 && s.wrote.Origin == f.Region &&
		s.wroteAt < f.stopped && s.at+s.latency >= f.stopped
}

func buildReport(regions []*fleet.Region, results [][][]sample, fault *Fault, elapsed time.Duration) *Report {
	rep := &Report{DurationMS: ms(elapsed), Fault: fault}
	for ai, a := range arms() {
		ar := buildArm(a, regions, results[ai], fault)
		if a.name == ArmGeode {
			rep.Arm = *ar
		} else {
			rep.Naive = ar
		}
	}
	return rep
}

func buildArm(a arm, regions []*fleet.Region, sessions [][]sample, fault *Fault) *Arm {
	ar := &Arm{Name: a.name, Service: a.service, CrossRegionCalls: map[string]int{}}
	var inFault func(s *sample) bool
	if fault != nil && fault.stopped > 0 {
		inFault = func(s *sample) bool { return s.at >= fault.stopped && s.at < fault.restarted }
	}
	// By caller region, in the fleet's order.
	byRegion := map[string][]*sample{}
	var all []*sample
	for _, ss := range sessions {
		for i := range ss {
			byRegion[ss[i].caller] = append(byRegion[ss[i].caller], &ss[i])
			all = append(all, &ss[i])
		}
	}
	// Samples in time order, so the first few errors and violations are the earliest.
	slices.SortStableFunc(all, func(x, y *sample) int { return cmp.Compare(x.at, y.at) })
	for _, s := range all {
		switch {
		case s.err != "" && len(ar.ErrorSamples) < maxSamples:
			ar.ErrorSamples = append(ar.ErrorSamples, fmt.Sprintf("+%s %s", s.at.Round(time.Millisecond), s.err))
		case s.check == missed && !fault.lost(s) && len(ar.ViolationSamples) < maxSamples:
			ar.ViolationSamples = append(ar.ViolationSamples, violation(s))
		}
	}

	local, localReads := 0, 0
	for _, r := range regions {
		rr := RegionReport{Region: r.Name, CrossRegion: map[string]int{}}
		var window *Window
		if inFault != nil {
			window = &Window{CrossRegion: map[string]int{}}
		}
		var lat []time.Duration
		rlocal, rlocalReads, wlocal := 0, 0, 0
		for _, s := range byRegion[r.Name] {
			rr.Requests++
			if s.write {
				rr.Writes++
			} else {
				rr.Reads++
			}
			in := window != nil && inFault(s)
			if in {
				window.Requests++
			}
			switch s.check {
			case seen:
				rr.ReadsChecked++
			case missed:
				rr.ReadsChecked++
				if fault.lost(s) {
					rr.LostByFault++
				} else {
					rr.RYWViolations++
				}
			case flagged:
				rr.ReadsChecked++
				rr.Flagged++
			}
			if s.err != "" {
				rr.Errors++
				if in {
					window.Errors++
				}
				continue
			}
			lat = append(lat, s.latency)
			if s.status == 404 {
				rr.NotFound++
			}
			if s.served == r.Name {
				rlocal++
				if !s.write {
					rlocalReads++
				}
				if in {
					wlocal++
				}
				continue
			}
			reason := s.reason
			if reason == "" {
				reason = "unknown"
			}
			rr.CrossRegion[reason]++
			ar.CrossRegionCalls[reason]++
			if in {
				window.CrossRegion[reason]++
			}
		}
		slices.Sort(lat)
		rr.P50MS, rr.P99MS = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
		rr.LocalFraction = fraction(rlocal, rr.Requests)
		rr.LocalReadFraction = fraction(rlocalReads, rr.Reads)
		if window != nil {
			window.local = wlocal
			window.LocalFraction = fraction(wlocal, window.Requests)
			rr.DuringFault = window
		}
		ar.Requests += rr.Requests
		ar.Reads += rr.Reads
		ar.Writes += rr.Writes
		ar.Errors += rr.Errors
		ar.NotFound += rr.NotFound
		ar.ReadsChecked += rr.ReadsChecked
		ar.RYWViolations += rr.RYWViolations
		ar.LostByFault += rr.LostByFault
		ar.Flagged += rr.Flagged
		local += rlocal
		localReads += rlocalReads
		ar.Regions = append(ar.Regions, rr)
	}
	ar.LocalFraction = fraction(local, ar.Requests)
	ar.LocalReadFraction = fraction(localReads, ar.Reads)
	return ar
}

// violation describes a read that missed the session's own write.
func violation(s *sample) string {
	got := fmt.Sprintf("status %d", s.status)
	if s.status == 200 {
		got = "version " + s.version
	}
	return fmt.Sprintf("+%s GET %s via %s, served by %s (%s): %s; the session wrote %s at +%s",
		s.at.Round(time.Millisecond), s.key, s.caller, orDash(s.served), orDash(s.reason), got,
		s.wrote, s.wroteAt.Round(time.Millisecond))
}

// Err reports what makes the run a failure: any request error in either arm, or any
// read-your-writes violation in the geode arm. The naive arm's violations are the point
// of the comparison, not a failure.
func (r *Report) Err() error {
	var errs []error
	if r.Errors > 0 {
		errs = append(errs, fmt.Errorf("geode arm: %d of %d requests failed", r.Errors, r.Requests))
	}
	if r.RYWViolations > 0 {
		errs = append(errs, fmt.Errorf("geode arm: %d of %d checked reads did not read the session's own write", r.RYWViolations, r.ReadsChecked))
	}
	if r.Naive != nil && r.Naive.Errors > 0 {
		errs = append(errs, fmt.Errorf("naive arm: %d of %d requests failed", r.Naive.Errors, r.Naive.Requests))
	}
	return errors.Join(errs...)
}

// percentile is the nearest-rank percentile of sorted latencies.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p*float64(len(sorted))+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// fraction is n/of rounded to 4 places, 0 when of is 0.
func fraction(n, of int) float64 {
	if of == 0 {
		return 0
	}
	return float64(int(float64(n)/float64(of)*10000+0.5)) / 10000
}

// WriteTable prints the report for a human: one block per arm (a row per region and a
// total), the fault, samples of errors and violations, and the comparison.
func (r *Report) WriteTable(w io.Writer) error {
	switch r.Config {
	case ConfigControlPlanes:
		fmt.Fprintf(w, "config: each region's sidecar fed over xDS by its own region's control plane\n\n")
	case ConfigStatic:
		fmt.Fprintf(w, "config: static sidecar configs\n\n")
	}
	blocks := []struct {
		a     *Arm
		title string
	}{
		{&r.Arm, "geode: service " + r.Service + ", Geode's routing, sessions carry their token"},
		{r.Naive, "naive: service " + r.Naive.Service + ", nearest healthy region, no session token"},
	}
	for i, b := range blocks {
		if i > 0 {
			fmt.Fprintln(w)
		}
		if err := b.a.writeTable(w, b.title); err != nil {
			return err
		}
	}
	if f := r.Fault; f != nil && f.Enabled {
		fmt.Fprintf(w, "\nfault: %s app stopped at +%.1fs, restarted (empty, next epoch) at +%.1fs; while it was down:\n", f.Region, f.StoppedAtMS/1000, f.RestartedAtMS/1000)
		for _, b := range blocks {
			d := b.a.duringFault()
			fmt.Fprintf(w, "  %s: %d requests, %d errors, %.1f%% local, cross-region {%s}\n", b.a.Name, d.Requests, d.Errors, 100*d.LocalFraction, reasons(d.CrossRegion, ""))
		}
	} else {
		fmt.Fprintln(w, "\nfault: none")
	}
	for _, b := range blocks {
		for _, e := range b.a.ErrorSamples {
			fmt.Fprintf(w, "%s error: %s\n", b.a.Name, e)
		}
	}
	for _, e := range r.ViolationSamples {
		fmt.Fprintf(w, "%s violation: %s\n", r.Name, e)
	}
	for _, e := range r.Naive.ViolationSamples[:min(2, len(r.Naive.ViolationSamples))] {
		fmt.Fprintf(w, "%s violation (expected): %s\n", r.Naive.Name, e)
	}
	fmt.Fprintf(w, "\nread-your-writes violations: geode %d of %d reads checked, naive %d of %d", r.RYWViolations, r.ReadsChecked, r.Naive.RYWViolations, r.Naive.ReadsChecked)
	if r.LostByFault+r.Naive.LostByFault > 0 {
		fmt.Fprintf(w, " (lost by the fault, not counted: geode %d, naive %d)", r.LostByFault, r.Naive.LostByFault)
	}
	if r.Flagged > 0 {
		fmt.Fprintf(w, "; geode flagged %d stale reads as degraded (the region with the write could not serve)", r.Flagged)
	}
	fmt.Fprintf(w, "\ncross-region calls: geode {%s}, naive {%s}\n", reasons(r.CrossRegionCalls, ""), reasons(r.Naive.CrossRegionCalls, ""))
	_, err := fmt.Fprintf(w, "served in the caller's region: geode %.1f%% (reads %.1f%%), naive %.1f%% (reads %.1f%%)\n",
		100*r.LocalFraction, 100*r.LocalReadFraction, 100*r.Naive.LocalFraction, 100*r.Naive.LocalReadFraction)
	return err
}

// duringFault sums the regions' fault windows.
func (a *Arm) duringFault() Window {
	sum := Window{CrossRegion: map[string]int{}}
	for _, rr := range a.Regions {
		d := rr.DuringFault
		if d == nil {
			continue
		}
		sum.Requests += d.Requests
		sum.Errors += d.Errors
		sum.local += d.local
		for k, n := range d.CrossRegion {
			sum.CrossRegion[k] += n
		}
	}
	sum.LocalFraction = fraction(sum.local, sum.Requests)
	return sum
}

func (a *Arm) writeTable(w io.Writer, title string) error {
	fmt.Fprintln(w, title)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "region\trequests\terrors\t404s\tp50_ms\tp99_ms\tlocal\tlocal reads\tryw checked\tviolations\tlost\tcross-region (reason=n)\t")
	for _, rr := range a.Regions {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f%%\t%.1f%%\t%d\t%d\t%d\t%s\t\n", rr.Region, rr.Requests, rr.Errors, rr.NotFound,
			rr.P50MS, rr.P99MS, 100*rr.LocalFraction, 100*rr.LocalReadFraction, rr.ReadsChecked, rr.RYWViolations, rr.LostByFault, reasons(rr.CrossRegion, "-"))
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t\t\t%.1f%%\t%.1f%%\t%d\t%d\t%d\t%s\t\n", a.Requests, a.Errors, a.NotFound,
		100*a.LocalFraction, 100*a.LocalReadFraction, a.ReadsChecked, a.RYWViolations, a.LostByFault, reasons(a.CrossRegionCalls, "-"))
	return tw.Flush()
}

func reasons(m map[string]int, none string) string {
	if len(m) == 0 {
		return none
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%s=%d", k, m[k])
	}
	return b.String()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
