package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/geodemesh/geode/examples/profiles"
)

func TestGRPCThroughSidecar(t *testing.T) {
	// A profiles store plays the us-east endpoint; eu-west has one too, unused while
	// us-east is healthy.
	east, west := startProfiles(t, "us-east"), startProfiles(t, "eu-west")
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "grpc", east, west), nil)

	client := profiles.NewClient(dialSidecar(t, sc.outbound, "web"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("unary calls keep headers and reach the local region", func(t *testing.T) {
		var hdr metadata.MD
		p, err := client.Put(ctx, "ada", "Ada", "ada@example.com", grpc.Header(&hdr))
		if err != nil {
			t.Fatal(err)
		}
		if p.Version.Origin != "us-east" {
			t.Fatalf("write served by %q, want us-east", p.Version.Origin)
		}
		if got := hdr.Get("geode-region"); len(got) != 1 || got[0] != "us-east" {
			t.Fatalf("geode-region header = %v", got)
		}
		if got := hdr.Get("geode-version"); len(got) != 1 || got[0] != p.Version.String() {
			t.Fatalf("geode-version header = %v, want %s", got, p.Version)
		}
		got, err := client.Get(ctx, "ada")
		if err != nil || got.Name != "Ada" {
			t.Fatalf("Get = %+v, %v", got, err)
		}
	})
	t.Run("an error status passes through intact", func(t *testing.T) {
		_, err := client.Get(ctx, "nobody")
		if status.Code(err) != codes.NotFound || !strings.Contains(status.Convert(err).Message(), `"nobody"`) {
			t.Fatalf("Get(nobody) = %v, want NotFound naming the id", err)
		}
	})
	t.Run("server streaming delivers each message as it happens", func(t *testing.T) {
		w, err := client.Watch(ctx, "grace")
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		for i := range 3 {
			if _, err := client.Put(ctx, "grace", fmt.Sprintf("Grace %d", i), "g@example.com"); err != nil {
				t.Fatal(err)
			}
			p, err := w.Recv() // arrives before the next write: nothing is buffered
			if err != nil || p.Name != fmt.Sprintf("Grace %d", i) {
				t.Fatalf("Recv %d = %+v, %v", i, p, err)
			}
		}
	})
	t.Run("an unknown authority is refused with a gRPC status naming it", func(t *testing.T) {
		cc2, err := grpc.NewClient("passthrough:///"+sc.outbound, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("nope.example"))
		if err != nil {
			t.Fatal(err)
		}
		defer cc2.Close()
		_, err = profiles.NewClient(cc2).Get(ctx, "ada")
		if status.Code(err) != codes.Unimplemented || !strings.Contains(err.Error(), `no service for authority "nope.example"`) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestHTTP1AndH2CThroughSidecar(t *testing.T) {
	east := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Proto", r.Proto)
		w.Header().Set("Trailer", "X-Checksum")
		w.Header().Set("X-Hop-Leak", r.Header.Get("X-Hop"))
		w.Header().Set("X-Keep-Alive-Seen", r.Header.Get("Keep-Alive"))
		w.Write([]byte("echo:" + string(body)))
		w.Header().Set("X-Checksum", fmt.Sprint(len(body)))
	}))
	west := startBackend(t, regionHandler("eu-west"))
	for _, proto := range []string{"http1", "http2"} {
		t.Run(proto, func(t *testing.T) {
			sc := startSidecar(t, fmt.Sprintf(twoRegions, proto, east.addr, west.addr), nil)
			for _, clientProto := range []string{"HTTP/1.1", "HTTP/2.0"} {
				tr := &http.Transport{Protocols: new(http.Protocols)}
				if clientProto == "HTTP/1.1" {
					tr.Protocols.SetHTTP1(true)
				} else {
					tr.Protocols.SetUnencryptedHTTP2(true)
				}
				c := &http.Client{Transport: tr}
				for i := range 3 { // several requests on one kept-alive connection
					req, _ := http.NewRequest(http.MethodPost, "http://"+sc.outbound+"/echo?x=1", strings.NewReader(fmt.Sprintf("ping %d", i)))
					req.Host = "web.example:8080"
					if clientProto == "HTTP/1.1" { // HTTP/2 has no connection-specific headers
						req.Header.Set("Connection", "X-Hop")
						req.Header.Set("X-Hop", "must not be forwarded")
						req.Header.Set("Keep-Alive", "timeout=5")
					}
					resp, err := c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || string(body) != fmt.Sprintf("echo:ping %d", i) {
						t.Fatalf("%s: %d %q", clientProto, resp.StatusCode, body)
					}
					if got := resp.Trailer.Get("X-Checksum"); got != fmt.Sprint(len(fmt.Sprintf("ping %d", i))) {
						t.Fatalf("%s → %s: trailer X-Checksum = %q, trailers %v", clientProto, proto, got, resp.Trailer)
					}
					if resp.Proto != clientProto {
						t.Fatalf("client spoke %s, response is %s", clientProto, resp.Proto)
					}
					wantUp := map[string]string{"http1": "HTTP/1.1", "http2": "HTTP/2.0"}[proto]
					if got := resp.Header.Get("X-Proto"); got != wantUp {
						t.Fatalf("upstream saw %s, want %s", got, wantUp)
					}
					if resp.Header.Get("X-Hop-Leak") != "" || resp.Header.Get("X-Keep-Alive-Seen") != "" {
						t.Fatalf("hop-by-hop headers reached the upstream: %v", resp.Header)
					}
					if resp.Header.Get("Geode-Region") != "us-east" || resp.Header.Get("Geode-Reason") != "local" {
						t.Fatalf("geode headers = %q/%q", resp.Header.Get("Geode-Region"), resp.Header.Get("Geode-Reason"))
					}
				}
				tr.CloseIdleConnections()
			}
		})
	}
}

func TestHTTPProxyModeAbsoluteURI(t *testing.T) {
	east := startBackend(t, regionHandler("us-east"))
	west := startBackend(t, regionHandler("eu-west"))
	sc := startSidecar(t, fmt.Sprintf(twoRegions, "http1", east.addr, west.addr), nil)
	c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(mustURL(t, "http://"+sc.outbound))}}
	resp, body := httpGet(t, c, "http://web/anything", "")
	if resp.StatusCode != 200 || body != "hello from us-east" || resp.Header.Get("X-Seen-Host") != "web" {
		t.Fatalf("proxy mode: %d %q host=%q", resp.StatusCode, body, resp.Header.Get("X-Seen-Host"))
	}
	resp, body = httpGet(t, c, "http://example.com/", "")
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, `no service for authority "example.com"`) {
		t.Fatalf("open proxy? %d %q", resp.StatusCode, body)
	}
}

func startProfiles(t *testing.T, region string) string {
	t.Helper()
	s, err := profiles.New(profiles.Config{Region: region})
	if err != nil {
		t.Fatal(err)
	}
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("profiles %s: %v", region, err)
		}
	})
	return ln.Addr().String()
}

// gRPC calls are classified per method and keyed by metadata: a Put of a key with a home
// region goes there; a Get stays local.
func TestGRPCPolicyByMethodAndMetadata(t *testing.T) {
	east, west := startProfiles(t, "us-east"), startProfiles(t, "eu-west")
	conf := fmt.Sprintf(twoRegions, "grpc", east, west) + policyLines(
		`affinity_key: "grpc:user-id"`,
		`home_regions: "table=ada:eu-west"`,
		`ops: {grpc_reads: ["`+profiles.MethodGet+`", "`+profiles.MethodWatch+`"], grpc_writes: ["`+profiles.MethodPut+`"]}`,
	)
	sc := startSidecar(t, conf, nil)
	client := profiles.NewClient(dialSidecar(t, sc.outbound, "web"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	call := func(user string, fn func(context.Context, ...grpc.CallOption) error) (region, reason string) {
		var hdr metadata.MD
		if err := fn(metadata.AppendToOutgoingContext(ctx, "user-id", user), grpc.Header(&hdr)); err != nil {
			t.Fatal(err)
		}
		return strings.Join(hdr.Get("geode-region"), ","), strings.Join(hdr.Get("geode-reason"), ",")
	}
	put := func(id string) func(context.Context, ...grpc.CallOption) error {
		return func(ctx context.Context, o ...grpc.CallOption) error {
			_, err := client.Put(ctx, id, "n", "e", o...)
			return err
		}
	}
	if region, reason := call("ada", put("ada")); region != "eu-west" || reason != "home-write" {
		t.Fatalf("Put for ada: %s (%s), want eu-west (home-write)", region, reason)
	}
	if region, reason := call("bob", put("bob")); region != "us-east" {
		t.Fatalf("Put for bob, who has no home: %s (%s)", region, reason)
	}
	get := func(ctx context.Context, o ...grpc.CallOption) error {
		_, err := client.Get(ctx, "bob", o...)
		return err
	}
	if region, reason := call("ada", get); region != "us-east" || reason != "local" {
		t.Fatalf("Get (a read) for ada: %s (%s), want local", region, reason)
	}
}

// dialSidecar returns a gRPC client connection that calls authority through the
// sidecar's outbound listener, closed when the test ends.
func dialSidecar(t *testing.T, outbound, authority string) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+authority, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "tcp", outbound)
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}
