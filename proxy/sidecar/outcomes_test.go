package sidecar

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodemesh/geode/proxy/route"
)

// The outcomes the control plane gets: ok is a success, a 503 and a refused connection
// are failures, a client that went away is neither; a take resets the counts.
func TestTakeOutcomesCountsAttemptResults(t *testing.T) {
	var mode atomic.Value // "ok", "503", "slow"
	mode.Store("ok")
	release := make(chan struct{})
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch mode.Load().(string) {
		case "503":
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		case "slow":
			select {
			case <-release:
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}
		regionHandler("us-east").ServeHTTP(w, r)
	}))
	west := startBackend(t, regionHandler("eu-west"))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr), nil)
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(ctx context.Context) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+sc.outbound+"/", nil)
		req.Host = "web"
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	take := func() (east, west route.Outcome) {
		m := sc.TakeOutcomes()
		return m["web"]["us-east"], m["web"]["eu-west"]
	}
	take() // the readiness probe routes nothing, but start clean

	for range 3 {
		get(context.Background())
	}
	if e, w := take(); e != (route.Outcome{Success: 3}) || w != (route.Outcome{}) {
		t.Fatalf("3 ok: us-east %+v, eu-west %+v; want us-east 3 successes", e, w)
	}
	if e, w := take(); e != (route.Outcome{}) || w != (route.Outcome{}) {
		t.Fatalf("second take: us-east %+v, eu-west %+v; want reset", e, w)
	}

	mode.Store("503")
	get(context.Background()) // 503 in us-east, retried in eu-west
	if e, w := take(); e != (route.Outcome{Failure: 1}) || w != (route.Outcome{Success: 1}) {
		t.Fatalf("503: us-east %+v, eu-west %+v; want us-east 1 failure, eu-west 1 success", e, w)
	}

	east.stop()
	get(context.Background()) // connection refused in us-east, sent to eu-west
	if e, w := take(); e != (route.Outcome{Failure: 1}) || w != (route.Outcome{Success: 1}) {
		t.Fatalf("connect error: us-east %+v, eu-west %+v; want us-east 1 failure, eu-west 1 success", e, w)
	}
	east.restart()
	mode.Store("slow")
	time.Sleep(ejectFor) // the refused endpoint's ejection ends

	// The client goes away while us-east works on its request: not a failure.
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	get(ctx)
	cancel()
	var e, w route.Outcome
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) { // the sidecar records the attempt after the client left
		time.Sleep(100 * time.Millisecond)
		de, dw := take()
		e.Success, e.Failure, w.Success, w.Failure = e.Success+de.Success, e.Failure+de.Failure, w.Success+dw.Success, w.Failure+dw.Failure
	}
	close(release)
	_, metrics := httpGet(t, client, "http://"+sc.admin+"/metrics", "")
	if want := `geode_upstream_attempts_total{region="us-east",result="canceled",service="web"} 1`; !strings.Contains(metrics, want) {
		t.Fatalf("/metrics lacks %s: the cancellation case did not happen", want)
	}
	if e != (route.Outcome{}) || w != (route.Outcome{}) {
		t.Fatalf("client cancellation: us-east %+v, eu-west %+v; want nothing counted", e, w)
	}
}
