package peering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/geodemesh/geode/controlplane/identity"
)

// Summary is what a control plane publishes about its own region on
// GET /peer/summary: the state its health machine computed from its own sidecars'
// reports. It is the wire type of the peer protocol.
type Summary struct {
	Region string `json:"region"`
	// State is the computed state: healthy, degraded or down.
	State string `json:"state"`
	// WeightFactor is the region's ramp factor in percent (see controlplane/health).
	WeightFactor int `json:"weight_factor_percent"`
	// Override is the operator's state for the region, set on its own control plane
	// (geode region drain|fence|down): draining, fenced or down; empty when none. Peers
	// apply the worse of State and Override, so an operator action in a region's control
	// plane reaches every region's clients, and a restore there lifts it everywhere.
	Override string `json:"override,omitempty"`
	// Endpoints are the endpoints sidecars of the region registered with its own control
	// plane (through their xDS node metadata), which is authoritative for them: peers
	// serve them to their own clients as the region's, so a fleet without Kubernetes
	// fails over across regions too. Sorted by service, address and zone.
	Endpoints []Endpoint `json:"endpoints,omitempty"`
	// Version changes whenever State, WeightFactor, Override or Endpoints does (and when
	// the control plane restarts); a client long-polls with ?since=Version.
	Version string `json:"version"`
	// Time is when the summary last changed, by the publishing control plane's clock.
	Time time.Time `json:"time"`
}

// Endpoint is one registered endpoint in a Summary.
type Endpoint struct {
	Service string `json:"service"`
	Address string `json:"address"` // host:port
	Zone    string `json:"zone,omitempty"`
}

// MaxSummaryBytes bounds a summary's body (a region's registered endpoints included).
const MaxSummaryBytes = 8 << 20

// Peer is another region's control plane: its region and peering address (host:port,
// its --peer-listen).
type Peer struct {
	Region string
	Addr   string
}

// ParsePeer parses REGION=ADDR, the form of --peer.
func ParsePeer(s string) (Peer, error) {
	region, addr, ok := strings.Cut(s, "=")
	region, addr = strings.TrimSpace(region), strings.TrimSpace(addr)
	if !ok || region == "" || addr == "" {
		return Peer{}, fmt.Errorf("peer %q: want REGION=HOST:PORT", s)
	}
	if strings.Contains(addr, "/") {
		return Peer{}, fmt.Errorf("peer %q: address must be HOST:PORT, without scheme or path", s)
	}
	return Peer{Region: region, Addr: addr}, nil
}

// Defaults of Options.
const (
	DefaultWait       = 10 * time.Second
	DefaultStaleAfter = 30 * time.Second
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// MaxWait is the longest long-poll a server holds.
	MaxWait = time.Minute
)

// Options configure Peers.
type Options struct {
	// Region is this control plane's own region; a peer may not claim it.
	Region string
	// Peers are the other regions' control planes, one per region.
	Peers []Peer
	// Apply is called with each new summary of a peer (its Region is the peer's). An
	// error is logged and the peer is polled again after a backoff. Required.
	Apply func(ctx context.Context, s Summary) error
	// Stale is called when a peer has not answered for StaleAfter (stale=true, with the
	// last error) and when it answers again (stale=false). Optional. The peer's last
	// applied summary stays in force either way (fail static).
	Stale func(region string, stale bool, reason string)
	// Failed is called with every failed poll or refused summary of a peer: an
	// unreachable peer, a server certificate that is not the region's control plane, a
	// summary claiming another region, an error status, or an Apply error
	// (server.RecordPeerError: counted and shown in /config_dump). Optional. The peer's
	// last applied summary stays in force.
	Failed func(region string, err error)
	// Identity, if set, polls over mutual TLS: this control plane presents its
	// certificate, and a peer is believed only if its server certificate is its
	// region's control plane (identity.Source.PeeringClientConfig). Nil polls plain
	// HTTP (the control plane's --insecure mode).
	Identity *identity.Source
	// Wait is the long-poll duration asked of the peer; zero means DefaultWait.
	Wait time.Duration
	// StaleAfter: a peer with no answer for this long is stale; must exceed Wait; zero
	// means DefaultStaleAfter.
	StaleAfter time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff after a failure.
	MinBackoff, MaxBackoff time.Duration
	// Transport for every peer's requests (tests), instead of a private http.Transport
	// per peer; exclusive with Identity.
	Transport http.RoundTripper
	Logger    *slog.Logger
}

// Peers polls every peer's summary and applies it. New starts nothing; Run does.
type Peers struct {
	o       Options
	log     *slog.Logger
	scheme  string
	clients map[string]*http.Client // by peer region
	own     []*http.Transport       // closed when Run returns
}

// New validates o.
func New(o Options) (*Peers, error) {
	var errs []error
	if o.Region == "" {
		errs = append(errs, errors.New("peering: own Region is required"))
	}
	if o.Apply == nil {
		errs = append(errs, errors.New("peering: Apply is required"))
	}
	seen := map[string]bool{}
	for _, p := range o.Peers {
		switch {
		case p.Region == "" || p.Addr == "":
			errs = append(errs, fmt.Errorf("peering: peer %q=%q: region and address are required", p.Region, p.Addr))
		case p.Region == o.Region:
			errs = append(errs, fmt.Errorf("peering: peer %s=%s: is this control plane's own region", p.Region, p.Addr))
		case seen[p.Region]:
			errs = append(errs, fmt.Errorf("peering: region %s: more than one peer", p.Region))
		}
		seen[p.Region] = true
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.Wait, DefaultWait)
	def(&o.StaleAfter, DefaultStaleAfter)
	def(&o.MinBackoff, DefaultMinBackoff)
	def(&o.MaxBackoff, DefaultMaxBackoff)
	if o.Wait < 0 || o.Wait > MaxWait {
		errs = append(errs, fmt.Errorf("peering: wait %s: must be in [0, %s]", o.Wait, MaxWait))
	}
	if o.StaleAfter <= o.Wait {
		errs = append(errs, fmt.Errorf("peering: stale-after %s must exceed wait %s", o.StaleAfter, o.Wait))
	}
	if o.MinBackoff <= 0 || o.MaxBackoff < o.MinBackoff {
		errs = append(errs, fmt.Errorf("peering: backoff [%s, %s] is not a positive range", o.MinBackoff, o.MaxBackoff))
	}
	if o.Identity != nil && o.Transport != nil {
		errs = append(errs, errors.New("peering: Identity and Transport are exclusive"))
	}
	if o.Identity != nil {
		if err := identity.IsRegionControlPlane(o.Region)(o.Identity.ID()); err != nil {
			errs = append(errs, fmt.Errorf("peering: own certificate %s %w: peers would refuse it", o.Identity.ID(), err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	p := &Peers{o: o, log: o.Logger, scheme: "http", clients: map[string]*http.Client{}}
	if p.log == nil {
		p.log = slog.New(slog.DiscardHandler)
	}
	if o.Identity != nil {
		p.scheme = "https"
	}
	for _, peer := range o.Peers {
		rt := o.Transport
		if rt == nil {
			// One transport per peer: its TLS configuration accepts only that
			// region's control plane, and a connection is never shared across regions.
			t := &http.Transport{MaxIdleConnsPerHost: 1, IdleConnTimeout: o.StaleAfter}
			if o.Identity != nil {
				t.TLSClientConfig = o.Identity.PeeringClientConfig(peer.Region)
			}
			p.own = append(p.own, t)
			rt = t
		}
		p.clients[peer.Region] = &http.Client{Transport: rt}
	}
	return p, nil
}

// Run polls every peer until ctx is done; it returns nil then.
func (p *Peers) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, peer := range p.o.Peers {
		wg.Go(func() { p.follow(ctx, peer) })
	}
	wg.Wait()
	for _, t := range p.own {
		t.CloseIdleConnections()
	}
	return nil
}

// follow long-polls one peer: GET /peer/summary?since=V&wait=W returns at once when
// the peer's version differs from V, else when it changes or after W.
func (p *Peers) follow(ctx context.Context, peer Peer) {
	log := p.log.With("peer", peer.Region, "addr", peer.Addr)
	since := ""
	lastOK := time.Now() // the bound starts at startup: a peer never reached goes stale too
	stale := false
	backoff := p.o.MinBackoff
	for ctx.Err() == nil {
		sum, err := p.fetch(ctx, peer, since)
		if err == nil {
			lastOK = time.Now()
			if stale {
				stale = false
				log.Info("peer reachable again")
				if p.o.Stale != nil {
					p.o.Stale(peer.Region, false, "")
				}
			}
			if sum.Version == since {
				// The peer answered without holding the poll (or its wait ran out): pace
				// the next poll so a peer that does not long-poll cannot make us spin.
				if !sleep(ctx, p.o.MinBackoff) {
					return
				}
			} else {
				if err = p.o.Apply(ctx, sum); err != nil {
					err = fmt.Errorf("applying summary %s: %w", sum.Version, err)
				} else {
					log.Debug("peer summary applied", "state", sum.State, "version", sum.Version)
					since = sum.Version
				}
			}
			if err == nil {
				backoff = p.o.MinBackoff
				continue
			}
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("peer", "err", err.Error())
		if p.o.Failed != nil {
			p.o.Failed(peer.Region, err)
		}
		if !stale && time.Since(lastOK) >= p.o.StaleAfter {
			stale = true
			log.Warn("peer stale: keeping its last known state", "since", lastOK)
			if p.o.Stale != nil {
				p.o.Stale(peer.Region, true, err.Error())
			}
		}
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, p.o.MaxBackoff)
	}
}

// fetch asks a peer for its summary; the request is bounded so that one started right
// after an answer ends within StaleAfter of it.
func (p *Peers) fetch(ctx context.Context, peer Peer, since string) (Summary, error) {
	ctx, cancel := context.WithTimeout(ctx, p.o.StaleAfter)
	defer cancel()
	q := url.Values{"since": {since}, "wait": {p.o.Wait.String()}}
	u := (&url.URL{Scheme: p.scheme, Host: peer.Addr, Path: "/peer/summary", RawQuery: q.Encode()}).String()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Summary{}, err
	}
	resp, err := p.clients[peer.Region].Do(req)
	if err != nil {
		return Summary{}, err
	}
	defer resp.Body.Close()
	if p.o.Identity != nil {
		// The handshake already refused any other certificate; this keeps the
		// binding of summary to certificate visible where the summary is read.
		id, err := identity.FromTLS(resp.TLS)
		if err == nil {
			err = identity.IsRegionControlPlane(peer.Region)(id)
		}
		if err != nil {
			return Summary{}, fmt.Errorf("GET %s: server certificate %s: %w", u, id, err)
		}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxSummaryBytes+1))
	if err != nil {
		return Summary{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Summary{}, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body[:min(len(body), 512)])))
	}
	if len(body) > MaxSummaryBytes {
		return Summary{}, fmt.Errorf("GET %s: summary larger than %d bytes", u, MaxSummaryBytes)
	}
	var s Summary
	if err := json.Unmarshal(body, &s); err != nil {
		return Summary{}, fmt.Errorf("GET %s: decoding summary: %w", u, err)
	}
	if s.Region != peer.Region {
		return Summary{}, fmt.Errorf("GET %s: refused: the control plane of region %q sent a summary of region %q", u, peer.Region, s.Region)
	}
	if s.Version == "" {
		return Summary{}, fmt.Errorf("GET %s: summary without version", u)
	}
	return s, nil
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
