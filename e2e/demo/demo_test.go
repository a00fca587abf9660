package demo_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/e2e/demo"
)

// The same travelling-session workload, routed by Geode and naively at the same time on
// one fleet, with eu-west's app stopped and restarted in the middle: Geode's sessions
// never fail and always read their own writes; naive routing reads stale data (which
// proves the checker can fail) but, being plain failover, does not fail either.
func TestDemoGeodeNextToNaiveWithFault(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three regions for 6s")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	rep, err := demo.Run(ctx, demo.Options{Duration: 6 * time.Second, Concurrency: 3, Fault: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", table.String())

	checkJSON(t, rep)

	if f := rep.Fault; f == nil || f.Region != "eu-west" || f.StoppedAtMS == 0 || f.RestartedAtMS == 0 {
		t.Errorf("fault = %+v, want eu-west stopped and restarted", rep.Fault)
	}
	geode, naive := &rep.Arm, rep.Naive
	for _, a := range []*demo.Arm{geode, naive} {
		for _, r := range a.Regions {
			if r.Requests < 30 {
				t.Errorf("%s arm, %s: only %d requests", a.Name, r.Region, r.Requests)
			}
		}
		// Requests must not fail, in either arm: reads and unprocessed writes fail over.
		if a.Errors != 0 {
			t.Errorf("%s arm: %d errors, want 0; first ones:\n%s", a.Name, a.Errors, strings.Join(a.ErrorSamples, "\n"))
		}
	}

	// Geode: read-your-writes holds, and it took cross-region calls to hold it.
	if geode.RYWViolations != 0 {
		t.Errorf("geode arm: %d of %d checked reads missed the session's own write; first ones:\n%s",
			geode.RYWViolations, geode.ReadsChecked, strings.Join(geode.ViolationSamples, "\n"))
	}
	if geode.ReadsChecked <= 50 {
		t.Errorf("geode arm: only %d reads checked for read-your-writes", geode.ReadsChecked)
	}
	for _, reason := range []string{"ryw", "home-write"} {
		if geode.CrossRegionCalls[reason] == 0 {
			t.Errorf("geode arm: no cross-region call for %s: %v", reason, geode.CrossRegionCalls)
		}
	}
	// Locality: writes go to their key's home, a read right after a write of the same
	// home goes where the write is (500ms of lag, a request every ~20ms), and a session
	// sticks to the region that first served it, so Geode serves well under all requests
	// locally. Measured (seed 1, with the fault): 33-41% of all requests, 40-47% of the
	// healthy regions' reads (31-33% in us-east, 52-59% in us-west). The thresholds keep
	// a wide margin and still catch "everything leaves the region".
	if geode.LocalFraction < 0.2 {
		t.Errorf("geode arm: only %.1f%% of requests served in the caller's region", 100*geode.LocalFraction)
	}
	var reads, local float64
	for _, r := range geode.Regions {
		if r.Region != demo.FaultRegion {
			reads += float64(r.Reads)
			local += r.LocalReadFraction * float64(r.Reads)
		}
	}
	if reads == 0 || local/reads < 0.25 {
		t.Errorf("geode arm: the healthy regions served only %.0f of %.0f reads locally", local, reads)
	}

	// Naive: the checker catches stale reads.
	if naive.RYWViolations == 0 {
		t.Errorf("naive arm: no read-your-writes violation in %d checked reads: the check cannot fail, or the lag is not in effect", naive.ReadsChecked)
	}
	if _, ok := naive.CrossRegionCalls["ryw"]; ok {
		t.Errorf("naive arm routed for read-your-writes without a token: %v", naive.CrossRegionCalls)
	}
	if failed := geode.Errors+naive.Errors+geode.RYWViolations > 0; failed != (rep.Err() != nil) {
		t.Errorf("Report.Err() = %v, want an error exactly when an arm had errors or geode violations", rep.Err())
	}
}

// checkJSON asserts the documented fields of `geode demo --json`.
func checkJSON(t *testing.T, rep *demo.Report) {
	t.Helper()
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	armFields := []string{"requests", "errors", "ryw_violations", "reads_checked", "lost_by_fault", "cross_region_calls", "local_fraction", "regions"}
	regionFields := []string{"region", "requests", "errors", "p50_ms", "p99_ms", "local_fraction", "ryw_violations", "cross_region"}
	checkArm := func(name string, arm map[string]json.RawMessage) {
		for _, k := range armFields {
			if _, ok := arm[k]; !ok {
				t.Errorf("JSON %s lacks %q:\n%s", name, k, b)
			}
		}
		var regions []map[string]json.RawMessage
		if err := json.Unmarshal(arm["regions"], &regions); err != nil || len(regions) != 3 {
			t.Errorf("JSON %s: want 3 regions (%v):\n%s", name, err, b)
		}
		for _, r := range regions {
			for _, k := range regionFields {
				if _, ok := r[k]; !ok {
					t.Errorf("JSON %s: a region object lacks %q:\n%s", name, k, b)
				}
			}
		}
	}
	checkArm("top level (geode arm)", doc)
	var naive map[string]json.RawMessage
	if err := json.Unmarshal(doc["naive"], &naive); err != nil || naive == nil {
		t.Fatalf("JSON lacks a naive object (%v):\n%s", err, b)
	}
	checkArm("naive", naive)
	var fault map[string]json.RawMessage
	if err := json.Unmarshal(doc["fault"], &fault); err != nil || fault == nil {
		t.Fatalf("JSON lacks a fault object (%v):\n%s", err, b)
	}
	for _, k := range []string{"region", "enabled", "stopped_at_ms", "restarted_at_ms"} {
		if _, ok := fault[k]; !ok {
			t.Errorf("JSON fault lacks %q:\n%s", k, b)
		}
	}
}
