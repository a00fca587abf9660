package api

import (
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/structpb"
)

func TestPolicyRoundTrip(t *testing.T) {
	in := Policy{
		Service: "profiles", Protocol: "grpc", Authorities: []string{"profiles", "profiles.default"},
		Consistency: "session", AffinityKey: "grpc:user-id", HomeRegions: "hash=us-east,eu-west",
		WriteFailover: "nearest", Residency: "us-east,eu-west", CrossRegionBudget: "ratio=0.2,min=10,window=10s,mode=shadow",
		ReplicationLagBound: 2 * time.Second,
		Regions:             []Region{{Name: "us-east", State: "healthy"}, {Name: "eu-west", RTT: 81500 * time.Microsecond, State: "down"}},
	}
	s, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if out.String() != in.String() || strings.Join(out.Authorities, ",") != "profiles,profiles.default" {
		t.Fatalf("round trip: got %v, want %v", out, in)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := Encode(Policy{Service: "s", Protocol: "grpc"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(map[string]*structpb.Value)
		want   string
	}{
		{"unknown field", func(f map[string]*structpb.Value) { f["colour"] = structpb.NewStringValue("red") }, "colour: unknown field"},
		{"wrong type", func(f map[string]*structpb.Value) { f[FieldConsistency] = structpb.NewBoolValue(true) }, "consistency: must be a string"},
		{"future schema", func(f map[string]*structpb.Value) { f[FieldSchema] = structpb.NewNumberValue(2) }, "schema: version 2 is not supported"},
		{"no schema", func(f map[string]*structpb.Value) { delete(f, FieldSchema) }, "schema: is required"},
		{"no service", func(f map[string]*structpb.Value) { delete(f, FieldService) }, "service: is required"},
		{"bad lag", func(f map[string]*structpb.Value) { f[FieldReplicationLagBound] = structpb.NewStringValue("soon") }, "replication_lag_bound: \"soon\""},
		{"regions not a list", func(f map[string]*structpb.Value) { f[FieldRegions] = structpb.NewStringValue("us-east") }, "regions: must be a list"},
		{"region not a struct", func(f map[string]*structpb.Value) { f[FieldRegions] = regions(structpb.NewStringValue("us-east")) }, "regions[0]: must be a struct"},
		{"region unknown field", func(f map[string]*structpb.Value) {
			f[FieldRegions] = regions(region(map[string]any{"name": "a", "rtt_ms": 0, "state": "healthy", "zone": "z"}))
		}, "regions[0].zone: unknown field"},
		{"region without rtt", func(f map[string]*structpb.Value) {
			f[FieldRegions] = regions(region(map[string]any{"name": "a", "state": "healthy"}))
		}, "regions[0].rtt_ms: is required"},
		{"region negative rtt", func(f map[string]*structpb.Value) {
			f[FieldRegions] = regions(region(map[string]any{"name": "a", "rtt_ms": -1, "state": "healthy"}))
		}, "regions[0].rtt_ms: -1 is not a number of milliseconds"},
		{"region rtt as string", func(f map[string]*structpb.Value) {
			f[FieldRegions] = regions(region(map[string]any{"name": "a", "rtt_ms": "81ms", "state": "healthy"}))
		}, "regions[0].rtt_ms: must be a number"},
		{"region without state", func(f map[string]*structpb.Value) {
			f[FieldRegions] = regions(region(map[string]any{"name": "a", "rtt_ms": 1, "state": ""}))
		}, "regions[0].state: must not be empty"},
		{"region twice", func(f map[string]*structpb.Value) {
			r := map[string]any{"name": "a", "rtt_ms": 1, "state": "healthy"}
			f[FieldRegions] = regions(region(r), region(r))
		}, `regions[1].name: region "a" is listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := map[string]*structpb.Value{}
			for k, v := range good.Fields {
				f[k] = v
			}
			tc.mutate(f)
			_, err := Decode(&structpb.Struct{Fields: f})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want error containing %q", err, tc.want)
			}
		})
	}
}

func regions(vals ...*structpb.Value) *structpb.Value {
	return structpb.NewListValue(&structpb.ListValue{Values: vals})
}

func region(fields map[string]any) *structpb.Value {
	s, err := structpb.NewStruct(fields)
	if err != nil {
		panic(err)
	}
	return structpb.NewStructValue(s)
}

func TestRegionsAreOptionalAndRoundTripRTT(t *testing.T) {
	s, err := Encode(Policy{Service: "s", Protocol: "http1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Fields[FieldRegions]; ok {
		t.Fatal("an empty region list is written")
	}
	if p, err := Decode(s); err != nil || p.Regions != nil {
		t.Fatalf("Decode without regions = %v, %v", p.Regions, err)
	}
	in := Policy{Service: "s", Protocol: "http1", Regions: []Region{{Name: "a", RTT: 137 * time.Millisecond, State: "healthy"}}}
	if s, err = Encode(in); err != nil {
		t.Fatal(err)
	}
	if got := s.Fields[FieldRegions].GetListValue().GetValues()[0].GetStructValue().GetFields()[FieldRegionRTTMs].GetNumberValue(); got != 137 {
		t.Fatalf("rtt_ms on the wire = %v, want 137", got)
	}
	for _, bad := range []Policy{
		{Service: "s", Protocol: "http1", Regions: []Region{{RTT: 1, State: "healthy"}}},
		{Service: "s", Protocol: "http1", Regions: []Region{{Name: "a", RTT: -1, State: "healthy"}}},
		{Service: "s", Protocol: "http1", Regions: []Region{{Name: "a"}}},
		{Service: "s", Protocol: "http1", Regions: []Region{{Name: "a", State: "healthy"}, {Name: "a", State: "down"}}},
	} {
		if _, err := Encode(bad); err == nil || !strings.Contains(err.Error(), "regions[") {
			t.Errorf("Encode(%v) = %v, want a regions error", bad.Regions, err)
		}
	}
}

// ramp_percent travels only while a region ramps (1..99) and is checked both ways.
func TestRegionRampPercent(t *testing.T) {
	in := Policy{Service: "web", Protocol: "http1", Regions: []Region{{Name: "us-east", State: "degraded", RampPercent: 75}, {Name: "eu-west", State: "healthy"}}}
	s, err := Encode(in)
	if err != nil {
		t.Fatal(err)
	}
	regions := s.GetFields()[FieldRegions].GetListValue().GetValues()
	if _, ok := regions[1].GetStructValue().GetFields()[FieldRegionRampPercent]; ok {
		t.Fatal("ramp_percent sent for a region that is not ramping")
	}
	out, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	if out.Regions[0].RampPercent != 75 || out.Regions[1].RampPercent != 0 {
		t.Fatalf("regions = %+v", out.Regions)
	}
	for _, bad := range []int{-1, 100} {
		in.Regions[0].RampPercent = bad
		if _, err := Encode(in); err == nil || !strings.Contains(err.Error(), "ramp_percent") {
			t.Errorf("Encode with ramp_percent %d: %v", bad, err)
		}
	}
	for _, bad := range []*structpb.Value{structpb.NewNumberValue(0), structpb.NewNumberValue(100), structpb.NewNumberValue(12.5), structpb.NewStringValue("50")} {
		in.Regions[0].RampPercent = 50
		s, err := Encode(in)
		if err != nil {
			t.Fatal(err)
		}
		s.GetFields()[FieldRegions].GetListValue().GetValues()[0].GetStructValue().GetFields()[FieldRegionRampPercent] = bad
		if _, err := Decode(s); err == nil || !strings.Contains(err.Error(), "regions[0].ramp_percent") {
			t.Errorf("Decode with ramp_percent %v: %v", bad, err)
		}
	}
}
