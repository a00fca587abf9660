package identity_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/identity/identitytest"
	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/server"
)

const td = "geode.test"

func nodeURI(region, node string) string {
	return "spiffe://" + td + "/geode/region/" + region + "/node/" + node
}

func testModel(t *testing.T) *model.Model {
	t.Helper()
	m, err := model.New(model.Spec{
		Regions: []model.RegionSpec{
			{Name: "us-east", RTT: map[string]time.Duration{"eu-west": 81 * time.Millisecond}},
			{Name: "eu-west"},
		},
		Services: []model.ServiceSpec{{
			Name: "web", Protocol: "http1",
			Endpoints: map[string][]model.Endpoint{"us-east": {{Address: "127.0.0.1:1001"}}, "eu-west": {{Address: "127.0.0.1:2001"}}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run runs f(ctx) until the test ends.
func run(t *testing.T, f func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return 10s after its context was cancelled")
		}
	})
}

// mtlsControlPlane runs a control plane over mTLS with a certificate from ca, its
// files reloaded every 20ms; it returns the files (to rotate) and the xDS address.
func mtlsControlPlane(t *testing.T, ca *identitytest.CA) (*server.Server, identitytest.Files, string) {
	t.Helper()
	files := ca.Write(t, t.TempDir(), "controlplane", ca.Issue(t, "spiffe://"+td+"/geode/controlplane"))
	ids, err := identity.Load(identity.Options{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	al, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s, err := server.New(server.Options{Model: testModel(t), XDS: xl, Admin: al,
		GRPCOptions: []grpc.ServerOption{grpc.Creds(credentials.NewTLS(ids.ServerConfig()))}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, s.Run)
	run(t, ids.Run)
	return s, files, xl.Addr().String()
}

// sidecarSource is a sidecar's identity for uri, issued by ca.
func sidecarSource(t *testing.T, ca *identitytest.CA, uri string) *identity.Source {
	t.Helper()
	files := ca.Write(t, t.TempDir(), "sidecar", ca.Issue(t, uri))
	ids, err := identity.Load(identity.Options{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

func ads(t *testing.T, addr string, cfg *tls.Config) discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

func subscribe(t *testing.T, stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient, id, region string) (*discoveryv3.DiscoveryResponse, error) {
	t.Helper()
	n := &corev3.Node{Id: id, Locality: &corev3.Locality{Region: region}}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: n, TypeUrl: resource.ClusterType}); err != nil {
		return nil, err
	}
	return stream.Recv()
}

func TestMatchingCertificateGetsResources(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	s, _, addr := mtlsControlPlane(t, ca)
	sc := sidecarSource(t, ca, nodeURI("us-east", "sc-1"))
	resp, err := subscribe(t, ads(t, addr, sc.ClientConfig()), "sc-1", "us-east")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetResources()) == 0 {
		t.Fatalf("no clusters for a matching node: %v", resp)
	}
	st := s.Status()
	if len(st.Clients) != 1 || st.Clients[0].Identity != nodeURI("us-east", "sc-1") || st.Clients[0].NodeID != "sc-1" {
		t.Fatalf("status clients = %+v, want sc-1 with its SPIFFE ID", st.Clients)
	}
}

func TestClaimOtherThanCertificateIsRefused(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	s, _, addr := mtlsControlPlane(t, ca)
	sc := sidecarSource(t, ca, nodeURI("eu-west", "sc-2"))
	for _, tc := range []struct{ id, region string }{
		{"sc-2", "us-east"},     // another region
		{"sc-other", "eu-west"}, // another node
	} {
		_, err := subscribe(t, ads(t, addr, sc.ClientConfig()), tc.id, tc.region)
		if status.Code(err) != codes.PermissionDenied {
			t.Fatalf("node %s/%s with a certificate for eu-west/sc-2: %v, want PermissionDenied", tc.id, tc.region, err)
		}
		msg := status.Convert(err).Message()
		for _, want := range []string{tc.id, tc.region, nodeURI("eu-west", "sc-2")} {
			if !strings.Contains(msg, want) {
				t.Errorf("refusal %q does not name %q", msg, want)
			}
		}
		t.Logf("refused: %s", msg)
	}
	if got := s.Status().Refused; got != 2 {
		t.Fatalf("refused = %d, want 2", got)
	}
}

func TestClientWithoutCertificateFailsTheHandshake(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	_, _, addr := mtlsControlPlane(t, ca)
	sc := sidecarSource(t, ca, nodeURI("us-east", "sc-3"))
	noCert := sc.ClientConfig()
	noCert.GetClientCertificate = nil

	// At the TLS layer: the server's alert says why.
	conn, err := tls.Dial("tcp", addr, noCert)
	if err == nil {
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil || !strings.Contains(err.Error(), "certificate required") {
		t.Fatalf("TLS without a client certificate: %v, want a certificate required alert", err)
	}
	// Over gRPC: no stream, no resources.
	if err := tryADS(t, addr, noCert); status.Code(err) != codes.Unavailable {
		t.Fatalf("ADS without a client certificate: %v, want Unavailable", err)
	}
	// A certificate from another CA fares no better.
	other := sidecarSource(t, identitytest.NewCA(t, td), nodeURI("us-east", "sc-3"))
	if err := tryADS(t, addr, other.ClientConfig()); status.Code(err) != codes.Unavailable {
		t.Fatalf("ADS with a certificate of another CA: %v, want Unavailable", err)
	}
}

// tryADS opens a stream and subscribes as us-east/sc-3, returning the first error.
func tryADS(t *testing.T, addr string, cfg *tls.Config) error {
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	_, err = subscribe(t, stream, "sc-3", "us-east")
	return err
}

func TestRotatedServerCertificateIsServedWithoutRestart(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	_, files, addr := mtlsControlPlane(t, ca)
	sc := sidecarSource(t, ca, nodeURI("us-east", "sc-4"))
	serial := func() string {
		conn, err := tls.Dial("tcp", addr, sc.ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
	}
	before := serial()
	// A client on the old certificate keeps working through the rotation.
	stream := ads(t, addr, sc.ClientConfig())
	if _, err := subscribe(t, stream, "sc-4", "us-east"); err != nil {
		t.Fatal(err)
	}

	next := ca.Issue(t, "spiffe://"+td+"/geode/controlplane")
	writeFile(t, files.Key, next.KeyPEM) // key first: a half-written pair is not taken
	writeFile(t, files.Cert, next.CertPEM)

	deadline := time.Now().Add(5 * time.Second)
	for serial() == before {
		if time.Now().After(deadline) {
			t.Fatalf("still serving serial %s 5s after rotating to %s", before, next.Cert.SerialNumber)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := serial(); got != next.Cert.SerialNumber.String() {
		t.Fatalf("serving serial %s, want the rotated %s", got, next.Cert.SerialNumber)
	}
	// And new clients still get resources.
	if _, err := subscribe(t, ads(t, addr, sc.ClientConfig()), "sc-4", "us-east"); err != nil {
		t.Fatal(err)
	}
}
