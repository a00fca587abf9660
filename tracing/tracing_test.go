package tracing

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestNewProviderPerExporter(t *testing.T) {
	ctx := context.Background()

	tp, shutdown, err := NewProvider(ctx, Options{Exporter: "none"})
	if err != nil || Enabled(tp) {
		t.Fatalf("none: enabled=%v err=%v; want a no-op provider", Enabled(tp), err)
	}
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	var out bytes.Buffer
	tp, shutdown, err = NewProvider(ctx, Options{Exporter: "stdout", SampleRatio: 1, ServiceName: "geode-sidecar", Region: "us-east", Stdout: &out})
	if err != nil || !Enabled(tp) {
		t.Fatalf("stdout: enabled=%v err=%v", Enabled(tp), err)
	}
	_, span := tp.Tracer("test").Start(ctx, "hop")
	span.SetAttributes(DstRegion.String("eu-west"))
	span.End()
	if err := shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"Name":"hop"`, "geode.dst_region", "eu-west", "us-east"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("stdout export lacks %s:\n%s", want, out.String())
		}
	}

	for _, exp := range []string{"otlp-grpc", "otlp-http"} {
		tp, shutdown, err := NewProvider(ctx, Options{Exporter: exp, Endpoint: "127.0.0.1:1", Insecure: true, SampleRatio: 1})
		if err != nil || !Enabled(tp) {
			t.Fatalf("%s: enabled=%v err=%v", exp, Enabled(tp), err)
		}
		sctx, cancel := context.WithTimeout(ctx, 100e6)
		shutdown(sctx) // nothing listens there: flushing may fail, it must not hang
		cancel()
	}

	if _, _, err := NewProvider(ctx, Options{Exporter: "jaeger"}); err == nil || !strings.Contains(err.Error(), `"jaeger"`) {
		t.Fatalf("unknown exporter: %v", err)
	}
}
