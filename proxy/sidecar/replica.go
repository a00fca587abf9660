package sidecar

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/proxy/route"
)

// observeReplica records the watermark a response from region r carries.
func (s *Sidecar) observeReplica(st *route.State, r affinity.Region, h http.Header, now time.Time) {
	// Malformed reports are ignored: they are only hints.
	if v := h.Get(canonWatermark); v != "" {
		_ = st.Replicas[r].ObserveText(v, now)
	}
	// Lag reports matter to bounded-staleness services only: without one, none is
	// parsed (a report changes with every response, so each parse would allocate).
	if st.TightestStaleness() == 0 {
		return
	}
	if v := h.Get(canonReplicaLag); v != "" {
		_ = st.Replicas[r].ObserveLagText(v, now)
	}
}

// checkSession is the inbound side of read-your-writes, the authority on it: a session
// read whose token names writes the local replica has not applied waits up to
// session.read_wait for the replica to catch up (pulling the app's watermark when it has
// a pull endpoint), and otherwise is answered 421 with the region that has the data, so
// the calling sidecar sends it there. It reports whether it answered.
func (s *Sidecar) checkSession(w http.ResponseWriter, r *http.Request, st *route.State, conf *appConf) bool {
	svc := st.Service(r.Host)
	if svc == nil || svc.Level.Kind != consistency.Session {
		return false
	}
	now := time.Now()
	sess := s.readSession(r.Header, now)
	if !sess.valid || len(sess.tok.Vector) == 0 {
		return false
	}
	req, key := s.classify(r, st, svc, &sess, now, false)
	if req.Write {
		return false
	}
	if region, ok := pinned(&sess.tok, svc, key, now); ok && region == st.LocalName() {
		return false // the session's latest write of this key is here: it is the newest
	}
	n := required(&sess.tok, st, &req)
	local := st.Replicas[st.Local]
	if n.coveredBy(local.Watermark()) {
		return false
	}
	if r.Header.Get(headerAcceptDegraded) != "" {
		// The caller cannot reach the region with the data: serve, flagged.
		s.metrics.rywUnavailable.WithLabelValues(svc.Name).Inc()
		w.Header().Set(headerDegraded, "read-your-writes")
		return false
	}
	ctx, cancel := context.WithTimeout(r.Context(), conf.readWait)
	defer cancel()
	// Wait for the replica, asking the app for its watermark every few milliseconds
	// (one pull in flight at a time, whoever waits) when it has a pull endpoint.
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !n.coveredBy(local.Watermark()) && ctx.Err() == nil {
		changed := local.Changed()
		s.pullWatermark(ctx, st, conf)
		select {
		case <-changed:
		case <-tick.C:
		case <-ctx.Done():
		}
	}
	wm := local.Watermark()
	if n.coveredBy(wm) {
		return false
	}
	// The origin of a write the replica lacks certainly has it. When that is this
	// region, its app is the authority on its own writes (and on an older epoch of
	// them, which only the home region can answer for): let it answer.
	hint := n.missing(wm)
	if hint == st.LocalName() {
		return false
	}
	if r, ok := st.Region(hint); !ok || !regionUsable(svc, r) {
		// The only region with the session's writes cannot serve (down, fenced, or its
		// breaker open here): a session read is served with what this replica has
		// rather than failed — the guarantee is degraded for the outage: flagged to the
		// app on the response, and counted. Geode never returns an unflagged stale read.
		s.metrics.rywUnavailable.WithLabelValues(svc.Name).Inc()
		w.Header().Set(headerDegraded, "read-your-writes")
		return false
	}
	s.metrics.misdirected.WithLabelValues(svc.Name).Inc()
	w.Header().Set(headerRegionHint, hint)
	e := errorf(StageDecide, http.StatusMisdirectedRequest, "service %q: the replica in %s has not applied this session's writes within %s; %s has them", svc.Name, st.LocalName(), conf.readWait, hint)
	e.write(w, r)
	return true
}

// checkStaleness is the inbound side of bounded staleness, the authority on it as
// checkSession is on read-your-writes: a read of a bounded-staleness service whose local
// replica reports (geode-replica-lag) more lag behind the data's origin than the bound
// — the key's home; for a service without homes, every other region — is answered 421
// naming that origin (the one it lags most), so the calling sidecar sends it there. A
// caller that cannot go there (Geode-Accept-Degraded), or an origin that cannot serve,
// gets the read served, flagged Geode-Degraded: staleness. A replica that reports no
// lag is not judged. It reports whether it answered.
func (s *Sidecar) checkStaleness(w http.ResponseWriter, r *http.Request, st *route.State) bool {
	svc := st.Service(r.Host)
	if svc == nil || svc.Level.Kind != consistency.BoundedStaleness {
		return false
	}
	local := st.Replicas[st.Local]
	if !local.ReportsLag() {
		return false
	}
	now := time.Now()
	var noSession sessionState
	req, _ := s.classify(r, st, svc, &noSession, now, false)
	if req.Write {
		return false
	}
	var origin affinity.Region
	var worst time.Duration
	consider := func(o affinity.Region) {
		if o == st.Local {
			return // a region is never behind its own writes
		}
		lag, _, known := local.Staleness(st.RegionName(o), now)
		if !known {
			lag = consistency.MaxReplicaLag
		}
		if lag > svc.Level.Staleness && lag > worst {
			origin, worst = o, lag
		}
	}
	if req.HasHome {
		consider(req.Home)
	} else {
		for o := range st.Regions() {
			consider(affinity.Region(o))
		}
	}
	if worst == 0 {
		return false
	}
	if r.Header.Get(headerAcceptDegraded) != "" || !regionUsable(svc, origin) {
		s.metrics.beyondBound.WithLabelValues(svc.Name, "degraded").Inc()
		w.Header().Set(headerDegraded, "staleness")
		return false
	}
	s.metrics.beyondBound.WithLabelValues(svc.Name, "misdirected").Inc()
	w.Header().Set(headerRegionHint, st.RegionName(origin))
	e := errorf(StageDecide, http.StatusMisdirectedRequest, "service %q: the replica in %s is %s behind %s, more than the bound %s; %s has the data",
		svc.Name, st.LocalName(), worst.Round(time.Millisecond), st.RegionName(origin), svc.Level.Staleness, st.RegionName(origin))
	e.write(w, r)
	return true
}

// appConf is what the inbound path needs of the config.
type appConf struct {
	address       string
	watermarkPath string
	readWait      time.Duration
}

// pullWatermark asks the local app for its watermark, on the caller's goroutine and
// within its context, unless another waiter's pull is under way; every waiter learns
// the result through the replica's Changed channel.
func (s *Sidecar) pullWatermark(ctx context.Context, st *route.State, conf *appConf) {
	if conf.watermarkPath == "" || !s.pulling.CompareAndSwap(false, true) {
		return
	}
	defer s.pulling.Store(false)
	req := (&http.Request{Method: http.MethodGet, URL: &url.URL{Scheme: "http", Host: conf.address, Path: conf.watermarkPath}, Header: http.Header{}, Host: conf.address}).WithContext(ctx)
	resp, err := s.appProxy.RoundTrip(req)
	if err != nil {
		return
	}
	discard(resp)
	s.observeReplica(st, st.Local, resp.Header, time.Now())
}

// refreshLocalReplica keeps what the sidecar knows of its own region's replica fresh for
// bounded-staleness routing: while a service has that level and the app has a watermark
// endpoint (app.watermark_path), it pulls the endpoint every quarter of the smallest
// staleness bound (25 ms to 1 s). Otherwise the local replica would be seen only through
// the reads it still serves, and a replica that fell behind would stay excluded after
// catching up. It returns when ctx is done.
func (s *Sidecar) refreshLocalReplica(ctx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, conf := s.state.Load(), s.conf.Load()
		every := localRefreshInterval(st)
		if every == 0 || conf.App.WatermarkPath == "" {
			t.Reset(time.Second) // look again: a new routing state may need it
			continue
		}
		pctx, cancel := context.WithTimeout(ctx, every)
		s.pullWatermark(pctx, st, &appConf{address: conf.App.Address, watermarkPath: conf.App.WatermarkPath})
		cancel()
		t.Reset(every)
	}
}

// localRefreshInterval is a quarter of the smallest staleness bound of st's services,
// within [25ms, 1s]; 0 when no service is bounded-staleness.
func localRefreshInterval(st *route.State) time.Duration {
	if b := st.TightestStaleness(); b > 0 {
		return min(max(b/4, 25*time.Millisecond), time.Second)
	}
	return 0
}
