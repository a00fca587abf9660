package sidecar

import (
	"sync"
	"time"

	"github.com/geodemesh/geode/affinity"
)

// Decision is one routing decision as /debug/decisions shows it.
type Decision struct {
	Time       time.Time `json:"time"`
	Service    string    `json:"service"`
	Method     string    `json:"method"`
	Path       string    `json:"path"`
	Op         string    `json:"op"`
	Level      string    `json:"level"`
	Candidates []string  `json:"candidates"`
	Region     string    `json:"region,omitempty"`
	Reason     string    `json:"reason"`
	Attempts   int       `json:"attempts"`
	Status     int       `json:"status"`
	DurationMS float64   `json:"duration_ms"`
	TraceID    string    `json:"trace_id,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// decisionLog keeps the last N decisions in a ring, and lends the scratch space a
// decision is made in (so that making one does not allocate).
type decisionLog struct {
	mu    sync.Mutex
	ring  []Decision
	next  int
	full  bool
	spare sync.Pool // *scratch
}

// scratch is the per-request space of a decision.
type scratch struct {
	req   affinity.Request
	cands affinity.Candidates
}

func newDecisionLog(n int) *decisionLog {
	return &decisionLog{ring: make([]Decision, n), spare: sync.Pool{New: func() any { return new(scratch) }}}
}

func (l *decisionLog) scratch() *scratch { return l.spare.Get().(*scratch) }

func (l *decisionLog) release(d *scratch) {
	*d = scratch{}
	l.spare.Put(d)
}

func (l *decisionLog) add(d Decision) {
	l.mu.Lock()
	l.ring[l.next] = d
	l.next++
	if l.next == len(l.ring) {
		l.next, l.full = 0, true
	}
	l.mu.Unlock()
}

// recent returns up to n decisions, newest first.
func (l *decisionLog) recent(n int) []Decision {
	l.mu.Lock()
	defer l.mu.Unlock()
	size := l.next
	if l.full {
		size = len(l.ring)
	}
	n = min(n, size)
	out := make([]Decision, 0, n)
	for i := 1; i <= n; i++ {
		out = append(out, l.ring[(l.next-i+len(l.ring))%len(l.ring)])
	}
	return out
}
