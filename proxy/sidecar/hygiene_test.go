package sidecar

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// rawExchange writes raw bytes on a fresh connection and returns the first response
// and whether the server then closed the connection.
func rawExchange(t *testing.T, addr, raw string) (*http.Response, bool) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("reading response to %q: %v", raw, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	// A closed connection reads EOF at once; an open one times out.
	conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err = br.ReadByte()
	return resp, err == io.EOF
}

func TestListenerRefusesMalformedAndAbusiveRequests(t *testing.T) {
	east := startBackend(t, regionHandler("us-east"))
	west := startBackend(t, regionHandler("eu-west"))
	cfg := fmt.Sprintf(twoRegions, "http1", east.addr, west.addr) + "limits: {max_header_bytes: 4096, read_header_timeout: 300ms}\n"
	sc := startSidecar(t, cfg, nil)

	for _, tc := range []struct {
		name, raw  string
		wantStatus int
	}{
		{"Transfer-Encoding with Content-Length is smuggling-shaped",
			"POST / HTTP/1.1\r\nHost: web\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", http.StatusBadRequest},
		{"the same with odd case and order",
			"POST / HTTP/1.1\r\nHost: web\r\ntRaNsFeR-eNcOdInG: chunked\r\ncontent-length: 4\r\n\r\n0\r\n\r\n", http.StatusBadRequest},
		{"oversized headers",
			"GET / HTTP/1.1\r\nHost: web\r\nX-Big: " + strings.Repeat("a", 8192) + "\r\n\r\n", http.StatusRequestHeaderFieldsTooLarge},
		{"CONNECT is never tunnelled",
			"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", http.StatusMethodNotAllowed},
		{"unknown authority",
			"GET / HTTP/1.1\r\nHost: evil.example\r\n\r\n", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, closed := rawExchange(t, sc.outbound, tc.raw)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus != http.StatusNotFound && !closed {
				t.Fatal("connection left open after a malformed request")
			}
		})
	}
	t.Run("slow headers get 408 and the connection closed", func(t *testing.T) {
		resp, closed := rawExchange(t, sc.outbound, "GET / HTTP/1.1\r\nHost: web\r\nX-Slow: ") // never finished
		if resp.StatusCode != http.StatusRequestTimeout || !closed {
			t.Fatalf("status %d closed=%v, want 408 and closed", resp.StatusCode, closed)
		}
	})
	t.Run("a chunked request alone is fine and the connection is kept", func(t *testing.T) {
		resp, closed := rawExchange(t, sc.outbound, "POST / HTTP/1.1\r\nHost: web\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
		if resp.StatusCode != 200 || closed {
			t.Fatalf("status %d closed=%v", resp.StatusCode, closed)
		}
	})
	if m := scrape(t, sc.admin); !containsMetric(m, `geode_rejected_requests_total{cause="malformed",listener="outbound"}`) ||
		!containsMetric(m, `geode_rejected_requests_total{cause="header_timeout",listener="outbound"}`) ||
		!containsMetric(m, `geode_rejected_requests_total{cause="unknown_service",listener="outbound"}`) {
		t.Errorf("rejections not counted:\n%s", m)
	}
}

func TestInboundDropsGeodeHeadersFromUntrustedPeers(t *testing.T) {
	app := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Saw-Session", r.Header.Get("Geode-Session"))
		w.Header().Set("X-Saw-Other", r.Header.Get("X-Other"))
	}))
	base := fmt.Sprintf(strings.Replace(twoRegions, `app: {address: "127.0.0.1:1"}`, `app: {address: "%s"%s}`, 1), app.addr, "%s", "http1", app.addr, app.addr)
	for _, tc := range []struct {
		name, trusted, wantSession string
	}{
		{"loopback is a trusted peer by default", "", "forged-or-not"},
		{"a peer outside trusted_peers cannot set geode-* headers", `, trusted_peers: ["10.0.0.0/8"]`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := startSidecar(t, fmt.Sprintf(base, tc.trusted), nil)
			req, _ := http.NewRequest(http.MethodGet, "http://"+sc.inbound+"/", nil)
			req.Header.Set("Geode-Session", "forged-or-not")
			req.Header.Set("X-Other", "kept")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := resp.Header.Get("X-Saw-Session"); got != tc.wantSession {
				t.Fatalf("app saw geode-session %q, want %q", got, tc.wantSession)
			}
			if resp.Header.Get("X-Saw-Other") != "kept" {
				t.Fatal("other headers must pass")
			}
		})
	}
}

func TestSpansDescribeTheRegionHopAndPropagate(t *testing.T) {
	var seenParent string
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable) // forces a failover attempt
	}))
	west := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenParent = r.Header.Get("Traceparent")
	}))
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr), tp)

	req, _ := http.NewRequest(http.MethodGet, "http://"+sc.outbound+"/", nil)
	req.Host = "web"
	const callerTrace = "4bf92f3577b34da6a3ce929d0e0e4736"
	req.Header.Set("Traceparent", "00-"+callerTrace+"-00f067aa0ba902b7-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans := rec.Ended()
	attrs := func(s sdktrace.ReadOnlySpan) map[attribute.Key]string {
		m := map[attribute.Key]string{}
		for _, kv := range s.Attributes() {
			m[kv.Key] = kv.Value.String()
		}
		return m
	}
	var attempts []map[attribute.Key]string
	var request map[attribute.Key]string
	for _, s := range spans {
		if s.SpanContext().TraceID().String() != callerTrace {
			t.Fatalf("span %q is not in the caller's trace", s.Name())
		}
		if strings.HasPrefix(s.Name(), "geode attempt") {
			attempts = append(attempts, attrs(s))
		} else {
			request = attrs(s)
		}
	}
	if len(attempts) != 2 {
		t.Fatalf("%d attempt spans, want 2 (us-east, then eu-west)", len(attempts))
	}
	if a := attempts[1]; a["geode.dst_region"] != "eu-west" || a["geode.cross_region"] != "true" || a["geode.reason"] != "failover" || a["geode.src_region"] != "us-east" {
		t.Fatalf("failover attempt span: %v", a)
	}
	if request["geode.dst_region"] != "eu-west" || request["geode.reason"] != "failover" || request["geode.cross_region"] != "true" {
		t.Fatalf("request span: %v", request)
	}
	if !strings.Contains(seenParent, callerTrace) {
		t.Fatalf("upstream got traceparent %q, want the caller's trace", seenParent)
	}
}

func TestGracefulShutdownDrainsInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		<-release
		w.Write([]byte("finished"))
	}))
	west := startBackend(t, regionHandler("eu-west"))
	c := parseConfig(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr))
	out := listen(t)
	s, err := New(Options{Config: c, Outbound: out})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()

	result := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, "http://"+out.Addr().String()+"/", nil)
		req.Host = "web"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			result <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		result <- string(b)
	}()
	<-started
	cancel() // SIGTERM: stop accepting, drain
	waitFor(t, 5*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", out.Addr().String(), 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	close(release)
	if got := <-result; got != "finished" {
		t.Fatalf("in-flight request got %q, want it to finish", got)
	}
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// A connection that never sends a request (a client's spare dial) does not hold the
// drain up: net/http alone would wait five seconds for it, past a short drain timeout.
func TestShutdownClosesConnectionsThatNeverSentARequest(t *testing.T) {
	west := startBackend(t, regionHandler("eu-west"))
	east := startBackend(t, regionHandler("us-east"))
	c := parseConfig(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr)+"limits: {drain_timeout: 2s}\n")
	out, adm := listen(t), listen(t)
	s, err := New(Options{Config: c, Outbound: out, Admin: adm})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 5*time.Second, func() bool { return s.ready.Load() })

	var quiet []net.Conn
	for _, ln := range []net.Listener{out, adm} {
		conn, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		quiet = append(quiet, conn)
	}
	time.Sleep(50 * time.Millisecond) // let the servers accept them
	start := time.Now()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v (after %s)", err, time.Since(start))
	}
	t.Logf("drained in %s with %d quiet connections open", time.Since(start).Round(time.Millisecond), len(quiet))
	for _, conn := range quiet {
		conn.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatalf("quiet connection to %s still open after the drain", conn.RemoteAddr())
		}
	}
}
