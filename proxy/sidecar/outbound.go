package sidecar

import (
	"net/http"
	"strconv"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/geodemesh/geode/affinity"
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

	// 3. Classify. Session tokens and read/write classes join here with the policies.
	idem := idempotent(r.Method)

	// 5. Decide: the ordered policies narrow the service's regions to candidates.
	var cands affinity.Candidates
	affinity.Decide(&svc.View, s.policies, &cands)

	ctx, span := s.startSpan(r.Context(), r.Header, svc.SpanName, trace.SpanKindServer,
		tracing.Service.String(svc.Name), tracing.SrcRegion.String(st.LocalName()))
	defer span.End()

	// 6-8. Pick, forward and respond, region by region.
	out := s.forward(ctx, w, r, st, svc, &cands, idem)

	region, reason := "", cands.Reason()
	if out.served {
		region = st.RegionName(out.region)
		reason = out.reason
		cross := out.region != st.Local
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
	s.record(r, svc.Name, st, &cands, region, reason, out, start, span)
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

func (s *Sidecar) record(r *http.Request, service string, st *route.State, c *affinity.Candidates, region string, reason affinity.Reason, out outcome, start time.Time, span trace.Span) {
	d := Decision{
		Time: start, Service: service, Method: r.Method, Path: r.URL.Path,
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
