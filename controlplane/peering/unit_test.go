package peering_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/peering"
	"github.com/geodemesh/geode/controlplane/server"
)

// flaky answers a fixed summary while up, else fails like a refused connection.
type flaky struct {
	mu    sync.Mutex
	up    bool
	calls int
	body  string
}

func (f *flaky) RoundTrip(r *http.Request) (*http.Response, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if !f.up {
		return nil, errors.New("connection refused")
	}
	return &http.Response{StatusCode: 200, Status: "200 OK", Body: io.NopCloser(strings.NewReader(f.body)), Request: r}, nil
}

func (f *flaky) set(up bool) (calls int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.up = up
	return f.calls
}

// TestStaleAfterBound: a peer that stops answering is marked stale once StaleAfter has
// passed (not before), its state is never withdrawn, retries back off to MaxBackoff, and
// the mark clears at the next answer.
func TestStaleAfterBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rt := &flaky{up: true, body: `{"region":"eu-west","state":"degraded","weight_factor_percent":0,"version":"1.1"}`}
		var mu sync.Mutex
		var applied []string
		var marks []bool
		p, err := peering.New(peering.Options{
			Region: "us-east", Peers: []peering.Peer{{Region: "eu-west", Addr: "eu:1"}},
			Apply: func(_ context.Context, s peering.Summary) error {
				mu.Lock()
				defer mu.Unlock()
				applied = append(applied, s.State+"@"+s.Version)
				return nil
			},
			Stale: func(region string, stale bool, _ string) {
				mu.Lock()
				defer mu.Unlock()
				marks = append(marks, stale)
			},
			Wait: time.Second, StaleAfter: 5 * time.Second, MinBackoff: 100 * time.Millisecond, MaxBackoff: time.Second,
			Transport: rt,
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error)
		go func() { done <- p.Run(ctx) }()
		// The fake peer answers at once with the same version: Apply runs once.
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		rt.set(false)
		start := time.Now()
		time.Sleep(4 * time.Second)
		synctest.Wait()
		mu.Lock()
		if len(marks) != 0 {
			t.Errorf("marked %v before the bound", marks)
		}
		mu.Unlock()
		time.Sleep(2 * time.Second)
		synctest.Wait()
		calls := rt.set(false)
		mu.Lock()
		if len(marks) != 1 || !marks[0] {
			t.Errorf("marks after %s unreachable = %v, want [true]", time.Since(start), marks)
		}
		mu.Unlock()
		time.Sleep(10 * time.Second)
		if n := rt.set(true) - calls; n > 11 {
			t.Errorf("%d retries in 10s: backoff is not capped at 1s", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		mu.Lock()
		if len(marks) != 2 || marks[1] {
			t.Errorf("marks after recovery = %v, want [true false]", marks)
		}
		if len(applied) != 1 || applied[0] != "degraded@1.1" {
			t.Errorf("applied = %v, want one degraded@1.1", applied)
		}
		mu.Unlock()
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestWorseOfPeerAndLocal: a peer saying healthy does not hide what this control
// plane's own sidecars report; a peer may not speak for our own region or an unknown one.
func TestWorseOfPeerAndLocal(t *testing.T) {
	xl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer xl.Close()
	s, err := server.New(server.Options{Model: fleet(t), XDS: xl, Region: "us-east",
		Health: health.Config{MinRequests: 1, BadEvaluations: 1, RampStepPercent: 100}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	state := func() string {
		for _, r := range s.ConfigDump().Regions {
			if r.Name == "eu-west" {
				return r.State
			}
		}
		return ""
	}
	if err := s.ApplyPeerSummary(ctx, peering.Summary{Region: "eu-west", State: "down", WeightFactor: 0, Version: "1.1"}); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "down" {
		t.Fatalf("eu-west after peer says down = %s", got)
	}
	if err := s.ApplyPeerSummary(ctx, peering.Summary{Region: "eu-west", State: "healthy", WeightFactor: 100, Version: "1.2"}); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "healthy" {
		t.Fatalf("eu-west after peer says healthy = %s", got)
	}
	now := time.Now()
	if err := s.RecordReport(now, server.Report{Reporter: "sc", RegionOutcomes: map[string]server.RegionOutcome{"eu-west": {Success: 1, Failure: 9}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Evaluate(ctx, now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := state(); got != "degraded" && got != "down" {
		t.Fatalf("eu-west with local evidence of failure, peer healthy = %s", got)
	}
	// A peer's operator override counts as its state; this control plane's own override
	// of the region still wins.
	if err := s.ApplyPeerSummary(ctx, peering.Summary{Region: "us-west", State: "healthy", Override: "fenced", WeightFactor: 100, Version: "2.1"}); err != nil {
		t.Fatal(err)
	}
	usWest := func() string {
		for _, r := range s.ConfigDump().Regions {
			if r.Name == "us-west" {
				return r.State
			}
		}
		return ""
	}
	if got := usWest(); got != "fenced" {
		t.Fatalf("us-west after its control plane's operator fenced it = %s", got)
	}
	if err := s.SetRegionState(ctx, "us-west", affinity.Draining); err != nil {
		t.Fatal(err)
	}
	if got := usWest(); got != "draining" {
		t.Fatalf("us-west with a local override (draining) and a peer's (fenced) = %s, want the local one", got)
	}
	if err := s.SetRegionState(ctx, "us-east", affinity.Draining); err != nil {
		t.Fatal(err)
	}
	if own, _, err := s.OwnSummary(); err != nil || own.Override != "draining" {
		t.Fatalf("OwnSummary after draining the own region = %+v, %v; want override draining", own, err)
	}
	for _, bad := range []peering.Summary{
		{Region: "us-west", State: "healthy", Override: "degraded", Version: "9"},
		{Region: "us-west", State: "healthy", Version: "9", Endpoints: []peering.Endpoint{{Service: "where", Address: "0.0.0.0:80"}}},
		{Region: "us-west", State: "healthy", Version: "9", Endpoints: []peering.Endpoint{{Address: "10.0.0.1:80"}}},
		{Region: "us-west", State: "healthy", Version: "9", Endpoints: []peering.Endpoint{{Service: "where", Address: "10.0.0.1"}}},
		{Region: "us-west", State: "healthy", Version: "9", Endpoints: []peering.Endpoint{{Service: "where", Address: "10.0.0.1:80", Zone: "Zone A"}}},
		{Region: "us-west", State: "healthy", Override: "sideways", Version: "9"},
		{Region: "us-east", State: "down", Version: "9"},
		{Region: "mars", State: "down", Version: "9"},
		{Region: "us-west", State: "fenced", Version: "9"},
		{Region: "us-west", State: "down", WeightFactor: 101, Version: "9"},
	} {
		if err := s.ApplyPeerSummary(ctx, bad); err == nil {
			t.Errorf("ApplyPeerSummary(%+v) accepted", bad)
		}
	}
	own, _, err := s.OwnSummary()
	if err != nil || own.Region != "us-east" || own.State != "healthy" || own.Override != "draining" || own.Version == "" {
		t.Fatalf("OwnSummary = %+v, %v", own, err)
	}
}
