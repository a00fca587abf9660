package profiles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// HeartbeatInterval is how often a Store sends its position and time to its peers when
// serving (see Store.ReplicaLag).
const HeartbeatInterval = 100 * time.Millisecond

const (
	shutdownTimeout = 5 * time.Second
	sendTimeout     = 5 * time.Second
	minBackoff      = 50 * time.Millisecond
	maxBackoff      = time.Second
	maxBatch        = 256 // writes per POST /replicate
)

// Serve serves Handler on ln with HTTP/1.1 and h2c (HTTP/2 prior knowledge, which gRPC
// clients use), and runs one replication sender per peer. When ctx is done it stops gRPC
// streams, shuts the server down gracefully (bounded) and waits for the senders. It
// returns nil after a shutdown caused by ctx, or the server's error. Serve may be called
// once per Store; it closes ln.
func (s *Store) Serve(ctx context.Context, ln net.Listener) error {
	if !s.served.CompareAndSwap(false, true) {
		ln.Close()
		return errors.New("profiles: Serve called twice")
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Handler:           s.handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	// Replication traffic goes straight to the peers, not through the mesh.
	tr := &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: tr, Timeout: sendTimeout}

	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var senders sync.WaitGroup
	for peer, q := range s.queues {
		url := strings.TrimSuffix(s.cfg.Peers[peer], "/") + "/replicate"
		senders.Go(func() { s.send(ctx, client, peer, url, q) })
	}
	if len(s.queues) > 0 {
		senders.Go(func() {
			t := time.NewTicker(HeartbeatInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					s.heartbeat()
				}
			}
		})
	}

	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	var err error
	select {
	case <-ctx.Done():
	case e := <-served: // the listener failed
		err = fmt.Errorf("profiles: serve: %w", e)
		served = nil
	}
	stop()
	s.grpc.Stop() // ends Watch streams, which would otherwise hold Shutdown open
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		srv.Close()
		err = errors.Join(err, fmt.Errorf("profiles: shutdown: %w", serr))
	}
	if served != nil {
		if e := <-served; !errors.Is(e, http.ErrServerClosed) {
			err = errors.Join(err, fmt.Errorf("profiles: serve: %w", e))
		}
	}
	senders.Wait()
	tr.CloseIdleConnections()
	return err
}

// send delivers q's writes to one peer in order, each no earlier than its due time,
// batching those already due, and retries a failed batch with backoff until it succeeds or
// ctx is done. Writes still queued when ctx is done are not sent.
func (s *Store) send(ctx context.Context, client *http.Client, peer, url string, q <-chan delivery) {
	log := s.log.With("peer", peer)
	timer := time.NewTimer(0)
	defer timer.Stop()
	var (
		batch   []writeJSON
		pending *delivery // taken from q while filling a batch but not yet due
	)
	for {
		var d delivery
		if pending != nil {
			d, pending = *pending, nil
		} else {
			select {
			case <-ctx.Done():
				return
			case d = <-q:
			}
		}
		if !sleepUntil(ctx, timer, d.due) {
			return
		}
		batch = append(batch[:0], toWireWrite(d.w))
	fill: // add what is already due; due times are FIFO, so it is next in the queue
		for len(batch) < maxBatch {
			select {
			case next := <-q:
				if time.Until(next.due) > 0 {
					pending = &next
					break fill
				}
				batch = append(batch, toWireWrite(next.w))
			default:
				break fill
			}
		}
		body, err := json.Marshal(replicateJSON{Writes: batch})
		if err != nil {
			log.Error("encoding replication batch", "err", err)
			continue
		}
		for backoff := minBackoff; ; backoff = min(2*backoff, maxBackoff) {
			err := post(ctx, client, url, body)
			if err == nil {
				break
			}
			log.Warn("replication to peer failed, retrying", "err", err, "writes", len(batch), "backoff", backoff)
			if !sleepUntil(ctx, timer, time.Now().Add(backoff)) {
				return
			}
		}
	}
}

func toWireWrite(w write) writeJSON {
	return writeJSON{profileJSON: toJSON(w.Profile), Stamp: w.Stamp, At: w.At, Heartbeat: w.Heartbeat}
}

func post(ctx context.Context, client *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s: %s", url, resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// sleepUntil waits for t using timer; it reports false if ctx ended first.
func sleepUntil(ctx context.Context, timer *time.Timer, t time.Time) bool {
	d := time.Until(t)
	if d <= 0 {
		return ctx.Err() == nil
	}
	timer.Reset(d)
	select {
	case <-ctx.Done():
		return false
	case <-timer.C:
		return true
	}
}
