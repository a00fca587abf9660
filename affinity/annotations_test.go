package affinity

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestPolicyFromAnnotations(t *testing.T) {
	known := []string{"us-east", "eu-west", "eu-central", "us-west"}
	ann := map[string]string{
		// A realistic Service: kubectl and Helm annotations alongside geode's.
		"kubectl.kubernetes.io/last-applied-configuration": `{"apiVersion":"v1","kind":"Service"}`,
		"meta.helm.sh/release-name":                        "profiles",
		"prometheus.io/scrape":                             "true",
		"example.com/geode.io/residency":                   "not ours", // only the geode.io/ prefix is ours
		AnnotationConsistency:                              "session",
		AnnotationAffinityKey:                              "header:X-User-Id",
		AnnotationHomeRegions:                              "table=alice:us-west;prefix=eu-:eu-west;hash=us-east,eu-west",
		AnnotationCrossRegionBudget:                        "ratio=0.05,min=2,window=30s,mode=enforce",
		AnnotationResidency:                                "eu-west,eu-central,us-east;prefix=eu-:eu-west|eu-central",
		AnnotationReplicationLagBound:                      " 2s ",
	}
	p, err := PolicyFromAnnotations("profiles", ann, known)
	if err != nil {
		t.Fatal(err)
	}
	if p.Consistency != "session" {
		t.Errorf("Consistency = %q", p.Consistency)
	}
	if p.KeySource == nil || p.KeySource.String() != "header:X-User-Id" {
		t.Errorf("KeySource = %v", p.KeySource)
	}
	wantDir := DirectoryConfig{Table: map[string]string{"alice": "us-west"}, Prefixes: []PrefixRule{{"eu-", "eu-west"}}, Hash: []string{"us-east", "eu-west"}}
	if p.Directory == nil || !reflect.DeepEqual(*p.Directory, wantDir) {
		t.Errorf("Directory = %+v, want %+v", p.Directory, wantDir)
	}
	wantBudget := BudgetConfig{Ratio: 0.05, MinPerSecond: 2, Window: 30 * time.Second, Mode: BudgetEnforce}
	if p.Budget == nil || *p.Budget != wantBudget {
		t.Errorf("Budget = %+v, want %+v", p.Budget, wantBudget)
	}
	if p.Residency == nil {
		t.Fatal("Residency = nil")
	}
	if got, _ := p.Residency.Allowed("eu-bob"); !reflect.DeepEqual(got, []string{"eu-west", "eu-central"}) {
		t.Errorf("Residency.Allowed(eu-bob) = %v", got)
	}
	if p.ReplicationLagBound != 2*time.Second {
		t.Errorf("ReplicationLagBound = %v", p.ReplicationLagBound)
	}
	if _, err := NewDirectory(*p.Directory, known, 0); err != nil {
		t.Errorf("NewDirectory of the parsed config: %v", err)
	}
}

func TestPolicyFromAnnotationsNoneOrOthers(t *testing.T) {
	for _, ann := range []map[string]string{nil, {}, {"app.kubernetes.io/name": "profiles"}} {
		p, err := PolicyFromAnnotations("profiles", ann, []string{"us-east"})
		if err != nil || !reflect.DeepEqual(p, ServicePolicy{}) {
			t.Fatalf("PolicyFromAnnotations(%v) = %+v, %v; want the zero policy", ann, p, err)
		}
	}
}

func TestPolicyFromAnnotationsErrors(t *testing.T) {
	known := []string{"us-east", "eu-west"}
	for _, tc := range []struct {
		name    string
		ann     map[string]string
		wantErr []string
	}{
		{"unknown geode annotation", map[string]string{"geode.io/home-region": "us-east"},
			[]string{`service "orders": annotation geode.io/home-region: unknown geode annotation, want one of geode.io/affinity-key,`}},
		{"injection label on a Service", map[string]string{"geode.io/inject": "true"},
			[]string{`service "orders": annotation geode.io/inject: unknown geode annotation`}},
		{"bad affinity key", map[string]string{AnnotationAffinityKey: "body:user"},
			[]string{`service "orders": annotation geode.io/affinity-key: affinity key "body:user": unknown source "body"`}},
		{"bad home regions", map[string]string{AnnotationHomeRegions: "hash=us-east,mars"},
			[]string{`service "orders": annotation geode.io/home-regions: clause "hash=us-east,mars": unknown region "mars"`}},
		{"empty home regions", map[string]string{AnnotationHomeRegions: ""},
			[]string{`service "orders": annotation geode.io/home-regions: directory: empty`}},
		{"bad budget: each problem prefixed", map[string]string{AnnotationCrossRegionBudget: "ratio=2,burst=3"},
			[]string{
				`service "orders": annotation geode.io/cross-region-budget: ratio "2": want a number in [0,1]`,
				`service "orders": annotation geode.io/cross-region-budget: unknown key "burst"`,
			}},
		{"bad residency", map[string]string{AnnotationResidency: "eu-west,eu-north"},
			[]string{`service "orders": annotation geode.io/residency: service regions "eu-west,eu-north": unknown region "eu-north"`}},
		{"bad lag bound", map[string]string{AnnotationReplicationLagBound: "soon"},
			[]string{`service "orders": annotation geode.io/replication-lag-bound: "soon": want a positive duration`}},
		{"negative lag bound", map[string]string{AnnotationReplicationLagBound: "-1s"},
			[]string{`annotation geode.io/replication-lag-bound: "-1s"`}},
		{"empty consistency", map[string]string{AnnotationConsistency: " "},
			[]string{`service "orders": annotation geode.io/consistency: empty value`}},
		{"every bad annotation reported", map[string]string{
			AnnotationAffinityKey:  "path:/users",
			AnnotationResidency:    "moon",
			"geode.io/typo":        "x",
			AnnotationConsistency:  "session",
			"prometheus.io/scrape": "true",
		}, []string{"annotation geode.io/affinity-key:", "annotation geode.io/residency:", "annotation geode.io/typo:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PolicyFromAnnotations("orders", tc.ann, known)
			if err == nil {
				t.Fatalf("no error, want %q", tc.wantErr)
			}
			if !reflect.DeepEqual(p, ServicePolicy{}) {
				t.Errorf("policy on error = %+v, want the zero value", p)
			}
			lines := strings.Split(err.Error(), "\n")
			for _, l := range lines {
				if !strings.HasPrefix(l, `service "orders": annotation geode.io/`) {
					t.Errorf("error line %q lacks the service and annotation prefix", l)
				}
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestServiceAnnotationsAreTheWireNames(t *testing.T) {
	want := []string{
		"geode.io/affinity-key",
		"geode.io/consistency",
		"geode.io/cross-region-budget",
		"geode.io/home-regions",
		"geode.io/replication-lag-bound",
		"geode.io/residency",
	}
	if got := ServiceAnnotations(); !reflect.DeepEqual(got, want) {
		t.Fatalf("ServiceAnnotations() = %v, want %v (wire names: change only with a migration)", got, want)
	}
}
