package affinity

// Reason says why a request went to the region it went to. It is a bounded enum: it is a
// span attribute, a metric label, the geode-reason debug header and an entry of
// /debug/decisions, so its String values are wire names and must stay stable.
type Reason uint8

// Reasons. ReasonNone only exists before a decision is made.
const (
	ReasonNone         Reason = iota
	ReasonLocal               // served in the caller's own region
	ReasonNearest             // the service has no endpoints in the caller's region: nearest one
	ReasonFailover            // the preferred region is unhealthy, its breaker open, or its attempt failed
	ReasonHomeWrite           // a write sent to its key's home region
	ReasonRYW                 // a read sent where the session's writes are visible
	ReasonSticky              // the session's sticky region
	ReasonBudgetDenied        // a cross-region hop was refused by the budget
	ReasonResidency           // residency rules removed regions
	ReasonStrong              // a strong read sent to its key's home region
	ReasonStaleness           // a bounded-staleness read sent to a region fresh enough
	reasonCount
)

var reasonNames = [reasonCount]string{
	ReasonNone:         "none",
	ReasonLocal:        "local",
	ReasonNearest:      "nearest",
	ReasonFailover:     "failover",
	ReasonHomeWrite:    "home-write",
	ReasonRYW:          "ryw",
	ReasonSticky:       "sticky",
	ReasonBudgetDenied: "budget-denied",
	ReasonResidency:    "residency",
	ReasonStrong:       "strong",
	ReasonStaleness:    "staleness",
}

func (r Reason) String() string {
	if r < reasonCount {
		return reasonNames[r]
	}
	return "unknown"
}

// Reasons lists every reason, for metrics that pre-create their label values.
func Reasons() []Reason {
	out := make([]Reason, 0, reasonCount-1)
	for r := ReasonLocal; r < reasonCount; r++ {
		out = append(out, r)
	}
	return out
}
