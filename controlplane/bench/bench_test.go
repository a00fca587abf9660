package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestSmoke runs the benchmark tiny and in-process, both ADS variants: a few clients
// connect, ACK their snapshots and see two region-state changes. The real runs are
// `go run ./controlplane/bench` (see BENCHMARKS.md); they are never part of go test.
func TestSmoke(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out, errs bytes.Buffer
	err := run(ctx, []string{"-inprocess", "-n", "12", "-per-conn", "5", "-mode", "sotw,delta", "-rounds", "2",
		"-connect-timeout", "20s", "-push-timeout", "20s", "-start-pause", "1ms", "-settle", "100ms", "-quiet"}, &out, &errs)
	if err != nil {
		t.Fatalf("run: %v\nstderr:\n%s", err, errs.String())
	}
	for _, want := range []string{"| 12 | sotw | 1 | down |", "| 12 | sotw | 2 | restore |", "| 12 | delta | 1 | down |", "12/12"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
