package sidecar

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
)

// lagApp is an app whose replica lag the test sets; it reports it on every response and
// on GET /watermark.
type lagApp struct{ lag atomic.Value } // string, the geode-replica-lag header

func (a *lagApp) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set(consistency.HeaderReplicaLag, a.lag.Load().(string))
	w.Header().Set(consistency.HeaderWatermark, "eu-west:1:1")
}

// The inbound sidecar is the authority on bounded staleness too: a read its replica
// reports itself too far behind for is answered 421 naming the region it lags, a caller
// that cannot go there gets it served flagged, and a replica within the bound serves.
func TestInboundAnswers421WhenTheReplicaIsBeyondTheBound(t *testing.T) {
	app := &lagApp{}
	app.lag.Store("us-east=2000")
	backend := startBackend(t, app)
	conf := strings.Replace(policyConfig("eu-west", "127.0.0.1:1", "127.0.0.1:1", policyLines("consistency: bounded-staleness=300ms"), nil),
		`app: {address: "127.0.0.1:1"}`, `app: {address: "`+backend.addr+`", watermark_path: /watermark}`, 1)
	sc := runSidecar(t, Options{Config: parseConfig(t, conf), Outbound: listen(t), Inbound: listen(t), Admin: listen(t)})
	call := func(method string, degradedOK bool) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+sc.inbound+"/users/x", nil)
		req.Host = "web"
		if degradedOK {
			req.Header.Set(headerAcceptDegraded, "staleness")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	waitFor(t, 5*time.Second, func() bool { return call(http.MethodGet, false).StatusCode == http.StatusMisdirectedRequest })
	if resp := call(http.MethodGet, false); resp.Header.Get(headerRegionHint) != "us-east" {
		t.Fatalf("421 names %q, want us-east", resp.Header.Get(headerRegionHint))
	}
	if resp := call(http.MethodGet, true); resp.StatusCode != http.StatusOK || resp.Header.Get(headerDegraded) != "staleness" {
		t.Fatalf("a caller that cannot go elsewhere: %s, Geode-Degraded %q; want 200 flagged staleness", resp.Status, resp.Header.Get(headerDegraded))
	}
	if resp := call(http.MethodPut, false); resp.StatusCode != http.StatusOK {
		t.Fatalf("a write was judged by staleness: %s", resp.Status)
	}
	exposition := scrape(t, sc.admin)
	for _, series := range []string{`geode_staleness_beyond_bound_total{result="misdirected",service="web"}`, `geode_staleness_beyond_bound_total{result="degraded",service="web"}`} {
		if !containsMetric(exposition, series) {
			t.Fatalf("metrics lack %s", series)
		}
	}

	// The replica catches up: the sidecar's pulls of the app's report see it, and it serves.
	app.lag.Store("us-east=40")
	waitFor(t, 5*time.Second, func() bool { return call(http.MethodGet, false).StatusCode == http.StatusOK })
	if resp := call(http.MethodGet, false); resp.Header.Get(headerDegraded) != "" {
		t.Fatalf("a replica within the bound flagged its read: %q", resp.Header.Get(headerDegraded))
	}
}
