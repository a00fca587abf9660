package profiles

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/geodemesh/geode/consistency"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitNoLeaks(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitNoLeaks polls until no goroutine of this package, net/http or gRPC is left.
func waitNoLeaks(bound time.Duration) string {
	deadline := time.Now().Add(bound)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if strings.Contains(g, "waitNoLeaks") {
				continue
			}
			if strings.Contains(g, "examples/profiles.") || strings.Contains(g, "net/http.") ||
				strings.Contains(g, "google.golang.org/grpc") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type instance struct {
	store *Store
	addr  string // host:port
	url   string // http://host:port
}

// startRegions runs one Store per region on loopback, each peered with all others.
func startRegions(t *testing.T, lag time.Duration, regions ...string) map[string]*instance {
	t.Helper()
	return startConfiguredRegions(t, func(c *Config) { c.Lag = lag }, regions...)
}

// startConfiguredRegions is startRegions with each region's Config adjusted by configure.
func startConfiguredRegions(t *testing.T, configure func(*Config), regions ...string) map[string]*instance {
	t.Helper()
	lns := map[string]net.Listener{}
	for _, r := range regions {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns[r] = ln
	}
	out := map[string]*instance{}
	for _, r := range regions {
		peers := map[string]string{}
		for _, p := range regions {
			if p != r {
				peers[p] = "http://" + lns[p].Addr().String()
			}
		}
		cfg := Config{Region: r, Peers: peers}
		configure(&cfg)
		s, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Serve(ctx, lns[r]) }()
		t.Cleanup(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s: Serve: %v", r, err)
				}
			case <-time.After(10 * time.Second):
				t.Errorf("%s: Serve did not return", r)
			}
		})
		addr := lns[r].Addr().String()
		out[r] = &instance{store: s, addr: addr, url: "http://" + addr}
	}
	return out
}

func httpClient(t *testing.T, h2c bool) *http.Client {
	tr := &http.Transport{}
	if h2c {
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr.Protocols = &p
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 5 * time.Second}
}

func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, map[string]string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]string
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: body %q: %v", method, url, raw, err)
	}
	return resp, m
}

func watermarkOf(t *testing.T, resp *http.Response) consistency.Watermark {
	t.Helper()
	wm, err := consistency.ParseWatermark(resp.Header.Get(consistency.HeaderWatermark))
	if err != nil {
		t.Fatal(err)
	}
	return wm
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty region", Config{}, "region: must not be empty"},
		{"region with colon", Config{Region: "us:east"}, "must not contain"},
		{"negative lag", Config{Region: "a", Lag: -time.Second}, "lag: must not be negative"},
		{"negative peer lag", Config{Region: "a", Peers: map[string]string{"b": "http://x:1"}, PeerLag: map[string]time.Duration{"b": -time.Second}}, `peerLag["b"]: must not be negative`},
		{"peer lag for a non-peer", Config{Region: "a", PeerLag: map[string]time.Duration{"b": time.Second}}, `peerLag["b"]: not a peer`},
		{"peer is self", Config{Region: "a", Peers: map[string]string{"a": "http://x:1"}}, `peers["a"]: is this instance's own region`},
		{"peer url", Config{Region: "a", Peers: map[string]string{"b": "x:1"}}, `peers["b"]: want an http(s)://host:port`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func TestWriteIsVisibleInOtherRegionsOnlyAfterLag(t *testing.T) {
	const lag = 200 * time.Millisecond
	regions := startRegions(t, lag, "us-east", "eu-west", "ap-south")
	c := httpClient(t, false)
	a, b := regions["us-east"], regions["eu-west"]

	start := time.Now()
	resp, got := do(t, c, "PUT", a.url+"/users/ada", `{"name":"Ada","email":"ada@example.com"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("PUT: %d %v", resp.StatusCode, got)
	}
	v, err := consistency.ParseVersion(resp.Header.Get(consistency.HeaderVersion))
	if err != nil {
		t.Fatal(err)
	}
	if want := (consistency.Version{Origin: "us-east", Position: consistency.Position{Epoch: 1, Seq: 1}}); v != want || got["version"] != want.String() {
		t.Fatalf("version: header %v, body %q, want %v", v, got["version"], want)
	}
	if !watermarkOf(t, resp).Covers(v) || !a.store.Watermark().Covers(v) {
		t.Fatalf("origin's watermark does not cover its own write %v", v)
	}

	t.Run("not visible in another region immediately", func(t *testing.T) {
		resp, body := do(t, c, "GET", b.url+"/users/ada", "")
		if resp.StatusCode != 404 || !strings.Contains(body["error"], "ada") {
			t.Fatalf("GET: %d %v, want 404 naming the id", resp.StatusCode, body)
		}
		if watermarkOf(t, resp).Covers(v) {
			t.Fatalf("watermark %s covers %v before the lag", resp.Header.Get(consistency.HeaderWatermark), v)
		}
	})

	t.Run("visible after the lag, with a watermark that covers it", func(t *testing.T) {
		for _, r := range []string{"eu-west", "ap-south"} {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			for {
				resp, body := do(t, c, "GET", regions[r].url+"/users/ada", "")
				if resp.StatusCode == 200 {
					if elapsed := time.Since(start); elapsed < lag {
						t.Errorf("%s: visible after %v, before the lag %v", r, elapsed, lag)
					}
					if body["name"] != "Ada" || body["version"] != v.String() || resp.Header.Get(HeaderRegion) != r {
						t.Errorf("%s: got %v region %q", r, body, resp.Header.Get(HeaderRegion))
					}
					if !watermarkOf(t, resp).Covers(v) || !regions[r].store.Watermark().Covers(v) {
						t.Errorf("%s: watermark %s does not cover %v", r, resp.Header.Get(consistency.HeaderWatermark), v)
					}
					break
				}
				select {
				case <-ctx.Done():
					t.Fatalf("%s: write %v not replicated: %v", r, v, ctx.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	})
}

func TestPeerLagDelaysOnlyThatPeer(t *testing.T) {
	const lag, slow = 20 * time.Millisecond, 700 * time.Millisecond
	regions := startConfiguredRegions(t, func(c *Config) {
		c.Lag = lag
		if c.Region != "us-west" {
			c.PeerLag = map[string]time.Duration{"us-west": slow}
		}
	}, "us-east", "eu-west", "us-west")
	c := httpClient(t, false)
	start := time.Now()
	resp, _ := do(t, c, "PUT", regions["us-east"].url+"/users/ada", `{"name":"Ada","email":"ada@example.com"}`)
	v, err := consistency.ParseVersion(resp.Header.Get(consistency.HeaderVersion))
	if err != nil {
		t.Fatal(err)
	}
	// eu-west has it after about lag; us-west not before slow.
	deadline := time.Now().Add(slow / 2)
	for !regions["eu-west"].store.Watermark().Covers(v) {
		if time.Now().After(deadline) {
			t.Fatalf("eu-west: %v not applied within %v (its lag is %v)", v, slow/2, lag)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if regions["us-west"].store.Watermark().Covers(v) {
		t.Fatalf("us-west applied %v after %v, before its peer lag %v", v, time.Since(start), slow)
	}
	deadline = time.Now().Add(3 * time.Second)
	for !regions["us-west"].store.Watermark().Covers(v) {
		if time.Now().After(deadline) {
			t.Fatalf("us-west: %v never applied", v)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if elapsed := time.Since(start); elapsed < slow {
		t.Errorf("us-west applied %v after %v, before its peer lag %v", v, elapsed, slow)
	}
}

func TestConcurrentWritesConverge(t *testing.T) {
	regions := startRegions(t, 50*time.Millisecond, "us-east", "eu-west")
	a, b := regions["us-east"].store, regions["eu-west"].store
	a.Put("bob", "Bob A", "a@example.com")
	b.Put("bob", "Bob B", "b@example.com")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for {
		pa, _ := a.Get("bob")
		pb, _ := b.Get("bob")
		wa, wb := a.Watermark(), b.Watermark()
		if wa.String() == wb.String() {
			// Equal Lamport stamps: the larger origin name ("us-east") wins on both sides.
			if pa != pb || pa.Name != "Bob A" {
				t.Fatalf("diverged or wrong winner: %+v vs %+v", pa, pb)
			}
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no convergence: %s vs %s", wa, wb)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func TestApplyOrderDuplicatesAndGaps(t *testing.T) {
	s, err := New(Config{Region: "a"})
	if err != nil {
		t.Fatal(err)
	}
	w := func(seq, stamp uint64, name string) write {
		return write{Stamp: stamp, Profile: Profile{ID: "x", Name: name, Version: consistency.Version{
			Origin: "b", Position: consistency.Position{Epoch: 1, Seq: seq}}}}
	}
	s.apply([]write{w(1, 5, "one"), w(2, 6, "two"), w(1, 5, "one again")})
	if p, _ := s.Get("x"); p.Name != "two" || s.Watermark()["b"].Seq != 2 {
		t.Fatalf("after 1,2,dup(1): %+v, watermark %s", p, s.Watermark())
	}
	if p := s.Put("x", "local", ""); p.Version.Seq != 1 {
		t.Fatalf("local seq: %+v", p)
	}
	s.apply([]write{w(4, 3, "stale stamp")}) // gap: 3 missing; older stamp loses
	if p, _ := s.Get("x"); p.Name != "local" {
		t.Fatalf("older Lamport stamp replaced a newer local write: %+v", p)
	}
	s.apply([]write{w(5, uint64(time.Now().Add(time.Hour).UnixMilli()), "five")}) // a later stamp wins
	if p, _ := s.Get("x"); p.Name != "five" || s.Watermark()["b"].Seq != 2 {
		t.Fatalf("after gap: %+v, watermark %s (want frozen at b:1:2)", p, s.Watermark())
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	s, err := New(Config{Region: "a", QueueSize: 1, Peers: map[string]string{"b": "http://127.0.0.1:1"}})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		s.Put("x", "n", "e") // not serving: nothing drains the queue
	}
	if got := s.Dropped(); got != 2 {
		t.Fatalf("Dropped = %d, want 2", got)
	}
}

func TestReplicationRetriesWhilePeerFails(t *testing.T) {
	b, err := New(Config{Region: "b"})
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) <= 2 {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		b.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(flaky.Close)
	regions := startRegionsWith(t, Config{Region: "a", Peers: map[string]string{"b": flaky.URL}})
	v := regions.store.Put("x", "n", "e").Version
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	for !b.Watermark().Covers(v) {
		select {
		case <-ctx.Done():
			t.Fatalf("not delivered after %d calls: %v", calls.Load(), ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	if calls.Load() < 3 {
		t.Fatalf("calls = %d, want >= 3", calls.Load())
	}
}

// startRegionsWith serves one Store built from cfg.
func startRegionsWith(t *testing.T, cfg Config) *instance {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &instance{store: s, addr: ln.Addr().String(), url: "http://" + ln.Addr().String()}
}

func TestHTTP1AndH2C(t *testing.T) {
	a := startRegions(t, 0, "us-east")["us-east"]
	for _, tc := range []struct {
		name  string
		h2c   bool
		major int
	}{{"HTTP/1.1", false, 1}, {"h2c", true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			c := httpClient(t, tc.h2c)
			resp, body := do(t, c, "PUT", a.url+"/users/"+tc.name[:2], `{"name":"N","email":"e"}`)
			if resp.ProtoMajor != tc.major || resp.StatusCode != 200 || resp.Header.Get(consistency.HeaderVersion) == "" {
				t.Fatalf("PUT: proto %d status %d headers %v", resp.ProtoMajor, resp.StatusCode, resp.Header)
			}
			resp, got := do(t, c, "GET", a.url+"/users/"+tc.name[:2], "")
			if resp.StatusCode != 200 || got["version"] != body["version"] || resp.Header.Get(HeaderRegion) != "us-east" {
				t.Fatalf("GET: %d %v %v", resp.StatusCode, got, resp.Header)
			}
			resp, got = do(t, c, "GET", a.url+"/watermark", "")
			if wm := watermarkOf(t, resp).String(); resp.StatusCode != 200 || got["watermark"] != wm || wm == "" {
				t.Fatalf("GET /watermark: %d %v header %q", resp.StatusCode, got, wm)
			}
			if resp, _ := do(t, c, "GET", a.url+"/healthz", ""); resp.StatusCode != 200 {
				t.Fatalf("healthz: %d", resp.StatusCode)
			}
			if resp, _ := do(t, c, "PUT", a.url+"/users/x", `{"nmae":"typo"}`); resp.StatusCode != 400 {
				t.Fatalf("PUT with unknown field: %d, want 400", resp.StatusCode)
			}
		})
	}
}

func TestGRPC(t *testing.T) {
	regions := startRegions(t, 50*time.Millisecond, "us-east", "eu-west")
	conn := func(addr string) *Client {
		cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		return NewClient(cc)
	}
	east, west := conn(regions["us-east"].addr), conn(regions["eu-west"].addr)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	watch, err := east.Watch(watchCtx, "grace")
	if err != nil {
		t.Fatal(err)
	}

	var hdr metadata.MD
	p, err := east.Put(ctx, "grace", "Grace", "grace@example.com", grpc.Header(&hdr))
	if err != nil {
		t.Fatal(err)
	}
	if got := hdr.Get(HeaderRegion); len(got) != 1 || got[0] != "us-east" || len(hdr.Get(consistency.HeaderWatermark)) != 1 {
		t.Fatalf("Put header metadata: region %q watermark %q", hdr.Get(HeaderRegion), hdr.Get(consistency.HeaderWatermark))
	}
	if got := hdr.Get(consistency.HeaderVersion); len(got) != 1 || got[0] != p.Version.String() || p.Version.Origin != "us-east" {
		t.Fatalf("Put: profile %+v, geode-version %v", p, got)
	}
	got, err := east.Get(ctx, "grace")
	if err != nil || got != p {
		t.Fatalf("Get: %+v, %v; want %+v", got, err, p)
	}
	_, err = east.Get(ctx, "nobody")
	if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), `"nobody"`) {
		t.Fatalf("Get unknown: %v, want NotFound naming the id", err)
	}
	_, _ = east.Put(ctx, "other", "not watched", "")

	t.Run("watch streams local and replicated writes", func(t *testing.T) {
		if u, err := watch.Recv(); err != nil || u != p {
			t.Fatalf("first update: %+v, %v; want %+v", u, err, p)
		}
		// Write in eu-west after it has seen the us-east write, so the new write wins.
		for {
			if _, err := west.Get(ctx, "grace"); err == nil {
				break
			} else if status.Code(err) != codes.NotFound {
				t.Fatal(err)
			}
			select {
			case <-ctx.Done():
				t.Fatal("not replicated to eu-west")
			case <-time.After(10 * time.Millisecond):
			}
		}
		q, err := west.Put(ctx, "grace", "Grace H.", "gh@example.com")
		if err != nil {
			t.Fatal(err)
		}
		if u, err := watch.Recv(); err != nil || u != q {
			t.Fatalf("replicated update: %+v, %v; want %+v", u, err, q)
		}
		stopWatch()
		if _, err := watch.Recv(); status.Code(err) != codes.Canceled {
			t.Fatalf("after cancel: %v, want Canceled", err)
		}
	})
}

// Guard against a slow Watch client blocking writers: its stream is closed instead.
func TestSlowWatcherIsClosed(t *testing.T) {
	s, err := New(Config{Region: "a"})
	if err != nil {
		t.Fatal(err)
	}
	ch, cancel := s.watch("")
	defer cancel()
	for i := range watchBuffer + 1 {
		s.Put(fmt.Sprint(i), "", "")
	}
	n := 0
	for range ch {
		n++
	}
	if n != watchBuffer {
		t.Fatalf("got %d updates before close, want %d", n, watchBuffer)
	}
}
