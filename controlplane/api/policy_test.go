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
