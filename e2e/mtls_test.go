package e2e

import (
	"context"
	"os/exec"
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
	manifests := twoRegionFleet(t)

	ca := identitytest.NewCA(t, "geode.e2e")
	certs := t.TempDir()
	cp := ca.Write(t, certs, "controlplane", ca.Issue(t, "spiffe://geode.e2e/geode/controlplane"))
	sc := ca.Write(t, certs, "sidecar", ca.Issue(t, "spiffe://geode.e2e/geode/region/us-east/node/e2e-mtls"))
	wrong := ca.Write(t, certs, "wrong", ca.Issue(t, "spiffe://geode.e2e/geode/region/eu-west/node/e2e-mtls"))

	xdsAddr, adminAddr := freePort(t), freePort(t)
	cpErr := startProcess(t, bin, "controlplane", "--config", manifests, "--listen", xdsAddr, "--admin", adminAddr,
		"--tls-cert", cp.Cert, "--tls-key", cp.Key, "--tls-ca", cp.CA)

	base, outbound := sidecarBase(t)

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

	waitServedBy(t, outbound, "us-east", 15*time.Second, cpErr, scErr)

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
