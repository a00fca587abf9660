package model

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/api"
)

// Protocols a service may speak.
const (
	ProtocolHTTP1 = "http1"
	ProtocolHTTP2 = "http2"
	ProtocolGRPC  = "grpc"
)

// Spec is the input of New: plain data, as read from manifests. Field paths in errors
// follow its shape: regions[i].name, services[i].endpoints.REGION[j].address, ...
type Spec struct {
	Regions  []RegionSpec
	Services []ServiceSpec
	// SessionKeys is the fleet's session-token key ring, which the control plane hands
	// to sidecars as an SDS secret (translate); nil when sidecars use their own keys
	// files. It is left out of JSON (the model's hash includes its fingerprint).
	SessionKeys *consistency.KeyRing `json:"-"`
}

// RegionSpec describes one region.
type RegionSpec struct {
	Name string
	// RTT to other regions. RTTs are symmetric; each pair needs to be given once, in
	// either region, and every pair of regions needs one.
	RTT map[string]time.Duration
	// State: healthy (default), degraded, draining, down, fenced.
	State string
}

// ServiceSpec describes one service.
type ServiceSpec struct {
	Name string
	// Protocol: http1 (default), http2 or grpc.
	Protocol string
	// Authorities address the service (Host, :authority, xds:/// target); default: Name.
	Authorities []string
	// Endpoints maps a region to the endpoints serving the service there. It may be
	// empty: the service's sidecars then register its endpoints themselves, over xDS
	// node metadata (WithEndpoints), and until one does its clients drop it.
	Endpoints map[string][]Endpoint
	Policy    Policy
}

// Endpoint is one address serving a service.
type Endpoint struct {
	Address string // host:port
	Zone    string // optional zone within the region
}

// Policy is a service's geode policy, in the string syntax of the sidecar config and of
// the geode.io/* annotations. Empty strings mean "not set".
type Policy struct {
	Consistency         string
	AffinityKey         string
	HomeRegions         string
	WriteFailover       string
	Residency           string
	CrossRegionBudget   string
	ReplicationLagBound time.Duration
}

// Region is a validated region.
type Region struct {
	Name  string
	State affinity.RegionState
}

// Service is a validated service. Its slices and maps are copies owned by the caller.
type Service struct {
	Name        string
	Protocol    string
	Authorities []string
	// Endpoints maps a region name to its endpoints, in the order given.
	Endpoints map[string][]Endpoint
	Policy    Policy
}

// Model is an immutable, validated fleet model.
type Model struct {
	spec    Spec // normalized: defaults applied, services sorted by name
	regions []Region
	rtt     map[[2]string]time.Duration
	version string
}

// New validates spec and builds a Model from a deep copy of it. On error it returns
// every problem found, joined, each prefixed with its field path.
func New(spec Spec) (*Model, error) {
	spec = cloneSpec(spec)
	normalize(&spec)
	m := &Model{spec: spec, rtt: map[[2]string]time.Duration{}}
	if err := m.validate(); err != nil {
		return nil, err
	}
	slices.SortStableFunc(m.spec.Services, func(a, b ServiceSpec) int { return strings.Compare(a.Name, b.Name) })
	b, err := json.Marshal(m.spec) // maps marshal with sorted keys: a canonical form
	if err != nil {
		return nil, fmt.Errorf("model: hashing: %w", err)
	}
	if spec.SessionKeys != nil {
		b = append(b, spec.SessionKeys.Fingerprint()...)
	}
	sum := sha256.Sum256(b)
	m.version = hex.EncodeToString(sum[:8])
	return m, nil
}

func normalize(s *Spec) {
	for i := range s.Regions {
		if s.Regions[i].State == "" {
			s.Regions[i].State = affinity.Healthy.String()
		}
	}
	for i := range s.Services {
		svc := &s.Services[i]
		if svc.Protocol == "" {
			svc.Protocol = ProtocolHTTP1
		}
		if len(svc.Authorities) == 0 && svc.Name != "" {
			svc.Authorities = []string{svc.Name}
		}
	}
}

func (m *Model) validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	s := &m.spec
	known := map[string]int{} // name → index+1
	for i, r := range s.Regions {
		p := fmt.Sprintf("regions[%d]", i)
		switch {
		case r.Name == "":
			bad(p+".name", "is required")
		case !api.ValidLocalityName(r.Name):
			bad(p+".name", "%q must be lower-case letters, digits and '-'", r.Name)
		case len(r.Name) > consistency.MaxRegionNameLen:
			bad(p+".name", "%q is longer than %d bytes (session tokens carry region names)", r.Name, consistency.MaxRegionNameLen)
		case known[r.Name] != 0:
			bad(p+".name", "region %q is listed twice (also regions[%d])", r.Name, known[r.Name]-1)
		default:
			known[r.Name] = i + 1
		}
		st, err := affinity.ParseRegionState(r.State)
		if err != nil {
			bad(p+".state", "%q is not one of healthy, degraded, draining, down, fenced", r.State)
		}
		m.regions = append(m.regions, Region{Name: r.Name, State: st})
	}
	if len(s.Regions) == 0 {
		bad("regions", "at least one region is required")
	}
	if len(s.Regions) > affinity.MaxRegions {
		bad("regions", "%d regions listed; at most %d are supported", len(s.Regions), affinity.MaxRegions)
	}
	for i, r := range s.Regions {
		for _, other := range slices.Sorted(maps.Keys(r.RTT)) {
			d := r.RTT[other]
			p := fmt.Sprintf("regions[%d].rtt.%s", i, other)
			switch {
			case known[other] == 0:
				bad(p, "unknown region %q", other)
			case other == r.Name:
				bad(p, "RTT to itself")
			case d <= 0:
				bad(p, "must be positive")
			default:
				key := pair(r.Name, other)
				if prev, ok := m.rtt[key]; ok && prev != d {
					bad(p, "%s here but %s in regions[%d].rtt.%s", d, prev, known[other]-1, r.Name)
					continue
				}
				m.rtt[key] = d
			}
		}
	}
	for i, a := range s.Regions {
		for _, b := range s.Regions[i+1:] {
			if a.Name == "" || b.Name == "" || a.Name == b.Name {
				continue
			}
			if _, ok := m.rtt[pair(a.Name, b.Name)]; !ok {
				bad(fmt.Sprintf("regions[%d].rtt", i), "no RTT between %q and %q (give it in either region's rtt): the control plane orders every region by proximity", a.Name, b.Name)
			}
		}
	}
	regionNames := m.RegionNames()

	seenSvc := map[string]int{}
	seenAuth := api.Authorities{}
	for i, svc := range s.Services {
		p := fmt.Sprintf("services[%d]", i)
		switch {
		case svc.Name == "":
			bad(p+".name", "is required")
		case !validHost(svc.Name):
			bad(p+".name", "%q must be lower-case letters, digits, '-' and '.'", svc.Name)
		case seenSvc[svc.Name] != 0:
			bad(p+".name", "service %q is defined twice (also services[%d])", svc.Name, seenSvc[svc.Name]-1)
		default:
			seenSvc[svc.Name] = i + 1
		}
		if !slices.Contains([]string{ProtocolHTTP1, ProtocolHTTP2, ProtocolGRPC}, svc.Protocol) {
			bad(p+".protocol", "%q is not one of http1, http2, grpc", svc.Protocol)
		}
		for j, a := range svc.Authorities {
			if err := seenAuth.Claim(svc.Name, a); err != nil {
				bad(fmt.Sprintf("%s.authorities[%d]", p, j), "%v", err)
			}
		}
		for _, region := range slices.Sorted(maps.Keys(svc.Endpoints)) {
			eps := svc.Endpoints[region]
			ep := p + ".endpoints." + region
			if known[region] == 0 {
				bad(ep, "unknown region %q; regions are %s", region, strings.Join(regionNames, ", "))
			}
			if len(eps) == 0 {
				bad(ep, "no endpoints")
			}
			seen := map[string]bool{}
			for k, e := range eps {
				if err := checkHostPort(e.Address); err != nil {
					bad(fmt.Sprintf("%s[%d].address", ep, k), "%v", err)
				} else if seen[e.Address] {
					bad(fmt.Sprintf("%s[%d].address", ep, k), "address %q listed twice", e.Address)
				}
				seen[e.Address] = true
				if e.Zone != "" && !api.ValidLocalityName(e.Zone) {
					bad(fmt.Sprintf("%s[%d].zone", ep, k), "%q must be lower-case letters, digits and '-'", e.Zone)
				}
			}
		}
		for _, err := range validatePolicy(svc.Name, svc.Policy, regionNames) {
			errs = append(errs, fmt.Errorf("%s.%w", p, err))
		}
	}
	return errors.Join(errs...)
}

// validatePolicy checks the policy strings with the sidecar's parsers; each error starts
// with the field name.
func validatePolicy(service string, pol Policy, regions []string) []error {
	var errs []error
	bad := func(field string, err error) { errs = append(errs, fmt.Errorf("%s: %w", field, err)) }
	var level consistency.Level
	if pol.Consistency != "" {
		l, err := consistency.ParseLevel(pol.Consistency)
		if err != nil {
			bad("consistency", err)
		}
		level = l
	}
	if pol.AffinityKey != "" {
		if _, err := affinity.ParseKeySource(pol.AffinityKey); err != nil {
			bad("affinity_key", err)
		}
	}
	if pol.HomeRegions != "" {
		if _, err := affinity.ParseHomeRegions(pol.HomeRegions, regions); err != nil {
			bad("home_regions", err)
		}
		if pol.AffinityKey == "" {
			bad("home_regions", errors.New("needs affinity_key: the key names the data whose home it looks up"))
		}
	}
	if level.Kind == consistency.Strong && pol.HomeRegions == "" {
		bad("consistency", errors.New("strong needs home_regions and affinity_key: strong requests are served by the key's home region only"))
	}
	switch pol.WriteFailover {
	case "", "deny", "nearest":
	default:
		bad("write_failover", fmt.Errorf("%q is not one of deny, nearest", pol.WriteFailover))
	}
	if pol.Residency != "" {
		if _, err := affinity.ParseResidency(pol.Residency, regions); err != nil {
			bad("residency", err)
		}
	}
	if pol.CrossRegionBudget != "" {
		if _, err := affinity.ParseBudget(pol.CrossRegionBudget); err != nil {
			bad("cross_region_budget", err)
		}
	}
	switch {
	case pol.ReplicationLagBound < 0:
		bad("replication_lag_bound", errors.New("must not be negative"))
	case pol.ReplicationLagBound > 0 && len(service) > consistency.MaxServiceNameLen:
		bad("replication_lag_bound", fmt.Errorf("service name %q is longer than %d bytes: session tokens pin reads by service name", service, consistency.MaxServiceNameLen))
	}
	return errs
}

// Version identifies the model's content: equal models have equal versions.
func (m *Model) Version() string { return m.version }

// Regions returns the regions in configuration order.
func (m *Model) Regions() []Region { return slices.Clone(m.regions) }

// RegionNames returns the region names in configuration order.
func (m *Model) RegionNames() []string {
	out := make([]string, len(m.regions))
	for i, r := range m.regions {
		out[i] = r.Name
	}
	return out
}

// Region returns the region called name.
func (m *Model) Region(name string) (Region, bool) {
	for _, r := range m.regions {
		if r.Name == name {
			return r, true
		}
	}
	return Region{}, false
}

// RTT returns the round-trip time between regions a and b; zero when a == b.
func (m *Model) RTT(a, b string) (time.Duration, bool) {
	if a == b {
		_, ok := m.Region(a)
		return 0, ok
	}
	d, ok := m.rtt[pair(a, b)]
	return d, ok
}

// SessionKeys returns the fleet's session-token key ring, or nil.
func (m *Model) SessionKeys() *consistency.KeyRing { return m.spec.SessionKeys }

// Services returns deep copies of the services, sorted by name.
func (m *Model) Services() []Service {
	out := make([]Service, len(m.spec.Services))
	for i, s := range m.spec.Services {
		out[i] = Service{
			Name:        s.Name,
			Protocol:    s.Protocol,
			Authorities: slices.Clone(s.Authorities),
			Endpoints:   cloneEndpoints(s.Endpoints),
			Policy:      s.Policy,
		}
	}
	return out
}

// HasService reports whether the model has a service called name.
func (m *Model) HasService(name string) bool {
	_, ok := slices.BinarySearchFunc(m.spec.Services, name, func(s ServiceSpec, n string) int { return strings.Compare(s.Name, n) })
	return ok
}

// RegionalEndpoint is an endpoint of a service in a region, from outside the model's
// spec: a sidecar's registration of its own address.
type RegionalEndpoint struct {
	Service, Region string
	Endpoint
}

// WithEndpoints returns a new model in which eps are added to their services, after
// the spec's own endpoints of the region and in the order given (give them sorted for
// a version that does not depend on arrival order). The model stays the source of
// services and regions: an endpoint of a service or region the model does not have is
// left out, and so is one whose address the service already lists in that region (the
// spec's entry, with its zone, wins). Any other invalid endpoint is an error naming it,
// and nothing is returned. With nothing to add it returns m itself.
func (m *Model) WithEndpoints(eps []RegionalEndpoint) (*Model, error) {
	if len(eps) == 0 {
		return m, nil
	}
	spec := m.Spec()
	index := make(map[string]int, len(spec.Services))
	for i, svc := range spec.Services {
		index[svc.Name] = i
	}
	added := 0
	for _, e := range eps {
		i, ok := index[e.Service]
		if _, known := m.Region(e.Region); !ok || !known {
			continue
		}
		svc := &spec.Services[i]
		if slices.ContainsFunc(svc.Endpoints[e.Region], func(x Endpoint) bool { return x.Address == e.Address }) {
			continue
		}
		if svc.Endpoints == nil {
			svc.Endpoints = map[string][]Endpoint{}
		}
		svc.Endpoints[e.Region] = append(svc.Endpoints[e.Region], e.Endpoint)
		added++
	}
	if added == 0 {
		return m, nil
	}
	return New(spec)
}

// Spec returns a deep copy of the normalized spec the model was built from.
func (m *Model) Spec() Spec { return cloneSpec(m.spec) }

// WithRegionState returns a new model in which region name has state st.
func (m *Model) WithRegionState(name string, st affinity.RegionState) (*Model, error) {
	spec := m.Spec()
	for i := range spec.Regions {
		if spec.Regions[i].Name == name {
			spec.Regions[i].State = st.String()
			return New(spec)
		}
	}
	return nil, fmt.Errorf("unknown region %q", name)
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

func cloneSpec(s Spec) Spec {
	out := Spec{Regions: make([]RegionSpec, len(s.Regions)), Services: make([]ServiceSpec, len(s.Services)), SessionKeys: s.SessionKeys}
	for i, r := range s.Regions {
		r.RTT = maps.Clone(r.RTT)
		out.Regions[i] = r
	}
	for i, svc := range s.Services {
		svc.Authorities = slices.Clone(svc.Authorities)
		svc.Endpoints = cloneEndpoints(svc.Endpoints)
		out.Services[i] = svc
	}
	return out
}

func cloneEndpoints(m map[string][]Endpoint) map[string][]Endpoint {
	if m == nil {
		return nil
	}
	out := make(map[string][]Endpoint, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if host == "" {
		return fmt.Errorf("%q has no host", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be a number in [1,65535]", a)
	}
	return nil
}

func validHost(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-.") == "" && s[0] != '-' && s[0] != '.'
}
