package translate

import (
	"fmt"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/controlplane/model"
)

// weights renders a CLA as "priority:region/zone*weight" with decimal weights.
func weights(cla *endpointv3.ClusterLoadAssignment) string {
	var parts []string
	for _, l := range cla.GetEndpoints() {
		parts = append(parts, fmt.Sprintf("%d:%s/%s*%d", l.GetPriority(), l.GetLocality().GetRegion(), l.GetLocality().GetZone(), l.GetLoadBalancingWeight().GetValue()))
	}
	return strings.Join(parts, " ")
}

func TestRampWeightsAtEachStep(t *testing.T) {
	m := testModel(t)
	degraded, err := m.WithRegionState("us-east", affinity.Degraded)
	if err != nil {
		t.Fatal(err)
	}
	down, err := m.WithRegionState("us-east", affinity.Down)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		state  string
		from   string
		factor int // 0 or 100: no ramp entry
		want   string
	}{
		{"healthy, settled", "healthy", "us-east", 100, "0:us-east/a*1 0:us-east/b*2 1:eu-west/*1 2:us-west/*1"},
		{"degraded, step 1: 75% stays", "degraded", "us-east", 75, "0:us-east/a*250 0:us-east/b*500 0:eu-west/*250 1:us-west/*1"},
		{"degraded, step 2: 50%", "degraded", "us-east", 50, "0:us-east/a*167 0:us-east/b*333 0:eu-west/*500 1:us-west/*1"},
		{"degraded, step 3: 25%", "degraded", "us-east", 25, "0:us-east/a*83 0:us-east/b*167 0:eu-west/*750 1:us-west/*1"},
		{"degraded, settled: behind the healthy ones", "degraded", "us-east", 0, "0:eu-west/*1 1:us-west/*1 2:us-east/a*1 2:us-east/b*2"},
		{"down, ramping: keeps its place until the ramp ends", "down", "us-east", 25, "0:us-east/a*83 0:us-east/b*167 0:eu-west/*750 1:us-west/*1"},
		{"down, settled: gone", "down", "us-east", 0, "0:eu-west/*1 1:us-west/*1"},
		{"from eu-west: us-east's priority is shared with us-west", "degraded", "eu-west", 50, "0:eu-west/*1 1:us-east/a*167 1:us-east/b*333 1:us-west/*500"},
		{"recovering (healthy again), ramp up at 25%", "healthy", "us-east", 25, "0:us-east/a*83 0:us-east/b*167 0:eu-west/*750 1:us-west/*1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mm := map[string]*model.Model{"healthy": m, "degraded": degraded, "down": down}[tc.state]
			var ramp map[string]int
			if tc.factor > 0 && tc.factor < 100 {
				ramp = map[string]int{"us-east": tc.factor}
			}
			snap, err := ForRegionRamped(mm, tc.from, ramp)
			if err != nil {
				t.Fatal(err)
			}
			cla := snap.GetResources(resource.EndpointType)["greeter"].(*endpointv3.ClusterLoadAssignment)
			if got := weights(cla); got != tc.want {
				t.Fatalf("localities = %s\nwant        %s", got, tc.want)
			}
			// Geode sidecars get the ramp in the clusters' region view.
			c := snap.GetResources(resource.ClusterType)["greeter"].(*clusterv3.Cluster)
			pol, err := api.Decode(c.GetMetadata().GetFilterMetadata()[api.MetadataKey])
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range pol.Regions {
				want := 0
				if r.Name == "us-east" && ramp != nil {
					want = tc.factor
				}
				if r.RampPercent != want {
					t.Errorf("region view %s ramp_percent = %d, want %d", r.Name, r.RampPercent, want)
				}
			}
		})
	}
}

func TestRampRejectsBadFactors(t *testing.T) {
	m := testModel(t)
	for _, ramp := range []map[string]int{{"us-east": 0}, {"us-east": 100}, {"us-east": -5}, {"mars": 50}} {
		if _, err := ForRegionRamped(m, "us-east", ramp); err == nil {
			t.Errorf("ramp %v accepted", ramp)
		}
	}
}

func TestRampTwoRegionsAtOnce(t *testing.T) {
	m := testModel(t)
	// Both us-east and eu-west ramping: each shares with the next non-ramping region;
	// us-west can only be taken once.
	groups, err := Groups(m, "us-east", map[string]int{"us-east": 50, "eu-west": 75})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(groups); got != "[[{us-east 50} {us-west 50}] [{eu-west 100}]]" {
		t.Fatalf("groups = %s", got)
	}
}
