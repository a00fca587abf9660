package config

import (
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
)

// withPolicy appends service policy lines (indented under services[0]) to valid.
func withPolicy(lines ...string) string {
	var b strings.Builder
	b.WriteString(valid)
	for _, l := range lines {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func TestPolicyFieldsAndAnnotationsParse(t *testing.T) {
	for name, text := range map[string]string{
		"fields": withPolicy(
			`consistency: bounded-staleness=2s`,
			`affinity_key: "path:/users/{key}"`,
			`home_regions: "table=alice:eu-west;hash=us-east,eu-west"`,
			`write_failover: nearest`,
			`residency: "us-east,eu-west"`,
			`cross_region_budget: "ratio=0.2,min=5,window=10s,mode=enforce"`,
			`replication_lag_bound: 3s`,
		),
		"annotations": withPolicy(
			`write_failover: nearest`,
			`annotations:`,
			`  geode.io/consistency: bounded-staleness=2s`,
			`  geode.io/affinity-key: "path:/users/{key}"`,
			`  geode.io/home-regions: "table=alice:eu-west;hash=us-east,eu-west"`,
			`  geode.io/residency: "us-east,eu-west"`,
			`  geode.io/cross-region-budget: "ratio=0.2,min=5,window=10s,mode=enforce"`,
			`  geode.io/replication-lag-bound: 3s`,
			`  kubernetes.io/description: "not ours, ignored"`,
		),
	} {
		t.Run(name, func(t *testing.T) {
			c, err := Parse([]byte(text))
			if err != nil {
				t.Fatal(err)
			}
			p, err := c.Services[0].ParsePolicy(names(c.Regions))
			if err != nil {
				t.Fatal(err)
			}
			if p.Level.Kind != consistency.BoundedStaleness || p.Level.Staleness != 2*time.Second || p.Key == nil || p.Directory == nil ||
				!p.WriteFailover || p.Residency == nil || p.Budget == nil || p.Budget.Ratio != 0.2 || p.LagBound != 3*time.Second {
				t.Fatalf("policy = %+v", p)
			}
		})
	}
}

func TestPolicyErrorsNameTheFieldOrAnnotation(t *testing.T) {
	for _, tc := range []struct {
		name  string
		lines []string
		want  string
	}{
		{"unknown level", []string{`consistency: linearizable`}, `services[0].consistency: `},
		{"bad key source", []string{`affinity_key: "body:user"`}, `services[0].affinity_key: `},
		{"unknown home region", []string{`affinity_key: "header:X-User"`, `home_regions: "hash=us-east,mars"`}, `services[0].home_regions: `},
		{"home regions without a key", []string{`home_regions: "hash=us-east"`}, `services[0].home_regions: needs affinity_key`},
		{"strong without a home", []string{`consistency: strong`}, `services[0].consistency: strong needs home_regions`},
		{"bad write failover", []string{`write_failover: sometimes`}, `services[0].write_failover: "sometimes" is not one of deny, nearest`},
		{"bad budget", []string{`cross_region_budget: "ratio=2"`}, `services[0].cross_region_budget: `},
		{"residency in an unknown region", []string{`residency: "eu-west,moon"`}, `services[0].residency: `},
		{"bad op rule", []string{`ops: {routes: [{prefix: /x, op: maybe}]}`}, `services[0].ops.routes[0].op: `},
		{"a gRPC method both read and write", []string{`ops: {grpc_reads: [/a.B/C], grpc_writes: [/a.B/C]}`}, `services[0].ops: `},
		{"unknown geode.io annotation", []string{`annotations: {geode.io/consitency: session}`}, `services[0].annotations: service "profiles": annotation geode.io/consitency: unknown geode annotation`},
		{"bad annotation value names the annotation", []string{`annotations: {geode.io/consistency: sometimes}`}, `services[0].annotations: geode.io/consistency: `},
		{"annotation and field for the same thing", []string{`consistency: session`, `annotations: {geode.io/consistency: strong}`}, `services[0].annotations: geode.io/consistency and field consistency both set the same policy`},
		{"bad lag bound annotation", []string{`annotations: {geode.io/replication-lag-bound: soon}`}, `services[0].annotations: service "profiles": annotation geode.io/replication-lag-bound: "soon"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(withPolicy(tc.lines...)))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v does not contain %q", err, tc.want)
			}
		})
	}
}

func TestRegionNamesFitInSessionTokens(t *testing.T) {
	text := strings.ReplaceAll(valid, "us-west", "us-west-somewhere-far")
	if _, err := Parse([]byte(text)); err == nil || !strings.Contains(err.Error(), "longer than") {
		t.Fatalf("a region name too long for session tokens was accepted: %v", err)
	}
}
