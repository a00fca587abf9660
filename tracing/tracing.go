package tracing

import (
	"context"
	"fmt"
	"io"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.40.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Attribute keys of a region hop, set on every proxied request's span and attempt span.
const (
	SrcRegion   = attribute.Key("geode.src_region")
	DstRegion   = attribute.Key("geode.dst_region")
	CrossRegion = attribute.Key("geode.cross_region")
	Reason      = attribute.Key("geode.reason")
	Service     = attribute.Key("geode.service")
	Attempt     = attribute.Key("geode.attempt")
	Endpoint    = attribute.Key("geode.endpoint")
)

// Options select the exporter.
type Options struct {
	// Exporter: "none", "stdout", "otlp-grpc" or "otlp-http".
	Exporter string
	// Endpoint is the collector's host:port for the otlp exporters.
	Endpoint string
	// Insecure disables TLS to the collector.
	Insecure bool
	// SampleRatio of new root traces to record; parent decisions are always followed.
	SampleRatio float64
	// ServiceName and Region describe this process in the resource.
	ServiceName string
	Region      string
	// Stdout receives spans for the stdout exporter.
	Stdout io.Writer
}

// NewProvider returns a TracerProvider for opts and the function that flushes and stops
// it. With exporter "none" it is OpenTelemetry's no-op provider: Geode then starts no
// spans at all, and trace headers pass through hops untouched.
func NewProvider(ctx context.Context, opts Options) (trace.TracerProvider, func(context.Context) error, error) {
	sdk, err := newSDKProvider(ctx, opts)
	if err != nil {
		return nil, nil, err
	}
	if sdk == nil {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, nil
	}
	return sdk, sdk.Shutdown, nil
}

// Enabled reports whether tp records anything: false for the no-op provider.
func Enabled(tp trace.TracerProvider) bool {
	_, off := tp.(noop.TracerProvider)
	return tp != nil && !off
}

func newSDKProvider(ctx context.Context, opts Options) (*sdktrace.TracerProvider, error) {
	res := resource.NewWithAttributes(semconv.SchemaURL,
		semconv.ServiceName(opts.ServiceName),
		attribute.String("geode.region", opts.Region),
	)
	sampler := sdktrace.ParentBased(sdktrace.TraceIDRatioBased(opts.SampleRatio))
	var exp sdktrace.SpanExporter
	var err error
	switch opts.Exporter {
	case "", "none":
		return nil, nil
	case "stdout":
		w := opts.Stdout
		if w == nil {
			w = io.Discard
		}
		exp, err = stdouttrace.New(stdouttrace.WithWriter(w))
	case "otlp-grpc":
		o := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(opts.Endpoint)}
		if opts.Insecure {
			o = append(o, otlptracegrpc.WithInsecure())
		}
		exp, err = otlptracegrpc.New(ctx, o...)
	case "otlp-http":
		o := []otlptracehttp.Option{otlptracehttp.WithEndpoint(opts.Endpoint)}
		if opts.Insecure {
			o = append(o, otlptracehttp.WithInsecure())
		}
		exp, err = otlptracehttp.New(ctx, o...)
	default:
		return nil, fmt.Errorf("tracing: unknown exporter %q", opts.Exporter)
	}
	if err != nil {
		return nil, fmt.Errorf("tracing: %s exporter: %w", opts.Exporter, err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(exp),
	), nil
}

// Propagator is the W3C trace-context and baggage propagator Geode uses on every hop.
func Propagator() propagation.TextMapPropagator {
	return propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{})
}
