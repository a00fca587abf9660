package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/server"
)

// syncBuffer is a bytes.Buffer safe for the logger's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// logLine returns the first JSON log line with message msg after skipping `after` of them.
func (s *syncBuffer) logLine(msg string, after int) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, l := range strings.Split(s.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			if after == 0 {
				return m
			}
			after--
		}
	}
	return nil
}

func TestControlplaneReloadsManifests(t *testing.T) {
	dir := t.TempDir()
	fleet := func(rtt string) string {
		return "apiVersion: geode.io/v1alpha1\nkind: Geode\nregions:\n  - {name: us-east, rtt: {eu-west: " + rtt + "}, zones: [us-east-1a]}\n  - {name: eu-west}\n"
	}
	write := func(name, text string) {
		tmp := filepath.Join(dir, "."+name)
		if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	write("geode.yaml", fleet("80ms"))
	write("web.yaml", `apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1], zone: us-east-1a}]
`)
	admin, logs := startControlplane(t, "--config", dir, "--reload-debounce", "50ms")
	dump := func() server.ConfigDump {
		var d server.ConfigDump
		if err := adminCall(context.Background(), 2*time.Second, "GET", admin, "/config_dump", &d); err != nil {
			t.Fatal(err)
		}
		return d
	}
	first := dump()
	if len(first.Services) != 1 || first.Services[0].Endpoints["us-east"][0].Address != "10.0.0.1:8080" {
		t.Fatalf("services %+v", first.Services)
	}

	// Valid change: applied.
	write("geode.yaml", fleet("90ms"))
	eventually(t, "reload", func() bool { return logs.logLine("manifests reloaded", 0) != nil })
	if second := dump(); second.ModelVersion == first.ModelVersion {
		t.Fatal("model not replaced")
	}
	// Scaled to zero (or every pod unready in a rollout): still a valid directory; web
	// is served without endpoints, and shown so.
	write("web.yaml", `apiVersion: v1
kind: Service
metadata: {name: web}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: web-1, labels: {kubernetes.io/service-name: web}}
addressType: IPv4
ports: [{port: 8080}]
endpoints: [{addresses: [10.0.0.1], zone: us-east-1a, conditions: {ready: false}}]
`)
	var reloaded map[string]any
	eventually(t, "reload without ready endpoints", func() bool { reloaded = logs.logLine("manifests reloaded", 1); return reloaded != nil })
	if idle, _ := reloaded["without_endpoints"].([]any); len(idle) != 1 || idle[0] != "web" {
		t.Errorf("reload log without_endpoints = %v, want [web]", reloaded["without_endpoints"])
	}
	second := dump()
	if len(second.Services) != 1 || second.Services[0].Name != "web" || len(second.Services[0].Endpoints) != 0 {
		t.Fatalf("services %+v, want web without endpoints", second.Services)
	}
	if second.Snapshots["us-east"] == "" || second.Snapshots["eu-west"] == "" {
		t.Fatalf("snapshots %v: not published for every region", second.Snapshots)
	}
	// Invalid change: logged with file and field, the model stays.
	write("web.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80, appProtocol: spdy}]}\n")
	var rejected map[string]any
	eventually(t, "rejection", func() bool { rejected = logs.logLine("manifests rejected", 0); return rejected != nil })
	if msg, _ := rejected["err"].(string); !strings.Contains(msg, filepath.Join(dir, "web.yaml")+`: document 1 (Service default/web): spec.ports[0].appProtocol: "spdy"`) {
		t.Fatalf("rejection %q", msg)
	}
	time.Sleep(200 * time.Millisecond)
	if d := dump(); d.ModelVersion != second.ModelVersion {
		t.Fatalf("model %s after an invalid change, want the last good %s", d.ModelVersion, second.ModelVersion)
	}
}

func TestControlplaneCheckNamesServicesWithoutEndpoints(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"geode.yaml": "apiVersion: geode.io/v1alpha1\nkind: Geode\nregions:\n  - {name: us-east, zones: [us-east-1a]}\n",
		"web.yaml":   "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if err := runControlplane(context.Background(), []string{"--config", dir, "--check"}, &out, &errOut); err != nil {
		t.Fatalf("--check refused a Service without endpoints: %v (%s)", err, errOut.String())
	}
	if !strings.Contains(out.String(), "1 services)") || !strings.Contains(out.String(), "without endpoints (until one is ready or a sidecar registers one): web\n") {
		t.Fatalf("--check said %q", out.String())
	}
}

// startControlplane runs `geode controlplane --insecure` on loopback ports with args
// until the test ends, and returns its admin address (once it serves) and its log.
func startControlplane(t *testing.T, args ...string) (admin string, logs *syncBuffer) {
	t.Helper()
	logs = new(syncBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runControlplane(ctx, append([]string{"--insecure", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}, args...), new(bytes.Buffer), logs)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("controlplane: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("controlplane did not stop within 10s")
		}
	})
	eventually(t, "control plane serving", func() bool {
		if l := logs.logLine("control plane serving", 0); l != nil {
			admin, _ = l["admin"].(string)
		}
		return admin != ""
	})
	return admin, logs
}
