package xds_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/server"
)

// reportingBase is baseConfig with a breaker for web that never opens: one sidecar
// then keeps reporting a failing region the way a fleet of them would.
const reportingBase = baseConfig + `
services:
  - name: web
    endpoints: {us-east: ["127.0.0.1:1"]}
    breaker: {consecutive_failures: 1000000, open_for: 100ms}
`

// computed reads GET /config_dump and returns the computed state and health of region.
func (cp *controlPlane) computed(region string) (string, health.Status) {
	cp.t.Helper()
	resp, err := http.Get(cp.admin + "/config_dump")
	if err != nil {
		cp.t.Fatal(err)
	}
	defer resp.Body.Close()
	var d server.ConfigDump
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		cp.t.Fatal(err)
	}
	for _, r := range d.Regions {
		if r.Name == region {
			return r.Computed, r.Health
		}
	}
	cp.t.Fatalf("region %q not in /config_dump", region)
	return "", health.Status{}
}

// The sidecar reports what its requests saw of each region over LRS, and the control
// plane's region health follows: us-east's backend fails (503) under load, the control
// plane computes it degraded then down, and after the backend is restored, reports of
// successes bring it back to healthy.
func TestRegionOutcomesReportedOverLRSDriveRegionHealth(t *testing.T) {
	var failing atomic.Bool
	east := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("X-Served-By", "us-east")
		io.WriteString(w, "us-east")
	}))
	t.Cleanup(east.Close)
	backends := regionBackends(t, "eu-west", "us-west")
	backends["us-east"] = east.Listener.Addr().String()
	cp := startControlPlaneWith(t, server.Options{
		Model: fleet(t, backends),
		Health: health.Config{
			Interval: 100 * time.Millisecond, Window: time.Second, MinRequests: 5,
			BadEvaluations: 2, GoodEvaluations: 2, ProbeAfter: time.Second,
			RampStepPercent: 50, RampInterval: 100 * time.Millisecond,
		},
		LoadReportInterval: 100 * time.Millisecond,
	}, "127.0.0.1:0")
	const node = "sidecar-us-east-lrs"
	sc := startSidecarWith(t, reportingBase, cp.xdsAddr, node, "")
	eventually(t, 5*time.Second, "web served by us-east", func() bool { return sc.servedBy("web") == "us-east" })
	eventually(t, 5*time.Second, "LRS stream open", func() bool { return cp.Status().LoadReports.Streams == 1 })

	// Bounded load: 4 workers, each request bounded by the client's timeout, until stop.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	served := map[string]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 20000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				got := sc.servedBy("web")
				mu.Lock()
				served[got]++
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopLoad)

	d := eventually(t, 5*time.Second, "successes reported: us-east judged good", func() bool {
		st, h := cp.computed("us-east")
		return st == "healthy" && h.Verdict == "good" && h.Requests >= 5
	})
	t.Logf("healthy us-east judged good from the sidecar's reports after %s (%d reports recorded)", d, cp.Status().LoadReports.Recorded)

	failing.Store(true)
	failedAt := time.Now()
	var degradedAfter time.Duration
	d = eventually(t, 10*time.Second, "us-east computed down", func() bool {
		st, _ := cp.computed("us-east")
		if st == "degraded" && degradedAfter == 0 {
			degradedAfter = time.Since(failedAt)
		}
		return st == "down"
	})
	_, h := cp.computed("us-east")
	t.Logf("us-east returns 503: computed degraded after %s, down after %s (window %d requests, failure ratio %.2f)", degradedAfter, d, h.Requests, h.FailureRatio)
	if degradedAfter == 0 {
		t.Log("(degraded was not observed between polls)")
	}
	eventually(t, 5*time.Second, "the sidecar fails over away from the down region", func() bool { return sc.servedBy("web") == "eu-west" })

	failing.Store(false)
	restoredAt := time.Now()
	recordedBefore := cp.Status().LoadReports.Recorded
	d = eventually(t, 15*time.Second, "us-east healthy again, judged good from reported successes", func() bool {
		st, h := cp.computed("us-east")
		return st == "healthy" && h.Verdict == "good" && h.Requests >= 5 && h.FailureRatio == 0
	})
	t.Logf("backend restored: us-east computed healthy and judged good after %s (%d more reports)", d, cp.Status().LoadReports.Recorded-recordedBefore)
	eventually(t, 5*time.Second, "web served by us-east again", func() bool { return sc.servedBy("web") == "us-east" })
	t.Logf("back in us-east %s after the restore", time.Since(restoredAt).Round(time.Millisecond))
	stopLoad()

	st := cp.Status().LoadReports
	if st.Refused != 0 || st.SkippedLocalities != 0 {
		t.Fatalf("load reports: %+v, want none refused or skipped", st)
	}
	if sent := sc.client.Status().LoadReports; sent < st.Recorded {
		t.Fatalf("sidecar sent %d load reports, control plane recorded %d", sent, st.Recorded)
	}
	mu.Lock()
	t.Logf("load: %v; %s", served, fmt.Sprintf("reports sent %d, recorded %d", sc.client.Status().LoadReports, st.Recorded))
	mu.Unlock()
}
