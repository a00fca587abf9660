package sidecar

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"strconv"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/proxy/route"
)

// adminHandler serves the admin listener: health, metrics, the routing state and the
// recent decisions. It belongs on loopback.
func (s *Sidecar) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("live\n"))
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.ready.Load() || s.state.Load() == nil {
			http.Error(w, "not ready", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ready\n"))
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /config_dump", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, s.ConfigDump())
	})
	mux.HandleFunc("GET /debug/decisions", func(w http.ResponseWriter, r *http.Request) {
		n := len(s.decisions.ring)
		if v := r.URL.Query().Get("n"); v != "" {
			k, err := strconv.Atoi(v)
			if err != nil || k < 1 {
				http.Error(w, "n: want a positive integer", http.StatusBadRequest)
				return
			}
			n = k
		}
		writeJSON(w, s.decisions.recent(n))
	})
	// Go's profiler, for "why is this sidecar using CPU": registered explicitly on this
	// mux (never the default one).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	return mux
}

// Dump is the routing state as /config_dump shows it.
type Dump struct {
	Version     string           `json:"version"`
	Region      string           `json:"region"`
	Regions     []RegionDump     `json:"regions"`
	Services    []ServiceDump    `json:"services"`
	SessionKeys *SessionKeysDump `json:"session_keys,omitempty"` // nil: no session tokens
}

// SessionKeysDump is where the session-token key ring came from and its keys, without
// their secrets.
type SessionKeysDump struct {
	// Source is "control plane" (its SDS secret), the keys file's path, or "options".
	Source      string                `json:"source"`
	Fingerprint string                `json:"fingerprint"`
	Keys        []consistency.KeyInfo `json:"keys"`
}

// RegionDump is one region in a Dump.
type RegionDump struct {
	Name  string `json:"name"`
	State string `json:"state"`
	// RampPercent is the region's share while it ramps (affinity.View.Preferred).
	RampPercent int `json:"ramp_percent,omitempty"`
}

// ServiceDump is one service in a Dump.
type ServiceDump struct {
	Name      string     `json:"name"`
	Protocol  string     `json:"protocol"`
	Policy    PolicyDump `json:"policy"`
	Proximity []string   `json:"proximity"`
	Pools     []PoolDump `json:"pools"`
}

// PolicyDump is a service's routing policy, in the syntax of its config and annotations.
type PolicyDump struct {
	Consistency       string   `json:"consistency"`
	AffinityKey       string   `json:"affinity_key,omitempty"`
	HomeRegions       string   `json:"home_regions,omitempty"`
	WriteFailover     string   `json:"write_failover"`
	Residency         string   `json:"residency,omitempty"`
	CrossRegionBudget string   `json:"cross_region_budget,omitempty"`
	BudgetRemaining   *float64 `json:"budget_remaining,omitempty"`
	LagBound          string   `json:"replication_lag_bound,omitempty"`
}

// PoolDump is one service's endpoints in one region.
type PoolDump struct {
	Region    string         `json:"region"`
	Breaker   string         `json:"breaker"`
	Endpoints []EndpointDump `json:"endpoints"`
}

// EndpointDump is one endpoint and its load.
type EndpointDump struct {
	Address  string `json:"address"`
	Inflight int64  `json:"inflight"`
}

// ConfigDump returns the current routing state with its runtime state.
func (s *Sidecar) ConfigDump() Dump {
	st := s.state.Load()
	d := Dump{Version: st.Version, Region: st.LocalName()}
	for i, name := range st.Regions() {
		r := affinity.Region(i)
		d.Regions = append(d.Regions, RegionDump{Name: name, State: st.RegionState(r).String(), RampPercent: int(st.RegionRamp(r))})
	}
	for _, svc := range st.Services() {
		sd := ServiceDump{Name: svc.Name, Protocol: svc.Protocol, Policy: policyDump(svc)}
		for _, r := range svc.View.Order {
			p := svc.Pools[r]
			sd.Proximity = append(sd.Proximity, p.Name)
			pd := PoolDump{Region: p.Name, Breaker: p.Breaker.State().String()}
			for _, e := range p.Endpoints {
				pd.Endpoints = append(pd.Endpoints, EndpointDump{Address: e.Addr, Inflight: e.Inflight()})
			}
			sd.Pools = append(sd.Pools, pd)
		}
		d.Services = append(d.Services, sd)
	}
	if kr := s.keys.Load(); kr != nil {
		c := s.conf.Load()
		kd := &SessionKeysDump{Source: c.Session.KeysFile, Fingerprint: kr.Fingerprint(), Keys: kr.Info()}
		switch {
		case s.opts.KeyRing != nil:
			kd.Source = "options"
		case c.Session.Keys != nil:
			kd.Source = "control plane"
		}
		d.SessionKeys = kd
	}
	return d
}

func policyDump(svc *route.Service) PolicyDump {
	p := PolicyDump{Consistency: svc.Level.String(), WriteFailover: "deny"}
	if svc.View.WriteFailover {
		p.WriteFailover = "nearest"
	}
	if svc.Key != nil {
		p.AffinityKey = svc.Key.String()
	}
	if svc.Directory != nil {
		p.HomeRegions = svc.HomeRegions
	}
	if svc.Residency != nil {
		p.Residency = svc.Residency.String()
	}
	if svc.Budget != nil {
		p.CrossRegionBudget = svc.BudgetConf.String()
		rem := svc.Budget.Remaining()
		p.BudgetRemaining = &rem
	}
	if svc.LagBound > 0 {
		p.LagBound = svc.LagBound.String()
	}
	return p
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
