package affinity

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Residency says in which regions a service's data may be served: a set of regions for
// the whole service and, optionally, sets for key prefixes (the longest matching prefix
// wins over the service-wide set). The zero value is unrestricted. A Residency is
// immutable after ParseResidency and safe for concurrent use.
type Residency struct {
	service  []string
	prefixes []residencyPrefix // longest prefix first
	text     string
}

type residencyPrefix struct {
	prefix  string
	regions []string
}

// ParseResidency parses the geode.io/residency annotation: a ","-separated list of the
// regions the whole service may be served in, optionally followed by
// ";prefix=<keyprefix>:<region>|<region>..." clauses for the keys starting with a prefix:
//
//	eu-west,eu-central
//	eu-west,eu-central;prefix=de-:eu-central;prefix=fr-:eu-west|eu-central
//	;prefix=de-:eu-central        only de- keys are restricted
//
// The empty string is unrestricted. Every region must be in knownRegions; errors name
// the clause and the region.
func ParseResidency(s string, knownRegions []string) (Residency, error) {
	if strings.TrimSpace(s) == "" {
		return Residency{}, nil
	}
	clauses := strings.Split(s, ";")
	r := Residency{text: s}
	var errs []error
	if svc := strings.TrimSpace(clauses[0]); svc != "" {
		regions, err := parseRegionSet(svc, ",", knownRegions)
		if err != nil {
			errs = append(errs, fmt.Errorf("service regions %q: %w", svc, err))
		}
		r.service = regions
	}
	for _, clause := range clauses[1:] {
		clause = strings.TrimSpace(clause)
		if clause == "" {
			continue
		}
		p, err := parseResidencyPrefix(clause, knownRegions)
		if err != nil {
			errs = append(errs, fmt.Errorf("clause %q: %w", clause, err))
			continue
		}
		if slices.ContainsFunc(r.prefixes, func(q residencyPrefix) bool { return q.prefix == p.prefix }) {
			errs = append(errs, fmt.Errorf("clause %q: prefix %q given twice", clause, p.prefix))
			continue
		}
		r.prefixes = append(r.prefixes, p)
	}
	if err := errors.Join(errs...); err != nil {
		return Residency{}, err
	}
	if r.service == nil && r.prefixes == nil {
		return Residency{}, nil // only separators: unrestricted
	}
	slices.SortStableFunc(r.prefixes, func(a, b residencyPrefix) int { return len(b.prefix) - len(a.prefix) })
	return r, nil
}

// parseResidencyPrefix parses "prefix=<keyprefix>:<region>|<region>".
func parseResidencyPrefix(clause string, knownRegions []string) (residencyPrefix, error) {
	name, value, ok := strings.Cut(clause, "=")
	if !ok || strings.TrimSpace(name) != "prefix" {
		return residencyPrefix{}, errors.New("want prefix=<keyprefix>:<region>[|<region>]")
	}
	i := strings.LastIndexByte(value, ':')
	if i < 0 {
		return residencyPrefix{}, errors.New("want prefix=<keyprefix>:<region>[|<region>]")
	}
	prefix := strings.TrimSpace(value[:i])
	if prefix == "" {
		return residencyPrefix{}, errors.New("empty key prefix (the service-wide regions come before the first \";\")")
	}
	regions, err := parseRegionSet(value[i+1:], "|", knownRegions)
	if err != nil {
		return residencyPrefix{}, fmt.Errorf("prefix %q: %w", prefix, err)
	}
	return residencyPrefix{prefix: prefix, regions: regions}, nil
}

// parseRegionSet parses a sep-separated list of distinct known regions.
func parseRegionSet(s, sep string, knownRegions []string) ([]string, error) {
	var regions []string
	for item := range strings.SplitSeq(s, sep) {
		item = strings.TrimSpace(item)
		switch {
		case item == "":
			return nil, fmt.Errorf("empty region in %q", s)
		case !slices.Contains(knownRegions, item):
			return nil, fmt.Errorf("unknown region %q", item)
		case slices.Contains(regions, item):
			return nil, fmt.Errorf("region %q listed twice", item)
		}
		regions = append(regions, item)
	}
	return regions, nil
}

// String returns the annotation text r was parsed from ("" when unrestricted).
func (r *Residency) String() string { return r.text }

// Restricted reports whether any key of the service is restricted.
func (r *Residency) Restricted() bool { return r.service != nil || r.prefixes != nil }

// Allowed returns the regions the data of key may be served in, and whether it is
// restricted at all: the regions of the longest prefix clause that matches key, else
// the service-wide regions, else (nil, false). The slice belongs to r and must not be
// modified; Allowed does not allocate.
func (r *Residency) Allowed(key string) (regions []string, restricted bool) {
	for _, p := range r.prefixes {
		if strings.HasPrefix(key, p.prefix) {
			return p.regions, true
		}
	}
	if r.service != nil {
		return r.service, true
	}
	return nil, false
}
