package fleet_test

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/e2e/fleet"
)

// get calls the profiles service through a region's outbound listener.
func get(t *testing.T, client *http.Client, r *fleet.Region, path string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+r.OutboundAddr()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = fleet.ServiceNaive // nearest-region routing: what these wiring checks are about
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s via %s: %v", path, r.Name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func put(t *testing.T, client *http.Client, r *fleet.Region, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPut, "http://"+r.OutboundAddr()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = fleet.ServiceNaive // nearest-region routing: what these wiring checks are about
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("PUT %s via %s: %v", path, r.Name, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func TestFleet(t *testing.T) { testFleet(t, false) }

// TestFleetControlPlanes is TestFleet with every sidecar fed by its own region's
// control plane over xDS.
func TestFleetControlPlanes(t *testing.T) { testFleet(t, true) }

func testFleet(t *testing.T, controlPlanes bool) {
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	f, err := fleet.Start(ctx, fleet.Options{WAN: true, Lag: 50 * time.Millisecond, ControlPlanes: controlPlanes})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range f.Regions() {
		if (r.ControlPlane() != nil) != controlPlanes || (r.XDS() != nil) != controlPlanes {
			t.Fatalf("%s: control plane %v, xds client %v; want them iff ControlPlanes", r.Name, r.ControlPlane() != nil, r.XDS() != nil)
		}
		if !controlPlanes {
			continue
		}
		// Start returned with the state from xDS applied: every region, the
		// services, and the fast breaker kept from the sidecar's own config.
		st := r.XDS().Status()
		if st.Source != "xds" || !st.Connected {
			t.Errorf("%s: xds status %+v, want connected, source xds", r.Name, st)
		}
		d := r.Sidecar().ConfigDump()
		if len(d.Regions) != 3 || len(d.Services) != 3 {
			t.Errorf("%s: sidecar routes %d regions, %d services; want 3 and 3", r.Name, len(d.Regions), len(d.Services))
		}
		for _, svc := range d.Services {
			if svc.Name == fleet.ServiceHTTP && svc.Policy.Consistency != "session" {
				t.Errorf("%s: %s consistency %q from xDS, want session", r.Name, svc.Name, svc.Policy.Consistency)
			}
		}
	}
	client := &http.Client{Timeout: 10 * time.Second}

	for _, name := range []string{"us-east", "eu-west", "us-west"} {
		if f.Region(name) == nil {
			t.Fatalf("region %s missing", name)
		}
	}
	east := f.Region("us-east")

	t.Run("a request through us-east is served in us-east", func(t *testing.T) {
		resp := put(t, client, east, "/users/ada", `{"name":"Ada","email":"ada@example.com"}`)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT status %d", resp.StatusCode)
		}
		resp = get(t, client, east, "/users/ada")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("Geode-Region"); got != "us-east" {
			t.Errorf("Geode-Region = %q, want us-east", got)
		}
		if got := resp.Header.Get("Geode-Reason"); got != "local" {
			t.Errorf("Geode-Reason = %q, want local", got)
		}
	})

	t.Run("with us-east's app stopped it fails over to eu-west, the nearest, over the WAN", func(t *testing.T) {
		// Stopping an app drops its unsent replication queue: wait until eu-west has ada.
		deadline := time.Now().Add(5 * time.Second)
		for {
			if _, ok := f.Region("eu-west").Store().Get("ada"); ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the write never replicated to eu-west")
			}
			time.Sleep(10 * time.Millisecond)
		}
		if err := east.StopApp(); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		resp := get(t, client, east, "/users/ada")
		took := time.Since(start)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET status %d", resp.StatusCode)
		}
		if got := resp.Header.Get("Geode-Region"); got != "eu-west" {
			t.Errorf("Geode-Region = %q, want eu-west (81ms from us-east, nearer than us-west's 87ms)", got)
		}
		if got := resp.Header.Get("Geode-Reason"); got != "failover" {
			t.Errorf("Geode-Reason = %q, want failover", got)
		}
		if took < 80*time.Millisecond {
			t.Errorf("cross-region call took %s; the WAN link should add the 81ms RTT", took)
		}
	})

	t.Run("after StartApp us-east serves locally again", func(t *testing.T) {
		if err := east.StartApp(); err != nil {
			t.Fatal(err)
		}
		// The breaker may hold us-east open for a few seconds after the failures.
		deadline := time.Now().Add(10 * time.Second)
		for {
			resp := get(t, client, east, "/healthz")
			if resp.Header.Get("Geode-Region") == "us-east" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("still served by %q 10s after StartApp", resp.Header.Get("Geode-Region"))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	client.CloseIdleConnections()
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := east.StartApp(); err == nil {
		t.Error("StartApp after Close succeeded")
	}

	// Everything Start started has stopped (a little slack for runtime goroutines).
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestStartRejectsUnknownRegion(t *testing.T) {
	_, err := fleet.Start(t.Context(), fleet.Options{Regions: []string{"us-east", "mars-north"}})
	if err == nil || !strings.Contains(err.Error(), "mars-north") {
		t.Fatalf("err = %v, want one naming mars-north", err)
	}
}

func TestStartRejectsLagIntoUnknownRegion(t *testing.T) {
	_, err := fleet.Start(t.Context(), fleet.Options{LagInto: map[string]time.Duration{"mars-north": time.Second}})
	if err == nil || !strings.Contains(err.Error(), `LagInto: "mars-north"`) {
		t.Fatalf("err = %v, want one naming LagInto and mars-north", err)
	}
}
