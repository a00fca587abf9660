package sidecar

import (
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The failover test: kill one region's endpoints mid-load; requests continue through
// the next region; the region's breaker opens, and closes again when it returns.
func TestFailoverWhenARegionDiesMidLoadAndBreakerRecovery(t *testing.T) {
	east := startBackend(t, regionHandler("us-east"))
	west := startBackend(t, regionHandler("eu-west"))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr), nil)
	breaker := func() string { return sc.ConfigDump().Services[0].Pools[0].Breaker }

	var (
		mu       sync.Mutex
		servedBy = map[string]int{}
		failures []string
		phase    atomic.Value // "before", "down", "back"
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	phase.Store("before")
	client := &http.Client{Timeout: 5 * time.Second}
	for w := range 4 { // bounded load: 4 workers, stopped by the test, each request bounded
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodGet, "http://"+sc.outbound+fmt.Sprintf("/w%d/%d", w, i), nil)
				req.Host = "web"
				resp, err := client.Do(req)
				p := phase.Load().(string)
				mu.Lock()
				if err != nil {
					failures = append(failures, p+": "+err.Error())
				} else {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						failures = append(failures, fmt.Sprintf("%s: status %d", p, resp.StatusCode))
					}
					servedBy[p+"/"+resp.Header.Get("Geode-Region")+"/"+resp.Header.Get("Geode-Reason")]++
				}
				mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	count := func(key string) int { mu.Lock(); defer mu.Unlock(); return servedBy[key] }

	waitFor(t, 5*time.Second, func() bool { return count("before/us-east/local") >= 50 })
	if breaker() != "closed" {
		t.Fatalf("breaker before the fault = %s", breaker())
	}

	east.stop() // us-east's only endpoint dies mid-load
	phase.Store("down")
	waitFor(t, 5*time.Second, func() bool { return count("down/eu-west/failover") >= 50 })
	if got := breaker(); got != "open" && got != "half-open" {
		t.Fatalf("us-east breaker = %s while its endpoint is down, want open", got)
	}

	east.restart()
	phase.Store("back")
	// open_for is 300ms: the breaker half-opens, a probe succeeds, and it closes.
	waitFor(t, 5*time.Second, func() bool { return breaker() == "closed" && count("back/us-east/local") >= 50 })

	close(stop)
	wg.Wait()
	stop = make(chan struct{})
	mu.Lock()
	defer mu.Unlock()
	if len(failures) > 0 {
		t.Fatalf("%d requests failed during failover, e.g. %v", len(failures), failures[:min(3, len(failures))])
	}
	t.Logf("served: %v", servedBy)

	metrics := scrape(t, sc.admin)
	for _, want := range []string{
		`geode_breaker_transitions_total{region="us-east",service="web",to="open"}`,
		`geode_breaker_transitions_total{region="us-east",service="web",to="closed"}`,
		`geode_cross_region_requests_total{dst_region="eu-west",reason="failover",service="web",src_region="us-east"}`,
	} {
		if !containsMetric(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// With every region gone, the client gets a 503 that names the service and what was tried.
func TestNoHealthyRegionNamesServiceAndRegions(t *testing.T) {
	east := startBackend(t, regionHandler("us-east"))
	west := startBackend(t, regionHandler("eu-west"))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr), nil)
	east.stop()
	west.stop()
	resp, body := httpGet(t, http.DefaultClient, "http://"+sc.outbound+"/", "web")
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
	for _, want := range []string{`service "web"`, "us-east (connection failed", "eu-west (connection failed"} {
		if !contains(body, want) {
			t.Errorf("body %q lacks %q", body, want)
		}
	}
	// Once the breakers are open, the body says so.
	for range 5 {
		httpGet(t, http.DefaultClient, "http://"+sc.outbound+"/", "web")
	}
	_, body = httpGet(t, http.DefaultClient, "http://"+sc.outbound+"/", "web")
	if !contains(body, "us-east (circuit open)") {
		t.Errorf("body %q does not report the open breaker", body)
	}
}

// A POST that reached a region which then failed must not be sent again elsewhere; a
// GET may, within the retry budget.
func TestRetryOnlyIdempotentRequestsInAnotherRegion(t *testing.T) {
	var eastCalls atomic.Int32
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		eastCalls.Add(1)
		http.Error(w, "overloaded", http.StatusServiceUnavailable)
	}))
	west := startBackend(t, regionHandler("eu-west"))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr), nil)

	resp, body := httpGet(t, http.DefaultClient, "http://"+sc.outbound+"/", "web")
	if resp.StatusCode != 200 || body != "hello from eu-west" || resp.Header.Get("Geode-Reason") != "failover" {
		t.Fatalf("GET after a 503 in us-east: %d %q reason=%s", resp.StatusCode, body, resp.Header.Get("Geode-Reason"))
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+sc.outbound+"/", nil)
	req.Host = "web"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Geode-Region") != "us-east" {
		t.Fatalf("POST: %d from %s; want us-east's 503 passed on, not a second send", resp.StatusCode, resp.Header.Get("Geode-Region"))
	}
	if got := eastCalls.Load(); got != 2 {
		t.Fatalf("us-east saw %d calls, want 2", got)
	}
}
