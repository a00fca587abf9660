package sidecar

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sony/gobreaker/v2"

	"github.com/geodemesh/geode/proxy/route"
)

// metrics are the sidecar's Prometheus metrics, on a registry of its own (never the
// global one). Label values are bounded: services and regions come from config, reasons
// and results are enums.
type metrics struct {
	registry    *prometheus.Registry
	requests    *prometheus.CounterVec   // listener, service, region, reason, code
	duration    *prometheus.HistogramVec // service, region
	crossRegion *prometheus.CounterVec   // service, src_region, dst_region, reason
	attempts    *prometheus.CounterVec   // service, region, result
	rejected    *prometheus.CounterVec   // listener, cause
	dropped     *prometheus.CounterVec   // listener: geode-* headers dropped from untrusted peers
	retries     *prometheus.CounterVec   // service, result
	breaker     *prometheus.GaugeVec     // service, region
	transitions *prometheus.CounterVec   // service, region, to
	swaps       *prometheus.CounterVec   // result
	tokens      *prometheus.CounterVec   // result: valid, or why a token was treated as absent
	overBudget  *prometheus.CounterVec   // service, mode
	misdirected *prometheus.CounterVec   // service: inbound 421s, the local replica behind a session
	// rywUnavailable: session reads served without the session's writes because the
	// only region that has them cannot serve.
	rywUnavailable *prometheus.CounterVec // service
	// beyondBound: bounded-staleness reads the inbound listener found its replica too far
	// behind for: answered 421 (misdirected) or served flagged (degraded).
	beyondBound *prometheus.CounterVec // service, result
}

// budgetCollector reports each service's cross-region budget remaining, read from the
// routing state in force at scrape time.
type budgetCollector struct {
	state func() *route.State
	desc  *prometheus.Desc
}

func (c budgetCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c budgetCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.state()
	if st == nil {
		return
	}
	for _, svc := range st.Services() {
		if svc.Budget != nil {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, svc.Budget.Remaining(), svc.Name, st.LocalName(), svc.BudgetConf.Mode.String())
		}
	}
}

func newMetrics(state func() *route.State) *metrics {
	m := &metrics{
		registry: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_requests_total", Help: "Requests handled, by listener, service, serving region, routing reason and status code.",
		}, []string{"listener", "service", "region", "reason", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "geode_request_duration_seconds", Help: "Outbound request latency as seen by the app, by service and serving region.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"service", "region"}),
		crossRegion: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_cross_region_requests_total", Help: "Requests served outside the caller's region, by why they left.",
		}, []string{"service", "src_region", "dst_region", "reason"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_upstream_attempts_total", Help: "Upstream attempts by service, region and result (ok, status_5xx, connect_error, error, breaker_open, canceled).",
		}, []string{"service", "region", "result"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_rejected_requests_total", Help: "Requests Geode refused before routing, by listener and cause.",
		}, []string{"listener", "cause"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_untrusted_headers_dropped_total", Help: "geode-* headers dropped because they did not come from a trusted mesh peer.",
		}, []string{"listener"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_retries_total", Help: "Retries in another region, by service and whether the retry budget allowed them.",
		}, []string{"service", "result"}),
		breaker: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "geode_breaker_state", Help: "Circuit breaker state per service and region: 0 closed, 1 half-open, 2 open.",
		}, []string{"service", "region"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_breaker_transitions_total", Help: "Circuit breaker state changes per service and region, by new state.",
		}, []string{"service", "region", "to"}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "geode_routing_state_swaps_total", Help: "Routing state updates, by result (applied, rejected).",
		}, []string{"result"}),
	}
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "geode_session_tokens_total", Help: "Session tokens seen on requests: valid, or why one was treated as absent (forged, expired, unknown_key, retired_key, malformed, too_large).",
	}, []string{"result"})
	m.overBudget = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "geode_cross_region_over_budget_total", Help: "Cross-region hops asked for while the service's budget was spent, by mode (shadow: sent anyway; enforce: kept local or refused).",
	}, []string{"service", "mode"})
	m.misdirected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "geode_ryw_misdirected_total", Help: "Session reads the inbound listener answered with 421 because the local replica had not applied the session's writes in time.",
	}, []string{"service"})
	m.rywUnavailable = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "geode_ryw_unavailable_total", Help: "Session reads served without the session's writes because the only region that has them could not serve (down, fenced or its breaker open).",
	}, []string{"service"})
	m.beyondBound = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "geode_staleness_beyond_bound_total", Help: "Bounded-staleness reads the inbound listener's replica lagged the data's origin by more than the bound for: answered 421 naming the origin (misdirected), or served flagged Geode-Degraded: staleness when the caller could not go there (degraded).",
	}, []string{"service", "result"})
	m.registry.MustRegister(
		m.rywUnavailable, m.beyondBound,
		budgetCollector{state: state, desc: prometheus.NewDesc("geode_cross_region_budget_remaining",
			"Cross-region calls the service may still make from this region in the current window (negative: over budget, in shadow mode).",
			[]string{"service", "src_region", "mode"}, nil)},
		m.tokens, m.overBudget, m.misdirected,
		m.requests, m.duration, m.crossRegion, m.attempts, m.rejected, m.dropped,
		m.retries, m.breaker, m.transitions, m.swaps,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// breakerChanged records a breaker transition.
func (m *metrics) breakerChanged(service, region string, _, to gobreaker.State) {
	var v float64
	switch to {
	case gobreaker.StateHalfOpen:
		v = 1
	case gobreaker.StateOpen:
		v = 2
	}
	m.breaker.WithLabelValues(service, region).Set(v)
	m.transitions.WithLabelValues(service, region, to.String()).Inc()
}
