package identity_test

import (
	"crypto/tls"
	"os"
	"strings"
	"testing"

	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/identity/identitytest"
)

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestParse(t *testing.T) {
	id, err := identity.Parse("spiffe://geode.test/geode/region/eu-west/node/web-1.eu-west")
	if err != nil || id.Kind != identity.Node || id.Region != "eu-west" || id.NodeID != "web-1.eu-west" || id.TrustDomain() != "geode.test" {
		t.Fatalf("Parse = %+v, %v", id, err)
	}
	built, err := identity.NodeID("geode.test", "eu-west", "web-1.eu-west")
	if err != nil || built.String() != id.String() {
		t.Fatalf("NodeID = %v, %v; want %v", built, err, id)
	}
	if cp, err := identity.Parse("spiffe://geode.test/geode/controlplane/us-east"); err != nil || cp.Kind != identity.ControlPlane {
		t.Fatalf("control plane: %+v, %v", cp, err)
	}
	rcp, err := identity.Parse("spiffe://geode.test/geode/region/eu-west/controlplane")
	if err != nil || rcp.Kind != identity.ControlPlane || rcp.Region != "eu-west" || rcp.NodeID != "" {
		t.Fatalf("region control plane: %+v, %v", rcp, err)
	}
	if built, err := identity.RegionControlPlaneID("geode.test", "eu-west"); err != nil || built != rcp {
		t.Fatalf("RegionControlPlaneID = %+v, %v; want %+v", built, err, rcp)
	}
	for _, bad := range []string{
		"spiffe://geode.test/geode/region/eu-west/controlplane/x",
		"https://geode.test/geode/region/eu-west/node/a",
		"spiffe://geode.test/geode/region/eu-west",
		"spiffe://geode.test/geode/region/eu-west/node/a/b",
		"spiffe://geode.test/other",
		"spiffe://Geode.test/geode/controlplane",
	} {
		if id, err := identity.Parse(bad); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", bad, id)
		}
	}
}

func TestLoadRefusesAnInconsistentSet(t *testing.T) {
	ca := identitytest.NewCA(t, "geode.test")
	dir := t.TempDir()
	files := ca.Write(t, dir, "a", ca.Issue(t, "spiffe://geode.test/geode/controlplane"))
	if _, err := identity.Load(identity.Options{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA}); err != nil {
		t.Fatal(err)
	}
	other := identitytest.NewCA(t, "geode.test")
	writeFile(t, files.CA, other.PEM)
	if _, err := identity.Load(identity.Options{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA}); err == nil {
		t.Fatal("a certificate not chaining to the bundle was loaded")
	}
	writeFile(t, files.CA, ca.PEM)
	noID := ca.Write(t, dir, "b", ca.Issue(t, ""))
	if _, err := identity.Load(identity.Options{CertFile: noID.Cert, KeyFile: noID.Key, CAFile: noID.CA}); err == nil {
		t.Fatal("a certificate without a SPIFFE ID was loaded")
	}
}

// A sidecar talks only to a control plane of its own trust domain, and chains are
// checked against the bundle even though host names are not.
func TestClientChecksTheServersIdentity(t *testing.T) {
	ca := identitytest.NewCA(t, "geode.test")
	load := func(ca *identitytest.CA, uri string) *identity.Source {
		f := ca.Write(t, t.TempDir(), "x", ca.Issue(t, uri))
		s, err := identity.Load(identity.Options{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	client := load(ca, "spiffe://geode.test/geode/region/us-east/node/n1")
	otherTD := identitytest.NewCA(t, "other.test")
	for _, tc := range []struct {
		name   string
		server *identity.Source
		want   string // "" for success
	}{
		{"control plane", load(ca, "spiffe://geode.test/geode/controlplane/us-east"), ""},
		{"a node posing as a control plane", load(ca, "spiffe://geode.test/geode/region/us-east/node/n2"), "is a node, want a controlplane"},
		{"another CA", load(identitytest.NewCA(t, "geode.test"), "spiffe://geode.test/geode/controlplane"), "certificate signed by unknown authority"},
		{"another trust domain", load(otherTD, "spiffe://other.test/geode/controlplane"), "certificate signed by unknown authority"},
	} {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", tc.server.ServerConfig())
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			c, err := ln.Accept()
			if err == nil {
				c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		conn, err := tls.Dial("tcp", ln.Addr().String(), client.ClientConfig())
		if err == nil {
			conn.Close()
		}
		ln.Close()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

// A control plane polling region us-west's summary accepts only the certificate of
// us-west's control plane; the peering listener lets any identity of its trust domain
// through the handshake (the handler answers 403 to what is not a control plane).
func TestPeeringClientBindsTheRegion(t *testing.T) {
	ca := identitytest.NewCA(t, "geode.test")
	load := func(ca *identitytest.CA, uri string) *identity.Source {
		f := ca.Write(t, t.TempDir(), "x", ca.Issue(t, uri))
		s, err := identity.Load(identity.Options{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	poller := load(ca, identitytest.ControlPlaneURI("geode.test", "us-east"))
	for _, tc := range []struct {
		name   string
		server *identity.Source
		want   string // "" for success
	}{
		{"us-west's control plane", load(ca, identitytest.ControlPlaneURI("geode.test", "us-west")), ""},
		{"eu-west's control plane", load(ca, identitytest.ControlPlaneURI("geode.test", "eu-west")), `is the control plane of region "eu-west", not of region "us-west"`},
		{"a control plane without a region", load(ca, identitytest.ControlPlaneURI("geode.test", "")), "control plane without a region"},
		{"a us-west node", load(ca, identitytest.NodeURI("geode.test", "us-west", "n1")), `is a node, not the control plane of region "us-west"`},
		{"another CA", load(identitytest.NewCA(t, "geode.test"), identitytest.ControlPlaneURI("geode.test", "us-west")), "certificate signed by unknown authority"},
	} {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", tc.server.PeeringServerConfig())
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan identity.ID, 1)
		go func() {
			defer close(served)
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			tc := c.(*tls.Conn)
			if tc.Handshake() == nil {
				st := tc.ConnectionState()
				if id, err := identity.FromTLS(&st); err == nil {
					served <- id
				}
			}
		}()
		conn, err := tls.Dial("tcp", ln.Addr().String(), poller.PeeringClientConfig("us-west"))
		if err == nil {
			conn.Close()
		}
		client := <-served
		ln.Close()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want == "" && client.String() != identitytest.ControlPlaneURI("geode.test", "us-east"):
			t.Errorf("%s: the server saw client %q", tc.name, client)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
