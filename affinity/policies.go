package affinity

import "github.com/geodemesh/geode/consistency"

// RegionSet is a set of regions of one routing state.
type RegionSet uint16

// Has reports whether r is in the set.
func (s RegionSet) Has(r Region) bool { return s&(1<<r) != 0 }

// Add puts r in the set.
func (s *RegionSet) Add(r Region) { *s |= 1 << r }

// Empty reports whether the set has no region.
func (s RegionSet) Empty() bool { return s == 0 }

// Request is what the policies know about one request. The pipeline fills it before
// Decide from the classification, the affinity key, the session token and the
// replica hints; it is a fixed-size value, so a decision never allocates.
type Request struct {
	Write bool
	Level consistency.LevelKind
	// SendHome is the home region of the request's affinity key, when it has one.
	Home    Region
	HasHome bool
	// StickToRegion is the session's sticky region, while its stickiness lasts.
	Sticky    Region
	HasSticky bool
	// NeedsSession: a session read whose token names writes (or reads) to be seen.
	NeedsSession bool
	// Satisfying holds the regions whose replica is known to have everything the
	// session's token names; Written the regions that took the session's writes.
	Satisfying RegionSet
	Written    RegionSet
	// Fresh holds, for bounded-staleness reads, the regions whose replica lags the
	// data's origin by no more than the bound.
	Fresh RegionSet
	// Restricted limits the request to Allowed (residency).
	Restricted bool
	Allowed    RegionSet
	// Roll (0..99) places the request within a ramping region's share (View.Preferred):
	// the same for every request of a session, so a session leaves or returns to a
	// ramping region once, not request by request.
	Roll uint8
}

// Chain returns the policies in the order DESIGN.md gives them: residency → home-region
// writes and strong reads → session (read-your-writes) and bounded staleness →
// stickiness → health → budget.
func Chain() []Policy {
	return []Policy{KeepResident{}, SendHome{}, ReadYourWrites{}, BoundStaleness{}, StickToRegion{}, AvoidUnhealthy{}, SpendBudget{}}
}

// KeepResident keeps only the regions the request's data may be served from. An empty
// result refuses the request with reason residency.
type KeepResident struct{}

// Apply implements Policy.
func (KeepResident) Apply(_ *View, req *Request, c *Candidates) {
	if !req.Restricted {
		return
	}
	first, _ := c.First()
	c.Keep(req.Allowed.Has)
	if now, ok := c.First(); !ok {
		c.Clear(ReasonResidency)
	} else if now != first {
		c.decideFor(ReasonResidency)
	}
}

// SendHome sends writes, and strong reads, to the key's home region. When the home region
// cannot serve, a strong request (and any write without write-failover) is refused with
// the home policy's reason; other writes fail over to the nearest healthy region.
type SendHome struct{}

// Apply implements Policy.
func (SendHome) Apply(v *View, req *Request, c *Candidates) {
	strong := req.Level == consistency.Strong
	if !req.HasHome || (!req.Write && !strong) {
		return
	}
	reason := ReasonHomeWrite
	if !req.Write {
		reason = ReasonStrong
	}
	home := req.Home
	if c.Contains(home) && v.States[home].Serves() {
		c.Prefer(func(r Region) bool { return r == home })
		if strong || !v.WriteFailover {
			c.Keep(func(r Region) bool { return r == home })
		}
		c.decideFor(reason)
		return
	}
	if strong || !v.WriteFailover {
		c.Clear(reason)
		return
	}
	c.decideFor(ReasonFailover) // write-failover: nearest: the rest stay in proximity order
}

// ReadYourWrites sends a session read where the session's writes (and earlier reads) are
// visible: a region known to satisfy its token, else a region that took its writes.
// When nothing is known, the order stays and the inbound sidecar is the authority.
type ReadYourWrites struct{}

// Apply implements Policy.
func (ReadYourWrites) Apply(_ *View, req *Request, c *Candidates) {
	if req.Write || req.Level != consistency.Session || !req.NeedsSession || c.Locked() {
		return
	}
	if first, ok := c.First(); !ok || req.Satisfying.Has(first) {
		return
	}
	switch {
	case anyIn(c, req.Satisfying):
		c.Prefer(req.Satisfying.Has)
	case anyIn(c, req.Written):
		c.Prefer(req.Written.Has)
	default:
		return
	}
	c.decideFor(ReasonRYW)
}

// BoundStaleness sends a bounded-staleness read to the nearest region fresh enough, else to
// the key's home region.
type BoundStaleness struct{}

// Apply implements Policy.
func (BoundStaleness) Apply(_ *View, req *Request, c *Candidates) {
	if req.Write || req.Level != consistency.BoundedStaleness || c.Locked() {
		return
	}
	if first, ok := c.First(); !ok || req.Fresh.Has(first) {
		return
	}
	switch {
	case anyIn(c, req.Fresh):
		c.Prefer(req.Fresh.Has)
	case req.HasHome && c.Contains(req.Home):
		home := req.Home
		c.Prefer(func(r Region) bool { return r == home })
	default:
		return
	}
	c.decideFor(ReasonStaleness)
}

// StickToRegion keeps a session on its sticky region while that region is healthy, even when
// the caller's nearest region changes. It is a preference, not a correctness rule: it
// never overrides a locked order, and the budget may keep the request local instead.
type StickToRegion struct{}

// Apply implements Policy.
func (StickToRegion) Apply(v *View, req *Request, c *Candidates) {
	if !req.HasSticky || c.Locked() {
		return
	}
	s := req.Sticky
	if first, _ := c.First(); first == s || !c.Contains(s) || !v.Preferred(s, req.Roll) {
		return
	}
	if req.NeedsSession && !req.Satisfying.Empty() && !req.Satisfying.Has(s) {
		return // the sticky region does not have the session's data yet
	}
	c.Prefer(func(r Region) bool { return r == s })
	c.SetReason(ReasonSticky)
}

// AvoidUnhealthy removes regions that must not serve (down, fenced). Unless a correctness
// policy fixed the order, it also puts regions that should serve only when nothing
// better is left (degraded, draining) after preferred ones (View.Preferred: healthy, or
// ramping with the request inside the ramp's share).
type AvoidUnhealthy struct{}

// Apply implements Policy.
func (AvoidUnhealthy) Apply(v *View, req *Request, c *Candidates) {
	first, _ := c.First()
	c.Keep(func(r Region) bool { return v.States[r].Serves() })
	if !c.Locked() {
		c.Prefer(func(r Region) bool { return v.Preferred(r, req.Roll) })
	}
	if now, ok := c.First(); ok && now != first && first == v.Local {
		c.required = true // the caller's own region cannot serve: leaving is not optional
	}
}

// SpendBudget spends the service's cross-region budget when the first candidate is in
// another region. When the budget is spent (enforce mode), an optional hop (a sticky
// preference) stays in the caller's region and a required one is refused with reason
// budget-denied. Every call is recorded, local or not.
type SpendBudget struct{}

// Apply implements Policy.
func (SpendBudget) Apply(v *View, _ *Request, c *Candidates) {
	if v.Budget == nil {
		return
	}
	v.Budget.Record()
	first, ok := c.First()
	if !ok || first == v.Local {
		return
	}
	allowed, over := v.Budget.Spend()
	c.overBudget = over
	if allowed {
		return
	}
	if !c.Required() && !c.Locked() && c.Contains(v.Local) {
		local := v.Local
		c.Prefer(func(r Region) bool { return r == local })
		c.SetReason(ReasonBudgetDenied)
		return
	}
	c.Clear(ReasonBudgetDenied)
}

func anyIn(c *Candidates, s RegionSet) bool {
	for i := range c.Len() {
		if s.Has(c.At(i)) {
			return true
		}
	}
	return false
}

var (
	_ Policy = KeepResident{}
	_ Policy = SendHome{}
	_ Policy = ReadYourWrites{}
	_ Policy = BoundStaleness{}
	_ Policy = StickToRegion{}
	_ Policy = AvoidUnhealthy{}
	_ Policy = SpendBudget{}
)
