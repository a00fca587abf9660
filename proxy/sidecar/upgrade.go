package sidecar

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Protocol upgrades (WebSocket and any other HTTP/1.1 Upgrade). An upgrade request goes
// through the same path as any request — decision, breakers, failover to the next
// region while nothing has connected, session token, span — but its attempt is sent on
// a connection of its own (roundTripUpgrade) instead of a pooled one. When the upstream
// answers 101 Switching Protocols, the client's connection is taken over and the two
// connections are spliced until either side closes (switchProtocols); any other answer
// is passed on like a normal response. The inbound listener does the same toward the
// local app, so an upgrade crosses regions sidecar to sidecar.
//
// Upgraded connections outlive their handler's request timeout: they end when a side
// closes, or when the sidecar's drain timeout is over (tunnels).

// upgradeProtocol returns the protocol an HTTP/1.1 request asks to switch to
// ("Connection: upgrade" and "Upgrade: PROTO"), or "".
func upgradeProtocol(r *http.Request) string {
	if r.ProtoMajor != 1 || !hasToken(r.Header["Connection"], "upgrade") {
		return ""
	}
	return r.Header.Get("Upgrade")
}

// hasToken reports whether a comma-separated header lists token (case-insensitively).
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for f := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(f), token) {
				return true
			}
		}
	}
	return false
}

// upgradedBody is the body of a 101 response: the upstream connection itself, read
// through the reader that parsed the response (it may hold the first bytes of the new
// protocol) and written to directly.
type upgradedBody struct {
	*bufio.Reader
	net.Conn
}

func (b upgradedBody) Read(p []byte) (int, error) { return b.Reader.Read(p) }

// upgradeHandshakeTimeout bounds an upgrade handshake with the upstream (connect, send
// the request, read the answer) when the request has no shorter deadline.
const upgradeHandshakeTimeout = 10 * time.Second

// roundTripUpgrade sends out, an upgrade request to proto, on a new connection to addr
// and reads the answer. A 101 response's Body is an upgradedBody (an io.ReadWriteCloser,
// as with net/http's Transport); any other response's Body closes the connection. ctx
// and upgradeHandshakeTimeout bound the dial and the handshake only. A dial error is a
// *net.OpError with Op "dial", so callers see an unprocessed request as for pooled
// attempts.
func roundTripUpgrade(ctx context.Context, out *http.Request, addr string, connect time.Duration, proto string) (*http.Response, error) {
	d := net.Dialer{Timeout: connect}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	conn.SetDeadline(time.Now().Add(upgradeHandshakeTimeout))
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	out.Header["Connection"] = []string{"Upgrade"}
	out.Header["Upgrade"] = []string{proto}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header["User-Agent"] = []string{""} // none, rather than Go's default
	}
	br := bufio.NewReader(conn)
	resp, err := func() (*http.Response, error) {
		if err := out.Write(conn); err != nil {
			return nil, err
		}
		return http.ReadResponse(br, out)
	}()
	if !stop() || err != nil {
		conn.Close()
		if err == nil {
			resp.Body.Close()
			err = ctx.Err()
		}
		return nil, fmt.Errorf("upgrade to %s: %w", proto, err)
	}
	conn.SetDeadline(time.Time{})
	if resp.StatusCode != http.StatusSwitchingProtocols {
		resp.Body = closeWith{ReadCloser: resp.Body, conn: conn}
		return resp, nil
	}
	if got := resp.Header.Get("Upgrade"); !strings.EqualFold(got, proto) {
		conn.Close()
		return nil, fmt.Errorf("upstream switched to protocol %q when %q was asked for", got, proto)
	}
	resp.Body = upgradedBody{Reader: br, Conn: conn}
	return resp, nil
}

// closeWith closes the connection a non-101 answer to an upgrade came on with its body.
type closeWith struct {
	io.ReadCloser
	conn net.Conn
}

func (c closeWith) Close() error {
	err := c.ReadCloser.Close()
	c.conn.Close()
	return err
}

// switchProtocols answers the client 101 with the upstream's headers (and those already
// set on w, such as the session token), takes over the client's connection and splices
// it with the upstream's until either side closes or the tunnel is closed by a drain.
func (s *Sidecar) switchProtocols(w http.ResponseWriter, resp *http.Response) error {
	up, ok := resp.Body.(upgradedBody)
	if !ok {
		resp.Body.Close()
		return errors.New("101 response without an upgraded connection")
	}
	client, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		up.Close()
		return fmt.Errorf("taking over the client connection: %w", err)
	}
	h := w.Header().Clone()
	copyEndToEnd(h, resp.Header, isPeerOnlyHeader)
	h["Connection"] = []string{"Upgrade"}
	h["Upgrade"] = resp.Header["Upgrade"]
	fmt.Fprintf(brw, "HTTP/1.1 101 %s\r\n", http.StatusText(http.StatusSwitchingProtocols))
	h.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		client.Close()
		up.Close()
		return nil // the client went away
	}
	// After the handshake the client's bytes are the new protocol's: read them past
	// the HTTP/1 guard, from the raw connection (after what the server buffered).
	raw := client
	if gc, ok := client.(*guardConn); ok {
		raw = gc.Conn
	}
	fromClient := io.MultiReader(io.LimitReader(brw.Reader, int64(brw.Reader.Buffered())), raw)
	done := s.tunnels.add(client, up.Conn)
	defer done()
	errc := make(chan error, 2)
	go func() { _, err := io.Copy(up.Conn, fromClient); errc <- err }()
	go func() { _, err := io.Copy(raw, up.Reader); errc <- err }()
	<-errc
	client.Close()
	up.Close()
	<-errc
	return nil
}

// tunnels tracks upgraded connection pairs so that a drain can wait for them, and close
// the ones still open when its time is up (http.Server.Shutdown does not track
// hijacked connections).
type tunnels struct {
	mu    sync.Mutex
	open  map[*tunnel]struct{}
	empty chan struct{} // closed when open becomes empty; nil while it is
}

type tunnel struct{ a, b net.Conn }

func (t *tunnels) add(a, b net.Conn) (done func()) {
	tn := &tunnel{a: a, b: b}
	t.mu.Lock()
	if t.open == nil {
		t.open = map[*tunnel]struct{}{}
	}
	t.open[tn] = struct{}{}
	t.mu.Unlock()
	return func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		delete(t.open, tn)
		if len(t.open) == 0 && t.empty != nil {
			close(t.empty)
			t.empty = nil
		}
	}
}

// drain waits until every tunnel has ended or ctx is done, then closes those left.
func (t *tunnels) drain(ctx context.Context) {
	t.mu.Lock()
	var wait chan struct{}
	if len(t.open) > 0 {
		if t.empty == nil {
			t.empty = make(chan struct{})
		}
		wait = t.empty
	}
	t.mu.Unlock()
	if wait != nil {
		select {
		case <-wait:
		case <-ctx.Done():
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for tn := range t.open {
		tn.a.Close()
		tn.b.Close()
	}
}
