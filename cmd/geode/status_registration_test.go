package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"

	"github.com/geodemesh/geode/controlplane/server"
)

// geode status shows which stream registers which endpoint, and the registration
// counts with the refusals by reason.
func TestStatusTableShowsRegistrations(t *testing.T) {
	st := server.Status{Refused: 2, Clients: []server.ClientStatus{
		{Stream: 1, Protocol: "sotw", NodeID: "orders-eu-1", Region: "eu-west", Registered: "orders@10.1.0.5:8080",
			Sent: map[string]string{resource.ClusterType: "c1"}, Acked: map[string]string{resource.ClusterType: "c1"}},
		{Stream: 2, Protocol: "sotw", NodeID: "web-us-1", Region: "us-east"},
	}, Registrations: server.RegistrationStatus{Active: 1, Max: 10000, Registered: 3, Deregistered: 2, Refused: 2,
		RefusedByReason: map[string]int64{server.RefusedUnknownService: 1, server.RefusedRateLimited: 1}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { json.NewEncoder(w).Encode(st) }))
	defer srv.Close()
	var out, errOut bytes.Buffer
	if err := runStatus(context.Background(), []string{"--admin", srv.URL}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	want := `NODE          REGION    PROTOCOL   LDS        RDS        CDS           EDS        REGISTERED             LAST NACK
orders-eu-1   eu-west   sotw       NOT SENT   NOT SENT   SYNCED (c1)   NOT SENT   orders@10.1.0.5:8080   -
web-us-1      us-east   sotw       NOT SENT   NOT SENT   NOT SENT      NOT SENT   -                      -
2 clients; 2 streams refused, 0 NACKs since start
1 endpoints registered (at most 10000); 2 registrations refused (rate_limited 1, unknown_service 1)
`
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
