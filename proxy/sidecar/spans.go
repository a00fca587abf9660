package sidecar

import (
	"context"
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// startSpan continues the trace of the incoming headers h in a new span. With tracing
// off it does nothing at all: ctx comes back unchanged with a no-op span, and the trace
// headers travel on untouched with the other end-to-end headers.
func (s *Sidecar) startSpan(ctx context.Context, h http.Header, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !s.tracing {
		return ctx, trace.SpanFromContext(ctx)
	}
	if h != nil {
		ctx = s.propagator.Extract(ctx, propagation.HeaderCarrier(h))
	}
	return s.tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// inject writes ctx's trace context into outgoing headers, when tracing is on.
func (s *Sidecar) inject(ctx context.Context, h http.Header) {
	if s.tracing {
		s.propagator.Inject(ctx, propagation.HeaderCarrier(h))
	}
}
