package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countingServer is an httptest server that counts the connections it accepted.
func countingServer(t *testing.T, h http.Handler) (*httptest.Server, *atomic.Int32) {
	return countingServerIdle(t, h, 0)
}

func countingServerIdle(t *testing.T, h http.Handler, idle time.Duration) (*httptest.Server, *atomic.Int32) {
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(h)
	srv.Config.IdleTimeout = idle
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv, &conns
}

func do(t *testing.T, tr *H1, method, url string, body io.Reader, contentLength int64) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = contentLength
	if body == nil {
		req.Body = nil
	}
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	resp.Body.Close()
	return resp, string(b)
}

func TestH1FramingAndReuse(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-TE", strings.Join(r.TransferEncoding, ","))
		w.Header().Set("X-CL", fmt.Sprint(r.ContentLength))
		w.Header().Set("X-Host", r.Host)
		if r.URL.Query().Get("chunked") != "" {
			w.(http.Flusher).Flush() // forces a chunked response
		}
		fmt.Fprintf(w, "%s %s %s", r.Method, r.URL.RequestURI(), b)
	}))
	tr := &H1{}
	defer tr.CloseIdleConnections()
	addr := srv.Listener.Addr().String()

	resp, body := do(t, tr, http.MethodPost, "http://"+addr+"/a?x=1", strings.NewReader("hello"), 5)
	if body != "POST /a?x=1 hello" || resp.Header.Get("X-CL") != "5" {
		t.Fatalf("content-length body: %q %v", body, resp.Header)
	}
	resp, body = do(t, tr, http.MethodPut, "http://"+addr+"/b", io.MultiReader(strings.NewReader("chu"), strings.NewReader("nked")), -1)
	if body != "PUT /b chunked" || resp.Header.Get("X-TE") != "chunked" {
		t.Fatalf("chunked body: %q %v", body, resp.Header)
	}
	_, body = do(t, tr, http.MethodGet, "http://"+addr+"/c?chunked=1", nil, 0)
	if body != "GET /c?chunked=1 " {
		t.Fatalf("chunked response: %q", body)
	}
	resp, body = do(t, tr, http.MethodHead, "http://"+addr+"/d", nil, 0)
	if body != "" || resp.StatusCode != 200 {
		t.Fatalf("HEAD: %d %q", resp.StatusCode, body)
	}
	resp, _ = do(t, tr, http.MethodPost, "http://"+addr+"/e", nil, 0)
	if resp.Header.Get("X-CL") != "0" {
		t.Fatalf("an empty POST must say Content-Length: 0, server saw %q", resp.Header.Get("X-CL"))
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for sequential requests, want 1 (kept alive)", n)
	}

	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/f", nil)
	req.Host = "profiles.example"
	r2, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.Header.Get("X-Host") != "profiles.example" {
		t.Fatalf("Host = %q", r2.Header.Get("X-Host"))
	}
}

func TestH1DoesNotReuseAConnectionWithAnUnreadBody(t *testing.T) {
	srv, conns := countingServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(strings.Repeat("x", 100_000)))
	}))
	tr := &H1{}
	defer tr.CloseIdleConnections()
	for range 2 {
		req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Read(make([]byte, 10))
		resp.Body.Close() // abandoned mid-body: the connection is not clean
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("%d connections, want 2: a half-read connection must not be reused", n)
	}
}

func TestH1NoticesAnIdleConnectionTheServerClosed(t *testing.T) {
	srv, conns := countingServerIdle(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok"))
	}), 50*time.Millisecond)
	tr := &H1{}
	defer tr.CloseIdleConnections()
	for i := range 3 {
		req, _ := http.NewRequest(http.MethodPost, srv.URL, nil) // not idempotent: must not fail
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("request %d after the server closed the idle connection: %v", i, err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		time.Sleep(150 * time.Millisecond) // the server closes the idle connection
	}
	if n := conns.Load(); n != 3 {
		t.Fatalf("%d connections, want 3", n)
	}
}

// rawServer answers each connection with a fixed byte string after reading a request head.
func rawServer(t *testing.T, reply string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				io.WriteString(c, reply)
				time.Sleep(2 * time.Second)
			}()
		}
	}()
	return ln.Addr().String()
}

func TestH1SkipsInformationalAndRefusesUpgrades(t *testing.T) {
	tr := &H1{}
	defer tr.CloseIdleConnections()
	addr := rawServer(t, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	_, body := do(t, tr, http.MethodGet, "http://"+addr+"/", nil, 0)
	if body != "ok" {
		t.Fatalf("body after a 103: %q", body)
	}
	addr = rawServer(t, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	if _, err := tr.RoundTrip(req); !errors.Is(err, ErrUpgrade) {
		t.Fatalf("upgrade: %v", err)
	}
}

func TestH1CancelInterruptsAHungUpstream(t *testing.T) {
	addr := rawServer(t, "") // reads the request, never answers
	tr := &H1{}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/", nil)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > time.Second {
		t.Fatalf("err %v after %v, want the deadline within a second", err, time.Since(start))
	}
}

func TestH1ConnectErrorIsADialOpError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/", nil)
	_, err := (&H1{}).RoundTrip(req)
	var op *net.OpError
	if !errors.As(err, &op) || op.Op != "dial" {
		t.Fatalf("err %v, want a dial *net.OpError (callers treat it as nothing sent)", err)
	}
}
