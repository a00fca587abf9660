package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/geodemesh/geode/controlplane/identity/identitytest"
)

// Without --insecure, --tls-* are required; with it, they are refused; certificates
// of the wrong kind or for another node are refused at startup.
func TestTLSFlags(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "geode.yaml"), []byte("apiVersion: geode.io/v1alpha1\nkind: Geode\nregions:\n  - {name: us-east}\n"), 0o644)
	sidecarConf := filepath.Join(t.TempDir(), "sidecar.yaml")
	os.WriteFile(sidecarConf, []byte("region: us-east\nlisteners: {outbound: \"127.0.0.1:0\"}\nregions: [{name: us-east}]\n"), 0o644)
	ca := identitytest.NewCA(t, "geode.test")
	certs := t.TempDir()
	node := ca.Write(t, certs, "node", ca.Issue(t, "spiffe://geode.test/geode/region/us-east/node/n1"))
	cp := ca.Write(t, certs, "cp", ca.Issue(t, "spiffe://geode.test/geode/controlplane"))
	euCP := ca.Write(t, certs, "eu-cp", ca.Issue(t, identitytest.ControlPlaneURI("geode.test", "eu-west")))
	tlsArgs := func(f identitytest.Files) []string {
		return []string{"--tls-cert", f.Cert, "--tls-key", f.Key, "--tls-ca", f.CA}
	}
	cpArgs := []string{"--config", dir, "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"}
	scArgs := []string{"--config", sidecarConf, "--xds", "127.0.0.1:1"}

	for _, tc := range []struct {
		name string
		run  func(context.Context, []string, *bytes.Buffer, *bytes.Buffer) error
		args []string
		want string
	}{
		{"controlplane without --tls-* or --insecure", cpRun, cpArgs, "--tls-cert, --tls-key and --tls-ca are required"},
		{"controlplane --insecure --tls-cert", cpRun, append(append([]string{}, cpArgs...), "--insecure", "--tls-cert", cp.Cert), "exclusive"},
		{"controlplane with a node's certificate", cpRun, append(append([]string{}, cpArgs...), tlsArgs(node)...), "not a control plane identity"},
		{"controlplane peering with a certificate without a region", cpRun, append(append([]string{}, cpArgs...), append(tlsArgs(cp), "--region", "us-east", "--peer-listen", "127.0.0.1:0")...),
			"want spiffe://<trust-domain>/geode/region/us-east/controlplane"},
		{"controlplane --region us-east with eu-west's certificate", cpRun, append(append([]string{}, cpArgs...), append(tlsArgs(euCP), "--region", "us-east")...),
			`region "eu-west"'s control plane, but --region is "us-east"`},
		{"controlplane --peer-listen without --region", cpRun, append(append([]string{}, cpArgs...), "--insecure", "--peer-listen", "127.0.0.1:0"), "need --region"},
		{"sidecar without --tls-* or --insecure", scRun, scArgs, "--tls-cert, --tls-key and --tls-ca are required"},
		{"sidecar with a control plane's certificate", scRun, append(append([]string{}, scArgs...), tlsArgs(cp)...), "not a sidecar identity"},
		{"sidecar --node-id other than the certificate's", scRun, append(append([]string{}, scArgs...), append(tlsArgs(node), "--node-id", "n2")...), `names node "n1", but --node-id is "n2"`},
	} {
		var stdout, stderr bytes.Buffer
		err := tc.run(context.Background(), tc.args, &stdout, &stderr)
		if err == nil {
			t.Errorf("%s: started", tc.name)
			continue
		}
		if msg := err.Error() + "\n" + stderr.String(); !strings.Contains(msg, tc.want) {
			t.Errorf("%s: %v\n%s\nwant %q", tc.name, err, stderr.String(), tc.want)
		}
		if strings.Contains(tc.want, "required") && !errors.Is(err, errUsage) {
			t.Errorf("%s: %v, want a usage error", tc.name, err)
		}
	}
}

func cpRun(ctx context.Context, args []string, stdout, stderr *bytes.Buffer) error {
	return runControlplane(ctx, args, stdout, stderr)
}

func scRun(ctx context.Context, args []string, stdout, stderr *bytes.Buffer) error {
	return runSidecar(ctx, args, stdout, stderr)
}
