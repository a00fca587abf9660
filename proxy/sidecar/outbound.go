package sidecar

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/proxy/route"
	"github.com/geodemesh/geode/tracing"
)

// serveOutbound is the request path of a call from the local app to a mesh service,
// top to bottom (DESIGN.md, "The request path").
func (s *Sidecar) serveOutbound(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	if e := checkRequest(r); e != nil {
		s.reject(w, r, listenerOutbound, e)
		return
	}

	// 1. One atomic load: the immutable routing state for this request.
	st := s.state.Load()

	// 2. The destination, by authority (Host, :authority, or an absolute-form URI in
	// HTTP proxy mode). Unknown destinations are refused: never an open proxy.
	authority := r.Host
	if r.URL.Host != "" {
		authority = r.URL.Host
	}
	svc := st.Service(authority)
	if svc == nil {
		s.reject(w, r, listenerOutbound, errorf(StageService, http.StatusNotFound, "no service for authority %q", authority))
		return
	}

	// 3-4. Classify (read or write, level, affinity key) and read the session token:
	// a bad token counts as none.
	sess := s.readSession(r.Header, start)
	d := s.decisions.scratch()
	defer s.decisions.release(d)
	preq, cands := &d.req, &d.cands
	var key string
	*preq, key = s.classify(r, st, svc, &sess, start, true)

	// 5. Decide: the ordered policies narrow the service's regions to candidates.
	affinity.Decide(&svc.View, preq, s.policies, cands)
	if cands.OverBudget() {
		s.metrics.overBudget.WithLabelValues(svc.Name, svc.BudgetConf.Mode.String()).Inc()
	}

	ctx, span := s.startSpan(r.Context(), r.Header, svc.SpanName, trace.SpanKindServer,
		tracing.Service.String(svc.Name), tracing.SrcRegion.String(st.LocalName()))
	defer span.End()

	// 6-7. Pick and forward, region by region, within the service's request timeout
	// (which covers streaming the response back, too).
	if svc.Request > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, svc.Request)
		defer cancel()
	}
	var out outcome
	if cands.Len() == 0 {
		out = outcome{reason: cands.Reason(), err: refusal(st, svc, cands, preq, key)}
	} else {
		// A read (however sent) or an idempotent method may be retried elsewhere.
		out = s.forward(ctx, r, st, svc, preq, cands, idempotent(r.Method) || !preq.Write)
	}

	// 8. Respond: fold the response into the session token, stamp the serving region.
	region, reason := "", out.reason
	if out.resp != nil {
		region = out.pool.Name
		cross := out.pool.Region != st.Local
		s.observeReplica(st, out.pool.Region, out.resp.Header, start)
		s.renewSession(w, out.resp, st, svc, &sess, preq, key, region, reason, start)
		s.respond(w, out.resp, out.pool, reason)
		if span.IsRecording() {
			span.SetAttributes(tracing.DstRegion.String(region), tracing.CrossRegion.Bool(cross), tracing.Reason.String(reason.String()))
		}
		if cross {
			s.metrics.crossRegion.WithLabelValues(svc.Name, st.LocalName(), region, reason.String()).Inc()
		}
		s.metrics.duration.WithLabelValues(svc.Name, region).Observe(time.Since(start).Seconds())
	} else {
		if span.IsRecording() {
			span.SetAttributes(tracing.Reason.String(reason.String()))
			span.SetStatus(codes.Error, out.err.Msg)
		}
		out.err.write(w, r)
		out.status = out.err.Status
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("http.response.status_code", out.status))
	}
	s.metrics.requests.WithLabelValues(listenerOutbound, svc.Name, region, reason.String(), statusLabel(out.status)).Inc()
	s.record(r, svc, st, preq, cands, region, reason, out, start, span)
}

// refusal explains why the policies left no region for a request.
func refusal(st *route.State, svc *route.Service, c *affinity.Candidates, req *affinity.Request, key string) *Error {
	switch c.Reason() {
	case affinity.ReasonHomeWrite, affinity.ReasonStrong:
		what := "writes"
		if c.Reason() == affinity.ReasonStrong {
			what = "strong requests"
		}
		return errorf(StageDecide, http.StatusServiceUnavailable, "service %q: key %q: home region %s is %s; %s go to the home region only",
			svc.Name, key, st.RegionName(req.Home), homeState(st, svc, req), what)
	case affinity.ReasonResidency:
		return errorf(StageDecide, http.StatusServiceUnavailable, "service %q: key %q may only be served in %s (residency), and none of them can serve now",
			svc.Name, key, setNames(st, req.Allowed))
	case affinity.ReasonBudgetDenied:
		return errorf(StageDecide, http.StatusTooManyRequests, "service %q: the cross-region budget from %s is spent (%s), and this request must leave the region",
			svc.Name, st.LocalName(), svc.BudgetConf)
	}
	return errorf(StageDecide, http.StatusServiceUnavailable, "service %q: no healthy region (%s)", svc.Name, regionStates(st, svc))
}

func homeState(st *route.State, svc *route.Service, req *affinity.Request) string {
	switch {
	case svc.Pools[req.Home] == nil:
		return "without endpoints for the service"
	case req.Restricted && !req.Allowed.Has(req.Home):
		return "not allowed by residency"
	}
	return svc.View.States[req.Home].String()
}

func setNames(st *route.State, set affinity.RegionSet) string {
	var names []string
	for i, n := range st.Regions() {
		if set.Has(affinity.Region(i)) {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return "no known region"
	}
	return strings.Join(names, ", ")
}

// checkRequest refuses what a proxy must never pass on.
func checkRequest(r *http.Request) *Error {
	switch {
	case enterHandler(r):
		return errorf(StageListener, http.StatusBadRequest, "request has both Transfer-Encoding and Content-Length")
	case r.Method == http.MethodConnect:
		return errorf(StageListener, http.StatusMethodNotAllowed, "CONNECT tunnels are not supported")
	}
	return nil
}

// reject answers a request Geode refuses before routing, counts it, and closes HTTP/1
// connections that sent malformed input.
func (s *Sidecar) reject(w http.ResponseWriter, r *http.Request, listener string, e *Error) {
	cause := "unknown_service"
	if e.Stage == StageListener {
		cause = "malformed"
		if r.ProtoMajor == 1 {
			w.Header().Set("Connection", "close")
		}
	}
	s.metrics.rejected.WithLabelValues(listener, cause).Inc()
	e.write(w, r)
}

func (s *Sidecar) record(r *http.Request, svc *route.Service, st *route.State, req *affinity.Request, c *affinity.Candidates, region string, reason affinity.Reason, out outcome, start time.Time, span trace.Span) {
	op := consistency.OpRead
	if req.Write {
		op = consistency.OpWrite
	}
	d := Decision{
		Time: start, Service: svc.Name, Method: r.Method, Path: r.URL.Path, Op: op.String(), Level: svc.Level.String(),
		Region: region, Reason: reason.String(), Attempts: out.attempts, Status: out.status,
		DurationMS: float64(time.Since(start).Microseconds()) / 1000,
	}
	for i := range c.Len() {
		d.Candidates = append(d.Candidates, st.RegionName(c.At(i)))
	}
	if sc := span.SpanContext(); sc.HasTraceID() {
		d.TraceID = sc.TraceID().String()
	}
	if out.err != nil {
		d.Error = out.err.Msg
	}
	s.decisions.add(d)
}

func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}

func hasBody(r *http.Request) bool {
	return r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
}

// statusLabel is the metric label of a status code.
func statusLabel(code int) string { return strconv.Itoa(code) }
