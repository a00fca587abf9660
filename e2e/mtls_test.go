package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/identity/identitytest"
	"github.com/geodemesh/geode/controlplane/server"
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

// Two control-plane processes peer over mutual TLS with their regions' certificates
// (--region, --peer-listen, --peer and the --tls-* files of xDS): eu-west's state,
// computed from reports to eu-west's control plane, reaches us-east's; a sidecar's
// certificate gets 403 from the peering listener.
func TestControlPlanesPeerOverMTLS(t *testing.T) {
	bin := buildGeode(t)
	manifests := twoRegionFleet(t)
	ca := identitytest.NewCA(t, "geode.e2e")
	certs := t.TempDir()
	regions := []string{"us-east", "eu-west"}
	admin, peer := map[string]string{}, map[string]string{}
	for _, r := range regions {
		admin[r], peer[r] = freePort(t), freePort(t)
	}
	logs := map[string]*syncBuffer{}
	for i, r := range regions {
		f := ca.Write(t, certs, r, ca.Issue(t, identitytest.ControlPlaneURI("geode.e2e", r)))
		other := regions[1-i]
		logs[r] = startProcess(t, bin, "controlplane", "--config", manifests, "--listen", freePort(t), "--admin", admin[r],
			"--region", r, "--peer-listen", peer[r], "--peer", other+"="+peer[other],
			"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA)
	}
	dump := func(r string) server.ConfigDump {
		var d server.ConfigDump
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Get("http://" + admin[r] + "/config_dump")
		if err != nil {
			return d
		}
		defer resp.Body.Close()
		json.NewDecoder(resp.Body).Decode(&d)
		return d
	}
	peerState := func(r, of string) (server.PeerDump, server.RegionDump) {
		d := dump(r)
		var p server.PeerDump
		for _, x := range d.Peers {
			if x.Region == of {
				p = x
			}
		}
		for _, x := range d.Regions {
			if x.Name == of {
				return p, x
			}
		}
		return p, server.RegionDump{}
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nus-east:\n%s\neu-west:\n%s", append(args, logs["us-east"].String(), logs["eu-west"].String())...)
	}
	for i, r := range regions {
		other := regions[1-i]
		deadline := time.Now().Add(15 * time.Second)
		for {
			p, _ := peerState(r, other)
			if p.Version != "" && !p.Stale {
				break
			}
			if time.Now().After(deadline) {
				fail("%s has no summary of %s within 15s: %+v", r, other, p)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// eu-west's sidecars (here: reports to eu-west's control plane) say eu-west fails.
	body, _ := json.Marshal(server.Report{Reporter: "e2e-eu-west", RegionOutcomes: map[string]server.RegionOutcome{"eu-west": {Success: 10, Failure: 30}}})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := (&http.Client{Timeout: 2 * time.Second}).Post("http://"+admin["eu-west"]+"/reports", "application/json", bytes.NewReader(body))
		if err == nil {
			resp.Body.Close()
		}
		p, rd := peerState("us-east", "eu-west")
		if rd.Computed != "" && rd.Computed != "healthy" && p.State == rd.Computed {
			break
		}
		if time.Now().After(deadline) {
			fail("eu-west's failure did not reach us-east's control plane within 20s: peer %+v, region %+v", p, rd)
		}
		time.Sleep(500 * time.Millisecond)
	}

	// A sidecar's certificate is not a control plane's: 403, naming it.
	node := ca.Write(t, certs, "node", ca.Issue(t, identitytest.NodeURI("geode.e2e", "us-east", "e2e-node")))
	ids, err := identity.Load(identity.Options{CertFile: node.Cert, KeyFile: node.Key, CAFile: node.CA})
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ids.PeeringClientConfig("eu-west")}}
	resp, err := c.Get("https://" + peer["eu-west"] + "/peer/summary")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(b), "e2e-node") {
		t.Fatalf("GET /peer/summary with a sidecar's certificate = %s %s, want 403 naming it", resp.Status, b)
	}
	for _, r := range regions {
		if strings.Contains(logs[r].String(), "INSECURE") {
			t.Fatalf("%s: an mTLS run warns about plaintext:\n%s", r, logs[r].String())
		}
	}
}
