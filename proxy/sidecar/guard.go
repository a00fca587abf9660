package sidecar

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Go's net/http accepts a request carrying both Transfer-Encoding and Content-Length: it
// silently drops Content-Length, so a handler cannot see that the request was
// smuggling-shaped. It also closes a connection whose headers arrive too slowly without
// answering. guardConn sees the raw bytes of HTTP/1 connections to fix both: it flags a
// header block that has both fields (the handler answers 400 and closes), and answers
// 408 when the header-read deadline fires in the middle of a header block.

type guardListener struct {
	net.Listener
	onTimeout func() // counts 408s
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c, onTimeout: l.onTimeout}, nil
}

type guardConn struct {
	net.Conn
	onTimeout func()

	// Only Read touches the scanner fields; net/http never reads concurrently.
	first     [4]byte // the connection's first bytes, to recognise the HTTP/2 preface
	firstLen  int
	h2        bool
	atLine    bool // at the start of a header line
	lineLen   int
	name      [len("transfer-encoding")]byte
	nameLen   int
	inName    bool
	sawTE     bool
	sawCL     bool
	blockSize int

	smuggled    atomic.Bool // a header block had both Transfer-Encoding and Content-Length
	resetNeeded atomic.Bool // the server went idle: the next byte starts a new request
	// handling is true from the moment a handler starts until the connection is idle
	// again. Deadline errors then are net/http's own (it aborts its background read
	// with a past deadline when a request ends), never a slow client's headers.
	handling atomic.Bool
}

func (c *guardConn) Read(p []byte) (int, error) {
	if c.resetNeeded.CompareAndSwap(true, false) {
		c.atLine, c.lineLen, c.blockSize, c.sawTE, c.sawCL, c.inName = true, 0, 0, false, false, false
	}
	n, err := c.Conn.Read(p)
	if n > 0 && !c.h2 {
		c.scan(p[:n])
	}
	if err != nil && !c.h2 && c.blockSize > 0 && !c.handling.Load() {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// The header deadline fired inside a header block: answer before closing.
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = c.Conn.Write([]byte("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: text/plain\r\nContent-Length: 34\r\n\r\ngeode: request headers too slow.\r\n"))
			c.blockSize = 0
			if c.onTimeout != nil {
				c.onTimeout()
			}
		}
	}
	return n, err
}

const h2Preface = "PRI * HTTP/2.0"

func (c *guardConn) scan(b []byte) {
	if c.h2 {
		return
	}
	if c.firstLen < len(c.first) {
		if c.firstLen == 0 {
			c.atLine = true
		}
		n := copy(c.first[c.firstLen:], b)
		c.firstLen += n
		if c.firstLen == len(c.first) && string(c.first[:]) == h2Preface[:4] {
			c.h2 = true // HTTP/2 frames carry lengths: nothing to smuggle, nothing to scan
			return
		}
	}
	for _, ch := range b {
		c.blockSize++
		switch {
		case ch == '\n':
			if c.lineLen == 0 { // blank line: end of the header block
				if c.sawTE && c.sawCL {
					c.smuggled.Store(true)
				}
				c.sawTE, c.sawCL, c.blockSize = false, false, 0
			}
			c.atLine, c.lineLen, c.inName = true, 0, false
		case ch == '\r':
			// A CR ends a line (with the LF after it) and is otherwise not part of
			// one; inside a name it makes the name none we look for (net/http refuses
			// such a name anyway).
			c.inName = false
		default:
			if c.atLine {
				c.atLine, c.inName, c.nameLen = false, true, 0
			}
			c.lineLen++
			if !c.inName {
				continue
			}
			if ch == ':' {
				c.inName = false
				switch string(c.name[:c.nameLen]) {
				case "transfer-encoding":
					c.sawTE = true
				case "content-length":
					c.sawCL = true
				}
				continue
			}
			if c.nameLen == len(c.name) {
				c.inName = false // longer than any name we look for
				continue
			}
			if 'A' <= ch && ch <= 'Z' {
				ch += 'a' - 'A'
			}
			c.name[c.nameLen] = ch
			c.nameLen++
		}
	}
}

// connState resets the scanner when a connection goes idle between requests, so a body
// that did not end in a blank line is not taken for the next header block.
func connState(c net.Conn, s http.ConnState) {
	if gc, ok := c.(*guardConn); ok && s == http.StateIdle {
		gc.resetNeeded.Store(true)
		gc.handling.Store(false)
	}
}

type connKey struct{}

func connContext(ctx context.Context, c net.Conn) context.Context {
	return context.WithValue(ctx, connKey{}, c)
}

// enterHandler marks r's connection as handling a request, and reports whether that
// connection sent a smuggling-shaped request.
func enterHandler(r *http.Request) (smuggled bool) {
	gc, ok := r.Context().Value(connKey{}).(*guardConn)
	if !ok || r.ProtoMajor != 1 {
		return false
	}
	gc.handling.Store(true)
	return gc.smuggled.Load()
}

// newConnGrace is how long a draining server waits for a new connection's first request.
const newConnGrace = 500 * time.Millisecond

// newConns tracks a server's connections that have not started a request. net/http's
// Shutdown counts such a connection (a client's spare dial, say) as idle only after five
// seconds, longer than a short drain timeout, so the drain closes the ones that have
// been quiet for a grace period itself: none of them holds a request to finish.
type newConns struct {
	mu    sync.Mutex
	since map[net.Conn]time.Time
}

// track is an http.Server ConnState hook.
func (n *newConns) track(c net.Conn, s http.ConnState) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if s != http.StateNew {
		delete(n.since, c)
		return
	}
	if n.since == nil {
		n.since = map[net.Conn]time.Time{}
	}
	n.since[c] = time.Now()
}

// closeQuiet closes the connections that have been new for longer than grace.
func (n *newConns) closeQuiet(grace time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for c, t := range n.since {
		if time.Since(t) > grace {
			c.Close()
			delete(n.since, c)
		}
	}
}
