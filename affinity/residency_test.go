package affinity

import (
	"slices"
	"strings"
	"testing"
)

func TestResidencyAllowed(t *testing.T) {
	known := []string{"us-east", "eu-west", "eu-central", "us-west"}
	type check struct {
		key            string
		want           []string
		wantRestricted bool
	}
	for _, tc := range []struct {
		name   string
		in     string
		checks []check
	}{
		{"unrestricted", "", []check{{"alice", nil, false}, {"", nil, false}}},
		{"only separators: unrestricted", " ; ", []check{{"alice", nil, false}}},
		{"service-wide", "eu-west,eu-central", []check{{"alice", []string{"eu-west", "eu-central"}, true}, {"", []string{"eu-west", "eu-central"}, true}}},
		{"service-wide with spaces", " eu-west , eu-central ", []check{{"alice", []string{"eu-west", "eu-central"}, true}}},
		{"prefix beats the service-wide set", "eu-west,eu-central;prefix=de-:eu-central", []check{
			{"de-alice", []string{"eu-central"}, true},
			{"fr-bob", []string{"eu-west", "eu-central"}, true},
			{"DE-carol", []string{"eu-west", "eu-central"}, true},
		}},
		{"longest prefix wins, whatever the order", "eu-west,eu-central;prefix=de-:eu-central|eu-west;prefix=de-by-:eu-central", []check{
			{"de-by-dave", []string{"eu-central"}, true},
			{"de-be-erin", []string{"eu-central", "eu-west"}, true},
			{"de-", []string{"eu-central", "eu-west"}, true},
			{"d", []string{"eu-west", "eu-central"}, true},
		}},
		{"prefixes only", ";prefix=de-:eu-central", []check{
			{"de-alice", []string{"eu-central"}, true},
			{"us-bob", nil, false},
		}},
		{"key prefix with a colon", "us-east;prefix=urn:de:-:eu-central", []check{{"urn:de:-x", []string{"eu-central"}, true}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := ParseResidency(tc.in, known)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.checks {
				got, restricted := r.Allowed(c.key)
				if !slices.Equal(got, c.want) || restricted != c.wantRestricted {
					t.Errorf("Allowed(%q) = %v, %v; want %v, %v", c.key, got, restricted, c.want, c.wantRestricted)
				}
			}
			if r.Restricted() != slices.ContainsFunc(tc.checks, func(c check) bool { return c.wantRestricted }) {
				t.Errorf("Restricted() = %v", r.Restricted())
			}
			again, err := ParseResidency(r.String(), known)
			if err != nil || again.String() != r.String() {
				t.Fatalf("String() %q does not round-trip: %v", r.String(), err)
			}
			for _, c := range tc.checks {
				a, ar := again.Allowed(c.key)
				b, br := r.Allowed(c.key)
				if !slices.Equal(a, b) || ar != br {
					t.Fatalf("reparsed Allowed(%q) differs", c.key)
				}
			}
		})
	}
}

func TestParseResidencyErrors(t *testing.T) {
	known := []string{"us-east", "eu-west", "eu-central"}
	for _, tc := range []struct{ in, wantErr string }{
		{"eu-west,mars", `service regions "eu-west,mars": unknown region "mars"`},
		{"eu-west,,eu-central", `service regions "eu-west,,eu-central": empty region`},
		{"eu-west,eu-west", `region "eu-west" listed twice`},
		{"eu-west;prefix=de-:eu-central|moon", `clause "prefix=de-:eu-central|moon": prefix "de-": unknown region "moon"`},
		{"eu-west;prefix=de-:eu-central,eu-west", `clause "prefix=de-:eu-central,eu-west": prefix "de-": unknown region "eu-central,eu-west"`},
		{"eu-west;prefix=de-:", `clause "prefix=de-:": prefix "de-": empty region`},
		{"eu-west;prefix=:eu-west", `clause "prefix=:eu-west": empty key prefix`},
		{"eu-west;prefix=de-", `clause "prefix=de-": want prefix=<keyprefix>:<region>`},
		{"eu-west;region=eu-west", `clause "region=eu-west": want prefix=`},
		{"eu-west;prefix=de-:eu-west;prefix=de-:eu-central", `clause "prefix=de-:eu-central": prefix "de-" given twice`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseResidency(tc.in, known)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestResidencyAllowedDoesNotAllocate(t *testing.T) {
	r, err := ParseResidency("eu-west,eu-central;prefix=de-:eu-central;prefix=fr-:eu-west|eu-central", []string{"eu-west", "eu-central"})
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"de-alice", "fr-bob", "it-carol"} {
		if n := testing.AllocsPerRun(1000, func() { r.Allowed(key) }); n != 0 {
			t.Errorf("Allowed(%q) allocates %v times, want 0", key, n)
		}
	}
}
