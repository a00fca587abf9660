package xds

import (
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
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
	if !r.complete() {
		t.Fatal("incomplete")
	}
	p, dropped, err := r.part("us-east", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(dropped) != 1 || dropped[0] != "gone" || len(p.Services) != 1 || p.Services[0].Endpoints["us-east"][0] != "127.0.0.1:1001" {
		t.Fatalf("part = %+v, dropped %v", p, dropped)
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
