package xds_test

import (
	"sync"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/server"
)

// rampOf returns us-east's state and ramp percent as the sidecar's routing state has them.
func (m *meshSidecar) rampOf(region string) (string, int) {
	for _, r := range m.ConfigDump().Regions {
		if r.Name == region {
			return r.State, r.RampPercent
		}
	}
	return "", -1
}

// Geode sidecars follow the control plane's capped ramp as grpc-go follows the EDS
// weights: when us-east is computed degraded, the share of the sidecar's requests that
// us-east serves steps down with the ramp (75, 50, 25, 0%) instead of dropping to 0 at
// once, which would flatten the next region. A sidecar ignoring the ramp would send 0%
// at the first step, so the test can tell.
func TestSidecarFollowsTheRamp(t *testing.T) {
	backends := regionBackends(t, "us-east", "eu-west", "us-west")
	cp := startControlPlaneWith(t, server.Options{
		Model: fleet(t, backends),
		Health: health.Config{
			Interval: 100 * time.Millisecond, Window: time.Second, MinRequests: 5,
			BadEvaluations: 1, GoodEvaluations: 1000, DownFailureRatio: 1, ProbeAfter: time.Hour,
			RampStepPercent: 25, RampInterval: 1500 * time.Millisecond,
		},
	}, "127.0.0.1:0")
	sc := startSidecar(t, cp.xdsAddr, "sidecar-us-east-ramp", "")
	eventually(t, 5*time.Second, "web served by us-east", func() bool { return sc.servedBy("web") == "us-east" })

	// Another fleet's sidecars report us-east failing (never past the down ratio: the
	// ramp stays in degraded), every 100ms until the test ends.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < 600; i++ {
			if err := cp.RecordReport(time.Now(), server.Report{Reporter: "elsewhere", RegionOutcomes: map[string]server.RegionOutcome{"us-east": {Failure: 1000}}}); err != nil {
				t.Errorf("report: %v", err)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()

	const samples = 200
	seen := map[int]float64{}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		state, ramp := sc.rampOf("us-east")
		if state != "degraded" {
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if _, done := seen[ramp]; done {
			if ramp == 0 {
				break
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		local := 0
		for range samples {
			if sc.servedBy("web") == "us-east" {
				local++
			}
		}
		if _, again := sc.rampOf("us-east"); again != ramp {
			continue // the ramp moved while sampling: sample the new step
		}
		seen[ramp] = 100 * float64(local) / samples
		t.Logf("us-east degraded, ramp %d%%: served %.1f%% of %d requests", ramp, seen[ramp], samples)
	}
	for _, ramp := range []int{75, 50, 25, 0} {
		got, ok := seen[ramp]
		if !ok {
			t.Fatalf("ramp step %d%% not observed (saw %v)", ramp, seen)
		}
		if got < float64(ramp)-15 || got > float64(ramp)+15 {
			t.Errorf("ramp %d%%: us-east served %.1f%%, want %d%% ± 15", ramp, got, ramp)
		}
	}
}
