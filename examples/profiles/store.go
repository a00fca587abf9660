package profiles

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"

	"github.com/geodemesh/geode/consistency"
)

// HeaderRegion names the region that served a response (DESIGN.md, wire names).
const HeaderRegion = "geode-region"

// DefaultQueueSize is the per-peer replication queue bound when Config.QueueSize is 0.
const DefaultQueueSize = 1024

// watchBuffer is how many updates a Watch stream may fall behind before it is closed.
const watchBuffer = 64

// Config configures one regional instance.
type Config struct {
	Region    string            // this instance's region, e.g. "us-east"
	Epoch     uint64            // this origin's epoch (default 1)
	Lag       time.Duration     // delay before a write is sent to the other regions
	Peers     map[string]string // region → base URL ("http://127.0.0.1:port") of the other regions
	QueueSize int               // per-peer replication queue bound (default DefaultQueueSize)
	Logger    *slog.Logger      // nil discards
	// PeerLag overrides Lag for the peers it names (region → delay before a write is
	// sent to that peer), e.g. to make one region's replica lag far behind the others.
	// Every key must be in Peers.
	PeerLag map[string]time.Duration
}

// Profile is one user profile with the version of the write that produced it.
type Profile struct {
	ID      string
	Name    string
	Email   string
	Version consistency.Version
}

// write is one accepted write, as stored and as replicated, or a heartbeat: the origin's
// position at a time, sent down the same stream so that a replica knows how current it
// is while the origin writes nothing (Heartbeat, no ID).
type write struct {
	Profile
	Stamp     uint64 // Lamport timestamp, for the conflict rule
	At        int64  // the origin's wall clock when it took the write (or sent the heartbeat), unix ms
	Heartbeat bool
}

// wins reports whether w replaces cur under the conflict rule (see doc.go).
func (w write) wins(cur write) bool {
	if w.Stamp != cur.Stamp {
		return w.Stamp > cur.Stamp
	}
	return w.Version.Origin > cur.Version.Origin
}

// delivery is a write queued for a peer, sendable from due on.
type delivery struct {
	due time.Time
	w   write
}

// originState is how far this replica has applied one other origin's writes.
type originState struct {
	epoch  uint64
	seen   uint64 // highest seq applied
	mark   uint64 // watermark: every seq up to mark is applied
	broken bool   // a gap was seen: mark is frozen
	asOf   int64  // unix ms: this replica has every write the origin took up to then
}

type watcher struct {
	prefix string
	ch     chan Profile
}

// Store is one regional instance of the profile service. See doc.go for its contract.
type Store struct {
	cfg     Config
	log     *slog.Logger
	queues  map[string]chan delivery // peer region → queue; fixed after New
	grpc    *grpc.Server
	handler http.Handler
	served  atomic.Bool
	dropped atomic.Uint64

	mu       sync.Mutex
	profiles map[string]write
	seq      uint64 // this origin's last seq
	clock    uint64 // hybrid logical clock (Lamport, floored by wall-clock milliseconds)
	origins  map[string]*originState
	watchers map[*watcher]struct{}
}

// New validates cfg and returns a Store. It starts no goroutines; see Serve.
func New(cfg Config) (*Store, error) {
	if cfg.Epoch == 0 {
		cfg.Epoch = 1
	}
	if cfg.QueueSize == 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("profiles: invalid configuration: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		cfg:      cfg,
		log:      cfg.Logger.With("region", cfg.Region),
		queues:   make(map[string]chan delivery, len(cfg.Peers)),
		profiles: map[string]write{},
		origins:  map[string]*originState{},
		watchers: map[*watcher]struct{}{},
	}
	for peer := range cfg.Peers {
		s.queues[peer] = make(chan delivery, cfg.QueueSize)
	}
	s.grpc = grpc.NewServer()
	s.grpc.RegisterService(newServiceDesc(), grpcService{s: s})
	s.handler = s.newHandler()
	return s, nil
}

func (c Config) validate() error {
	var errs []error
	if err := checkRegion(c.Region); err != nil {
		errs = append(errs, fmt.Errorf("region: %w", err))
	}
	if c.Lag < 0 {
		errs = append(errs, fmt.Errorf("lag: must not be negative, got %v", c.Lag))
	}
	if c.QueueSize < 0 {
		errs = append(errs, fmt.Errorf("queueSize: must not be negative, got %d", c.QueueSize))
	}
	for region, lag := range c.PeerLag {
		if _, ok := c.Peers[region]; !ok {
			errs = append(errs, fmt.Errorf("peerLag[%q]: not a peer", region))
		}
		if lag < 0 {
			errs = append(errs, fmt.Errorf("peerLag[%q]: must not be negative, got %v", region, lag))
		}
	}
	for region, base := range c.Peers {
		if err := checkRegion(region); err != nil {
			errs = append(errs, fmt.Errorf("peers[%q]: %w", region, err))
		} else if region == c.Region {
			errs = append(errs, fmt.Errorf("peers[%q]: is this instance's own region", region))
		}
		u, err := url.Parse(base)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("peers[%q]: want an http(s)://host:port base URL, got %q", region, base))
		}
	}
	return errors.Join(errs...)
}

func checkRegion(r string) error {
	if r == "" {
		return errors.New("must not be empty")
	}
	if strings.ContainsAny(r, ":, \t") {
		return fmt.Errorf("%q must not contain ':', ',' or spaces (it appears in versions)", r)
	}
	return nil
}

// Get returns the profile stored under id.
func (s *Store) Get(id string) (Profile, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	w, ok := s.profiles[id]
	return w.Profile, ok
}

// Put writes a profile locally, with this region as origin, and queues it for every peer.
// It returns the stored profile, whose Version is the write's version.
func (s *Store) Put(id, name, email string) Profile {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	// A hybrid logical clock: at least the wall clock in milliseconds, so a replica
	// that restarted empty does not stamp new writes below ones it never saw.
	s.clock = max(s.clock+1, uint64(time.Now().UnixMilli()))
	w := write{
		Profile: Profile{ID: id, Name: name, Email: email, Version: consistency.Version{
			Origin:   s.cfg.Region,
			Position: consistency.Position{Epoch: s.cfg.Epoch, Seq: s.seq},
		}},
		Stamp: s.clock, // the largest stamp this replica has seen: always wins locally
		At:    time.Now().UnixMilli(),
	}
	s.store(w)
	s.enqueueLocked(w)
	return w.Profile
}

// heartbeat sends this origin's current position and time to every peer, down the
// replication stream, so that their replicas know how current they are (ReplicaLag)
// while this origin writes nothing. Serve sends one every HeartbeatInterval.
func (s *Store) heartbeat() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.enqueueLocked(write{
		Profile:   Profile{Version: consistency.Version{Origin: s.cfg.Region, Position: consistency.Position{Epoch: s.cfg.Epoch, Seq: s.seq}}},
		At:        time.Now().UnixMilli(),
		Heartbeat: true,
	})
}

// enqueueLocked queues w for every peer, due after that peer's lag. Called under s.mu,
// so each peer queue holds this origin's writes in seq order. A full queue drops the
// write (counted; a heartbeat is not counted: the next one replaces it).
func (s *Store) enqueueLocked(w write) {
	now := time.Now()
	for peer, q := range s.queues {
		lag, ok := s.cfg.PeerLag[peer]
		if !ok {
			lag = s.cfg.Lag
		}
		select {
		case q <- delivery{due: now.Add(lag), w: w}:
		default:
			if w.Heartbeat {
				continue
			}
			n := s.dropped.Add(1)
			s.log.Warn("replication queue full, write dropped for peer",
				"peer", peer, "version", w.Version.String(), "dropped_total", n)
		}
	}
}

// apply applies writes replicated from their origin, in order. It never fails: duplicates
// and stale epochs are ignored, gaps freeze the origin's watermark (see doc.go).
func (s *Store) apply(ws []write) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range ws {
		v := w.Version
		if v.Origin == s.cfg.Region {
			continue // our own write echoed back: nothing to learn
		}
		o := s.origins[v.Origin]
		switch {
		case o == nil || v.Epoch > o.epoch:
			o = &originState{epoch: v.Epoch}
			s.origins[v.Origin] = o
		case v.Epoch < o.epoch:
			continue // a stale epoch
		}
		if w.Heartbeat {
			// Everything the origin took up to the heartbeat's position is here: the
			// replica is current as of the heartbeat's time.
			if !o.broken && o.mark >= v.Seq {
				o.asOf = max(o.asOf, w.At)
			}
			continue
		}
		if v.Seq <= o.seen {
			continue // a duplicate delivery
		}
		if v.Seq != o.seen+1 && !o.broken {
			o.broken = true
			s.log.Warn("replication gap: watermark for origin frozen",
				"origin", v.Origin, "have", o.seen, "got", v.Seq)
		}
		o.seen = v.Seq
		if !o.broken {
			o.mark = v.Seq
			o.asOf = max(o.asOf, w.At)
		}
		s.clock = max(s.clock, w.Stamp)
		if cur, ok := s.profiles[w.ID]; !ok || w.wins(cur) {
			s.store(w)
		}
	}
}

// store sets the profile and notifies watchers. s.mu must be held.
func (s *Store) store(w write) {
	s.profiles[w.ID] = w
	for wt := range s.watchers {
		if !strings.HasPrefix(w.ID, wt.prefix) {
			continue
		}
		select {
		case wt.ch <- w.Profile:
		default:
			// Never block a writer on a slow stream: close it, the client can re-watch.
			delete(s.watchers, wt)
			close(wt.ch)
			s.log.Warn("watch stream too slow, closed", "prefix", wt.prefix)
		}
	}
}

// watch subscribes to writes applied from now on to ids starting with prefix. The channel
// is closed if the watcher falls behind; cancel must be called when done.
func (s *Store) watch(prefix string) (<-chan Profile, func()) {
	wt := &watcher{prefix: prefix, ch: make(chan Profile, watchBuffer)}
	s.mu.Lock()
	s.watchers[wt] = struct{}{}
	s.mu.Unlock()
	return wt.ch, func() {
		s.mu.Lock()
		delete(s.watchers, wt)
		s.mu.Unlock()
	}
}

// Watermark returns how far this replica has applied each origin's writes: its own origin
// at its latest seq, other origins at their last contiguously applied seq.
// The returned map is the caller's.
func (s *Store) Watermark() consistency.Watermark {
	s.mu.Lock()
	defer s.mu.Unlock()
	wm := consistency.Watermark{s.cfg.Region: {Epoch: s.cfg.Epoch, Seq: s.seq}}
	for origin, o := range s.origins {
		wm[origin] = consistency.Position{Epoch: o.epoch, Seq: o.mark}
	}
	return wm
}

// ReplicaLag returns how far this replica is behind each peer, by the peer's clock: the
// time since the newest point the replica has all of that peer's writes up to (from the
// writes it applied and the peer's heartbeats). A peer it has not heard from yet is
// reported as consistency.MaxReplicaLag behind: unknown is not fresh.
func (s *Store) ReplicaLag() consistency.ReplicaLag {
	now := time.Now().UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	l := make(consistency.ReplicaLag, len(s.cfg.Peers))
	for peer := range s.cfg.Peers {
		l[peer] = consistency.MaxReplicaLag
		if o := s.origins[peer]; o != nil && o.asOf > 0 {
			l[peer] = time.Duration(max(now-o.asOf, 0)) * time.Millisecond
		}
	}
	return l
}

// Region returns this instance's region.
func (s *Store) Region() string { return s.cfg.Region }

// Dropped returns how many (write, peer) deliveries were dropped because a queue was full.
func (s *Store) Dropped() uint64 { return s.dropped.Load() }
