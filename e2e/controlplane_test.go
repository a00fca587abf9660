package e2e

import (
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
)

// regionBackend is an app that says which region it plays.
func regionBackend(t *testing.T, region string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, region) })}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// startProcess runs the geode binary with args until the test ends (SIGTERM, then
// waits), keeping its stderr for failure messages.
func startProcess(t *testing.T, bin string, args ...string) *syncBuffer {
	t.Helper()
	var stderr syncBuffer
	cmd := exec.Command(bin, args...)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil && !t.Failed() {
				t.Errorf("geode %s exited with %v\n%s", args[0], err, stderr.String())
			}
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
			t.Errorf("geode %s did not stop within 15s of SIGTERM", args[0])
		}
	})
	return &stderr
}

// twoRegionFleet writes a manifest directory for a control plane: us-east and eu-west,
// 81 ms apart, and the service web with one backend in each that answers its region's
// name. It returns the directory.
func twoRegionFleet(t *testing.T) string {
	t.Helper()
	east, west := regionBackend(t, "us-east"), regionBackend(t, "eu-west")
	manifests := filepath.Join(t.TempDir(), "manifests")
	os.Mkdir(manifests, 0o755)
	os.WriteFile(filepath.Join(manifests, "geode.yaml"), []byte(fmt.Sprintf(`apiVersion: geode.io/v1alpha1
kind: Geode
regions:
  - name: us-east
    rtt: {eu-west: 81ms}
  - name: eu-west
services:
  - name: web
    protocol: http1
    endpoints:
      us-east: ["%s"]
      eu-west: ["%s"]
`, east, west)), 0o600)
	return manifests
}

// sidecarBase writes the file of a us-east sidecar whose regions and services come
// from a control plane, and returns its path and the outbound listener's address.
func sidecarBase(t *testing.T) (path, outbound string) {
	t.Helper()
	outbound = freePort(t)
	path = filepath.Join(t.TempDir(), "sidecar.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`region: us-east
listeners: {outbound: "%s"}
regions: [{name: us-east}]
`, outbound)), 0o600)
	return path, outbound
}

// servedBy calls web through the sidecar's outbound listener and returns what answered.
func servedBy(outbound string) string {
	req, _ := http.NewRequest(http.MethodGet, "http://"+outbound+"/", nil)
	req.Host = "web"
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// waitServedBy waits until web is served by region, failing with the processes' logs.
func waitServedBy(t *testing.T, outbound, region string, limit time.Duration, logs ...*syncBuffer) time.Duration {
	t.Helper()
	start := time.Now()
	for servedBy(outbound) != region {
		if time.Since(start) > limit {
			var b strings.Builder
			for _, l := range logs {
				b.WriteString(l.String())
			}
			t.Fatalf("web not served by %s within %s: last %q\n%s", region, limit, servedBy(outbound), b.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// The binary end to end: a control plane serves regions and services from a manifest
// directory, a sidecar takes them over xDS and routes by them, and `geode region down`
// moves its traffic to the next region.
func TestSidecarFollowsAControlPlaneProcess(t *testing.T) {
	bin := buildGeode(t)
	manifests := twoRegionFleet(t)
	// The fleet's session keys, as a Secret among the manifests: they reach the sidecar
	// (which has no keys file) over SDS.
	keysYAML := "keys:\n  - id: e2e-1\n    secret: " + base64.StdEncoding.EncodeToString([]byte("e2e session key: 32 bytes or more!")) +
		"\n    sign_from: 2026-01-01T00:00:00Z\n    expires: 2099-01-01T00:00:00Z\n"
	ring, err := consistency.ParseKeyRing([]byte(keysYAML))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(manifests, "session-keys.yaml"), []byte("apiVersion: v1\nkind: Secret\nmetadata: {name: geode-session-keys}\nstringData:\n  keys.yaml: |\n    "+
		strings.ReplaceAll(strings.TrimSuffix(keysYAML, "\n"), "\n", "\n    ")+"\n"), 0o600)
	xdsAddr, adminAddr := freePort(t), freePort(t)
	cpErr := startProcess(t, bin, "controlplane", "--config", manifests, "--listen", xdsAddr, "--admin", adminAddr, "--insecure")
	base, outbound := sidecarBase(t)
	scErr := startProcess(t, bin, "sidecar", "--config", base, "--xds", xdsAddr, "--insecure", "--node-id", "e2e-sidecar")
	waitServedBy(t, outbound, "us-east", 15*time.Second, cpErr, scErr)
	req, _ := http.NewRequest(http.MethodGet, "http://"+outbound+"/", nil)
	req.Host = "web"
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if _, err := ring.Verify(resp.Header.Get(consistency.HeaderSession), time.Now()); err != nil {
		t.Fatalf("session token %q does not verify with the manifests' key ring: %v\n%s%s", resp.Header.Get(consistency.HeaderSession), err, cpErr, scErr)
	}

	out, err := exec.Command(bin, "region", "down", "us-east", "--admin", adminAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("geode region down: %v\n%s", err, out)
	}
	took := waitServedBy(t, outbound, "eu-west", 5*time.Second, cpErr, scErr)
	t.Logf("failover to eu-west %v after `geode region down us-east`", took.Round(time.Millisecond))

	status, err := exec.Command(bin, "status", "--admin", adminAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("geode status: %v\n%s", err, status)
	}
	if !strings.Contains(string(status), "e2e-sidecar") || !strings.Contains(string(status), "SYNCED") {
		t.Fatalf("geode status does not show the synced sidecar:\n%s", status)
	}
}
