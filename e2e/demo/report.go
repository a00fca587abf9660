package demo

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/geodemesh/geode/e2e/fleet"
)

// Report is what the demo's clients saw. Its JSON form is the output of
// `geode demo --json`; field names are stable.
type Report struct {
	DurationMS float64 `json:"duration_ms"`
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	// WriteErrors is the part of Errors that were PUTs.
	WriteErrors int `json:"write_errors"`
	// NotFound counts 404 answers: reads of a key the serving replica does not have.
	NotFound      int     `json:"not_found"`
	LocalFraction float64 `json:"local_fraction"`
	// CrossRegion counts requests served outside the client's region, by Geode-Reason.
	CrossRegion map[string]int `json:"cross_region"`
	Regions     []RegionReport `json:"regions"`
	Fault       *Fault         `json:"fault,omitempty"`
	// ErrorSamples are the first few errors, for a human to read.
	ErrorSamples []string `json:"error_samples,omitempty"`
}

// RegionReport is what the clients living in one region saw.
type RegionReport struct {
	Region        string  `json:"region"`
	Requests      int     `json:"requests"`
	Reads         int     `json:"reads"`
	Writes        int     `json:"writes"`
	Errors        int     `json:"errors"`
	WriteErrors   int     `json:"write_errors"` // the part of Errors that were PUTs
	NotFound      int     `json:"not_found"`
	P50MS         float64 `json:"p50_ms"`
	P99MS         float64 `json:"p99_ms"`
	LocalFraction float64 `json:"local_fraction"`
	// ServedBy counts responses by the region that served them (Geode-Region).
	ServedBy map[string]int `json:"served_by"`
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
}

// Fault says when the fault happened, in ms since the workload started.
type Fault struct {
	Region        string  `json:"region"`
	StoppedAtMS   float64 `json:"stopped_at_ms"`
	RestartedAtMS float64 `json:"restarted_at_ms"`

	stopped, restarted time.Duration
}

func buildReport(regions []*fleet.Region, results [][][]sample, fault *Fault, elapsed time.Duration) *Report {
	rep := &Report{DurationMS: ms(elapsed), CrossRegion: map[string]int{}}
	local := 0
	for ri, r := range regions {
		rr := RegionReport{Region: r.Name, ServedBy: map[string]int{}, CrossRegion: map[string]int{}}
		var window *Window
		if fault != nil && fault.StoppedAtMS > 0 {
			window = &Window{CrossRegion: map[string]int{}}
		}
		var lat []time.Duration
		rlocal, wlocal := 0, 0
		for _, samples := range results[ri] {
			for _, s := range samples {
				rr.Requests++
				if s.write {
					rr.Writes++
				} else {
					rr.Reads++
				}
				in := window != nil && s.at >= fault.stopped && s.at < fault.restarted
				if in {
					window.Requests++
				}
				if s.err != "" {
					rr.Errors++
					if s.write {
						rr.WriteErrors++
					}
					if in {
						window.Errors++
					}
					if len(rep.ErrorSamples) < maxErrorSample {
						rep.ErrorSamples = append(rep.ErrorSamples, fmt.Sprintf("%s +%s: %s", r.Name, s.at.Round(time.Millisecond), s.err))
					}
					continue
				}
				lat = append(lat, s.latency)
				if s.status == 404 {
					rr.NotFound++
				}
				rr.ServedBy[s.served]++
				if s.served == r.Name {
					rlocal++
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
				rep.CrossRegion[reason]++
				if in {
					window.CrossRegion[reason]++
				}
			}
		}
		slices.Sort(lat)
		rr.P50MS, rr.P99MS = ms(percentile(lat, 0.50)), ms(percentile(lat, 0.99))
		rr.LocalFraction = fraction(rlocal, rr.Requests)
		if window != nil {
			window.LocalFraction = fraction(wlocal, window.Requests)
			rr.DuringFault = window
		}
		rep.Requests += rr.Requests
		rep.Errors += rr.Errors
		rep.WriteErrors += rr.WriteErrors
		rep.NotFound += rr.NotFound
		local += rlocal
		rep.Regions = append(rep.Regions, rr)
	}
	rep.LocalFraction = fraction(local, rep.Requests)
	rep.Fault = fault
	return rep
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

// WriteTable prints the report as an aligned table, one row per region and a total.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "region\trequests\terrors\t404s\tp50_ms\tp99_ms\tlocal\tcross-region (reason=n)\t")
	for _, rr := range r.Regions {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.1f\t%.1f\t%.1f%%\t%s\t\n", rr.Region, rr.Requests, rr.Errors, rr.NotFound,
			rr.P50MS, rr.P99MS, 100*rr.LocalFraction, reasons(rr.CrossRegion))
	}
	fmt.Fprintf(tw, "total\t%d\t%d\t%d\t\t\t%.1f%%\t%s\t\n", r.Requests, r.Errors, r.NotFound, 100*r.LocalFraction, reasons(r.CrossRegion))
	if err := tw.Flush(); err != nil {
		return err
	}
	if f := r.Fault; f != nil {
		fmt.Fprintf(w, "\nfault: %s app stopped at +%.1fs, restarted at +%.1fs; while it was down:\n", f.Region, f.StoppedAtMS/1000, f.RestartedAtMS/1000)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "region\trequests\terrors\tlocal\tcross-region (reason=n)\t")
		for _, rr := range r.Regions {
			if d := rr.DuringFault; d != nil {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f%%\t%s\t\n", rr.Region, d.Requests, d.Errors, 100*d.LocalFraction, reasons(d.CrossRegion))
			}
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintln(w, "error:", e)
	}
	_, err := fmt.Fprintf(w, "\n%d requests, %d errors, %.1f%% served in the caller's region\n", r.Requests, r.Errors, 100*r.LocalFraction)
	return err
}

func reasons(m map[string]int) string {
	if len(m) == 0 {
		return "-"
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
