package main

import (
	"context"
	"flag"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/server"
)

func parseHealthFlags(t *testing.T, args ...string) (health.Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	h := addHealthFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	return h.config()
}

func TestHealthFlagsDefaultToDefaultConfig(t *testing.T) {
	c, err := parseHealthFlags(t)
	if err != nil {
		t.Fatal(err)
	}
	if c != health.DefaultConfig() {
		t.Fatalf("config %+v, want health.DefaultConfig %+v", c, health.DefaultConfig())
	}
}

func TestHealthFlagsSetEveryField(t *testing.T) {
	c, err := parseHealthFlags(t,
		"--health-interval", "500ms", "--health-window", "5s", "--health-min-requests", "50",
		"--health-degraded-failure-ratio", "0.2", "--health-down-failure-ratio", "0.6",
		"--health-latency-bound", "250ms", "--health-bad-evaluations", "4", "--health-good-evaluations", "6",
		"--health-probe-after", "20s", "--health-ramp-step-percent", "10", "--health-ramp-interval", "2s",
		"--health-max-reporters", "500")
	if err != nil {
		t.Fatal(err)
	}
	want := health.Config{
		Interval: 500 * time.Millisecond, Window: 5 * time.Second, MinRequests: 50,
		DegradedFailureRatio: 0.2, DownFailureRatio: 0.6, LatencyBound: 250 * time.Millisecond,
		BadEvaluations: 4, GoodEvaluations: 6, ProbeAfter: 20 * time.Second,
		RampStepPercent: 10, RampInterval: 2 * time.Second, MaxReporters: 500,
	}
	if c != want {
		t.Fatalf("config %+v\nwant   %+v", c, want)
	}
	// What the server does with Options.Health.
	tr, err := health.New(c, []string{"us-east"})
	if err != nil {
		t.Fatal(err)
	}
	if tr.Config() != want {
		t.Fatalf("tracker config %+v, want %+v", tr.Config(), want)
	}
}

func TestHealthFlagsRefusedNamingTheFlag(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--health-interval", "0s"}, "--health-interval: must be positive"},
		{[]string{"--health-interval", "-1s"}, "--health-interval: must be positive"},
		{[]string{"--health-window", "500ms"}, "--health-window: 500ms is shorter than interval 1s"},
		{[]string{"--health-min-requests", "0"}, "--health-min-requests: must be at least 1, got 0"},
		{[]string{"--health-degraded-failure-ratio", "1.5"}, "--health-degraded-failure-ratio: must be in (0,1), got 1.5"},
		{[]string{"--health-degraded-failure-ratio", "0"}, "--health-degraded-failure-ratio: must be in (0,1), got 0"},
		{[]string{"--health-down-failure-ratio", "0.05"}, "--health-down-failure-ratio: must be in (--health-degraded-failure-ratio,1], got 0.05"},
		{[]string{"--health-latency-bound", "-1ms"}, "--health-latency-bound: must not be negative"},
		{[]string{"--health-bad-evaluations", "0"}, "--health-bad-evaluations: must be at least 1"},
		{[]string{"--health-good-evaluations", "-2"}, "--health-good-evaluations: must be at least 1"},
		{[]string{"--health-probe-after", "5s"}, "--health-probe-after: 5s is shorter than window 10s"},
		{[]string{"--health-ramp-step-percent", "101"}, "--health-ramp-step-percent: must be in [1,100]"},
		{[]string{"--health-ramp-interval", "0s"}, "--health-ramp-interval: must be positive, got 0s"},
		{[]string{"--health-ramp-interval", "-1s"}, "--health-ramp-interval: must not be negative"},
		{[]string{"--health-max-reporters", "0"}, "--health-max-reporters: must be at least 1"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			_, err := parseHealthFlags(t, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "health.") {
				t.Errorf("error %q names a health.Config field, not its flag", err)
			}
		})
	}
	// Every problem is reported, each with its flag.
	_, err := parseHealthFlags(t, "--health-min-requests", "0", "--health-bad-evaluations", "0")
	if err == nil || !strings.Contains(err.Error(), "--health-min-requests") || !strings.Contains(err.Error(), "--health-bad-evaluations") {
		t.Fatalf("error %v, want both flags named", err)
	}
}

func writeManifests(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	geode := "apiVersion: geode.io/v1alpha1\nkind: Geode\nregions:\n  - {name: us-east, rtt: {eu-west: 80ms}}\n  - {name: eu-west}\n" +
		"services:\n  - {name: web, endpoints: {us-east: [\"10.0.0.1:8080\"], eu-west: [\"10.1.0.1:8080\"]}}\n"
	if err := os.WriteFile(filepath.Join(dir, "geode.yaml"), []byte(geode), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestControlplaneRefusesBadHealthFlags(t *testing.T) {
	dir := writeManifests(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--health-window", "100ms"}, "--health-window: 100ms is shorter than interval 1s"},
		{[]string{"--max-registrations", "0"}, "--max-registrations: must be at least 1, got 0"},
		{[]string{"--max-registrations", "-5"}, "--max-registrations: must be at least 1, got -5"},
	} {
		args := append([]string{"--config", dir, "--insecure", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, tc.args...)
		err := runControlplane(context.Background(), args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want it to contain %q", tc.args, err, tc.want)
		}
	}
}

// The flags reach the server: with a small --health-min-requests, one bad evaluation
// and a short interval, one report of 10 failures makes a region degraded at once
// (with the defaults, 10 requests would be "no data"); --max-registrations shows in
// /status.
func TestControlplaneHealthFlagsReachTheServer(t *testing.T) {
	dir := writeManifests(t)
	admin, _ := startControlplane(t, "--config", dir,
		"--health-interval", "50ms", "--health-window", "1s", "--health-min-requests", "5", "--health-bad-evaluations", "1",
		"--health-probe-after", "1m", "--max-registrations", "7")
	var st server.Status
	if err := adminCall(context.Background(), 2*time.Second, http.MethodGet, admin, "/status", &st); err != nil {
		t.Fatal(err)
	}
	if st.Registrations.Max != 7 {
		t.Errorf("/status registrations.max = %d, want 7 (--max-registrations)", st.Registrations.Max)
	}
	resp, err := http.Post("http://"+admin+"/reports", "application/json",
		strings.NewReader(`{"reporter": "node-1", "region_outcomes": {"eu-west": {"success": 0, "failure": 10}}}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST /reports: %s", resp.Status)
	}
	eventually(t, "eu-west computed degraded", func() bool {
		var d server.ConfigDump
		if err := adminCall(context.Background(), 2*time.Second, http.MethodGet, admin, "/config_dump", &d); err != nil {
			t.Fatal(err)
		}
		for _, r := range d.Regions {
			if r.Name == "eu-west" {
				return r.Computed == "degraded"
			}
		}
		return false
	})
}
