package affinity

// View is what policies know about one service in one routing state: the caller's
// region, every region's state, and the service's regions in proximity order from the
// caller (nearest first, the caller's own region first when it has endpoints). A View is
// built once per routing state and never modified, so it is shared by all requests.
type View struct {
	Local  Region
	States [MaxRegions]RegionState
	// Ramp holds, for a region in a capped ramp of the control plane's health machine,
	// the percent (1..99) of the traffic it takes of what it would take were it healthy;
	// 0 for a region not ramping. See Preferred.
	Ramp [MaxRegions]uint8
	// Order holds the regions where the service has endpoints, nearest first.
	Order []Region
	// WriteFailover lets writes (not strong ones) go to the nearest healthy region when
	// the key's home region is down; without it they fail fast.
	WriteFailover bool
	// Budget is the service's cross-region budget from this region; nil means none.
	Budget Spender
}

// Spender is a cross-region budget (see Budget): Record counts every call, Spend asks to
// spend one cross-region call. Implementations must not block or allocate.
type Spender interface {
	Record()
	Spend() (allowed, overBudget bool)
}

// Preferred reports whether region r should take a request in preference to regions
// that serve only when nothing better is left. A region is preferred when it is healthy;
// a region in a capped ramp (Ramp[r] > 0) whose state still serves traffic by choice
// (healthy on the way back, degraded on the way out) is preferred for the requests whose
// roll (0..99, see Request.Roll) is below its ramp percent, so its share of traffic moves
// in the ramp's steps instead of all at once. A draining, down or fenced region is never
// preferred.
func (v *View) Preferred(r Region, roll uint8) bool {
	if p := v.Ramp[r]; p > 0 && v.States[r] <= Degraded {
		return roll < p
	}
	return v.States[r].Preferred()
}

// HasLocal reports whether the service has endpoints in the caller's region.
func (v *View) HasLocal() bool { return len(v.Order) > 0 && v.Order[0] == v.Local }

// Policy narrows or reorders the candidates of one request and may record a Reason.
// Implementations must not block or allocate: they run on every request.
type Policy interface {
	Apply(v *View, req *Request, c *Candidates)
}

// Decide fills c with the regions the request may go to, best first, by running the
// policies in order over the service's regions in proximity order, and sets the
// reason. A policy that empties the list ends the decision: nowhere is allowed, and
// the reason says which policy refused.
func Decide(v *View, req *Request, policies []Policy, c *Candidates) {
	c.Reset(v.Order)
	for _, p := range policies {
		p.Apply(v, req, c)
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
