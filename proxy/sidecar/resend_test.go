package sidecar

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A request whose region's app is down reaches the sidecar there, which says nothing was
// processed; the calling sidecar then sends it, body and all, to the next region — even
// a POST, since nothing ran.
func TestUnprocessedRequestsGoToTheNextRegionWithTheirBody(t *testing.T) {
	deadApp := startBackend(t, regionHandler("dead"))
	deadApp.stop()
	// us-east's sidecar fronts an app that is down.
	eastInbound := startSidecar(t, fmt.Sprintf(strings.Replace(twoRegions, `app: {address: "127.0.0.1:1"}`, `app: {address: "`+deadApp.addr+`"}`, 1), "http1", "127.0.0.1:1", "127.0.0.1:1"), nil)
	west := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "eu-west got %s %q", r.Method, b)
	}))
	caller := startSidecar(t, fmt.Sprintf(twoRegions, "http1", eastInbound.inbound, west.addr), nil)

	for _, method := range []string{http.MethodPut, http.MethodPost} {
		req, _ := http.NewRequest(method, "http://"+caller.outbound+"/users/1", strings.NewReader(`{"name":"ada"}`))
		req.Host = "web"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if want := fmt.Sprintf(`eu-west got %s "{\"name\":\"ada\"}"`, method); resp.StatusCode != 200 || string(b) != want {
			t.Fatalf("%s: %d %q, want %q", method, resp.StatusCode, b, want)
		}
		if resp.Header.Get("Geode-Reason") != "failover" || resp.Header.Get(headerUnprocessed) != "" {
			t.Fatalf("%s: headers %v", method, resp.Header)
		}
	}
}

// An idempotent PUT whose attempt was processed but failed with 503 is sent again, body
// and all, within the retry budget.
func TestIdempotentWriteWithBodyIsRetried(t *testing.T) {
	var eastCalls atomic.Int32
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		eastCalls.Add(1)
		http.Error(w, "busy", http.StatusServiceUnavailable)
	}))
	west := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr), nil)
	req, _ := http.NewRequest(http.MethodPut, "http://"+sc.outbound+"/", strings.NewReader("payload"))
	req.Host = "web"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "payload" || eastCalls.Load() != 1 {
		t.Fatalf("PUT: %d %q (us-east calls %d)", resp.StatusCode, b, eastCalls.Load())
	}
}

// Requests with bodies on one kept-alive connection: every one succeeds and the
// connection is reused (a regression test for a stray 408 after a body).
func TestKeepAliveRequestsWithBodiesReuseTheConnection(t *testing.T) {
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	west := startBackend(t, regionHandler("eu-west"))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr)+"limits: {read_header_timeout: 200ms}\n", nil)
	tr := &http.Transport{MaxConnsPerHost: 1}
	defer tr.CloseIdleConnections()
	c := &http.Client{Transport: tr}
	reused := 0
	for i := range 50 {
		body := fmt.Sprintf(`{"name":"user-%d"}`, i) // no blank line at the end
		req, _ := http.NewRequest(http.MethodPut, "http://"+sc.outbound+"/users/x", strings.NewReader(body))
		req.Host = "web"
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) {
				if info.Reused {
					reused++
				}
			},
		}))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != body {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, b)
		}
		if i%10 == 0 {
			// Idle past the header timeout: an idle connection is not a slow client.
			time.Sleep(250 * time.Millisecond)
		}
	}
	if reused < 45 {
		t.Fatalf("only %d of 50 requests reused the connection", reused)
	}
}
