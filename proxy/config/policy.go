package config

import (
	"errors"
	"fmt"
	"strings"
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

// annotationField is the field a geode.io/* annotation stands for.
type annotationField struct {
	name  string
	value *string
}

func annotationFields(s *Service) map[string]annotationField {
	return map[string]annotationField{
		affinity.AnnotationConsistency:       {"consistency", &s.Consistency},
		affinity.AnnotationAffinityKey:       {"affinity_key", &s.AffinityKey},
		affinity.AnnotationHomeRegions:       {"home_regions", &s.HomeRegions},
		affinity.AnnotationCrossRegionBudget: {"cross_region_budget", &s.CrossRegionBudget},
		affinity.AnnotationResidency:         {"residency", &s.Residency},
	}
}

// ParsePolicy parses the service's policy fields and annotations. regions are the
// configured region names. Errors name the field (or annotation) at fault.
func (s Service) ParsePolicy(regions []string) (Policy, error) {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, fmt.Errorf("%s: %w", field, err)) }

	// Annotations fill the fields they stand for; giving both is ambiguous. source
	// remembers which annotation filled a field, so errors name what the user wrote.
	source := map[string]string{}
	if len(s.Annotations) > 0 {
		fields := annotationFields(&s)
		for k, v := range s.Annotations {
			path := fmt.Sprintf("annotations[%q]", k)
			if k == affinity.AnnotationReplicationLagBound {
				d, err := time.ParseDuration(v)
				switch {
				case err != nil || d <= 0:
					bad(path, fmt.Errorf("%q is not a positive duration", v))
				case s.ReplicationLagBound != 0:
					bad(path, errors.New("replication_lag_bound is set too"))
				default:
					s.ReplicationLagBound = Duration(d)
				}
				continue
			}
			f, ok := fields[k]
			switch {
			case !ok && strings.HasPrefix(k, "geode.io/"):
				bad(path, errors.New("unknown geode.io annotation"))
			case !ok:
				// Not ours: Kubernetes objects carry many annotations.
			case *f.value != "":
				bad(path, fmt.Errorf("%s is set too", f.name))
			default:
				*f.value = v
				source[f.name] = path
			}
		}
	}
	name := func(field string) string {
		if n, ok := source[field]; ok {
			return n
		}
		return field
	}

	var p Policy
	var err error
	level := s.Consistency
	if level == "" {
		level = "eventual"
	}
	if p.Level, err = consistency.ParseLevel(level); err != nil {
		bad(name("consistency"), err)
	}
	if s.AffinityKey != "" {
		k, err := affinity.ParseKeySource(s.AffinityKey)
		if err != nil {
			bad(name("affinity_key"), err)
		} else {
			p.Key = &k
		}
	}
	if s.HomeRegions != "" {
		d, err := affinity.ParseHomeRegions(s.HomeRegions, regions)
		if err != nil {
			bad(name("home_regions"), err)
		} else {
			p.Directory = &d
		}
		if s.AffinityKey == "" {
			bad(name("home_regions"), errors.New("needs affinity_key: the key names the data whose home it looks up"))
		}
	}
	if p.Level.Kind == consistency.Strong && s.HomeRegions == "" {
		bad(name("consistency"), errors.New("strong needs home_regions and affinity_key: strong requests are served by the key's home region only"))
	}
	switch s.WriteFailover {
	case "", "deny":
	case "nearest":
		p.WriteFailover = true
	default:
		bad("write_failover", fmt.Errorf("%q is not one of deny, nearest", s.WriteFailover))
	}
	if s.Residency != "" {
		r, err := affinity.ParseResidency(s.Residency, regions)
		if err != nil {
			bad(name("residency"), err)
		} else {
			p.Residency = &r
		}
	}
	if s.CrossRegionBudget != "" {
		b, err := affinity.ParseBudget(s.CrossRegionBudget)
		if err != nil {
			bad(name("cross_region_budget"), err)
		} else {
			p.Budget = &b
		}
	}
	p.LagBound = s.ReplicationLagBound.Std()

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
