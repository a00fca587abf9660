package route

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/proxy/config"
	"github.com/geodemesh/geode/proxy/upstream"
)

// Registry keeps the runtime objects that outlive routing states, keyed by stable names.
type Registry struct {
	// OnBreakerChange, if set before the first Build, is called on every breaker
	// state change with the service and region names.
	OnBreakerChange func(service, region string, from, to gobreaker.State)

	mu         sync.Mutex
	breakers   map[string]*Breaker
	endpoints  map[string]*Endpoint
	budgets    map[string]*keyedBudget // retry and cross-region budgets
	transports map[string]*keyedTransport
	replicas   map[string]*Replica
	counters   map[string]*keyedOutcomes
}

type liveSet map[string]bool

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{breakers: map[string]*Breaker{}, endpoints: map[string]*Endpoint{}, budgets: map[string]*keyedBudget{}, transports: map[string]*keyedTransport{}, replicas: map[string]*Replica{}, counters: map[string]*keyedOutcomes{}}
}

func (r *Registry) breaker(service, region string, conf config.Breaker, live liveSet) *Breaker {
	key := "b/" + service + "/" + region
	live[key] = true
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.breakers[key]; ok && b.conf == conf {
		return b
	}
	s := breakerSettings(conf)
	s.Name = service + "/" + region
	if cb := r.OnBreakerChange; cb != nil {
		s.OnStateChange = func(_ string, from, to gobreaker.State) { cb(service, region, from, to) }
	}
	b := &Breaker{cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](s), conf: conf}
	r.breakers[key] = b
	return b
}

func (r *Registry) endpoint(service, region, addr string, live liveSet) *Endpoint {
	key := "e/" + service + "/" + region + "/" + addr
	live[key] = true
	r.mu.Lock()
	defer r.mu.Unlock()
	if e, ok := r.endpoints[key]; ok {
		return e
	}
	e := &Endpoint{Addr: addr}
	r.endpoints[key] = e
	return e
}

// retryBudget returns the service's retry budget: retries capped to a ratio of
// requests over 10 s, with a floor per second (an enforced affinity.Budget).
func (r *Registry) retryBudget(service string, ratio float64, minPerSecond int, live liveSet) *affinity.Budget {
	return r.budget("r/"+service, affinity.BudgetConfig{Ratio: ratio, MinPerSecond: minPerSecond, Window: 10 * time.Second, Mode: affinity.BudgetEnforce}, live)
}

// crossRegionBudget returns the service's cross-region budget from this region.
func (r *Registry) crossRegionBudget(service string, conf affinity.BudgetConfig, live liveSet) *affinity.Budget {
	return r.budget("c/"+service, conf, live)
}

// budget returns the budget under key, keeping its spending across swaps while its
// configuration stays the same.
func (r *Registry) budget(key string, conf affinity.BudgetConfig, live liveSet) *affinity.Budget {
	live[key] = true
	r.mu.Lock()
	defer r.mu.Unlock()
	if b, ok := r.budgets[key]; ok && b.conf == conf {
		return b.b
	}
	b := &keyedBudget{conf: conf, b: affinity.NewBudget(conf)}
	r.budgets[key] = b
	return b.b
}

func (r *Registry) replica(region string, live liveSet) *Replica {
	key := "p/" + region
	live[key] = true
	r.mu.Lock()
	defer r.mu.Unlock()
	if p, ok := r.replicas[key]; ok {
		return p
	}
	p := newReplica(region)
	r.replicas[key] = p
	return p
}

type keyedBudget struct {
	conf affinity.BudgetConfig
	b    *affinity.Budget
}

// forgetAllBut drops objects no longer referenced by the newest state.
func (r *Registry) forgetAllBut(live liveSet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k := range r.breakers {
		if !live[k] {
			delete(r.breakers, k)
		}
	}
	for k := range r.endpoints {
		if !live[k] {
			delete(r.endpoints, k)
		}
	}
	for k := range r.budgets {
		if !live[k] {
			delete(r.budgets, k)
		}
	}
	for k := range r.replicas {
		if !live[k] {
			delete(r.replicas, k)
		}
	}
	for k := range r.counters {
		if !live[k] {
			delete(r.counters, k)
		}
	}
	for k, t := range r.transports {
		if !live[k] {
			t.rt.CloseIdleConnections()
			delete(r.transports, k)
		}
	}
}

func breakerSettings(b config.Breaker) gobreaker.Settings {
	n := uint32(b.ConsecutiveFailures)
	return gobreaker.Settings{
		MaxRequests: uint32(b.HalfOpenProbes),
		Interval:    b.Interval.Std(),
		Timeout:     b.OpenFor.Std(),
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
		// A caller that went away says nothing about the region.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
	}
}

// Breaker is the circuit breaker of one (service, region).
type Breaker struct {
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
	conf config.Breaker
}

// Allow asks to send one attempt. When it returns ok, done must be called once with
// whether the attempt failed in a way that counts against the region (nil: success).
func (b *Breaker) Allow() (done func(err error), ok bool) {
	done, err := b.cb.Allow()
	return done, err == nil
}

// State returns the breaker's current state.
func (b *Breaker) State() gobreaker.State { return b.cb.State() }

// Endpoint is one upstream address and its load.
type Endpoint struct {
	Addr string
	// inflight counts attempts in progress, for least-loaded picking.
	inflight atomic.Int64
	// ejectedUntil (unix nanoseconds) keeps an endpoint that refused a connection out
	// of picks for a moment, so its region's other endpoints take the load.
	ejectedUntil atomic.Int64
}

// Start records an attempt starting on e; call the returned func when it ends.
func (e *Endpoint) Start() { e.inflight.Add(1) }

// Done records the end of an attempt started with Start.
func (e *Endpoint) Done() { e.inflight.Add(-1) }

// Eject keeps e out of picks for d.
func (e *Endpoint) Eject(d time.Duration) { e.ejectedUntil.Store(time.Now().Add(d).UnixNano()) }

// Inflight returns the number of attempts in progress.
func (e *Endpoint) Inflight() int64 { return e.inflight.Load() }

func (e *Endpoint) available(now int64) bool { return e.ejectedUntil.Load() <= now }

// Pick chooses an endpoint by the power of two choices, least in-flight attempts
// first, skipping ejected endpoints. When every endpoint is ejected it returns the one
// whose ejection ends first (like Envoy's panic mode): the region's breaker, not the
// ejections, decides whether the region is tried at all, and its probes must reach an
// endpoint to find out that the region is back. It returns nil only for an empty pool.
func (p *Pool) Pick() *Endpoint {
	eps := p.Endpoints
	now := time.Now().UnixNano()
	switch len(eps) {
	case 0:
		return nil
	case 1:
		return eps[0]
	}
	a, b := eps[rand.IntN(len(eps))], eps[rand.IntN(len(eps))]
	switch aOK, bOK := a.available(now), b.available(now); {
	case aOK && bOK:
		if b.inflight.Load() < a.inflight.Load() {
			return b
		}
		return a
	case aOK:
		return a
	case bOK:
		return b
	}
	// Both draws were ejected: any available endpoint, else the soonest back.
	soonest := eps[0]
	for _, e := range eps {
		if e.available(now) {
			return e
		}
		if e.ejectedUntil.Load() < soonest.ejectedUntil.Load() {
			soonest = e
		}
	}
	return soonest
}

// transport returns the shared upstream transport for a service's protocol and
// timeouts, reusing it across states so pooled connections survive a swap.
func (r *Registry) transport(service, protocol string, connect, idle time.Duration, live liveSet) http.RoundTripper {
	key := "t/" + service
	live[key] = true
	want := transportKey{protocol: protocol, connect: connect, idle: idle}
	r.mu.Lock()
	defer r.mu.Unlock()
	if t, ok := r.transports[key]; ok && t.key == want {
		return t.rt
	}
	if old, ok := r.transports[key]; ok {
		old.rt.CloseIdleConnections()
	}
	t := &keyedTransport{key: want, rt: NewTransport(protocol != config.ProtocolHTTP1, connect, idle)}
	r.transports[key] = t
	return t.rt
}

type transportKey struct {
	protocol      string
	connect, idle time.Duration
}

type keyedTransport struct {
	key transportKey
	rt  Transport
}

// Transport carries requests to upstream endpoints.
type Transport interface {
	http.RoundTripper
	CloseIdleConnections()
}

// NewTransport returns an upstream transport speaking HTTP/1.1, or HTTP/2 with prior
// knowledge (h2c) when h2c is true. It never uses proxies from the environment and
// never asks for compression on the caller's behalf.
func NewTransport(h2c bool, connect, idle time.Duration) Transport {
	dialer := net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	if !h2c {
		return &upstream.H1{Dialer: dialer, IdleTimeout: idle}
	}
	t := &http.Transport{
		Proxy:               nil,
		DialContext:         dialer.DialContext,
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     idle,
		DisableCompression:  true,
		Protocols:           new(http.Protocols),
	}
	t.Protocols.SetUnencryptedHTTP2(true)
	return t
}

// CloseIdleConnections closes the idle upstream connections of every transport.
func (r *Registry) CloseIdleConnections() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, t := range r.transports {
		t.rt.CloseIdleConnections()
	}
}
