package affinity

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Kubernetes Service annotations that set a service's geode policy. They are wire names:
// keep them stable once shipped.
const (
	// AnnotationConsistency is the consistency level (eventual, session,
	// bounded-staleness=<dur>, strong); the consistency package parses it.
	AnnotationConsistency = "geode.io/consistency"
	// AnnotationAffinityKey says where requests carry their affinity key (ParseKeySource).
	AnnotationAffinityKey = "geode.io/affinity-key"
	// AnnotationHomeRegions maps affinity keys to home regions (ParseHomeRegions).
	AnnotationHomeRegions = "geode.io/home-regions"
	// AnnotationCrossRegionBudget limits the calls that leave the caller's region (ParseBudget).
	AnnotationCrossRegionBudget = "geode.io/cross-region-budget"
	// AnnotationResidency restricts the regions the service's data may be served in
	// (ParseResidency).
	AnnotationResidency = "geode.io/residency"
	// AnnotationReplicationLagBound is the declared replication lag bound, a positive Go
	// duration ("2s"): without app-reported versions, a session's reads pin to its write
	// region for this long.
	AnnotationReplicationLagBound = "geode.io/replication-lag-bound"
)

// annotationPrefix is the prefix every geode annotation shares.
const annotationPrefix = "geode.io/"

// ServicePolicy is a service's geode policy as its annotations set it. A nil pointer or
// zero value means the annotation is absent: the caller applies its defaults.
type ServicePolicy struct {
	KeySource           *KeySource
	Directory           *DirectoryConfig
	Budget              *BudgetConfig
	Residency           *Residency
	ReplicationLagBound time.Duration
	// Consistency is the raw geode.io/consistency value; the consistency package parses it.
	Consistency string
}

// PolicyFromAnnotations reads the geode.io/* annotations of the Kubernetes Service named
// service. It parses every geode annotation present, ignores annotations outside
// geode.io/, and rejects unknown geode.io/ keys. Each error is prefixed
// `service "<name>": annotation <key>: ` and all of them are returned, joined, in key
// order; on error the policy is the zero value.
func PolicyFromAnnotations(service string, ann map[string]string, knownRegions []string) (ServicePolicy, error) {
	var p ServicePolicy
	var errs []error
	fail := func(key string, err error) {
		// A parser may report several problems at once: prefix each of them.
		parts := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			parts = j.Unwrap()
		}
		for _, e := range parts {
			errs = append(errs, fmt.Errorf("service %q: annotation %s: %w", service, key, e))
		}
	}
	for _, key := range sortedKeys(ann) {
		if !strings.HasPrefix(key, annotationPrefix) {
			continue
		}
		value := strings.TrimSpace(ann[key])
		switch key {
		case AnnotationConsistency:
			if value == "" {
				fail(key, errors.New("empty value"))
				continue
			}
			p.Consistency = value
		case AnnotationAffinityKey:
			k, err := ParseKeySource(value)
			if err != nil {
				fail(key, err)
				continue
			}
			p.KeySource = &k
		case AnnotationHomeRegions:
			d, err := ParseHomeRegions(value, knownRegions)
			if err != nil {
				fail(key, err)
				continue
			}
			p.Directory = &d
		case AnnotationCrossRegionBudget:
			b, err := ParseBudget(value)
			if err != nil {
				fail(key, err)
				continue
			}
			p.Budget = &b
		case AnnotationResidency:
			r, err := ParseResidency(value, knownRegions)
			if err != nil {
				fail(key, err)
				continue
			}
			p.Residency = &r
		case AnnotationReplicationLagBound:
			d, err := time.ParseDuration(value)
			if err != nil || d <= 0 {
				fail(key, fmt.Errorf("%q: want a positive duration such as \"2s\"", value))
				continue
			}
			p.ReplicationLagBound = d
		default:
			fail(key, fmt.Errorf("unknown geode annotation, want one of %s", strings.Join(ServiceAnnotations(), ", ")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return ServicePolicy{}, err
	}
	return p, nil
}

// ServiceAnnotations lists the Service annotation names PolicyFromAnnotations reads.
func ServiceAnnotations() []string {
	names := []string{
		AnnotationConsistency,
		AnnotationAffinityKey,
		AnnotationHomeRegions,
		AnnotationCrossRegionBudget,
		AnnotationResidency,
		AnnotationReplicationLagBound,
	}
	slices.Sort(names)
	return names
}
