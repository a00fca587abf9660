package consistency

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Header names of the version contract between an app and Geode (DESIGN.md, wire names).
const (
	// HeaderVersion is set by the app on a write response: the version the write produced.
	HeaderVersion = "geode-version"
	// HeaderWatermark is set by the app on any response: how far its replica has applied
	// each origin region's writes.
	HeaderWatermark = "geode-watermark"
)

// Position is a point in one origin region's write history: the origin's epoch (bumped
// when the origin may have lost acknowledged writes, e.g. after a failover) and a
// sequence number within that epoch.
type Position struct {
	Epoch uint64
	Seq   uint64
}

// Version names one write: the region that accepted it and its position there.
// Its text form is "origin:epoch:seq", for example "us-east:1:42".
type Version struct {
	Origin string
	Position
}

// String returns the wire form "origin:epoch:seq".
func (v Version) String() string {
	return v.Origin + ":" + strconv.FormatUint(v.Epoch, 10) + ":" + strconv.FormatUint(v.Seq, 10)
}

// ParseVersion parses the wire form "origin:epoch:seq".
func ParseVersion(s string) (Version, error) {
	s = strings.TrimSpace(s)
	origin, rest, ok := strings.Cut(s, ":")
	if !ok || origin == "" {
		return Version{}, fmt.Errorf("version %q: want origin:epoch:seq", s)
	}
	es, ss, ok := strings.Cut(rest, ":")
	if !ok {
		return Version{}, fmt.Errorf("version %q: want origin:epoch:seq", s)
	}
	epoch, err := strconv.ParseUint(es, 10, 64)
	if err != nil {
		return Version{}, fmt.Errorf("version %q: epoch: %w", s, err)
	}
	seq, err := strconv.ParseUint(ss, 10, 64)
	if err != nil {
		return Version{}, fmt.Errorf("version %q: seq: %w", s, err)
	}
	return Version{Origin: origin, Position: Position{Epoch: epoch, Seq: seq}}, nil
}

// Watermark is how far a replica has applied each origin region's writes.
// Its text form is a comma-separated list of versions, sorted by origin.
type Watermark map[string]Position

// Covers reports whether the replica has applied v. A position from another epoch of
// the same origin never covers v: data may have been lost between epochs, so only the
// origin itself can answer for it.
func (w Watermark) Covers(v Version) bool {
	p, ok := w[v.Origin]
	return ok && p.Epoch == v.Epoch && p.Seq >= v.Seq
}

// String returns the wire form, e.g. "eu-west:1:17,us-east:1:42".
func (w Watermark) String() string {
	origins := make([]string, 0, len(w))
	for o := range w {
		origins = append(origins, o)
	}
	sort.Strings(origins)
	var b strings.Builder
	for i, o := range origins {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(Version{Origin: o, Position: w[o]}.String())
	}
	return b.String()
}

// ParseWatermark parses the wire form written by Watermark.String. An empty string is
// an empty watermark. An origin listed twice is an error.
func ParseWatermark(s string) (Watermark, error) {
	w := Watermark{}
	if strings.TrimSpace(s) == "" {
		return w, nil
	}
	for part := range strings.SplitSeq(s, ",") {
		v, err := ParseVersion(part)
		if err != nil {
			return nil, fmt.Errorf("watermark: %w", err)
		}
		if _, dup := w[v.Origin]; dup {
			return nil, fmt.Errorf("watermark: origin %q listed twice", v.Origin)
		}
		w[v.Origin] = v.Position
	}
	return w, nil
}
