package xds

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/proxy/config"
)

var view = []api.Region{{Name: "us-east", State: "healthy"}, {Name: "eu-west", RTT: 81 * time.Millisecond, State: "down"}}

func edsCluster(t testing.TB, name string, regions []api.Region) *clusterv3.Cluster {
	t.Helper()
	pol, err := api.Encode(api.Policy{Service: name, Protocol: "http1", Authorities: []string{name}, Regions: regions})
	if err != nil {
		t.Fatal(err)
	}
	return &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		Metadata:             &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{api.MetadataKey: pol}},
	}
}

func anys(t testing.TB, msgs ...proto.Message) []*anypb.Any {
	t.Helper()
	var out []*anypb.Any
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func cla(name string, region string, hs corev3.HealthStatus, port uint32) *endpointv3.ClusterLoadAssignment {
	return &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		Locality: &corev3.Locality{Region: region},
		LbEndpoints: []*endpointv3.LbEndpoint{{HealthStatus: hs, HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}}}},
	}}}
}

func TestDecodeClustersRejects(t *testing.T) {
	static := edsCluster(t, "s", view)
	static.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
	bare := edsCluster(t, "b", view)
	bare.Metadata = nil
	renamed := edsCluster(t, "r", view)
	renamed.Name = "other"
	for _, tc := range []struct {
		name string
		in   []*anypb.Any
		want string
	}{
		{"not EDS", anys(t, static), `cluster "s": type STATIC`},
		{"no geode metadata", anys(t, bare), `cluster "b": metadata "geode": geode policy: missing`},
		{"policy for another service", anys(t, renamed), `names service "r"`},
		{"no regions", anys(t, edsCluster(t, "n", nil)), `cluster "n": geode policy has no regions`},
		{"regions disagree", anys(t, edsCluster(t, "a", view), edsCluster(t, "z", view[:1])), `cluster "z": regions differ from cluster "a"'s`},
		{"wrong type", anys(t, cla("x", "us-east", 0, 1)), "want " + ClusterType},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := decodeClusters(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestPart(t *testing.T) {
	clusters, err := decodeClusters(anys(t, edsCluster(t, "web", view), edsCluster(t, "gone", view)))
	if err != nil {
		t.Fatal(err)
	}
	clas, err := decodeAssignments(anys(t, cla("web", "us-east", corev3.HealthStatus_HEALTHY, 1001), cla("gone", "us-east", corev3.HealthStatus_UNHEALTHY, 1002)))
	if err != nil {
		t.Fatal(err)
	}
	r := resources{clusters: clusters, clas: clas}
	if r.complete() {
		t.Fatal("complete before SDS answered")
	}
	r.keysSeen = true
	if !r.complete() {
		t.Fatal("incomplete")
	}
	p, empty, err := r.part("us-east", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(empty) != 1 || empty[0] != "gone" || len(p.Services) != 2 || p.Services[0].Name != "gone" || len(p.Services[0].Endpoints) != 0 || p.Services[1].Endpoints["us-east"][0] != "127.0.0.1:1001" {
		t.Fatalf("part = %+v, without endpoints %v", p, empty)
	}
	if p.Regions[0].RTT["eu-west"].Std() != 81*time.Millisecond || p.Regions[1].State != "down" {
		t.Fatalf("regions = %+v", p.Regions)
	}
	base, err := config.Parse([]byte("region: us-east\nlisteners: {outbound: \"127.0.0.1:1\"}\nregions: [{name: us-east}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := Merge(base, p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Services[0].Retry.Attempts != 3 || c.Listeners.Outbound != "127.0.0.1:1" || len(c.Regions) != 2 {
		t.Fatalf("merged config lacks defaults or base: %+v", c)
	}
	if _, _, err := r.part("us-west", nil); err == nil || !strings.Contains(err.Error(), `region "us-west"`) {
		t.Fatalf("unknown local region: %v", err)
	}
	r.clas["web"] = endpoints{"mars": {"127.0.0.1:1"}}
	if _, _, err := r.part("us-east", nil); err == nil || !strings.Contains(err.Error(), `locality region "mars"`) {
		t.Fatalf("unknown locality region: %v", err)
	}
	p.Region = "eu-west"
	if _, err := Merge(base, p); err == nil || !strings.Contains(err.Error(), "this sidecar runs in") {
		t.Fatalf("Merge for another region: %v", err)
	}
}

// FuzzDecode: no input makes decoding panic, and what decodes builds a part or an error.
func FuzzDecode(f *testing.F) {
	b, _ := proto.Marshal(edsCluster(f, "web", view))
	f.Add(b, []byte(nil))
	e, _ := proto.Marshal(cla("web", "us-east", 0, 80))
	f.Add(b, e)
	f.Fuzz(func(t *testing.T, cds, eds []byte) {
		clusters, err := decodeClusters([]*anypb.Any{{TypeUrl: ClusterType, Value: cds}})
		if err != nil {
			return
		}
		clas, err := decodeAssignments([]*anypb.Any{{TypeUrl: EndpointType, Value: eds}})
		if err != nil {
			return
		}
		_, _, _ = resources{clusters: clusters, clas: clas}.part("us-east", nil)
	})
}

// Merge keeps a base service's own resilience settings (breaker, request and idle
// timeouts, retry) for the service of the same name from the control plane, takes the
// connect timeout, endpoints and policy from the control plane, and routes base
// services the control plane does not send no more.
func TestMergeKeepsBaseServiceSettings(t *testing.T) {
	base, err := config.Parse([]byte(`
region: us-east
listeners: {outbound: "127.0.0.1:1"}
regions: [{name: us-east}]
services:
  - name: web
    endpoints: {us-east: ["127.0.0.1:9"]}
    timeouts: {request: 7s, idle: 20s, connect: 3s}
    retry: {attempts: 2}
    breaker: {consecutive_failures: 3, open_for: 1s}
  - name: local-only
    endpoints: {us-east: ["127.0.0.1:10"]}
`))
	if err != nil {
		t.Fatal(err)
	}
	p := Part{
		Region:  "us-east",
		Regions: []config.Region{{Name: "us-east", RTT: map[string]config.Duration{"eu-west": config.Duration(81 * time.Millisecond)}}, {Name: "eu-west"}},
		Services: []config.Service{
			{Name: "web", Protocol: "http1", Consistency: "session", Timeouts: config.Timeouts{Connect: config.Duration(time.Second)},
				Endpoints: map[string][]string{"us-east": {"127.0.0.1:11"}, "eu-west": {"127.0.0.1:12"}}},
			{Name: "other", Protocol: "http1", Endpoints: map[string][]string{"eu-west": {"127.0.0.1:13"}}},
		},
	}
	c, err := Merge(base, p)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) != 2 || c.Services[0].Name != "web" || c.Services[1].Name != "other" {
		t.Fatalf("services = %+v, want web and other", c.Services)
	}
	web, other := c.Services[0], c.Services[1]
	if web.Breaker.ConsecutiveFailures != 3 || web.Breaker.OpenFor != config.Duration(time.Second) {
		t.Errorf("web breaker = %+v, want the base's 3 failures, 1s open", web.Breaker)
	}
	if web.Timeouts.Request != config.Duration(7*time.Second) || web.Timeouts.Idle != config.Duration(20*time.Second) {
		t.Errorf("web timeouts = %+v, want the base's request 7s, idle 20s", web.Timeouts)
	}
	if web.Timeouts.Connect != config.Duration(time.Second) {
		t.Errorf("web connect timeout = %s, want the control plane's 1s", time.Duration(web.Timeouts.Connect))
	}
	if web.Retry.Attempts != 2 {
		t.Errorf("web retry attempts = %d, want the base's 2", web.Retry.Attempts)
	}
	if web.Consistency != "session" || len(web.Endpoints["eu-west"]) != 1 || web.Endpoints["us-east"][0] != "127.0.0.1:11" {
		t.Errorf("web policy/endpoints not the control plane's: %+v", web)
	}
	if other.Breaker.ConsecutiveFailures != 5 || other.Timeouts.Request != 0 {
		t.Errorf("other = breaker %+v, timeouts %+v; want the defaults", other.Breaker, other.Timeouts)
	}
	if p.Services[0].Breaker.ConsecutiveFailures != 0 {
		t.Error("Merge modified the part")
	}
}

func genericSecret(name string, b []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{
		Secret: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}},
	}}}
}

// An SDS update the sidecar cannot use is an error (the client NACKs it and keeps its
// last good ring); the error never shows the secret.
func TestDecodeSecrets(t *testing.T) {
	good := []byte("keys:\n  - id: k1\n    secret: " + base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32)) +
		"\n    sign_from: 2026-11-01T00:00:00Z\n    expires: 2027-03-01T00:00:00Z\n")
	if b, err := decodeSecrets(anys(t, genericSecret(api.SessionKeysSecret, good))); err != nil || !bytes.Equal(b, good) {
		t.Fatalf("decodeSecrets(good) = %q, %v", b, err)
	}
	if b, err := decodeSecrets(nil); err != nil || b != nil {
		t.Fatalf("decodeSecrets(none) = %q, %v; want no ring", b, err)
	}
	short := bytes.Replace(good, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))), []byte("c2hvcnQ="), 1)
	for name, tc := range map[string]struct {
		secret *tlsv3.Secret
		want   string
	}{
		"other name":  {genericSecret("db-password", good), `SDS: resources[0]: secret "db-password" was not asked for (only "geode-session-keys")`},
		"not generic": {&tlsv3.Secret{Name: api.SessionKeysSecret}, `SDS: secret "geode-session-keys": want a generic_secret with inline_bytes`},
		"short key":   {genericSecret(api.SessionKeysSecret, short), `SDS: secret "geode-session-keys": key ring: keys[0] ("k1"): secret is 5 bytes, at least 32 are required`},
		"not yaml":    {genericSecret(api.SessionKeysSecret, []byte("\x00\x01")), `SDS: secret "geode-session-keys": key file: `},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeSecrets(anys(t, tc.secret))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{7}, 32))) {
				t.Fatalf("error shows the secret: %v", err)
			}
		})
	}
}
