package sidecar

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/geodemesh/geode/proxy/config"
)

// running is a sidecar serving on loopback for one test.
type running struct {
	*Sidecar
	outbound, inbound, admin string
}

// startSidecar parses yaml (listener addresses are bound by the harness), runs the
// sidecar until the test ends, and waits for it to be ready.
func startSidecar(t *testing.T, yaml string, tp trace.TracerProvider) *running {
	t.Helper()
	c := parseConfig(t, yaml)
	out, in, adm := listen(t), listen(t), listen(t)
	return runSidecar(t, Options{Config: c, TracerProvider: tp, Outbound: out, Inbound: in, Admin: adm})
}

// runSidecar runs a sidecar with pre-bound listeners until the test ends.
func runSidecar(t *testing.T, opts Options) *running {
	t.Helper()
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("sidecar did not stop within 10s")
		}
	})
	r := &running{Sidecar: s, outbound: opts.Outbound.Addr().String(), inbound: opts.Inbound.Addr().String(), admin: opts.Admin.Addr().String()}
	waitFor(t, 5*time.Second, func() bool {
		resp, err := http.Get("http://" + r.admin + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return r
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// backend is an HTTP server (HTTP/1.1 and h2c) that can be stopped and started again
// on the same address, to play a region's endpoint going away and coming back.
type backend struct {
	t       *testing.T
	addr    string
	handler http.Handler
	srv     *http.Server
	done    chan struct{}
}

func startBackend(t *testing.T, h http.Handler) *backend {
	b := &backend{t: t, handler: h}
	b.start(listen(t))
	t.Cleanup(b.stop)
	return b
}

func (b *backend) start(ln net.Listener) {
	b.addr = ln.Addr().String()
	b.srv = &http.Server{Handler: b.handler, Protocols: new(http.Protocols)}
	b.srv.Protocols.SetHTTP1(true)
	b.srv.Protocols.SetUnencryptedHTTP2(true)
	b.done = make(chan struct{})
	go func() {
		defer close(b.done)
		if err := b.srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			b.t.Errorf("backend %s: %v", b.addr, err)
		}
	}()
}

// stop closes the listener and every connection at once, like a crashed process.
func (b *backend) stop() {
	if b.srv == nil {
		return
	}
	b.srv.Close()
	<-b.done
	b.srv = nil
}

// restart starts the backend again on its old address.
func (b *backend) restart() {
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.t.Fatalf("restart %s: %v", b.addr, err)
	}
	b.start(ln)
}

func waitFor(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// regionHandler answers with the region it plays, so tests can see who served.
func regionHandler(region string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Served-By", region)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Write([]byte("hello from " + region))
	})
}

// twoRegions is a config with the local region us-east and eu-west 81 ms away; %s are
// the us-east and eu-west endpoint addresses.
const twoRegions = `
region: us-east
listeners: {outbound: "127.0.0.1:1"}
app: {address: "127.0.0.1:1"}
regions:
  - name: us-east
    rtt: {eu-west: 81ms}
  - name: eu-west
debug: {reason_header: true}
services:
  - name: web
    authorities: [web, web.example]
    protocol: %s
    endpoints:
      us-east: ["%s"]
      eu-west: ["%s"]
    breaker: {consecutive_failures: 3, open_for: 300ms}
`

func httpGet(t *testing.T, c *http.Client, url, host string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET %s (Host %s): %v", url, host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func scrape(t *testing.T, admin string) string {
	t.Helper()
	_, body := httpGet(t, http.DefaultClient, "http://"+admin+"/metrics", "")
	return body
}

// containsMetric reports whether a Prometheus text exposition has a sample with exactly
// this name and label set and a value above zero.
func containsMetric(exposition, series string) bool {
	for line := range strings.SplitSeq(exposition, "\n") {
		if rest, ok := strings.CutPrefix(line, series+" "); ok && rest != "0" {
			return true
		}
	}
	return false
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

func parseConfig(t *testing.T, yaml string) *config.Config {
	t.Helper()
	c, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return c
}
