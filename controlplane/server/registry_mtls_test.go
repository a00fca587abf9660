package server

import (
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/identity/identitytest"
)

// Over mTLS a registration is the certificate's: /config_dump shows its identity, and
// the node id is bound to the certificate before any registration, so one identity
// holds at most one registered endpoint.
func TestRegistrationOverMTLSCarriesTheIdentity(t *testing.T) {
	ca := identitytest.NewCA(t, "geode.test")
	dir := t.TempDir()
	load := func(name, uri string) *identity.Source {
		f := ca.Write(t, dir, name, ca.Issue(t, uri))
		src, err := identity.Load(identity.Options{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	cp := load("cp", identitytest.ControlPlaneURI("geode.test", "eu-west"))
	sc := load("sc", identitytest.NodeURI("geode.test", "eu-west", "orders-1"))
	s, xdsAddr, admin := startControlPlaneWith(t, Options{
		Model:       fleet(t, map[string]string{"eu-west": "127.0.0.1:2001"}),
		GRPCOptions: []grpc.ServerOption{grpc.Creds(credentials.NewTLS(cp.ServerConfig()))},
	})
	cc, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(credentials.NewTLS(sc.ClientConfig())))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ads := discoveryv3.NewAggregatedDiscoveryServiceClient(cc)

	cancel, err := openSotW(t, ads, sidecarNode(t, "orders-1", "eu-west", "", "where", "10.1.0.7:80", nil))
	if err != nil {
		t.Fatalf("registering over mTLS: %v", err)
	}
	defer cancel()
	regs := registrations(t, admin)
	if len(regs) != 1 || regs[0].Identity != "spiffe://geode.test/geode/region/eu-west/node/orders-1" {
		t.Fatalf("registrations = %+v, want the certificate's identity", regs)
	}
	// The same certificate under another node id, to register a second endpoint.
	_, err = openSotW(t, ads, sidecarNode(t, "orders-2", "eu-west", "", "where", "10.1.0.8:80", nil))
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "does not match its certificate") {
		t.Fatalf("a second node id on one certificate: %v, want PermissionDenied", err)
	}
	if st := s.Status().Registrations; st.Active != 1 {
		t.Fatalf("registrations active = %d, want 1", st.Active)
	}
}
