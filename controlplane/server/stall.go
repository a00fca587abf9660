package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DefaultSendTimeout is how long a response may wait for a client to make room for it
// before the client is disconnected (Options.SendTimeout).
const DefaultSendTimeout = 30 * time.Second

// Slow clients. A client's queue is bounded by construction: go-control-plane keeps at
// most one pending response per resource type and stream (a watch answers once, and
// the next comes only after the client's next request), and a SnapshotCache answers a
// watch without blocking, so a client that does not read never holds up a push to the
// others. What it does hold is its own stream: a response bigger than the flow-control
// window blocks that stream's sender for as long as the client does not read. The
// stall guard ends such a stream once one response has waited SendTimeout, with
// ResourceExhausted, and counts it; the client reconnects and resyncs like any other.

// stallGuard watches every xDS and LRS stream's sends.
type stallGuard struct {
	timeout      time.Duration
	disconnected atomic.Int64

	mu      sync.Mutex
	streams map[*guardedStream]struct{}
}

func newStallGuard(timeout time.Duration) *stallGuard {
	return &stallGuard{timeout: timeout, streams: map[*guardedStream]struct{}{}}
}

// guardedStream is a grpc.ServerStream whose SendMsg is timed.
type guardedStream struct {
	grpc.ServerStream
	sendingSince atomic.Int64  // unix nanoseconds when the SendMsg in progress started; 0 when none
	stalled      chan struct{} // closed by the sweep when a send has waited too long
}

func (s *guardedStream) SendMsg(m any) error {
	s.sendingSince.Store(time.Now().UnixNano())
	defer s.sendingSince.Store(0)
	return s.ServerStream.SendMsg(m)
}

// intercept is the gRPC stream interceptor. It runs the handler on a goroutine of its
// own so that it can return, and end the stream, while the handler is blocked sending
// to a client that does not read: gRPC then cancels the stream, which unblocks the send,
// and the handler returns (its streams-closed callbacks run as for any ended stream).
func (g *stallGuard) intercept(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if g.timeout <= 0 {
		return handler(srv, ss)
	}
	gs := &guardedStream{ServerStream: ss, stalled: make(chan struct{})}
	g.mu.Lock()
	g.streams[gs] = struct{}{}
	g.mu.Unlock()
	defer func() {
		g.mu.Lock()
		delete(g.streams, gs)
		g.mu.Unlock()
	}()
	done := make(chan error, 1)
	go func() { done <- handler(srv, gs) }()
	select {
	case err := <-done:
		return err
	case <-gs.stalled:
		g.disconnected.Add(1)
		return status.Errorf(codes.ResourceExhausted, "geode control plane: a response waited more than %s for this client to read; disconnected as too slow", g.timeout)
	}
}

// sweep marks the streams whose send has waited longer than the timeout at now.
func (g *stallGuard) sweep(now time.Time) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for gs := range g.streams {
		since := gs.sendingSince.Load()
		if since != 0 && now.Sub(time.Unix(0, since)) > g.timeout {
			close(gs.stalled)
			delete(g.streams, gs)
		}
	}
}

// run sweeps until ctx is done, often enough to end a stalled stream within a quarter
// of the timeout (at most a second) after it is due.
func (g *stallGuard) run(ctx context.Context) {
	if g.timeout <= 0 {
		return
	}
	t := time.NewTicker(min(g.timeout/4, time.Second))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			g.sweep(now)
		}
	}
}
