package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSidecarCheck(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"sidecar", "--check", "../../examples/sidecar/us-east.yaml"}, &out, &errOut); err != nil {
		t.Fatalf("the shipped example config is invalid: %v", err)
	}
	if !strings.Contains(out.String(), "ok (region us-east, 3 regions, 2 services)") {
		t.Fatalf("output %q", out.String())
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("region: us-east\nlisteners: {outbound: \"127.0.0.1:1\"}\nregions: [{name: us-east}]\nservices: [{name: a, protocol: spdy, endpoints: {us-east: [\"127.0.0.1:2\"]}}]\n"), 0o600)
	err := run(context.Background(), []string{"sidecar", "--check", bad}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), `services[0].protocol: "spdy"`) {
		t.Fatalf("bad config: %v", err)
	}

	// A service without endpoints is valid (its calls are answered 503), and noted.
	empty := filepath.Join(t.TempDir(), "empty.yaml")
	os.WriteFile(empty, []byte("region: us-east\nlisteners: {outbound: \"127.0.0.1:1\"}\nregions: [{name: us-east}]\nservices: [{name: a}]\n"), 0o600)
	out.Reset()
	if err := run(context.Background(), []string{"sidecar", "--check", empty}, &out, &errOut); err != nil {
		t.Fatalf("a service without endpoints refused: %v", err)
	}
	if !strings.Contains(out.String(), "services[0] (a) has no endpoints: its calls will be answered 503") {
		t.Fatalf("output %q", out.String())
	}
}

func TestUsageErrors(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), nil, &out, &errOut); exitCode(err) != 2 {
		t.Fatalf("no command: %v", err)
	}
	if err := run(context.Background(), []string{"frobnicate"}, &out, &errOut); exitCode(err) != 2 || !strings.Contains(errOut.String(), `unknown command "frobnicate"`) {
		t.Fatalf("unknown command: %v %q", err, errOut.String())
	}
	if err := run(context.Background(), []string{"sidecar"}, &out, &errOut); exitCode(err) != 2 || !strings.Contains(errOut.String(), "--config is required") {
		t.Fatalf("sidecar without config: %v", err)
	}
}
