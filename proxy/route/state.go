package route

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/proxy/config"
)

// State is one immutable routing state.
type State struct {
	// Version identifies the state, for logs and /config_dump.
	Version string
	Local   affinity.Region
	regions []string
	states  [affinity.MaxRegions]affinity.RegionState
	ramp    [affinity.MaxRegions]uint8
	// byAuthority maps a lower-case host (no port) to its service.
	byAuthority map[string]*Service
	services    []*Service
	index       map[string]affinity.Region
	// tightest is the smallest staleness bound of the bounded-staleness services; 0
	// when there are none.
	tightest time.Duration
	// Replicas holds what is known of each region's replica, by region index.
	Replicas [affinity.MaxRegions]*Replica
}

// Service is one destination, as the request path needs it.
type Service struct {
	Name     string
	SpanName string // "geode <name>", the name of its requests' spans
	Protocol string
	// View is what routing policies know about the service.
	View affinity.View
	// Pools holds the endpoints per region; nil for regions without endpoints.
	Pools       [affinity.MaxRegions]*Pool
	Connect     time.Duration
	Idle        time.Duration
	Request     time.Duration
	Attempts    int
	RetryBudget *affinity.Budget
	// Transport carries attempts to the service's endpoints.
	Transport http.RoundTripper

	// Routing policy.
	Level      consistency.Level
	Classifier *consistency.Classifier
	Key        *affinity.KeySource // nil: requests carry no affinity key
	Directory  *affinity.Directory // nil: keys have no home region
	// HomeRegions is the directory in its configured form, for dumps.
	HomeRegions string
	Residency   *affinity.Residency // nil: unrestricted
	Budget      *affinity.Budget    // nil: no cross-region budget
	BudgetConf  affinity.BudgetConfig
	LagBound    time.Duration
}

// Pool is a service's endpoints in one region and that region's breaker.
type Pool struct {
	Region affinity.Region
	Name   string
	// NameHeader is []string{Name}, shared by every response's geode-region header.
	NameHeader []string
	// AttemptSpanName is "geode attempt <region>".
	AttemptSpanName string
	Breaker         *Breaker
	Endpoints       []*Endpoint
	// Outcomes counts attempt outcomes for the control plane's health reports; it
	// survives swaps (Registry.TakeOutcomes reads and resets it).
	Outcomes *Outcomes
}

// Build turns a validated configuration into a State, reusing runtime objects from reg.
func Build(c *config.Config, version string, reg *Registry) (*State, error) {
	if len(c.Regions) > affinity.MaxRegions {
		return nil, fmt.Errorf("%d regions; at most %d are supported", len(c.Regions), affinity.MaxRegions)
	}
	st := &State{Version: version, byAuthority: map[string]*Service{}}
	index := map[string]affinity.Region{}
	live := liveSet{}
	for i, r := range c.Regions {
		st.regions = append(st.regions, r.Name)
		index[r.Name] = affinity.Region(i)
		st.Replicas[i] = reg.replica(r.Name, live)
	}
	st.index = index
	local, ok := index[c.Region]
	if !ok {
		return nil, fmt.Errorf("region: unknown local region %q", c.Region)
	}
	st.Local = local
	var states [affinity.MaxRegions]affinity.RegionState
	var ramp [affinity.MaxRegions]uint8
	for i, r := range c.Regions {
		s, err := affinity.ParseRegionState(r.State)
		if err != nil {
			return nil, fmt.Errorf("regions[%d].state: %w", i, err)
		}
		states[i], ramp[i] = s, uint8(r.RampPercent) // validated: 0..99
	}
	st.states, st.ramp = states, ramp
	proximity := proximityOrder(c, index)

	for i, sc := range c.Services {
		pol, err := sc.ParsePolicy(st.regions)
		if err != nil {
			return nil, fmt.Errorf("services[%d]: %w", i, err)
		}
		svc := &Service{
			Name:     sc.Name,
			SpanName: "geode " + sc.Name,
			Protocol: sc.Protocol,
			View:     affinity.View{Local: local, States: states, Ramp: ramp},
			Connect:  sc.Timeouts.Connect.Std(),
			Idle:     sc.Timeouts.Idle.Std(),
			Request:  sc.Timeouts.Request.Std(),
			Attempts: sc.Retry.Attempts,

			Level:      pol.Level,
			Classifier: pol.Classifier,
			Key:        pol.Key,
			Residency:  pol.Residency,
			LagBound:   pol.LagBound,
		}
		svc.View.WriteFailover = pol.WriteFailover
		if pol.Directory != nil {
			d, err := affinity.NewDirectory(*pol.Directory, st.regions, 0)
			if err != nil {
				return nil, fmt.Errorf("services[%d].home_regions: %w", i, err)
			}
			svc.Directory = d
			svc.HomeRegions = pol.Directory.String()
		}
		if pol.Budget != nil {
			svc.BudgetConf = *pol.Budget
			svc.Budget = reg.crossRegionBudget(sc.Name, *pol.Budget, live)
			svc.View.Budget = svc.Budget
		}
		for _, r := range proximity {
			addrs := sc.Endpoints[st.regions[r]]
			if len(addrs) == 0 {
				continue
			}
			svc.View.Order = append(svc.View.Order, r)
			pool := &Pool{Region: r, Name: st.regions[r], NameHeader: []string{st.regions[r]}, AttemptSpanName: "geode attempt " + st.regions[r]}
			pool.Breaker = reg.breaker(sc.Name, pool.Name, sc.Breaker, live)
			pool.Outcomes = reg.outcomes(sc.Name, pool.Name, live)
			for _, a := range addrs {
				pool.Endpoints = append(pool.Endpoints, reg.endpoint(sc.Name, pool.Name, a, live))
			}
			svc.Pools[r] = pool
		}
		svc.Transport = reg.transport(sc.Name, sc.Protocol, svc.Connect, svc.Idle, live)
		svc.RetryBudget = reg.retryBudget(sc.Name, *sc.Retry.BudgetRatio, *sc.Retry.MinPerSecond, live)
		for j, a := range sc.Authorities {
			host := api.AuthorityHost(a)
			if other, dup := st.byAuthority[host]; dup {
				return nil, fmt.Errorf("services[%d].authorities[%d]: %q already belongs to %q", i, j, host, other.Name)
			}
			st.byAuthority[host] = svc
		}
		st.services = append(st.services, svc)
		if b := svc.Level.Staleness; svc.Level.Kind == consistency.BoundedStaleness && (st.tightest == 0 || b < st.tightest) {
			st.tightest = b
		}
	}
	reg.forgetAllBut(live)
	return st, nil
}

// TightestStaleness returns the smallest staleness bound of the state's
// bounded-staleness services, or 0 when it has none.
func (s *State) TightestStaleness() time.Duration { return s.tightest }

// proximityOrder lists all regions nearest first from the local region: the local
// region, then the others by RTT, ties broken by name so every sidecar agrees.
func proximityOrder(c *config.Config, index map[string]affinity.Region) []affinity.Region {
	type near struct {
		r   affinity.Region
		rtt time.Duration
	}
	var others []near
	for _, r := range c.Regions {
		if r.Name != c.Region {
			d, _ := c.RTT(c.Region, r.Name)
			others = append(others, near{r: index[r.Name], rtt: d})
		}
	}
	slices.SortStableFunc(others, func(a, b near) int {
		if c := cmp.Compare(a.rtt, b.rtt); c != 0 {
			return c
		}
		return strings.Compare(c.Regions[a.r].Name, c.Regions[b.r].Name)
	})
	out := []affinity.Region{index[c.Region]}
	for _, n := range others {
		out = append(out, n.r)
	}
	return out
}

// Service returns the service addressed by a Host header or :authority value, or nil.
// It does not allocate for lower-case authorities.
func (s *State) Service(authority string) *Service {
	if svc, ok := s.byAuthority[authority]; ok {
		return svc
	}
	host := authority
	if i := strings.LastIndexByte(host, ':'); i >= 0 && !strings.Contains(host[i:], "]") {
		host = host[:i]
	}
	host = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"), ".")
	if svc, ok := s.byAuthority[host]; ok {
		return svc
	}
	return s.byAuthority[strings.ToLower(host)]
}

// Region returns the index of the named region.
func (s *State) Region(name string) (affinity.Region, bool) {
	r, ok := s.index[name]
	return r, ok
}

// RegionSet returns the set of the named regions that this state knows.
func (s *State) RegionSet(names []string) affinity.RegionSet {
	var set affinity.RegionSet
	for _, n := range names {
		if r, ok := s.index[n]; ok {
			set.Add(r)
		}
	}
	return set
}

// RegionName returns the name of region r.
func (s *State) RegionName(r affinity.Region) string { return s.regions[r] }

// RegionState returns the state of region r.
func (s *State) RegionState(r affinity.Region) affinity.RegionState { return s.states[r] }

// RegionRamp returns region r's ramp percent (affinity.View.Ramp): 0 when not ramping.
func (s *State) RegionRamp(r affinity.Region) uint8 { return s.ramp[r] }

// LocalName returns the name of the local region.
func (s *State) LocalName() string { return s.regions[s.Local] }

// Regions returns the region names in index order. The slice must not be modified.
func (s *State) Regions() []string { return s.regions }

// Services returns the services in configuration order. The slice must not be modified.
func (s *State) Services() []*Service { return s.services }
