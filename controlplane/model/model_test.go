package model

import (
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/affinity"
)

func goodSpec() Spec {
	return Spec{
		Regions: []RegionSpec{
			{Name: "us-east", RTT: map[string]time.Duration{"eu-west": 81 * time.Millisecond, "us-west": 87 * time.Millisecond}},
			{Name: "eu-west", RTT: map[string]time.Duration{"us-west": 137 * time.Millisecond}},
			{Name: "us-west"},
		},
		Services: []ServiceSpec{{
			Name:     "profiles",
			Protocol: "grpc",
			Endpoints: map[string][]Endpoint{
				"us-east": {{Address: "127.0.0.1:1001", Zone: "a"}},
				"eu-west": {{Address: "127.0.0.1:1002"}},
			},
			Policy: Policy{Consistency: "session", AffinityKey: "grpc:user-id", HomeRegions: "hash=us-east,eu-west"},
		}},
	}
}

func TestNewGood(t *testing.T) {
	m, err := New(goodSpec())
	if err != nil {
		t.Fatal(err)
	}
	if d, ok := m.RTT("us-west", "us-east"); !ok || d != 87*time.Millisecond {
		t.Fatalf("RTT(us-west, us-east) = %v, %v", d, ok)
	}
	svcs := m.Services()
	if len(svcs) != 1 || svcs[0].Authorities[0] != "profiles" {
		t.Fatalf("services = %+v, want authorities defaulted to the name", svcs)
	}
	svcs[0].Endpoints["us-east"][0].Address = "mutated:1"
	if m.Services()[0].Endpoints["us-east"][0].Address != "127.0.0.1:1001" {
		t.Fatal("Services() exposes the model's own endpoints")
	}
	m2, err := New(goodSpec())
	if err != nil {
		t.Fatal(err)
	}
	if m.Version() != m2.Version() {
		t.Fatalf("equal specs, different versions %s %s", m.Version(), m2.Version())
	}
	down, err := m.WithRegionState("us-east", affinity.Down)
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := down.Region("us-east"); r.State != affinity.Down || down.Version() == m.Version() {
		t.Fatalf("WithRegionState: state %v, version %s (was %s)", r.State, down.Version(), m.Version())
	}
	if r, _ := m.Region("us-east"); r.State != affinity.Healthy {
		t.Fatal("WithRegionState changed the original model")
	}
	if _, err := m.WithRegionState("mars", affinity.Down); err == nil || !strings.Contains(err.Error(), `"mars"`) {
		t.Fatalf("unknown region: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*Spec)
		want   string
	}{
		{"no regions", func(s *Spec) { s.Regions = nil; s.Services = nil }, "regions: at least one region is required"},
		{"bad region name", func(s *Spec) { s.Regions[2].Name = "US_West" }, `regions[2].name: "US_West" must be lower-case`},
		{"duplicate region", func(s *Spec) { s.Regions[2].Name = "us-east" }, `regions[2].name: region "us-east" is listed twice`},
		{"bad state", func(s *Spec) { s.Regions[1].State = "sleepy" }, `regions[1].state: "sleepy"`},
		{"rtt unknown region", func(s *Spec) { s.Regions[2].RTT = map[string]time.Duration{"mars": time.Second} }, `regions[2].rtt.mars: unknown region "mars"`},
		{"rtt conflict", func(s *Spec) { s.Regions[2].RTT = map[string]time.Duration{"us-east": time.Second} }, "regions[2].rtt.us-east: 1s here but 87ms"},
		{"rtt missing", func(s *Spec) { delete(s.Regions[1].RTT, "us-west") }, `no RTT between "eu-west" and "us-west"`},
		{"rtt zero", func(s *Spec) { s.Regions[1].RTT["us-west"] = 0 }, "regions[1].rtt.us-west: must be positive"},
		{"service name", func(s *Spec) { s.Services[0].Name = "" }, "services[0].name: is required"},
		{"protocol", func(s *Spec) { s.Services[0].Protocol = "smtp" }, `services[0].protocol: "smtp" is not one of`},
		{"authority", func(s *Spec) { s.Services[0].Authorities = []string{"a/b"} }, `services[0].authorities[0]: "a/b" is not a host`},
		{"endpoint region", func(s *Spec) { s.Services[0].Endpoints["mars"] = []Endpoint{{Address: "127.0.0.1:1"}} }, `services[0].endpoints.mars: unknown region "mars"`},
		{"endpoint address", func(s *Spec) { s.Services[0].Endpoints["us-east"][0].Address = "127.0.0.1" }, `services[0].endpoints.us-east[0].address: "127.0.0.1" is not host:port`},
		{"endpoint port", func(s *Spec) { s.Services[0].Endpoints["us-east"][0].Address = "127.0.0.1:99999" }, `services[0].endpoints.us-east[0].address: "127.0.0.1:99999": port must be`},
		{"endpoint zone", func(s *Spec) { s.Services[0].Endpoints["us-east"][0].Zone = "Zone A" }, `services[0].endpoints.us-east[0].zone`},
		{"consistency", func(s *Spec) { s.Services[0].Policy.Consistency = "linearizable" }, `services[0].consistency: consistency level "linearizable"`},
		{"strong without home", func(s *Spec) { s.Services[0].Policy.Consistency = "strong"; s.Services[0].Policy.HomeRegions = "" }, "services[0].consistency: strong needs home_regions"},
		{"affinity key", func(s *Spec) { s.Services[0].Policy.AffinityKey = "body:x" }, "services[0].affinity_key:"},
		{"home regions", func(s *Spec) { s.Services[0].Policy.HomeRegions = "hash=mars" }, "services[0].home_regions:"},
		{"home without key", func(s *Spec) { s.Services[0].Policy.AffinityKey = "" }, "services[0].home_regions: needs affinity_key"},
		{"write failover", func(s *Spec) { s.Services[0].Policy.WriteFailover = "anywhere" }, `services[0].write_failover: "anywhere"`},
		{"residency", func(s *Spec) { s.Services[0].Policy.Residency = "mars" }, "services[0].residency:"},
		{"budget", func(s *Spec) { s.Services[0].Policy.CrossRegionBudget = "ratio=7" }, "services[0].cross_region_budget:"},
		{"lag", func(s *Spec) { s.Services[0].Policy.ReplicationLagBound = -time.Second }, "services[0].replication_lag_bound: must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := goodSpec()
			tc.mutate(&s)
			_, err := New(s)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v\nwant one containing %q", err, tc.want)
			}
		})
	}
}

func TestWithEndpoints(t *testing.T) {
	m, err := New(goodSpec())
	if err != nil {
		t.Fatal(err)
	}
	if !m.HasService("profiles") || m.HasService("nope") {
		t.Fatal("HasService")
	}
	same, err := m.WithEndpoints(nil)
	if err != nil || same != m {
		t.Fatalf("WithEndpoints(nil) = %p, %v; want the model itself", same, err)
	}
	got, err := m.WithEndpoints([]RegionalEndpoint{
		{Service: "profiles", Region: "us-west", Endpoint: Endpoint{Address: "10.0.0.3:80", Zone: "c"}},
		{Service: "profiles", Region: "us-east", Endpoint: Endpoint{Address: "127.0.0.1:1001", Zone: "b"}}, // the spec lists it
		{Service: "profiles", Region: "us-east", Endpoint: Endpoint{Address: "10.0.0.1:80"}},
		{Service: "nope", Region: "us-east", Endpoint: Endpoint{Address: "10.0.0.9:80"}},  // unknown service
		{Service: "profiles", Region: "mars", Endpoint: Endpoint{Address: "10.0.0.9:80"}}, // unknown region
	})
	if err != nil {
		t.Fatal(err)
	}
	eps := got.Services()[0].Endpoints
	if len(eps["us-east"]) != 2 || eps["us-east"][0] != (Endpoint{Address: "127.0.0.1:1001", Zone: "a"}) || eps["us-east"][1].Address != "10.0.0.1:80" ||
		len(eps["us-west"]) != 1 || eps["us-west"][0].Zone != "c" || len(eps) != 3 {
		t.Fatalf("endpoints = %+v", eps)
	}
	if got.Version() == m.Version() || len(m.Services()[0].Endpoints) != 2 {
		t.Fatal("WithEndpoints changed the model it was called on, or kept its version")
	}
	if _, err := m.WithEndpoints([]RegionalEndpoint{{Service: "profiles", Region: "us-west", Endpoint: Endpoint{Address: "nope"}}}); err == nil ||
		!strings.Contains(err.Error(), "services[0].endpoints.us-west[0].address") {
		t.Fatalf("a bad address: %v", err)
	}
	// A service may be declared without endpoints: its sidecars register them.
	spec := goodSpec()
	spec.Services[0].Endpoints = nil
	if _, err := New(spec); err != nil {
		t.Fatalf("a service without endpoints: %v", err)
	}
}
