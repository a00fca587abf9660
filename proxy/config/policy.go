package config

import (
	"errors"
	"fmt"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
)

// Policy is a service's routing policy, parsed and checked.
type Policy struct {
	Level      consistency.Level
	Classifier *consistency.Classifier
	// Key extracts the affinity key; nil when the service has none.
	Key *affinity.KeySource
	// Directory maps keys to home regions; nil when the service has none.
	Directory     *affinity.DirectoryConfig
	WriteFailover bool
	// Residency restricts where the service's data may be served; nil when unrestricted.
	Residency *affinity.Residency
	// Budget is the cross-region budget; nil when there is none.
	Budget   *affinity.BudgetConfig
	LagBound time.Duration
}

// ParsePolicy parses the service's policy fields and its geode.io/* annotations (the
// same policy in Kubernetes form; setting one thing both ways is an error). regions are
// the configured region names. Errors name the field or the annotation at fault.
func (s Service) ParsePolicy(regions []string) (Policy, error) {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, fmt.Errorf("%s: %w", field, err)) }
	var p Policy
	var err error

	level := s.Consistency
	if level == "" {
		level = "eventual"
	}
	if p.Level, err = consistency.ParseLevel(level); err != nil {
		bad("consistency", err)
	}
	if s.AffinityKey != "" {
		if k, err := affinity.ParseKeySource(s.AffinityKey); err != nil {
			bad("affinity_key", err)
		} else {
			p.Key = &k
		}
	}
	if s.HomeRegions != "" {
		if d, err := affinity.ParseHomeRegions(s.HomeRegions, regions); err != nil {
			bad("home_regions", err)
		} else {
			p.Directory = &d
		}
	}
	if s.Residency != "" {
		if r, err := affinity.ParseResidency(s.Residency, regions); err != nil {
			bad("residency", err)
		} else {
			p.Residency = &r
		}
	}
	if s.CrossRegionBudget != "" {
		if b, err := affinity.ParseBudget(s.CrossRegionBudget); err != nil {
			bad("cross_region_budget", err)
		} else {
			p.Budget = &b
		}
	}
	p.LagBound = s.ReplicationLagBound.Std()
	if len(s.Annotations) > 0 {
		s.mergeAnnotations(&p, regions, bad)
	}

	switch s.WriteFailover {
	case "", "deny":
	case "nearest":
		p.WriteFailover = true
	default:
		bad("write_failover", fmt.Errorf("%q is not one of deny, nearest", s.WriteFailover))
	}
	if p.Directory != nil && p.Key == nil {
		bad("home_regions", errors.New("needs affinity_key: the key names the data whose home it looks up"))
	}
	if p.Level.Kind == consistency.Strong && p.Directory == nil {
		bad("consistency", errors.New("strong needs home_regions and affinity_key: strong requests are served by the key's home region only"))
	}

	var rules []consistency.RouteRule
	for i, r := range s.Ops.Routes {
		op, err := consistency.ParseOp(r.Op)
		if err != nil {
			bad(fmt.Sprintf("ops.routes[%d].op", i), err)
			continue
		}
		rules = append(rules, consistency.RouteRule{PathPrefix: r.Prefix, Method: r.Method, Op: op})
	}
	if p.Classifier, err = consistency.NewClassifier(rules, s.Ops.GRPCReads, s.Ops.GRPCWrites); err != nil {
		bad("ops", err)
	}
	return p, errors.Join(errs...)
}

// mergeAnnotations adds the policy the service's geode.io/* annotations set to p.
func (s Service) mergeAnnotations(p *Policy, regions []string, bad func(string, error)) {
	ap, err := affinity.PolicyFromAnnotations(s.Name, s.Annotations, regions)
	if err != nil {
		bad("annotations", err)
		return
	}
	twice := func(field string, annotation string, fieldSet bool) bool {
		if fieldSet {
			bad("annotations", fmt.Errorf("%s and field %s both set the same policy", annotation, field))
		}
		return fieldSet
	}
	if ap.Consistency != "" && !twice("consistency", affinity.AnnotationConsistency, s.Consistency != "") {
		l, err := consistency.ParseLevel(ap.Consistency)
		if err != nil {
			bad("annotations", fmt.Errorf("%s: %w", affinity.AnnotationConsistency, err))
		}
		p.Level = l
	}
	if ap.KeySource != nil && !twice("affinity_key", affinity.AnnotationAffinityKey, s.AffinityKey != "") {
		p.Key = ap.KeySource
	}
	if ap.Directory != nil && !twice("home_regions", affinity.AnnotationHomeRegions, s.HomeRegions != "") {
		p.Directory = ap.Directory
	}
	if ap.Residency != nil && !twice("residency", affinity.AnnotationResidency, s.Residency != "") {
		p.Residency = ap.Residency
	}
	if ap.Budget != nil && !twice("cross_region_budget", affinity.AnnotationCrossRegionBudget, s.CrossRegionBudget != "") {
		p.Budget = ap.Budget
	}
	if ap.ReplicationLagBound > 0 && !twice("replication_lag_bound", affinity.AnnotationReplicationLagBound, s.ReplicationLagBound != 0) {
		p.LagBound = ap.ReplicationLagBound
	}
}

// prefixErrors puts path before every error joined in err.
func prefixErrors(path string, err error) error {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, len(list))
	for i, e := range list {
		out[i] = fmt.Errorf("%s.%w", path, e)
	}
	return errors.Join(out...)
}
