package consistency

import (
	"cmp"
	"strings"
)

// MaxVectorEntries is the most origins a VersionVector holds: Geode's fleet limit of
// 16 regions, so every origin fits.
const MaxVectorEntries = 16

// VersionVector is what a session has written or read: for each origin region, the
// newest version of it the session depends on. It is sorted by Origin, holds each
// origin at most once and at most MaxVectorEntries entries; the zero value is empty.
//
// VersionVector is a value: Merge and MergeVector never modify their receiver or
// argument, they return a new vector when something changed (and the receiver itself,
// without allocating, when nothing did).
type VersionVector []Version

// newer reports whether p is after q: a later epoch, or the same epoch and a later seq.
func (p Position) newer(q Position) bool {
	return p.Epoch > q.Epoch || (p.Epoch == q.Epoch && p.Seq > q.Seq)
}

// search returns the index of origin in v, or where it would be inserted.
func (v VersionVector) search(origin string) (int, bool) {
	for i := range v {
		switch c := cmp.Compare(v[i].Origin, origin); {
		case c == 0:
			return i, true
		case c > 0:
			return i, false
		}
	}
	return len(v), false
}

// Get returns the position recorded for origin.
func (v VersionVector) Get(origin string) (Position, bool) {
	if i, ok := v.search(origin); ok {
		return v[i].Position, true
	}
	return Position{}, false
}

// Merge returns v with x folded in: per origin, the maximum of the two positions
// ordered by (Epoch, Seq), so a newer epoch replaces an older one whatever their
// sequence numbers. A version with an empty Origin is ignored. A new origin that
// would make the vector exceed MaxVectorEntries is dropped; this cannot happen in a
// fleet within Geode's region limit.
func (v VersionVector) Merge(x Version) VersionVector {
	if x.Origin == "" {
		return v
	}
	i, ok := v.search(x.Origin)
	switch {
	case ok && !x.Position.newer(v[i].Position):
		return v
	case ok:
		out := make(VersionVector, len(v))
		copy(out, v)
		out[i] = x
		return out
	case len(v) >= MaxVectorEntries:
		return v
	}
	out := make(VersionVector, 0, len(v)+1)
	out = append(out, v[:i]...)
	out = append(out, x)
	return append(out, v[i:]...)
}

// MergeVector returns the per-origin maximum of v and other (see Merge).
func (v VersionVector) MergeVector(other VersionVector) VersionVector {
	out := v
	for _, x := range other {
		out = out.Merge(x)
	}
	return out
}

// SatisfiedBy reports whether a replica at watermark w has applied every version in
// v (Watermark.Covers for each entry): an entry of an older epoch is never satisfied
// by a newer epoch, as the origin may have lost those writes in a failover. An empty
// vector is satisfied by any watermark. It does not allocate.
func (v VersionVector) SatisfiedBy(w Watermark) bool {
	for _, x := range v {
		if !w.Covers(x) {
			return false
		}
	}
	return true
}

// String returns the vector in the watermark text form, e.g. "eu-west:1:17,us-east:1:42".
func (v VersionVector) String() string {
	var b strings.Builder
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(x.String())
	}
	return b.String()
}

// valid reports whether v is sorted, without duplicates or empty origins, and within
// MaxVectorEntries: the invariant Merge keeps.
func (v VersionVector) valid() bool {
	if len(v) > MaxVectorEntries {
		return false
	}
	for i, x := range v {
		if x.Origin == "" || (i > 0 && v[i-1].Origin >= x.Origin) {
			return false
		}
	}
	return true
}
