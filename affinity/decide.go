package affinity

// View is what policies know about one service in one routing state: the caller's
// region, every region's state, and the service's regions in proximity order from the
// caller (nearest first, the caller's own region first when it has endpoints). A View is
// built once per routing state and never modified, so it is shared by all requests.
type View struct {
	Local  Region
	States [MaxRegions]RegionState
	// Order holds the regions where the service has endpoints, nearest first.
	Order []Region
}

// HasLocal reports whether the service has endpoints in the caller's region.
func (v *View) HasLocal() bool { return len(v.Order) > 0 && v.Order[0] == v.Local }

// Policy narrows or reorders the candidates of one request and may record a Reason.
// Implementations must not block or allocate: they run on every request.
type Policy interface {
	Apply(v *View, c *Candidates)
}

// Decide fills c with the regions the request may go to, best first, by running the
// policies in order over the service's regions in proximity order, and sets the
// reason. A policy that empties the list ends the decision: nowhere is allowed.
func Decide(v *View, policies []Policy, c *Candidates) {
	c.Reset(v.Order)
	for _, p := range policies {
		p.Apply(v, c)
		if c.Len() == 0 {
			return
		}
	}
	if c.Reason() == ReasonNone {
		c.SetReason(proximityReason(v, c.At(0)))
	}
}

// proximityReason names why first is the best region when no policy said otherwise.
func proximityReason(v *View, first Region) Reason {
	switch {
	case first == v.Local:
		return ReasonLocal
	case v.HasLocal():
		return ReasonFailover
	default:
		return ReasonNearest
	}
}

// FailoverReason is the reason for serving a request in a region later in the list than
// the decided one (its breaker was open or its attempt failed): a decision made for a
// policy reason keeps that reason only while its first choice serves.
func FailoverReason(decided Reason, index int) Reason {
	if index == 0 {
		return decided
	}
	return ReasonFailover
}

// Health removes regions that must not serve (down, fenced) and puts regions that
// should not serve unless nothing better is left (degraded, draining) after healthy ones.
type Health struct{}

// Apply implements Policy.
func (Health) Apply(v *View, c *Candidates) {
	c.Keep(func(r Region) bool { return v.States[r].Serves() })
	c.Prefer(func(r Region) bool { return v.States[r].Preferred() })
}

var _ Policy = Health{}
