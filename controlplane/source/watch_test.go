package source

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/model"
)

// writeAtomic replaces dir/name the way a careful tool (or a ConfigMap update) does.
func writeAtomic(t *testing.T, dir, name, text string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

const watchFleet = "apiVersion: geode.io/v1alpha1\nkind: Geode\nregions:\n  - {name: us-east, rtt: {eu-west: %RTT%}}\n  - {name: eu-west}\n" +
	"services:\n  - {name: a, endpoints: {us-east: [\"10.0.0.1:80\"]}}\n"

func fleetWithRTT(rtt string) string { return strings.Replace(watchFleet, "%RTT%", rtt, 1) }

// runWatcher runs w until the test ends; every wait in these tests is bounded.
func runWatcher(t *testing.T, w *Watcher) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return 5s after its context was cancelled")
		}
	})
}

func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		panic("unreachable")
	}
}

func expectNone[T any](t *testing.T, ch <-chan T, d time.Duration, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("unexpected %s: %v", what, v)
	case <-time.After(d):
	}
}

func TestWatcherAppliesValidChangesAndKeepsTheLastGoodModel(t *testing.T) {
	dir := t.TempDir()
	writeAtomic(t, dir, "geode.yaml", fleetWithRTT("80ms"))
	first, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	applied := make(chan *model.Model, 16)
	reported := make(chan error, 16)
	var current *model.Model // what the "server" serves
	runWatcher(t, &Watcher{
		Dir: dir, Current: first, Debounce: 50 * time.Millisecond,
		Apply: func(_ context.Context, m *model.Model) error {
			current = m
			applied <- m
			return nil
		},
		Report: func(err error) { reported <- err },
	})
	// The directory is unchanged since Load: nothing to apply.
	expectNone(t, applied, 300*time.Millisecond, "apply of an unchanged model")

	// A valid change is applied.
	writeAtomic(t, dir, "geode.yaml", fleetWithRTT("90ms"))
	m := waitFor(t, applied, "apply after a valid change")
	if d, _ := m.RTT("us-east", "eu-west"); d != 90*time.Millisecond {
		t.Fatalf("applied model has RTT %s, want 90ms", d)
	}
	good := m.Version()

	// An invalid one is reported, with file and field, and never applied.
	writeAtomic(t, dir, "geode.yaml", strings.Replace(fleetWithRTT("90ms"), "{name: eu-west}", "{name: eu-west, state: sleepy}", 1))
	err = waitFor(t, reported, "report of an invalid change")
	if want := filepath.Join(dir, "geode.yaml") + `: document 1: regions[1].state: "sleepy"`; !strings.Contains(err.Error(), want) {
		t.Fatalf("report %q, want it to contain %q", err, want)
	}
	expectNone(t, applied, 300*time.Millisecond, "apply of an invalid model")
	if current.Version() != good {
		t.Fatalf("current model %s, want the last good %s", current.Version(), good)
	}

	// A Kubernetes manifest that breaks the model is reported too.
	writeAtomic(t, dir, "svc.yaml", serviceYAML("b", "")+"---\n"+sliceYAML("b", "  - {addresses: [10.0.0.2], zone: nowhere-1a}\n"))
	err = waitFor(t, reported, "report of an invalid Service")
	if want := filepath.Join(dir, "svc.yaml") + ": document 2 (EndpointSlice default/b-x): endpoints[0].zone"; !strings.Contains(err.Error(), want) {
		t.Fatalf("report %q, want it to contain %q", err, want)
	}
	expectNone(t, applied, 300*time.Millisecond, "apply of an invalid model")

	// The fix is applied.
	if err := os.Remove(filepath.Join(dir, "svc.yaml")); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, dir, "geode.yaml", fleetWithRTT("100ms"))
	m = waitFor(t, applied, "apply after the fix")
	if d, _ := m.RTT("us-east", "eu-west"); d != 100*time.Millisecond || m.Version() == good {
		t.Fatalf("applied model RTT %s version %s", d, m.Version())
	}
}

func TestWatcherReportsApplyErrorsAndRetries(t *testing.T) {
	dir := t.TempDir()
	writeAtomic(t, dir, "geode.yaml", fleetWithRTT("80ms"))
	applied := make(chan *model.Model, 16)
	reported := make(chan error, 16)
	fail := make(chan bool, 1)
	fail <- true
	runWatcher(t, &Watcher{
		Dir: dir, Debounce: 20 * time.Millisecond,
		Apply: func(_ context.Context, m *model.Model) error {
			select {
			case <-fail:
				return errors.New("translation failed")
			default:
			}
			applied <- m
			return nil
		},
		Report: func(err error) { reported <- err },
	})
	// No Current: the first load is applied (and fails here).
	if err := waitFor(t, reported, "report of the failed apply"); !strings.Contains(err.Error(), "not applied, the last good model stays: translation failed") {
		t.Fatalf("report %q", err)
	}
	// The same model again, after a touch, is retried: the failed one was never applied.
	writeAtomic(t, dir, "geode.yaml", fleetWithRTT("80ms"))
	waitFor(t, applied, "retried apply")
}

func TestWatcherSurvivesTheDirectoryGoingAway(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "manifests")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, dir, "geode.yaml", fleetWithRTT("80ms"))
	applied := make(chan *model.Model, 16)
	reported := make(chan error, 16)
	runWatcher(t, &Watcher{
		Dir: dir, Debounce: 20 * time.Millisecond,
		Apply:  func(_ context.Context, m *model.Model) error { applied <- m; return nil },
		Report: func(err error) { reported <- err },
	})
	waitFor(t, applied, "initial apply")
	if err := os.Rename(dir, dir+".old"); err != nil {
		t.Fatal(err)
	}
	if err := waitFor(t, reported, "report of the lost directory"); !strings.Contains(err.Error(), "removed or renamed") {
		t.Fatalf("report %q", err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	writeAtomic(t, dir, "geode.yaml", fleetWithRTT("70ms"))
	m := waitFor(t, applied, "apply once the directory is back")
	if d, _ := m.RTT("us-east", "eu-west"); d != 70*time.Millisecond {
		t.Fatalf("RTT %s", d)
	}
}
