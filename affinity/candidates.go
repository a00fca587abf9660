package affinity

// Candidates is the ordered list of regions a request may go to, best first, and the
// reason for the order. It is a fixed-size value: policies narrow and reorder it in
// place without allocating. The zero value is empty.
type Candidates struct {
	n      uint8
	list   [MaxRegions]Region
	reason Reason
}

// Len returns the number of candidates.
func (c *Candidates) Len() int { return int(c.n) }

// At returns the i-th candidate, best first.
func (c *Candidates) At(i int) Region { return c.list[i] }

// Reason returns the reason recorded by the last policy that set one.
func (c *Candidates) Reason() Reason { return c.reason }

// SetReason records why the list is ordered as it is.
func (c *Candidates) SetReason(r Reason) { c.reason = r }

// Reset replaces the list with regions (at most MaxRegions are kept) and clears the reason.
func (c *Candidates) Reset(regions []Region) {
	c.n = uint8(copy(c.list[:], regions))
	c.reason = ReasonNone
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
