package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/peering"
)

// peerState is the Server's peering state, guarded by Server.mu.
type peerState struct {
	own     string // this control plane's region (Options.Region); "" disables peering
	epoch   int64  // first publish, unix ns: versions differ across restarts
	counter uint64
	last    *health.Status     // own region's status at the last version bump
	lastOv  string             // own region's operator override at the last version bump
	lastEps []peering.Endpoint // own region's registered endpoints at the last version bump
	at      time.Time
	changed chan struct{} // closed and replaced at every version bump
	peers   map[string]*peerEntry
}

type peerEntry struct {
	sum     peering.Summary
	state   affinity.RegionState
	applied time.Time // when sum was applied
	contact time.Time // last answer from the peer
	stale   bool
	reason  string
	errs    peerErrors
}

// peerErrors are a peer's failed polls and refused summaries (RecordPeerError).
type peerErrors struct {
	count uint64
	last  string
	at    time.Time
}

// PeerDump is one peer in a ConfigDump: the last summary applied from the region's
// control plane and whether that control plane is stale (unreachable for longer than
// the peering bound; its last known state stays in force).
type PeerDump struct {
	Region string `json:"region"`
	State  string `json:"state"`
	// Override is the operator's state set on the peer's control plane, if any.
	Override string `json:"override,omitempty"`
	// Endpoints counts the registered endpoints the peer's summary carries.
	Endpoints    int       `json:"endpoints"`
	WeightFactor int       `json:"weight_factor_percent"`
	Version      string    `json:"version"`
	SummaryTime  time.Time `json:"summary_time"`
	AppliedAt    time.Time `json:"applied_at"`
	LastContact  time.Time `json:"last_contact"`
	Stale        bool      `json:"stale"`
	StaleReason  string    `json:"stale_reason,omitempty"`
	// Errors counts failed polls and refused summaries (unreachable, a certificate that
	// is not the region's control plane, a summary of another region, ...); LastError
	// is the latest, at LastErrorAt. They stay after the peer recovers (see LastContact).
	Errors      uint64    `json:"errors"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
}

// withPeersLocked merges the applied peer summaries into the local computed statuses:
// for a peer's region the worse of the peer's (authoritative) state and this control
// plane's own evidence counts; on equal states, the lower weight factor. The window
// figures stay local.
func (s *Server) withPeersLocked(st map[string]health.Status) map[string]health.Status {
	for r, e := range s.peer.peers {
		local, ok := st[r]
		if !ok || r == s.peer.own {
			continue
		}
		switch {
		case e.state > local.Computed:
			local.Computed, local.Factor, local.Verdict = e.state, e.sum.WeightFactor, "peer:"+e.state.String()
		case e.state == local.Computed && e.sum.WeightFactor < local.Factor:
			local.Factor = e.sum.WeightFactor
		}
		st[r] = local
	}
	return st
}

// peerPublishedLocked bumps the own summary's version when the own region's published
// computed state, weight factor, operator override or registered endpoints changed,
// waking long-polls. publishLocked calls it.
func (s *Server) peerPublishedLocked() {
	p := &s.peer
	if p.own == "" {
		return
	}
	st, ok := s.computed[p.own]
	if !ok {
		st = health.Status{Computed: affinity.Healthy, Factor: 100}
	}
	ov := ""
	if o, ok := s.overrides[p.own]; ok {
		ov = o.String()
	}
	eps := s.ownEndpoints()
	if p.last != nil && p.last.Computed == st.Computed && p.last.Factor == st.Factor && p.lastOv == ov && slices.Equal(p.lastEps, eps) {
		return
	}
	now := time.Now()
	if p.epoch == 0 {
		p.epoch = now.UnixNano()
	}
	p.counter++
	p.last, p.lastOv, p.lastEps, p.at = &st, ov, eps, now
	if p.changed != nil {
		close(p.changed)
	}
	p.changed = make(chan struct{})
}

// ErrPeeringOff is returned by OwnSummary when Options.Region is not set.
var ErrPeeringOff = errors.New("peering is not configured: the control plane has no own region")

// OwnSummary returns this control plane's summary of its own region — the state computed
// from its own sidecars' reports, and apart from it the operator's override set here —
// and a channel closed when it next changes.
func (s *Server) OwnSummary() (peering.Summary, <-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := &s.peer
	if p.own == "" {
		return peering.Summary{}, nil, ErrPeeringOff
	}
	if _, ok := s.base.Region(p.own); !ok || p.last == nil {
		return peering.Summary{}, nil, fmt.Errorf("%w %q (own region)", ErrUnknownRegion, p.own)
	}
	return peering.Summary{
		Region: p.own, State: p.last.Computed.String(), WeightFactor: p.last.Factor, Override: p.lastOv, Endpoints: slices.Clone(p.lastEps),
		Version: fmt.Sprintf("%d.%d", p.epoch, p.counter), Time: p.at,
	}, p.changed, nil
}

// ApplyPeerSummary applies a peer control plane's summary of its region — the worse of
// its computed state and its operator override — as that region's computed state
// (merged with local evidence, see withPeersLocked) and republishes if anything changed.
// It also clears the peer's stale mark. The region must be in the model and not this
// control plane's own; the state must be one the health machine computes (healthy,
// degraded, down) and the override an operator's (draining, down, fenced) or empty. An
// operator override set on this control plane for the region still wins over both.
func (s *Server) ApplyPeerSummary(ctx context.Context, sum peering.Summary) error {
	st, err := affinity.ParseRegionState(sum.State)
	if err != nil {
		return fmt.Errorf("peer summary of %q: %w", sum.Region, err)
	}
	if st != affinity.Healthy && st != affinity.Degraded && st != affinity.Down {
		return fmt.Errorf("peer summary of %q: state %s is not a computed state", sum.Region, sum.State)
	}
	if sum.WeightFactor < 0 || sum.WeightFactor > 100 {
		return fmt.Errorf("peer summary of %q: weight factor %d is not in [0,100]", sum.Region, sum.WeightFactor)
	}
	if err := s.checkPeerEndpoints(sum); err != nil {
		return err
	}
	if sum.Override != "" {
		ov, err := affinity.ParseRegionState(sum.Override)
		if err != nil {
			return fmt.Errorf("peer summary of %q: override: %w", sum.Region, err)
		}
		if ov != affinity.Draining && ov != affinity.Down && ov != affinity.Fenced {
			return fmt.Errorf("peer summary of %q: override %s is not an operator's state (draining, down, fenced)", sum.Region, sum.Override)
		}
		st = max(st, ov)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if sum.Region == s.peer.own {
		return fmt.Errorf("peer summary of %q: this control plane is authoritative for its own region", sum.Region)
	}
	if _, ok := s.base.Region(sum.Region); !ok {
		return fmt.Errorf("peer summary: %w %q", ErrUnknownRegion, sum.Region)
	}
	now := time.Now()
	if s.peer.peers == nil {
		s.peer.peers = map[string]*peerEntry{}
	}
	old, had := s.peer.peers[sum.Region]
	if had && sameSummary(old.sum, sum) {
		old.contact, old.stale, old.reason = now, false, ""
		return nil
	}
	entry := &peerEntry{sum: sum, state: st, applied: now, contact: now}
	if had {
		entry.errs = old.errs
	}
	s.peer.peers[sum.Region] = entry
	prev := s.computed
	next := s.withPeersLocked(s.health.Statuses())
	sameEndpoints := had && slices.Equal(old.sum.Endpoints, sum.Endpoints) || !had && len(sum.Endpoints) == 0
	if p, n := prev[sum.Region], next[sum.Region]; p.Computed == n.Computed && p.Factor == n.Factor && sameEndpoints {
		s.computed = next
		return nil
	}
	s.computed = next
	if err := s.publishLocked(ctx, s.base, s.overrides); err != nil {
		s.computed = prev
		if had {
			s.peer.peers[sum.Region] = old
		} else {
			delete(s.peer.peers, sum.Region)
		}
		return err
	}
	s.log.Info("region state from peer", "region", sum.Region, "peer_state", sum.State, "peer_override", sum.Override, "peer_endpoints", len(sum.Endpoints),
		"computed", s.computed[sum.Region].Computed.String(), "weight_factor_percent", s.computed[sum.Region].Factor,
		"version", sum.Version)
	return nil
}

// SetPeerStale marks (or clears) a peer as stale, for /config_dump. Its last applied
// summary stays in force: a partitioned control plane is not a down region.
func (s *Server) SetPeerStale(region string, stale bool, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.peerEntryLocked(region)
	e.stale, e.reason = stale, reason
	if !stale {
		e.contact = time.Now()
	}
}

// RecordPeerError counts a failed poll or a refused summary of region's control plane
// and keeps err as its last error, for /config_dump. Its last applied summary stays in
// force.
func (s *Server) RecordPeerError(region string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.peerEntryLocked(region)
	e.errs.count++
	e.errs.last, e.errs.at = err.Error(), time.Now()
}

// peerEntryLocked returns region's peer entry, adding one for a peer never reached:
// shown with no state.
func (s *Server) peerEntryLocked(region string) *peerEntry {
	if s.peer.peers == nil {
		s.peer.peers = map[string]*peerEntry{}
	}
	e, ok := s.peer.peers[region]
	if !ok {
		e = &peerEntry{state: affinity.Healthy, sum: peering.Summary{Region: region, State: "", WeightFactor: 100}}
		s.peer.peers[region] = e
	}
	return e
}

func (s *Server) peerDumpLocked() []PeerDump {
	var out []PeerDump
	for _, r := range slices.Sorted(maps.Keys(s.peer.peers)) {
		e := s.peer.peers[r]
		out = append(out, PeerDump{
			Region: r, State: e.sum.State, Override: e.sum.Override, Endpoints: len(e.sum.Endpoints), WeightFactor: e.sum.WeightFactor, Version: e.sum.Version,
			SummaryTime: e.sum.Time, AppliedAt: e.applied, LastContact: e.contact, Stale: e.stale, StaleReason: e.reason,
			Errors: e.errs.count, LastError: e.errs.last, LastErrorAt: e.errs.at,
		})
	}
	return out
}

// sameSummary reports whether two summaries say the same.
func sameSummary(a, b peering.Summary) bool {
	return a.Region == b.Region && a.State == b.State && a.WeightFactor == b.WeightFactor && a.Override == b.Override &&
		a.Version == b.Version && a.Time.Equal(b.Time) && slices.Equal(a.Endpoints, b.Endpoints)
}

// ownEndpoints returns the endpoints registered in this control plane's own region,
// sorted, as its summary carries them.
func (s *Server) ownEndpoints() []peering.Endpoint {
	var out []peering.Endpoint
	for _, e := range s.registry.endpoints() {
		if e.Region == s.peer.own {
			out = append(out, peering.Endpoint{Service: e.Service, Address: e.Address, Zone: e.Zone})
		}
	}
	slices.SortFunc(out, func(a, b peering.Endpoint) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Address, b.Address), cmp.Compare(a.Zone, b.Zone))
	})
	return out
}

// checkPeerEndpoints checks the endpoints a peer's summary carries as it checks a
// registration (registry.go): each a service name, an address other regions can dial
// and a valid zone; at most the registration cap of them.
func (s *Server) checkPeerEndpoints(sum peering.Summary) error {
	if len(sum.Endpoints) > s.registry.max {
		return fmt.Errorf("peer summary of %q: %d endpoints, more than the registration cap %d", sum.Region, len(sum.Endpoints), s.registry.max)
	}
	for i, e := range sum.Endpoints {
		var err error
		switch {
		case e.Service == "":
			err = errors.New("service is required")
		case e.Zone != "" && !api.ValidLocalityName(e.Zone):
			err = fmt.Errorf("zone %q must be lower-case letters, digits and '-'", e.Zone)
		default:
			err = checkAdvertised(e.Address)
		}
		if err != nil {
			return fmt.Errorf("peer summary of %q: endpoints[%d]: %w", sum.Region, i, err)
		}
	}
	return nil
}

// peerEndpointsLocked returns the endpoints the peers' summaries carry, as registered
// endpoints of their regions, sorted by region then as the summary has them.
func (s *Server) peerEndpointsLocked() []model.RegionalEndpoint {
	var out []model.RegionalEndpoint
	for _, r := range slices.Sorted(maps.Keys(s.peer.peers)) {
		for _, e := range s.peer.peers[r].sum.Endpoints {
			out = append(out, model.RegionalEndpoint{Service: e.Service, Region: r, Endpoint: model.Endpoint{Address: e.Address, Zone: e.Zone}})
		}
	}
	return out
}
