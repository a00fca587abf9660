package route

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/geodemesh/geode/consistency"
)

// Replica is what this sidecar knows of one region's replica: the newest watermark it
// has seen from that region (on responses, or pulled from the local app), and, for the
// region as an origin, when each of its positions was first seen, which gives the
// replication lag of the other regions. Hints are only as fresh as the traffic that
// carries them; the inbound sidecar of a region remains the authority on what its
// replica has applied.
type Replica struct {
	Region string

	w atomic.Pointer[consistency.Watermark]
	// lastText is the last watermark text observed: the same text again (an app reports
	// its watermark on every response) is nothing new, and is not parsed again.
	lastText atomic.Pointer[string]

	// lag is the replica's own report of its lag behind each origin
	// (consistency.HeaderReplicaLag), with when it was observed; nil until one is.
	lag atomic.Pointer[lagSeen]

	mu      sync.Mutex
	history [64]positionSeen // this region's own positions, as an origin, oldest overwritten
	next    int
	changed chan struct{} // closed and replaced whenever the watermark advances
}

type positionSeen struct {
	pos  consistency.Position
	seen time.Time
}

func newReplica(region string) *Replica {
	r := &Replica{Region: region, changed: make(chan struct{})}
	empty := consistency.Watermark{}
	r.w.Store(&empty)
	return r
}

// Watermark returns the newest watermark seen. It must not be modified.
func (r *Replica) Watermark() consistency.Watermark { return *r.w.Load() }

// Changed returns a channel closed when the watermark next advances.
func (r *Replica) Changed() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.changed
}

// ObserveText merges a watermark in its wire form (the geode-watermark header),
// skipping the parse when the text is the one observed last.
func (r *Replica) ObserveText(text string, now time.Time) error {
	if last := r.lastText.Load(); last != nil && *last == text {
		return nil
	}
	w, err := consistency.ParseWatermark(text)
	if err != nil {
		return err
	}
	r.Observe(w, now)
	seen := text // a copy: taking text's own address would move it to the heap on every call
	r.lastText.Store(&seen)
	return nil
}

// Observe merges a watermark reported by the region's replica at now. Positions only
// move forward within an epoch; a newer epoch replaces an older one.
func (r *Replica) Observe(w consistency.Watermark, now time.Time) {
	if len(w) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	cur := *r.w.Load()
	var next consistency.Watermark
	for origin, p := range w {
		if old, ok := cur[origin]; ok && !newer(p, old) {
			continue
		}
		if next == nil {
			next = make(consistency.Watermark, len(cur)+len(w))
			for o, q := range cur {
				next[o] = q
			}
		}
		next[origin] = p
		if origin == r.Region {
			r.history[r.next%len(r.history)] = positionSeen{pos: p, seen: now}
			r.next++
		}
	}
	if next == nil {
		return
	}
	r.w.Store(&next)
	close(r.changed)
	r.changed = make(chan struct{})
}

// LagOf returns how far replica behind is behind this region's own writes, as origin:
// the time since this region first reported a position that behind has not applied.
// It is zero when behind is caught up as far as is known.
func (r *Replica) LagOf(behind consistency.Watermark, now time.Time) time.Duration {
	applied, ok := behind[r.Region]
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(r.next, len(r.history))
	var oldest time.Time
	for i := range n {
		h := r.history[i]
		if ok && h.pos.Epoch == applied.Epoch && h.pos.Seq <= applied.Seq {
			continue // applied
		}
		if oldest.IsZero() || h.seen.Before(oldest) {
			oldest = h.seen
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return now.Sub(oldest)
}

func newer(p, old consistency.Position) bool {
	return p.Epoch > old.Epoch || p.Epoch == old.Epoch && p.Seq > old.Seq
}

// lagSeen is a replica's lag report and when it was observed.
type lagSeen struct {
	lag consistency.ReplicaLag
	at  time.Time
}

// ObserveLagText records the replica's report of its lag behind each origin, in its
// wire form (the geode-replica-lag header), observed at now. A report older than the one
// held is ignored.
func (r *Replica) ObserveLagText(text string, now time.Time) error {
	l, err := consistency.ParseReplicaLag(text)
	if err != nil {
		return err
	}
	next := &lagSeen{lag: l, at: now}
	for {
		cur := r.lag.Load()
		if cur != nil && cur.at.After(now) {
			return nil
		}
		if r.lag.CompareAndSwap(cur, next) {
			return nil
		}
	}
}

// ReportsLag reports whether the replica has reported its lag (ObserveLagText).
func (r *Replica) ReportsLag() bool { return r.lag.Load() != nil }

// Staleness returns how far the replica is behind origin at now, by its own last lag
// report plus the time since that report (an upper bound: the replica may have caught up
// since, but cannot have fallen further behind than that). reported is false when the
// replica has never reported its lag; known is false when it has but not for origin (it
// has heard nothing from that origin).
func (r *Replica) Staleness(origin string, now time.Time) (lag time.Duration, reported, known bool) {
	ls := r.lag.Load()
	if ls == nil {
		return 0, false, false
	}
	d, ok := ls.lag[origin]
	if !ok {
		return 0, true, false
	}
	return d + max(now.Sub(ls.at), 0), true, true
}
