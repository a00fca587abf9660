package server

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/xds" // registers the xds resolver, balancers and the "tls" channel creds
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/identity/identitytest"
)

// exampleBootstrap is the shape of examples/grpc/bootstrap-mtls.json (gRFC A65: mTLS
// credentials in grpc-go's xDS bootstrap). The example is decoded strictly into it, so
// the tests below run the very file operators copy, with only addresses, paths and the
// node's names changed.
type exampleBootstrap struct {
	XDSServers []struct {
		ServerURI    string `json:"server_uri"`
		ChannelCreds []struct {
			Type   string `json:"type"`
			Config struct {
				CACertificateFile string `json:"ca_certificate_file"`
				CertificateFile   string `json:"certificate_file"`
				PrivateKeyFile    string `json:"private_key_file"`
				RefreshInterval   string `json:"refresh_interval"`
			} `json:"config"`
		} `json:"channel_creds"`
		ServerFeatures []string `json:"server_features"`
	} `json:"xds_servers"`
	Node struct {
		ID       string `json:"id"`
		Locality struct {
			Region string `json:"region"`
			Zone   string `json:"zone"`
		} `json:"locality"`
	} `json:"node"`
}

// mtlsBootstrap is the example bootstrap pointed at xdsAddr, with the node's files f and
// the node id and region it claims (which the control plane checks against f's
// certificate).
func mtlsBootstrap(t *testing.T, xdsAddr, nodeID, region string, f identitytest.Files) []byte {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "examples", "grpc", "bootstrap-mtls.json"))
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var b exampleBootstrap
	if err := dec.Decode(&b); err != nil {
		t.Fatalf("examples/grpc/bootstrap-mtls.json: %v", err)
	}
	if len(b.XDSServers) != 1 || len(b.XDSServers[0].ChannelCreds) != 1 || b.XDSServers[0].ChannelCreds[0].Type != "tls" {
		t.Fatalf("examples/grpc/bootstrap-mtls.json: want one xDS server with one channel_creds of type tls: %s", raw)
	}
	srv := &b.XDSServers[0]
	srv.ServerURI = xdsAddr
	cfg := &srv.ChannelCreds[0].Config
	cfg.CACertificateFile, cfg.CertificateFile, cfg.PrivateKeyFile = f.CA, f.Cert, f.Key
	b.Node.ID, b.Node.Locality.Region, b.Node.Locality.Zone = nodeID, region, region+"-a"
	out, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// proxyless is a grpc-go client of xds:///where whose xDS client reads bootstrap (its
// own resolver: no process-wide GRPC_XDS_BOOTSTRAP, so tests can run side by side).
// The data plane, client to backend, is plaintext: only the xDS channel is under test.
func proxyless(t *testing.T, bootstrap []byte) *grpc.ClientConn {
	t.Helper()
	r, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient("xds:///where", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(r))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// askWhere makes one call with its own deadline and returns the answering region.
func askWhere(cc *grpc.ClientConn, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out := new(wrapperspb.StringValue)
	err := cc.Invoke(ctx, whereMethod, wrapperspb.String("?"), out)
	return out.GetValue(), err
}

// getsNothing checks that a client never reaches a backend: calls fail, with Unavailable
// (the xDS client reported its error) or DeadlineExceeded (it is still waiting), for
// as long as within. It returns the last error.
func getsNothing(t *testing.T, cc *grpc.ClientConn, within time.Duration) error {
	t.Helper()
	var last error
	for start := time.Now(); time.Since(start) < within; {
		got, err := askWhere(cc, 500*time.Millisecond)
		if err == nil {
			t.Fatalf("a client the control plane must not serve reached %s", got)
		}
		if c := status.Code(err); c != codes.Unavailable && c != codes.DeadlineExceeded {
			t.Fatalf("call failed with %v, want Unavailable or DeadlineExceeded", err)
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

const mtlsTD = "geode.test"

// mtlsFleet runs the three-region fleet behind a control plane serving xDS over mTLS
// with cpLeaf's certificate; it returns the server and its xDS address.
func mtlsFleet(t *testing.T, ca *identitytest.CA, cpLeaf *identitytest.Leaf) (*Server, string) {
	t.Helper()
	backends := map[string]string{}
	for _, r := range []string{"us-east", "eu-west", "us-west"} {
		backends[r] = startBackend(t, r)
	}
	f := ca.Write(t, t.TempDir(), "controlplane", cpLeaf)
	cp, err := identity.Load(identity.Options{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA})
	if err != nil {
		t.Fatal(err)
	}
	s, xdsAddr, _ := startControlPlaneWith(t, Options{
		Model:       fleet(t, backends),
		GRPCOptions: []grpc.ServerOption{grpc.Creds(credentials.NewTLS(cp.ServerConfig()))},
	})
	return s, xdsAddr
}

// nodeFiles writes a node certificate for region/nodeID (and the CA bundle) into a
// fresh directory.
func nodeFiles(t *testing.T, ca *identitytest.CA, region, nodeID string) identitytest.Files {
	t.Helper()
	return ca.Write(t, t.TempDir(), "node", ca.Issue(t, identitytest.NodeURI(mtlsTD, region, nodeID)))
}

// TestProxylessGRPCOverMTLS: grpc-go's own xDS client, with the "tls" channel creds of
// gRFC A65 in its bootstrap (examples/grpc/bootstrap-mtls.json), is a client like a
// sidecar: it reaches its region over mTLS when its certificate names the node id and
// region it claims, and is refused otherwise.
func TestProxylessGRPCOverMTLS(t *testing.T) {
	ca := identitytest.NewCA(t, mtlsTD)
	// grpc-go checks the control plane's host name: the certificate names 127.0.0.1,
	// the host of server_uri (see TestProxylessGRPCChecksTheControlPlaneHostName).
	s, xdsAddr := mtlsFleet(t, ca, ca.Issue(t, identitytest.ControlPlaneURI(mtlsTD, ""), "127.0.0.1", "localhost"))

	t.Run("a client whose certificate names its node id and region reaches its region", func(t *testing.T) {
		start := time.Now()
		cc := proxyless(t, mtlsBootstrap(t, xdsAddr, "client-1", "us-east", nodeFiles(t, ca, "us-east", "client-1")))
		var got string
		var err error
		for time.Since(start) < 20*time.Second {
			if got, err = askWhere(cc, time.Second); err == nil {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		if err != nil || got != "us-east" {
			t.Fatalf("first call: %q, %v; want us-east", got, err)
		}
		t.Logf("first call over mTLS reached us-east %s after grpc.NewClient (TLS handshake, LDS→RDS→CDS→EDS, connect)", time.Since(start).Round(time.Millisecond))
		for range 10 {
			if got, err := askWhere(cc, time.Second); err != nil || got != "us-east" {
				t.Fatalf("steady state: %q, %v; want us-east", got, err)
			}
		}
		st := s.Status()
		want := identitytest.NodeURI(mtlsTD, "us-east", "client-1")
		for _, c := range st.Clients {
			if c.NodeID == "client-1" {
				if c.Identity != want || c.Region != "us-east" || len(c.Acked) < 4 {
					t.Fatalf("status of client-1 = %+v; want identity %s, region us-east, 4 types ACKed", c, want)
				}
				if st.Refused != 0 {
					t.Fatalf("refused = %d, want 0", st.Refused)
				}
				return
			}
		}
		t.Fatalf("client-1 not in status: %+v", st)
	})

	t.Run("a plaintext client gets nothing and is not even counted", func(t *testing.T) {
		before := s.Status().Refused
		cc := proxyless(t, bootstrap(xdsAddr, "client-plain", "us-east"))
		err := getsNothing(t, cc, 2*time.Second)
		t.Logf("plaintext client: %v", err)
		// The TLS handshake fails before any node is read: nothing to check, nothing
		// counted as refused.
		if got := s.Status().Refused; got != before {
			t.Fatalf("refused = %d, want %d", got, before)
		}
		for _, c := range s.Status().Clients {
			if c.NodeID == "client-plain" {
				t.Fatalf("a plaintext client is in status: %+v", c)
			}
		}
	})

	for _, tc := range []struct {
		name                     string
		certRegion, certNode     string
		claimRegion, claimNodeID string
		why                      string // in the client's error: the control plane's refusal
	}{
		{
			name: "a certificate of another node id is refused", certRegion: "us-east", certNode: "client-1", claimRegion: "us-east", claimNodeID: "client-2",
			why: `PermissionDenied desc = geode control plane: node "client-2" does not match its certificate`,
		},
		{
			name: "a certificate of another region is refused", certRegion: "eu-west", certNode: "client-3", claimRegion: "us-east", claimNodeID: "client-3",
			why: `PermissionDenied desc = geode control plane: node "client-3" claims region "us-east" but its certificate`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := s.Status().Refused
			cc := proxyless(t, mtlsBootstrap(t, xdsAddr, tc.claimNodeID, tc.claimRegion, nodeFiles(t, ca, tc.certRegion, tc.certNode)))
			err := getsNothing(t, cc, 2*time.Second)
			t.Logf("node %s in %s with a certificate for %s in %s: %v", tc.claimNodeID, tc.claimRegion, tc.certNode, tc.certRegion, err)
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("the client's error does not carry the refusal %q", tc.why)
			}
			if got := s.Status().Refused; got <= before {
				t.Fatalf("refused = %d, want more than %d", got, before)
			}
			for _, c := range s.Status().Clients {
				if c.NodeID == tc.claimNodeID && len(c.Acked) > 0 {
					t.Fatalf("a refused client ACKed resources: %+v", c)
				}
			}
		})
	}
}

// TestProxylessGRPCChecksTheControlPlaneHostName: unlike a geode sidecar, which
// authenticates the control plane by its SPIFFE ID alone, grpc-go's "tls" channel creds
// verify the server's certificate against the host of server_uri, as any TLS client
// does. A control-plane certificate with only its SPIFFE ID is refused by the client;
// it needs a DNS SAN (or, for an address, an IP SAN) for each name clients dial.
func TestProxylessGRPCChecksTheControlPlaneHostName(t *testing.T) {
	ca := identitytest.NewCA(t, mtlsTD)
	s, xdsAddr := mtlsFleet(t, ca, ca.Issue(t, identitytest.ControlPlaneURI(mtlsTD, "")))
	cc := proxyless(t, mtlsBootstrap(t, xdsAddr, "client-1", "us-east", nodeFiles(t, ca, "us-east", "client-1")))
	err := getsNothing(t, cc, 2*time.Second)
	t.Logf("control plane without an IP SAN for 127.0.0.1: %v", err)
	if !strings.Contains(err.Error(), "x509: cannot validate certificate for 127.0.0.1 because it doesn't contain any IP SANs") {
		t.Errorf("the client's error does not say it refused the control plane's certificate for its host name")
	}
	if st := s.Status(); len(st.Clients) != 0 || st.Refused != 0 {
		t.Fatalf("status = %+v; the client should have left during its own handshake", st)
	}
}
