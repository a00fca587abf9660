package xds_test

import (
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/model"
)

// A service whose every region with endpoints is down stays known to the sidecar: its
// calls are answered 503 naming it and its regions (not 404, as for an unknown
// authority), and it is served again when its region returns.
func TestServiceWithoutUsableEndpointsIsAnswered503(t *testing.T) {
	backends := regionBackends(t, "us-east", "eu-west", "us-west")
	solo := model.ServiceSpec{Name: "solo", Authorities: []string{"solo"}, Endpoints: map[string][]model.Endpoint{"eu-west": {{Address: backends["eu-west"], Zone: "eu-west-a"}}}}
	cp := startControlPlane(t, fleet(t, backends, solo), "127.0.0.1:0")
	sc := startSidecar(t, cp.xdsAddr, "sidecar-us-east-solo", "")
	eventually(t, 5*time.Second, "solo served by eu-west", func() bool { return sc.servedBy("solo") == "eu-west" })

	cp.post("/regions/eu-west/down")
	eventually(t, 5*time.Second, "solo without endpoints", func() bool { return slices.Equal(sc.client.Status().NoEndpoints, []string{"solo"}) })
	req, _ := http.NewRequest(http.MethodGet, "http://"+sc.outbound+"/", nil)
	req.Host = "solo"
	resp, err := sc.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), `service "solo": no healthy region (no region has endpoints for it)`) {
		t.Fatalf("solo with eu-west down: %s %q, want 503 naming the service", resp.Status, body)
	}
	if got := sc.servedBy("web"); got != "us-east" {
		t.Fatalf("web (unaffected) served by %q", got)
	}

	cp.post("/regions/eu-west/restore")
	eventually(t, 5*time.Second, "solo served again", func() bool { return sc.servedBy("solo") == "eu-west" })
	if got := sc.client.Status().NoEndpoints; len(got) != 0 {
		t.Fatalf("NoEndpoints after the restore = %v", got)
	}
}
