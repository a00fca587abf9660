package affinity

import (
	"fmt"
	"strings"
)

// MaxRegions is how many regions one routing state may hold; it sizes the candidate list
// so that a decision never allocates.
const MaxRegions = 16

// Region is the index of a region in one routing state's region table. Indexes are only
// meaningful within the state that assigned them.
type Region uint8

// RegionState is a region's health as set by an operator or, later, the control plane.
type RegionState uint8

// Region states, from best to worst.
const (
	Healthy RegionState = iota
	Degraded
	Draining
	Down
	Fenced
)

var stateNames = [...]string{Healthy: "healthy", Degraded: "degraded", Draining: "draining", Down: "down", Fenced: "fenced"}

func (s RegionState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("RegionState(%d)", uint8(s))
}

// ParseRegionState parses a state name.
func ParseRegionState(s string) (RegionState, error) {
	for i, n := range stateNames {
		if n == s {
			return RegionState(i), nil
		}
	}
	return 0, fmt.Errorf("%q is not one of %s", s, strings.Join(stateNames[:], ", "))
}

// Serves reports whether a region in this state may take new requests at all.
func (s RegionState) Serves() bool { return s <= Draining }

// Preferred reports whether a region in this state is as good as any other candidate;
// degraded and draining regions serve only when no preferred region is left.
func (s RegionState) Preferred() bool { return s == Healthy }
