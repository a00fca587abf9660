package affinity

// Candidates is the ordered list of regions a request may go to, best first, and the
// reason for the order. It is a fixed-size value: policies narrow and reorder it in
// place without allocating. The zero value is empty.
type Candidates struct {
	n      uint8
	list   [MaxRegions]Region
	reason Reason
	// locked: a correctness policy chose the order; later preference policies keep it.
	locked bool
	// required: the first candidate is needed for correctness (home write, RYW, strong
	// read, residency, failover), so the budget refuses it rather than staying local.
	required bool
	// overBudget: the cross-region budget was spent when this request asked (in shadow
	// mode the request went anyway).
	overBudget bool
}

// Len returns the number of candidates.
func (c *Candidates) Len() int { return int(c.n) }

// At returns the i-th candidate, best first.
func (c *Candidates) At(i int) Region { return c.list[i] }

// Reason returns the reason recorded by the last policy that set one.
func (c *Candidates) Reason() Reason { return c.reason }

// SetReason records why the list is ordered as it is.
func (c *Candidates) SetReason(r Reason) { c.reason = r }

// Reset replaces the list with regions (at most MaxRegions are kept) and clears the
// reason and flags.
func (c *Candidates) Reset(regions []Region) {
	c.n = uint8(copy(c.list[:], regions))
	c.reason, c.locked, c.required, c.overBudget = ReasonNone, false, false, false
}

// Locked reports whether a correctness policy fixed the order.
func (c *Candidates) Locked() bool { return c.locked }

// Required reports whether the first candidate is needed for correctness.
func (c *Candidates) Required() bool { return c.required }

// OverBudget reports whether the cross-region budget was spent when asked.
func (c *Candidates) OverBudget() bool { return c.overBudget }

// decideFor records that a correctness policy put its choice first for reason r.
func (c *Candidates) decideFor(r Reason) {
	c.reason, c.locked, c.required = r, true, true
}

// Clear empties the list: nowhere is allowed, for reason r.
func (c *Candidates) Clear(r Reason) {
	c.n = 0
	c.reason = r
}

// First returns the best candidate, or false when there is none.
func (c *Candidates) First() (Region, bool) {
	if c.n == 0 {
		return 0, false
	}
	return c.list[0], true
}

// Contains reports whether r is a candidate.
func (c *Candidates) Contains(r Region) bool {
	for i := range int(c.n) {
		if c.list[i] == r {
			return true
		}
	}
	return false
}

// Keep removes, in place and keeping the order, every candidate for which keep is false.
func (c *Candidates) Keep(keep func(Region) bool) {
	j := 0
	for i := range int(c.n) {
		if keep(c.list[i]) {
			c.list[j] = c.list[i]
			j++
		}
	}
	c.n = uint8(j)
}

// Prefer moves, stably, the candidates for which first is true ahead of the others.
func (c *Candidates) Prefer(first func(Region) bool) {
	var rest [MaxRegions]Region
	j, k := 0, 0
	for i := range int(c.n) {
		if r := c.list[i]; first(r) {
			c.list[j] = r
			j++
		} else {
			rest[k] = r
			k++
		}
	}
	copy(c.list[j:], rest[:k])
}

// Has reports whether r is a candidate at position i or later.
func (c *Candidates) Has(i int, r Region) bool {
	for k := i; k < int(c.n); k++ {
		if c.list[k] == r {
			return true
		}
	}
	return false
}

// Promote moves r, if it is at position i or later, to position i, shifting the
// candidates between; earlier positions (already tried) are left alone. It reports
// whether r was found.
func (c *Candidates) Promote(i int, r Region) bool {
	for k := i; k < int(c.n); k++ {
		if c.list[k] == r {
			copy(c.list[i+1:k+1], c.list[i:k])
			c.list[i] = r
			return true
		}
	}
	return false
}
