package sidecar

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/websocket"
)

// wsEcho is a WebSocket server that answers each message with "REGION:message".
func wsEcho(region string) http.Handler {
	return websocket.Handler(func(ws *websocket.Conn) {
		for {
			var msg string
			if err := websocket.Message.Receive(ws, &msg); err != nil {
				return
			}
			if err := websocket.Message.Send(ws, region+":"+msg); err != nil {
				return
			}
		}
	})
}

// wsDial opens a WebSocket to the service at authority through the sidecar listening
// on addr.
func wsDial(t *testing.T, addr, authority string) *websocket.Conn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := websocket.NewConfig("ws://"+authority+"/echo", "http://"+authority)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	ws, err := websocket.NewClient(cfg, conn)
	if err != nil {
		conn.Close()
		t.Fatalf("WebSocket handshake through the sidecar: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	return ws
}

func wsRoundTrip(t *testing.T, ws *websocket.Conn, msg string) string {
	t.Helper()
	if err := websocket.Message.Send(ws, msg); err != nil {
		t.Fatalf("send %q: %v", msg, err)
	}
	var got string
	if err := websocket.Message.Receive(ws, &got); err != nil {
		t.Fatalf("receive after %q: %v", msg, err)
	}
	return got
}

// rawUpgrade sends a WebSocket handshake to addr for authority and returns the answer's
// status and headers.
func rawUpgrade(t *testing.T, addr, authority string) *http.Response {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET /echo HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nOrigin: http://%s\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", authority, authority)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// upgradeSidecar runs a sidecar whose web service has endpoints east and west, whose
// app is app, with an inbound listener, and a drain timeout of drain.
// stop cancels the sidecar and returns Run's error, once the sidecar has stopped.
func upgradeSidecar(t *testing.T, east, west, app string, in net.Listener, drain time.Duration) (sc *running, stop func() error) {
	t.Helper()
	yaml := strings.Replace(fmt.Sprintf(twoRegions, "http1", east, west), `app: {address: "127.0.0.1:1"}`, `app: {address: "`+app+`"}`, 1) +
		fmt.Sprintf("limits: {drain_timeout: %s}\n", drain)
	s, err := New(Options{Config: parseConfig(t, yaml), Outbound: listen(t), Inbound: in, Admin: listen(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	stop = sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			return errors.New("the sidecar did not stop within 5s")
		}
	})
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Error(err)
		}
	})
	waitFor(t, 5*time.Second, func() bool { return s.ready.Load() })
	return &running{Sidecar: s, outbound: s.Addr(listenerOutbound).String(), inbound: in.Addr().String(), admin: s.Addr("admin").String()}, stop
}

// WebSockets (HTTP/1.1 Upgrade) go through the sidecar like any call: routed by region,
// failed over while nothing has connected, stamped with the serving region, and — from
// the outbound listener through a peer's inbound listener to its app — spliced both ways.
func TestWebSocketThroughSidecars(t *testing.T) {
	eastApp := startBackend(t, wsEcho("us-east"))
	westApp := startBackend(t, wsEcho("eu-west"))

	t.Run("outbound to a peer's inbound to its app", func(t *testing.T) {
		in := listen(t) // us-east's endpoint is this sidecar's own inbound listener
		sc, _ := upgradeSidecar(t, in.Addr().String(), westApp.addr, eastApp.addr, in, time.Second)
		resp := rawUpgrade(t, sc.outbound, "web")
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Geode-Region") != "us-east" || resp.Header.Get("Geode-Reason") != "local" ||
			!strings.EqualFold(resp.Header.Get("Upgrade"), "websocket") || resp.Header.Get("Sec-Websocket-Accept") == "" {
			t.Fatalf("handshake answer: %s %v", resp.Status, resp.Header)
		}
		ws := wsDial(t, sc.outbound, "web")
		for i := range 3 {
			msg := fmt.Sprintf("hello %d", i)
			if got := wsRoundTrip(t, ws, msg); got != "us-east:"+msg {
				t.Fatalf("got %q, want us-east:%s", got, msg)
			}
		}
	})

	t.Run("failover while nothing has connected", func(t *testing.T) {
		dead := listen(t)
		deadAddr := dead.Addr().String()
		dead.Close() // us-east refuses connections
		sc, _ := upgradeSidecar(t, deadAddr, westApp.addr, eastApp.addr, listen(t), time.Second)
		resp := rawUpgrade(t, sc.outbound, "web")
		if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Geode-Region") != "eu-west" || resp.Header.Get("Geode-Reason") != "failover" {
			t.Fatalf("handshake answer with us-east refusing: %s %v", resp.Status, resp.Header)
		}
		if got := wsRoundTrip(t, wsDial(t, sc.outbound, "web"), "hi"); got != "eu-west:hi" {
			t.Fatalf("got %q", got)
		}
	})

	t.Run("an upstream that does not upgrade is answered as is", func(t *testing.T) {
		plain := startBackend(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no websockets here", http.StatusUpgradeRequired)
		}))
		sc, _ := upgradeSidecar(t, plain.addr, westApp.addr, eastApp.addr, listen(t), time.Second)
		resp := rawUpgrade(t, sc.outbound, "web")
		if resp.StatusCode != http.StatusUpgradeRequired || resp.Header.Get("Geode-Region") != "us-east" {
			t.Fatalf("answer: %s %v", resp.Status, resp.Header)
		}
	})

	t.Run("drain waits for open WebSockets, then closes them", func(t *testing.T) {
		sc, stop := upgradeSidecar(t, eastApp.addr, westApp.addr, eastApp.addr, listen(t), 400*time.Millisecond)
		ws := wsDial(t, sc.outbound, "web")
		if got := wsRoundTrip(t, ws, "before"); got != "us-east:before" {
			t.Fatalf("got %q", got)
		}
		start := time.Now()
		stopped := make(chan error, 1)
		go func() { stopped <- stop() }()
		// Within the drain the WebSocket still works.
		time.Sleep(50 * time.Millisecond)
		if got := wsRoundTrip(t, ws, "during"); got != "us-east:during" {
			t.Fatalf("during the drain: got %q", got)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Run: %v (an open WebSocket must not hold the drain past its timeout)", err)
		}
		took := time.Since(start)
		ws.SetDeadline(time.Now().Add(2 * time.Second))
		var msg string
		if err := websocket.Message.Receive(ws, &msg); err == nil {
			t.Fatal("the WebSocket is still open after the drain")
		}
		if took < 300*time.Millisecond {
			t.Fatalf("drain ended after %s: it did not wait for the open WebSocket", took)
		}
		t.Logf("drain with an open WebSocket took %s (timeout 400ms)", took.Round(time.Millisecond))
	})
}
