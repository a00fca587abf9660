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

func TestDemoWithFaultFailsOverWithoutErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three regions for 5s")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 40*time.Second)
	defer cancel()
	const concurrency = 3
	rep, err := demo.Run(ctx, demo.Options{Duration: 5 * time.Second, Concurrency: concurrency, Fault: true, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := rep.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	t.Logf("report:\n%s", table.String())

	// The JSON form has the documented fields.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Requests *int `json:"requests"`
		Errors   *int `json:"errors"`
		Regions  []map[string]json.RawMessage
		Fault    *struct {
			Region string `json:"region"`
		} `json:"fault"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Requests == nil || doc.Errors == nil || len(doc.Regions) != 3 || doc.Fault == nil {
		t.Fatalf("JSON lacks requests, errors, 3 regions or fault:\n%s", b)
	}
	for _, r := range doc.Regions {
		for _, k := range []string{"region", "requests", "errors", "p50_ms", "p99_ms", "local_fraction", "cross_region", "during_fault"} {
			if _, ok := r[k]; !ok {
				t.Errorf("a region object lacks %q:\n%s", k, b)
			}
		}
	}

	// Nothing may fail: reads are retried in the next region, and a write that reaches
	// eu-west's sidecar after its app died is marked unprocessed there and resent, body
	// and all, to the next region.
	if rep.Errors != 0 {
		t.Errorf("%d errors (%d writes), want 0; first ones:\n%s", rep.Errors, rep.WriteErrors, strings.Join(rep.ErrorSamples, "\n"))
	}
	if rep.Fault.Region != "eu-west" || rep.Fault.StoppedAtMS == 0 || rep.Fault.RestartedAtMS == 0 {
		t.Errorf("fault = %+v, want eu-west stopped and restarted", rep.Fault)
	}
	for _, r := range rep.Regions {
		if r.Requests < 50 {
			t.Errorf("%s: only %d requests", r.Region, r.Requests)
		}
		switch r.Region {
		case "us-east", "us-west":
			if r.LocalFraction < 0.95 {
				t.Errorf("%s is healthy but served only %.1f%% locally", r.Region, 100*r.LocalFraction)
			}
		case "eu-west":
			d := r.DuringFault
			if d == nil || d.Requests == 0 {
				t.Fatalf("eu-west: no requests during the fault")
			}
			if d.LocalFraction > 0.05 || d.CrossRegion["failover"] < d.Requests*9/10 {
				t.Errorf("eu-west during the fault: local %.1f%%, cross-region %v of %d; want them failed over",
					100*d.LocalFraction, d.CrossRegion, d.Requests)
			}
			if r.LocalFraction < 0.5 {
				t.Errorf("eu-west served only %.1f%% locally over the run; it should be local before and after the fault", 100*r.LocalFraction)
			}
		default:
			t.Errorf("unexpected region %q", r.Region)
		}
	}
}
