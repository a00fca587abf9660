package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/proxy/route"
	"github.com/geodemesh/geode/tracing"
)

// outcome is what forwarding did with one request.
type outcome struct {
	resp     *http.Response // the response to pass on; nil when nothing usable came back
	pool     *route.Pool    // where resp came from
	reason   affinity.Reason
	attempts int
	status   int
	err      *Error // set when resp is nil
}

// errUnavailable marks an attempt as a failure of its region (for the breaker).
var errUnavailable = errors.New("region unavailable")

// ejectFor keeps an endpoint that refused a connection out of picks for this long.
const ejectFor = time.Second

// forward tries the candidate regions in order, one attempt each, through each
// region's circuit breaker, and returns the first usable response.
//
// After a failed attempt a further region is tried only when the body (if any) can
// still be sent from its start (it is kept up to maxReplay) and either the failure
// left the request unprocessed (no connection, or a peer sidecar that could not reach
// its app: any request is safe to send again) or the request is retryable and the
// service's retry budget allows a retry. A 502/503/504 counts against its region; it
// is passed on when no further attempt is allowed. A 421 from a peer sidecar whose
// replica lacks the session's writes, or lags the data's origin by more than a
// bounded-staleness service allows, sends the request to the region it names (reason
// ryw or staleness): not a failure of the region, but a cross-region hop the budget
// pays for.
func (s *Sidecar) forward(ctx context.Context, r *http.Request, st *route.State, svc *route.Service, req *affinity.Request, c *affinity.Candidates, retryable bool) outcome {
	var body *replayBody
	if hasBody(r) {
		body = newReplayBody(r.Body, r.ContentLength)
	}
	svc.RetryBudget.Record()

	order := *c                   // a copy: a 421 may put a region ahead of the rest
	rywAt := -1                   // the position a 421 sent the request to
	var behind affinity.RegionSet // regions whose replica answered 421
	degradedOK := false           // set once a 421 names a region this request cannot use
	var tried []string            // "region (why)", for the error a client gets when all fail
	mayContinue := true
	out := outcome{reason: c.Reason()}
	for i := 0; i < order.Len() && out.attempts < svc.Attempts && mayContinue; i++ {
		region := order.At(i)
		pool := svc.Pools[region]
		done, ok := pool.Breaker.Allow()
		if !ok {
			s.metrics.attempts.WithLabelValues(svc.Name, pool.Name, "breaker_open").Inc()
			tried = append(tried, pool.Name+" (circuit open)")
			continue
		}
		out.attempts++
		reason := affinity.FailoverReason(c.Reason(), i)
		if i == rywAt {
			reason = redirectReason(svc)
		}
		resp, why, unprocessed := s.attemptRegion(ctx, r, body, st, svc, pool, try{reason: reason, n: out.attempts, degradedOK: degradedOK})
		if resp == nil {
			if ctx.Err() != nil && r.Context().Err() != nil {
				done(context.Canceled) // the client went away: not the region's fault
				s.metrics.attempts.WithLabelValues(svc.Name, pool.Name, "canceled").Inc()
				out.err = errorf(StageForward, 499, "client closed the request")
				return out
			}
			done(errUnavailable)
			tried = append(tried, pool.Name+" ("+why+")")
			if ctx.Err() != nil {
				out.err = errorf(StageForward, http.StatusGatewayTimeout, "service %q: request timed out after %s; tried %s", svc.Name, svc.Request, strings.Join(tried, ", "))
				return out
			}
			mayContinue = s.mayTryAgain(svc, body, unprocessed, retryable)
			continue
		}
		if resp.StatusCode == http.StatusMisdirectedRequest && resp.Header.Get(headerRegionHint) != "" {
			// A peer's replica lacks the session's writes and names the region that has them.
			done(nil) // the region answered: its replica is only behind
			s.metrics.attempts.WithLabelValues(svc.Name, pool.Name, "misdirected").Inc()
			pool.Outcomes.Success()
			behind.Add(region)
			resendable := body == nil || body.replayable()
			target, ok := s.redirectTarget(resp, st, svc, req)
			switch {
			case ok && resendable && !behind.Has(target) && order.Has(i+1, target) && (svc.Budget == nil || target == st.Local || s.spendRequired(svc)):
				discard(resp)
				tried = append(tried, pool.Name+" (replica behind the session)")
				order.Promote(i+1, target)
				rywAt = i + 1
				continue
			case !degradedOK && resendable:
				// The region with the data cannot be used by this request (unknown,
				// outside residency, already failed, breaker open, or over budget): ask
				// this region once more to serve what it has, flagged, rather than fail.
				discard(resp)
				degradedOK = true
				i--
				continue
			}
			out.resp, out.pool, out.reason, out.status = resp, pool, reason, resp.StatusCode
			return out
		}
		// A peer sidecar that could not reach its app says so (for gRPC inside a 200).
		unprocessed = resp.Header.Get(headerUnprocessed) != ""
		if unprocessed || unavailableStatus(resp.StatusCode) {
			done(errUnavailable)
			s.metrics.attempts.WithLabelValues(svc.Name, pool.Name, "status_5xx").Inc()
			pool.Outcomes.Failure()
			if i+1 < order.Len() && out.attempts < svc.Attempts && s.mayTryAgain(svc, body, unprocessed, retryable) {
				tried = append(tried, fmt.Sprintf("%s (status %d)", pool.Name, resp.StatusCode))
				discard(resp)
				continue
			}
		} else {
			done(nil)
			s.metrics.attempts.WithLabelValues(svc.Name, pool.Name, "ok").Inc()
			pool.Outcomes.Success()
		}
		out.resp, out.pool, out.reason, out.status = resp, pool, reason, resp.StatusCode
		return out
	}
	if len(tried) == 0 {
		out.err = errorf(StageDecide, http.StatusServiceUnavailable, "service %q: no healthy region (%s)", svc.Name, regionStates(st, svc))
	} else {
		out.err = errorf(StageForward, http.StatusServiceUnavailable, "service %q: no healthy region; tried %s", svc.Name, strings.Join(tried, ", "))
	}
	return out
}

// redirectReason is why a 421 sent a request on: the replica was behind the session's
// writes (ryw), or further behind the data's origin than a bounded-staleness service
// allows (staleness).
func redirectReason(svc *route.Service) affinity.Reason {
	if svc.Level.Kind == consistency.BoundedStaleness {
		return affinity.ReasonStaleness
	}
	return affinity.ReasonRYW
}

// redirectTarget returns the region a peer's 421 names, when it is a region of the
// service that the request may go to (residency).
func (s *Sidecar) redirectTarget(resp *http.Response, st *route.State, svc *route.Service, req *affinity.Request) (affinity.Region, bool) {
	r, ok := st.Region(resp.Header.Get(headerRegionHint))
	if !ok || svc.Pools[r] == nil || req.Restricted && !req.Allowed.Has(r) {
		return 0, false
	}
	return r, true
}

// spendRequired spends the cross-region budget for a hop required for correctness;
// false when an enforced budget is spent.
func (s *Sidecar) spendRequired(svc *route.Service) bool {
	allowed, over := svc.Budget.Spend()
	if over {
		s.metrics.overBudget.WithLabelValues(svc.Name, svc.BudgetConf.Mode.String()).Inc()
	}
	return allowed
}

// mayTryAgain says whether another region may be tried after a failed attempt, and
// spends a retry from the budget when the failed attempt may have been processed.
func (s *Sidecar) mayTryAgain(svc *route.Service, body *replayBody, unprocessed, idempotent bool) bool {
	if body != nil && !body.replayable() {
		return false
	}
	if unprocessed {
		return true // nothing was processed: sending again is safe for any request
	}
	if !idempotent {
		return false
	}
	if allowed, _ := svc.RetryBudget.Spend(); !allowed {
		s.metrics.retries.WithLabelValues(svc.Name, "budget_exhausted").Inc()
		return false
	}
	s.metrics.retries.WithLabelValues(svc.Name, "allowed").Inc()
	return true
}

// try is what one attempt carries besides the request.
type try struct {
	reason affinity.Reason
	n      int // the attempt's number, from 1
	// degradedOK asks the peer to serve a session read with what its replica has
	// (flagged) instead of a 421, because the region with the data cannot be reached.
	degradedOK bool
}

// attemptRegion sends r to one endpoint of pool, moving to another endpoint of the same
// region when one refuses the connection. It returns the response, or nil with a short
// reason and whether the request is known to be unprocessed (it never connected).
func (s *Sidecar) attemptRegion(ctx context.Context, r *http.Request, body *replayBody, st *route.State, svc *route.Service, pool *route.Pool, t try) (*http.Response, string, bool) {
	why := "no endpoints"
	for range len(pool.Endpoints) {
		var rc io.ReadCloser
		if body != nil {
			var ok bool
			if rc, ok = body.attempt(); !ok {
				return nil, "request body too large to send again", false
			}
		}
		ep := pool.Pick()
		resp, err := s.attempt(ctx, r, rc, st, svc, pool, ep, t)
		if err == nil {
			return resp, "", false
		}
		if isConnectError(err) {
			ep.Eject(ejectFor)
			s.metrics.attempts.WithLabelValues(svc.Name, pool.Name, "connect_error").Inc()
			if r.Context().Err() == nil { // a client that went away is not the region's failure
				pool.Outcomes.Failure()
			}
			why = "connection failed: " + shortError(err)
			continue
		}
		s.metrics.attempts.WithLabelValues(svc.Name, pool.Name, "error").Inc()
		if r.Context().Err() == nil { // a client that went away is not the region's failure
			pool.Outcomes.Failure()
		}
		return nil, shortError(err), false
	}
	return nil, why, true
}

// attempt sends one request to one endpoint, in a span of its own.
func (s *Sidecar) attempt(ctx context.Context, r *http.Request, body io.ReadCloser, st *route.State, svc *route.Service, pool *route.Pool, ep *route.Endpoint, t try) (*http.Response, error) {
	ctx, span := s.startSpan(ctx, nil, pool.AttemptSpanName, trace.SpanKindClient)
	if span.IsRecording() {
		span.SetAttributes(
			tracing.SrcRegion.String(st.LocalName()),
			tracing.DstRegion.String(pool.Name),
			tracing.CrossRegion.Bool(pool.Region != st.Local),
			tracing.Reason.String(t.reason.String()),
			tracing.Attempt.Int(t.n),
			tracing.Endpoint.String(ep.Addr),
		)
	}
	defer span.End()

	out := (&http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: "http", Host: ep.Addr, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header, len(r.Header)+2),
		ContentLength: r.ContentLength,
		Host:          r.Host,
		Trailer:       r.Trailer,
	}).WithContext(ctx)
	if r.URL.Host != "" {
		out.Host = r.URL.Host
	}
	if body != nil {
		out.Body = body
	} else if r.ContentLength == 0 {
		out.ContentLength = 0
	}
	copyEndToEnd(out.Header, r.Header, nil)
	if t.degradedOK {
		out.Header[headerAcceptDegraded] = []string{"read-your-writes"}
	}
	s.inject(ctx, out.Header)

	ep.Start()
	var resp *http.Response
	var err error
	if proto := upgradeProtocol(r); proto != "" {
		resp, err = roundTripUpgrade(ctx, out, ep.Addr, svc.Connect, proto)
	} else {
		resp, err = svc.Transport.RoundTrip(out)
	}
	ep.Done()
	if err != nil {
		if span.IsRecording() {
			span.RecordError(err)
			span.SetStatus(codes.Error, shortError(err))
		}
		return nil, err
	}
	if resp.StatusCode >= 500 && span.IsRecording() {
		span.SetStatus(codes.Error, resp.Status)
	}
	return resp, nil
}

// respond streams resp to the client, with its trailers, and stamps the serving region.
// Headers set on w before it (the session token) go out with the response.
func (s *Sidecar) respond(w http.ResponseWriter, resp *http.Response, pool *route.Pool, reason affinity.Reason) {
	h := w.Header()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		h[headerRegion] = pool.NameHeader
		if s.reasonHeader {
			h[headerReason] = []string{reason.String()}
		}
		if err := s.switchProtocols(w, resp); err != nil {
			s.log.Warn("protocol upgrade failed", "region", pool.Name, "err", err)
		}
		return
	}
	defer resp.Body.Close()
	copyEndToEnd(h, resp.Header, isPeerOnlyHeader)
	h[headerRegion] = pool.NameHeader
	if s.reasonHeader {
		h[headerReason] = []string{reason.String()}
	}
	announceTrailers(h, resp)
	w.WriteHeader(resp.StatusCode)
	if err := s.copyBody(w, resp); err != nil {
		// The upstream failed mid-body: abort so the client sees a broken response
		// (HTTP/2 stream reset, HTTP/1 connection closed), never a truncated success.
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		h[http.TrailerPrefix+k] = vv
	}
}

// announceTrailers declares the trailers the upstream announced. A body with trailers
// cannot keep a Content-Length on HTTP/1.1 (trailers need chunked encoding), so it is
// dropped then; an HTTP/2 upstream may send both.
func announceTrailers(h http.Header, resp *http.Response) {
	if len(resp.Trailer) == 0 {
		return
	}
	keys := make([]string, 0, len(resp.Trailer))
	for k := range resp.Trailer {
		keys = append(keys, k)
	}
	h["Trailer"] = []string{strings.Join(keys, ", ")}
	delete(h, "Content-Length")
}

// copyBody copies the response body, flushing after every write for streams (gRPC,
// server-sent events, responses of unknown length) so nothing waits in a buffer.
func (s *Sidecar) copyBody(w http.ResponseWriter, resp *http.Response) error {
	bp := s.buffers.Get().(*[]byte)
	defer s.buffers.Put(bp)
	buf := *bp
	stream := isStream(resp)
	rc := http.NewResponseController(w)
	if stream {
		_ = rc.Flush() // a stream's headers go out now, not with its first message
	}
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil // the client went away; nothing more to do
			}
			if stream {
				_ = rc.Flush()
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// isStream reports whether a response is a stream whose parts must reach the client as
// they arrive: gRPC, server-sent events, or any body of unknown length.
func isStream(resp *http.Response) bool {
	ct := resp.Header.Get("Content-Type")
	return resp.ContentLength < 0 || strings.HasPrefix(ct, "application/grpc") || strings.HasPrefix(ct, "text/event-stream")
}

func newBufferPool() *sync.Pool {
	return &sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
}

func unavailableStatus(code int) bool {
	return code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout
}

func isConnectError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	resp.Body.Close()
}

// shortError keeps the last, most specific part of a wrapped network error.
func shortError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 && i+2 < len(msg) {
		return msg[i+2:]
	}
	return msg
}

func regionStates(st *route.State, svc *route.Service) string {
	if len(svc.View.Order) == 0 {
		return "no region has endpoints for it"
	}
	names := make([]string, 0, len(svc.View.Order))
	for _, r := range svc.View.Order {
		names = append(names, st.RegionName(r)+"="+svc.View.States[r].String())
	}
	return strings.Join(names, ", ")
}
