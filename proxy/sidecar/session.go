package sidecar

import (
	"hash/fnv"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/proxy/route"
)

// Response headers between sidecars.
const (
	// headerRegionHint is set by an inbound sidecar on a 421: the region that has the
	// writes the session's token requires.
	headerRegionHint = "Geode-Region-Hint"
)

// sessionState is one request's session, from its token.
type sessionState struct {
	tok     consistency.Token
	valid   bool // a verified token came with the request
	carrier consistency.Carrier
}

// readSession verifies the request's session token. A missing, forged, expired or
// otherwise bad token is treated as absent, and counted by cause.
func (s *Sidecar) readSession(h http.Header, now time.Time) sessionState {
	keys := s.keys.Load()
	if keys == nil {
		return sessionState{}
	}
	raw, carrier := consistency.FromRequest(h)
	if raw == "" {
		return sessionState{}
	}
	tok, err := keys.Verify(raw, now)
	if err != nil {
		s.metrics.tokens.WithLabelValues(consistency.Cause(err)).Inc()
		return sessionState{carrier: carrier}
	}
	s.metrics.tokens.WithLabelValues("valid").Inc()
	return sessionState{tok: tok, valid: true, carrier: carrier}
}

// classify answers step 3 of the request path: read or write, and the policy request
// for the decision. It does not allocate for header- and path-keyed services.
func (s *Sidecar) classify(r *http.Request, st *route.State, svc *route.Service, sess *sessionState, now time.Time, fromApp bool) (req affinity.Request, key string) {
	op := svc.Classifier.Classify(r.Method, r.URL.Path, isGRPC(r))
	if fromApp { // only the local app may say what its request is
		if v := r.Header.Get(canonOp); v != "" {
			if o, err := consistency.ParseOp(v); err == nil {
				op = o
			}
		}
	}
	req.Write = op == consistency.OpWrite
	req.Level = svc.Level.Kind
	if svc.Key != nil {
		key, _ = svc.Key.Extract(r)
	}
	if key != "" && svc.Directory != nil {
		if home, ok := svc.Directory.Home(key); ok {
			req.Home, req.HasHome = st.Region(home)
		}
	}
	if svc.Residency != nil {
		if allowed, restricted := svc.Residency.Allowed(key); restricted {
			req.Restricted, req.Allowed = true, st.RegionSet(allowed)
		}
	}
	req.Roll = roll(sess)
	if sess.valid {
		if sticky, ok := st.Region(sess.tok.Region); ok && now.Before(sess.tok.StickyUntil) {
			req.Sticky, req.HasSticky = sticky, true
		}
		if !req.Write && req.Level == consistency.Session {
			s.sessionSets(&req, st, svc, &sess.tok, key, now)
		}
	}
	if !req.Write && req.Level == consistency.BoundedStaleness {
		freshRegions(&req, st, svc, now)
	}
	return req, key
}

// sessionSets fills what a session read needs: the regions known to have what the
// token requires of this read, and the regions that took those writes.
func (s *Sidecar) sessionSets(req *affinity.Request, st *route.State, svc *route.Service, tok *consistency.Token, key string, now time.Time) {
	// A pin (a write the app reported no version for, or one that failed over away
	// from its home) says exactly where the session's latest write of this key is.
	// (Pins are rare, so naming one, which allocates, happens only when there are some.)
	if region, ok := pinned(tok, svc, key, now); ok {
		if r, ok := st.Region(region); ok {
			req.NeedsSession = true
			req.Written.Add(r)
			req.Satisfying.Add(r)
			return
		}
	}
	need := required(tok, st, req)
	if !need.any() {
		return
	}
	req.NeedsSession = true
	for _, v := range tok.Vector {
		if need.home == "" || v.Origin == need.home {
			if r, ok := st.Region(v.Origin); ok {
				req.Written.Add(r)
			}
		}
	}
	for _, r := range svc.View.Order {
		if need.coveredBy(st.Replicas[r].Watermark()) {
			req.Satisfying.Add(r)
		}
	}
}

// need is what a session read requires a replica to have applied. A read of a key with
// a home region depends only on writes to that key, which all went to its home: it
// needs the token's entry for that origin alone (so a session that wrote in several
// regions is not held to all of them). A read without a home needs the whole vector.
type need struct {
	tok  *consistency.Token
	home string // "" when the whole vector is needed
}

func required(tok *consistency.Token, st *route.State, req *affinity.Request) need {
	if req.HasHome {
		return need{tok: tok, home: st.RegionName(req.Home)}
	}
	return need{tok: tok}
}

func (n need) any() bool {
	if n.home == "" {
		return len(n.tok.Vector) > 0
	}
	_, ok := n.tok.Vector.Get(n.home)
	return ok
}

func (n need) coveredBy(w consistency.Watermark) bool {
	if n.home == "" {
		return n.tok.Vector.SatisfiedBy(w)
	}
	p, ok := n.tok.Vector.Get(n.home)
	return !ok || w.Covers(consistency.Version{Origin: n.home, Position: p})
}

// missing returns the origin of a needed write w lacks: that region has it.
func (n need) missing(w consistency.Watermark) string {
	for _, v := range n.tok.Vector {
		if (n.home == "" || v.Origin == n.home) && !w.Covers(v) {
			return v.Origin
		}
	}
	return ""
}

// freshRegions fills, for a bounded-staleness read, the regions whose replica lags the
// data's origin (the key's home region; without one, every other region) by no more than
// the bound. A region is always fresh for its own writes. Otherwise its replica's own
// lag reports (consistency.HeaderReplicaLag, from its responses or, for the local
// region, pulled from the app) decide, aged by the time since the report (an upper bound
// on its lag now); a replica that reports lag but nothing for the origin, or that has not
// reported yet while the local app does, is not fresh. For apps that report no lag, the
// estimate comes from the watermarks and versions seen in traffic, which can only see lag
// this sidecar has witnessed.
func freshRegions(req *affinity.Request, st *route.State, svc *route.Service, now time.Time) {
	bound := svc.Level.Staleness
	for _, r := range svc.View.Order {
		fresh := true
		if req.HasHome {
			fresh = req.Home == r || withinBound(st, r, req.Home, bound, now)
		} else {
			for o := range st.Regions() {
				if o := affinity.Region(o); o != r && !withinBound(st, r, o, bound, now) {
					fresh = false
					break
				}
			}
		}
		if fresh {
			req.Fresh.Add(r)
		}
	}
}

// withinBound reports whether region r's replica is known to lag origin by no more than
// bound at now (see freshRegions). When the local app reports its lag, the fleet's apps
// are taken to: a region this sidecar has no report from yet is not known fresh.
func withinBound(st *route.State, r, origin affinity.Region, bound time.Duration, now time.Time) bool {
	lag, reported, known := st.Replicas[r].Staleness(st.RegionName(origin), now)
	switch {
	case known:
		return lag <= bound
	case reported:
		return false
	case st.Replicas[st.Local].ReportsLag():
		return false
	}
	return st.Replicas[origin].LagOf(st.Replicas[r].Watermark(), now) <= bound
}

// pinName names a session's pin for a key of a service: the service name for a service
// without affinity keys, else a hash of service and key (a pin says where the latest
// write of one key is; it must not send the service's other keys there). It fits the
// token's limit on pin names.
func pinName(svc *route.Service, key string) string {
	if key == "" {
		return svc.Name
	}
	h := fnv.New64a()
	h.Write([]byte(svc.Name))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return "k" + strconv.FormatUint(h.Sum64()>>4, 16) // at most 1+15 bytes
}

// pinned returns where the session's reads of key are pinned, if anywhere.
func pinned(tok *consistency.Token, svc *route.Service, key string, now time.Time) (string, bool) {
	if len(tok.Pins) == 0 {
		return "", false
	}
	return tok.PinnedRegion(pinName(svc, key), now)
}

// failoverPin is how long a session's reads follow a write that failed over away from
// its home region, when the service declares no longer replication-lag bound.
const failoverPin = 5 * time.Second

// dataPlacement reports whether a reason sent a request where its data is rather than
// where its session lives.
func dataPlacement(r affinity.Reason) bool {
	switch r {
	case affinity.ReasonHomeWrite, affinity.ReasonRYW, affinity.ReasonStrong, affinity.ReasonStaleness, affinity.ReasonResidency:
		return true
	}
	return false
}

// regionUsable reports whether region r can serve the service now: it has endpoints,
// its state lets it serve and its breaker is not open.
func regionUsable(svc *route.Service, r affinity.Region) bool {
	p := svc.Pools[r]
	return p != nil && svc.View.States[r].Serves() && p.Breaker.State() != gobreaker.StateOpen
}

// stickyUsable reports whether a session's sticky region can keep serving the service:
// it is preferred for the session's roll (healthy, or ramping with the session inside
// its share) and its breaker is not open.
func stickyUsable(st *route.State, svc *route.Service, region string, roll uint8) bool {
	r, ok := st.Region(region)
	return ok && svc.View.Preferred(r, roll) && regionUsable(svc, r)
}

// renewSession folds what a response says into the session's token and sets it on the
// response: the version a write produced (or, for apps that report none, a pin of the
// service's reads to the write's region for its lag bound), the version of data read
// (monotonic reads), the sticky region (re-issued on failover), and a new expiry.
func (s *Sidecar) renewSession(w http.ResponseWriter, resp *http.Response, st *route.State, svc *route.Service, sess *sessionState, req *affinity.Request, key, served string, reason affinity.Reason, now time.Time) {
	keys := s.keys.Load()
	if keys == nil {
		return
	}
	conf := s.conf.Load()
	tok := sess.tok
	if !sess.valid {
		tok = consistency.Token{SessionID: consistency.NewSessionID(), Issued: now}
	}
	// Stickiness follows where the session lives, not where its data lives: a request
	// sent elsewhere for its data (a home write, ryw, strong, staleness, residency)
	// neither sets nor moves it.
	placed := dataPlacement(reason)
	switch {
	case tok.Region == "" || !now.Before(tok.StickyUntil):
		tok.Region = served
		if placed && svc.Pools[st.Local] != nil {
			tok.Region = st.LocalName()
		}
	case tok.Region != served && !placed && !stickyUsable(st, svc, tok.Region, req.Roll):
		tok.Region = served // failover: the session moves with its traffic
	}
	tok.StickyUntil = now.Add(conf.Session.StickyTTL.Std())
	if resp.StatusCode < 300 {
		v, err := consistency.ParseVersion(resp.Header.Get(canonVersion))
		switch {
		case err == nil && v.Epoch <= consistency.MaxTokenEpoch && v.Seq <= consistency.MaxTokenSeq:
			tok.Vector = tok.Vector.Merge(v)
			if _, isPinned := pinned(&tok, svc, key, now); req.Write && (isPinned || req.HasHome && served != st.RegionName(req.Home)) {
				// A write that failed over away from its key's home: until replication
				// brings it home, only the region that took it has it. A later write of
				// a pinned key moves the pin to where that write went.
				tok.Pin(pinName(svc, key), served, now.Add(max(svc.LagBound, failoverPin)), now)
			}
		case req.Write && svc.LagBound > 0:
			tok.Pin(pinName(svc, key), served, now.Add(svc.LagBound), now)
		}
	}
	tok.Expires = now.Add(conf.Session.TTL.Std())
	signed, err := keys.Sign(tok, now)
	if err != nil {
		s.metrics.tokens.WithLabelValues("sign_error").Inc()
		s.log.Warn("cannot sign session token", "service", svc.Name, "error", err)
		return
	}
	w.Header().Set(canonSession, signed)
	if sess.carrier == consistency.CarrierCookie {
		http.SetCookie(w, &http.Cookie{Name: consistency.HeaderSession, Value: signed, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode, Expires: tok.Expires})
	}
}

// roll places a request within a ramping region's share (affinity.Request.Roll): a hash
// of the session id, so a session leaves or returns to a ramping region once and then
// stays; a random roll for a request without a session.
func roll(sess *sessionState) uint8 {
	if !sess.valid || sess.tok.SessionID == "" {
		return uint8(rand.N(100))
	}
	h := uint32(2166136261) // FNV-1a
	for i := 0; i < len(sess.tok.SessionID); i++ {
		h = (h ^ uint32(sess.tok.SessionID[i])) * 16777619
	}
	return uint8(h % 100)
}
