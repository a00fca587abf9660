package upstream

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// H1 is an HTTP/1.1 transport with a pool of kept-alive connections per address.
// It implements http.RoundTripper for requests whose URL host is host:port.
type H1 struct {
	// Dialer dials new connections; its Timeout bounds connecting.
	Dialer net.Dialer
	// IdleTimeout closes connections idle for longer; 0 means 90s.
	IdleTimeout time.Duration
	// MaxIdlePerHost bounds the idle connections kept per address; 0 means 256.
	MaxIdlePerHost int

	mu     sync.Mutex
	idle   map[string][]*conn
	closed bool
}

// ErrUpgrade is returned for responses that switch protocols, which H1 does not relay.
var ErrUpgrade = errors.New("upstream: protocol upgrades are not supported")

// errNothingWritten marks a failure before any byte of the request left.
var errNothingWritten = errors.New("upstream: connection closed before the request was written")

type conn struct {
	nc        net.Conn
	br        *bufio.Reader
	bw        *bufio.Writer
	addr      string
	idleSince time.Time
}

const (
	defaultIdleTimeout    = 90 * time.Second
	defaultMaxIdlePerHost = 256
)

// RoundTrip sends req and returns its response. The response body must be read to the
// end or closed; reading it to the end returns the connection to the pool.
func (t *H1) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL == nil || req.URL.Host == "" {
		return nil, errors.New("upstream: request has no host")
	}
	ctx := req.Context()
	for try := 0; ; try++ {
		c, reused, err := t.get(ctx, req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, c, req)
		if err == nil {
			return resp, nil
		}
		c.nc.Close()
		// A kept-alive connection the server closed at the moment we took it: try once
		// more on a fresh one when that cannot send the request twice.
		if reused && try == 0 && ctx.Err() == nil && (errors.Is(err, errNothingWritten) || req.Body == nil && idempotent(req.Method)) {
			continue
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, err
	}
}

// exchange writes req on c and reads the response head.
func (t *H1) exchange(ctx context.Context, c *conn, req *http.Request) (*http.Response, error) {
	// Interrupt blocking I/O when the request's context ends.
	stop := context.AfterFunc(ctx, func() { c.nc.SetDeadline(time.Unix(1, 0)) })
	if err := writeRequest(c.bw, req); err != nil {
		stop()
		return nil, err
	}
	for {
		resp, err := http.ReadResponse(c.br, req)
		if err != nil {
			stop()
			return nil, fmt.Errorf("upstream: reading response from %s: %w", c.addr, err)
		}
		switch {
		case resp.StatusCode == http.StatusSwitchingProtocols:
			stop()
			return nil, ErrUpgrade
		case resp.StatusCode >= 100 && resp.StatusCode < 200:
			continue // 1xx informational: the final response follows
		}
		resp.Body = &body{rc: resp.Body, t: t, c: c, stop: stop, reusable: !resp.Close && !req.Close}
		return resp, nil
	}
}

// writeRequest writes req in HTTP/1.1 wire form: the caller has already removed
// hop-by-hop headers. A request whose body length is unknown is sent chunked.
func writeRequest(bw *bufio.Writer, req *http.Request) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	bw.WriteString(req.Method)
	bw.WriteByte(' ')
	bw.WriteString(req.URL.RequestURI())
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(host)
	bw.WriteString("\r\n")
	for k, vv := range req.Header {
		if k == "Host" || k == "Content-Length" || k == "Transfer-Encoding" {
			continue
		}
		for _, v := range vv {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	chunked := false
	switch {
	case req.Body == nil || req.ContentLength == 0:
		if req.Method == http.MethodPost || req.Method == http.MethodPut || req.Method == http.MethodPatch {
			bw.WriteString("Content-Length: 0\r\n")
		}
	case req.ContentLength > 0:
		bw.WriteString("Content-Length: ")
		bw.WriteString(strconv.FormatInt(req.ContentLength, 10))
		bw.WriteString("\r\n")
	default:
		chunked = true
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	bw.WriteString("\r\n")
	if req.Body == nil || req.ContentLength == 0 {
		if err := bw.Flush(); err != nil {
			return fmt.Errorf("%w: %v", errNothingWritten, err)
		}
		return nil
	}
	// Send the head before the body, so an upstream that answers early is not kept waiting.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("%w: %v", errNothingWritten, err)
	}
	var w io.Writer = bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(bw)
		w = cw
	}
	n, err := io.Copy(w, req.Body)
	if err != nil {
		return fmt.Errorf("upstream: sending request body: %w", err)
	}
	if !chunked && n != req.ContentLength {
		return fmt.Errorf("upstream: request body had %d bytes, Content-Length said %d", n, req.ContentLength)
	}
	if chunked {
		cw.Close()
		bw.WriteString("\r\n") // no trailers
	}
	return bw.Flush()
}

// get returns an idle connection to addr that is still open, or dials a new one.
func (t *H1) get(ctx context.Context, addr string) (*conn, bool, error) {
	idleTimeout := t.IdleTimeout
	if idleTimeout == 0 {
		idleTimeout = defaultIdleTimeout
	}
	now := time.Now()
	for {
		t.mu.Lock()
		list := t.idle[addr]
		if len(list) == 0 {
			t.mu.Unlock()
			break
		}
		c := list[len(list)-1]
		list[len(list)-1] = nil
		t.idle[addr] = list[:len(list)-1]
		t.mu.Unlock()
		if now.Sub(c.idleSince) < idleTimeout && open(c.nc) {
			return c, true, nil
		}
		c.nc.Close()
	}
	nc, err := t.Dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10), bw: bufio.NewWriterSize(nc, 16<<10), addr: addr}, false, nil
}

// put returns c to the pool, or closes it when the pool is full or closed.
func (t *H1) put(c *conn) {
	if c.br.Buffered() > 0 { // the server sent more than the response: unusable
		c.nc.Close()
		return
	}
	c.nc.SetDeadline(time.Time{})
	c.idleSince = time.Now()
	max := t.MaxIdlePerHost
	if max == 0 {
		max = defaultMaxIdlePerHost
	}
	t.mu.Lock()
	if t.closed || len(t.idle[c.addr]) >= max {
		t.mu.Unlock()
		c.nc.Close()
		return
	}
	if t.idle == nil {
		t.idle = map[string][]*conn{}
	}
	t.idle[c.addr] = append(t.idle[c.addr], c)
	t.mu.Unlock()
}

// CloseIdleConnections closes every idle connection.
func (t *H1) CloseIdleConnections() {
	t.mu.Lock()
	idle := t.idle
	t.idle = nil
	t.mu.Unlock()
	for _, list := range idle {
		for _, c := range list {
			c.nc.Close()
		}
	}
}

// open reports whether an idle connection is still open: a non-blocking peek sees
// EOF (or an error) on a connection the server closed, and EAGAIN on a live one.
func open(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = n < 0 && errors.Is(err, syscall.EAGAIN) // no data pending, not closed
		return true                                     // never wait
	})
	return err == nil && alive
}

// body returns its connection to the pool once the response has been read to the end.
type body struct {
	rc       io.ReadCloser
	t        *H1
	c        *conn
	stop     func() bool
	reusable bool
	done     bool
}

func (b *body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.finish(true)
	} else if err != nil {
		b.finish(false)
	}
	return n, err
}

func (b *body) Close() error {
	b.finish(false)
	return nil
}

func (b *body) finish(complete bool) {
	if b.done {
		return
	}
	b.done = true
	interrupted := !b.stop() // the context ended and its deadline fired on the conn
	if complete && b.reusable && !interrupted {
		b.t.put(b.c)
		return
	}
	b.c.nc.Close()
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
