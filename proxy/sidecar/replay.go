package sidecar

import (
	"errors"
	"io"
	"sync"
)

// maxReplay is how much of a request body the sidecar keeps so that it can send the
// request again to another region (Linkerd keeps 64 KiB for the same reason). Bodies
// stream through as they arrive; larger ones are simply not resent.
const maxReplay = 64 << 10

var errStaleAttempt = errors.New("geode: request body belongs to a newer attempt")

var errReplayLost = errors.New("geode: request body is too large to send again")

// replayBody is the client's request body shared by the attempts of one request. Each
// attempt reads it through its own reader from the start: bytes already read come from
// the kept copy, the rest from the client. Only the newest attempt may read: an older
// one that a transport is still draining in the background gets an error, so two
// attempts never interleave. Bytes an older attempt pulled from the client are kept for
// the newer one.
//
// readMu serialises reads (one blocking read of the client at a time); mu guards the
// state and is never held across a read of the client, so attempt, replayable and
// touched never wait for a slow client.
type replayBody struct {
	readMu sync.Mutex
	src    io.ReadCloser

	mu       sync.Mutex
	kept     []byte
	total    int  // bytes read from the client so far
	overflow bool // more than maxReplay bytes were read: cannot be sent again
	srcDone  bool
	current  int // the attempt allowed to read
}

func newReplayBody(src io.ReadCloser, contentLength int64) *replayBody {
	b := &replayBody{src: src}
	if contentLength > 0 && contentLength <= maxReplay {
		b.kept = make([]byte, 0, contentLength)
	}
	return b
}

// attempt returns a reader for a new attempt, starting at the first byte, or false
// when the body can no longer be sent from its start.
func (b *replayBody) attempt() (io.ReadCloser, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.overflow {
		return nil, false
	}
	b.current++
	return &attemptBody{b: b, id: b.current}, true
}

// touched reports whether any attempt has read from the body.
func (b *replayBody) touched() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total > 0 || b.srcDone
}

// replayable reports whether the body can still be sent again from its start.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

type attemptBody struct {
	b   *replayBody
	id  int
	pos int // only this attempt's reader touches it
}

func (a *attemptBody) Read(p []byte) (int, error) {
	b := a.b
	b.readMu.Lock()
	defer b.readMu.Unlock()

	b.mu.Lock()
	switch {
	case a.id != b.current:
		b.mu.Unlock()
		return 0, errStaleAttempt
	case a.pos < b.total:
		if b.overflow {
			b.mu.Unlock()
			return 0, errReplayLost
		}
		n := copy(p, b.kept[a.pos:])
		a.pos += n
		b.mu.Unlock()
		return n, nil
	case b.srcDone:
		b.mu.Unlock()
		return 0, io.EOF
	}
	b.mu.Unlock()

	n, err := b.src.Read(p)

	b.mu.Lock()
	b.total += n
	if !b.overflow && n > 0 {
		if len(b.kept)+n <= maxReplay {
			b.kept = append(b.kept, p[:n]...)
		} else {
			b.overflow, b.kept = true, nil
		}
	}
	if err == io.EOF {
		b.srcDone = true
	}
	current := b.current
	b.mu.Unlock()
	if a.id != current {
		return 0, errStaleAttempt // the bytes are kept for the newer attempt
	}
	a.pos += n
	return n, err
}

// Close is left to the server, which owns the client's body.
func (a *attemptBody) Close() error { return nil }
