package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/identity/identitytest"
)

// The binary end to end over mutual TLS: a control plane and a sidecar started with
// --tls-cert/--tls-key/--tls-ca route traffic; the sidecar's node id comes from its
// certificate, and a sidecar whose certificate names another region does not start.
func TestSidecarFollowsAControlPlaneOverMTLS(t *testing.T) {
	bin := buildGeode(t)
	east, west := regionBackend(t, "us-east"), regionBackend(t, "eu-west")
	dir := t.TempDir()
	manifests := filepath.Join(dir, "manifests")
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

	ca := identitytest.NewCA(t, "geode.e2e")
	certs := t.TempDir()
	cp := ca.Write(t, certs, "controlplane", ca.Issue(t, "spiffe://geode.e2e/geode/controlplane"))
	sc := ca.Write(t, certs, "sidecar", ca.Issue(t, "spiffe://geode.e2e/geode/region/us-east/node/e2e-mtls"))
	wrong := ca.Write(t, certs, "wrong", ca.Issue(t, "spiffe://geode.e2e/geode/region/eu-west/node/e2e-mtls"))

	xdsAddr, adminAddr := freePort(t), freePort(t)
	cpErr := startProcess(t, bin, "controlplane", "--config", manifests, "--listen", xdsAddr, "--admin", adminAddr,
		"--tls-cert", cp.Cert, "--tls-key", cp.Key, "--tls-ca", cp.CA)

	outbound := freePort(t)
	base := filepath.Join(dir, "sidecar.yaml")
	os.WriteFile(base, []byte(fmt.Sprintf(`region: us-east
listeners: {outbound: "%s"}
regions: [{name: us-east}]
`, outbound)), 0o600)

	// A certificate for eu-west does not fit a us-east sidecar: refused at startup.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "sidecar", "--config", base, "--xds", xdsAddr,
		"--tls-cert", wrong.Cert, "--tls-key", wrong.Key, "--tls-ca", wrong.CA).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `region "eu-west"`) {
		t.Fatalf("a sidecar with an eu-west certificate and a us-east config: %v\n%s", err, out)
	}

	scErr := startProcess(t, bin, "sidecar", "--config", base, "--xds", xdsAddr,
		"--tls-cert", sc.Cert, "--tls-key", sc.Key, "--tls-ca", sc.CA)

	servedBy := func() string {
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
	deadline := time.Now().Add(15 * time.Second)
	for servedBy() != "us-east" {
		if time.Now().After(deadline) {
			t.Fatalf("the sidecar never routed web to us-east over mTLS: last %q\ncontrol plane:\n%s\nsidecar:\n%s", servedBy(), cpErr.String(), scErr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	status, err := exec.Command(bin, "status", "--admin", adminAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("geode status: %v\n%s", err, status)
	}
	if !strings.Contains(string(status), "e2e-mtls") || !strings.Contains(string(status), "SYNCED") {
		t.Fatalf("geode status does not show the synced sidecar (node id from its certificate):\n%s", status)
	}
	if strings.Contains(cpErr.String(), "INSECURE") || strings.Contains(scErr.String(), "PLAINTEXT") {
		t.Fatalf("an mTLS run warns about plaintext:\n%s\n%s", cpErr.String(), scErr.String())
	}
}
