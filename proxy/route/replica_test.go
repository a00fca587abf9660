package route

import (
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
)

func wm(t *testing.T, s string) consistency.Watermark {
	t.Helper()
	w, err := consistency.ParseWatermark(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestReplicaObserveOnlyMovesForward(t *testing.T) {
	r := newReplica("eu-west")
	changed := r.Changed()
	now := time.Now()
	r.Observe(wm(t, "eu-west:1:5,us-east:1:7"), now)
	select {
	case <-changed:
	default:
		t.Fatal("an advance did not signal Changed")
	}
	r.Observe(wm(t, "eu-west:1:3,us-east:1:9"), now) // an older report of eu-west: kept at 5
	if got := r.Watermark().String(); got != "eu-west:1:5,us-east:1:9" {
		t.Fatalf("watermark = %s", got)
	}
	r.Observe(wm(t, "us-east:2:1"), now) // a new epoch replaces the old
	if got := r.Watermark().String(); got != "eu-west:1:5,us-east:2:1" {
		t.Fatalf("after a new epoch: %s", got)
	}
	quiet := r.Changed()
	r.Observe(wm(t, "eu-west:1:5"), now) // nothing new: no signal
	select {
	case <-quiet:
		t.Fatal("Changed fired without an advance")
	default:
	}
}

func TestReplicaLagOf(t *testing.T) {
	origin := newReplica("us-east")
	t0 := time.Unix(1000, 0)
	origin.Observe(wm(t, "us-east:1:10"), t0)
	origin.Observe(wm(t, "us-east:1:20"), t0.Add(2*time.Second))
	now := t0.Add(5 * time.Second)
	for _, tc := range []struct {
		behind string
		want   time.Duration
	}{
		{"us-east:1:20", 0},               // caught up
		{"us-east:1:15", 3 * time.Second}, // lacks seq 20, first seen at t0+2s
		{"us-east:1:5", 5 * time.Second},  // lacks seq 10, first seen at t0
		{"", 5 * time.Second},             // has nothing of us-east
		{"us-east:0:99", 5 * time.Second}, // an older epoch counts for nothing
	} {
		if got := origin.LagOf(wm(t, tc.behind), now); got != tc.want {
			t.Errorf("LagOf(%q) = %v, want %v", tc.behind, got, tc.want)
		}
	}
}

func TestReplicaObserveTextSkipsARepeat(t *testing.T) {
	r := newReplica("eu-west")
	now := time.Now()
	if err := r.ObserveText("eu-west:1:5", now); err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() { r.ObserveText("eu-west:1:5", now) }); n != 0 {
		t.Fatalf("the same watermark text again costs %v allocations, want 0", n)
	}
	if err := r.ObserveText("eu-west:1:7", now); err != nil || r.Watermark().String() != "eu-west:1:7" {
		t.Fatalf("a new text: %v, watermark %s", err, r.Watermark())
	}
	if err := r.ObserveText("eu-west:x", now); err == nil {
		t.Fatal("a malformed watermark was accepted")
	}
}

// A replica's own lag report, aged by the time since it was observed, is its staleness;
// an origin it does not report is unknown, and an older report never replaces a newer.
func TestReplicaStalenessFromItsLagReport(t *testing.T) {
	r := &Replica{Region: "us-west"}
	r.w.Store(&consistency.Watermark{})
	t0 := time.Unix(1000, 0)
	if _, reported, _ := r.Staleness("us-east", t0); reported {
		t.Fatal("a replica that never reported lag is reported")
	}
	if err := r.ObserveLagText("us-east=1800,eu-west=40", t0); err != nil {
		t.Fatal(err)
	}
	if lag, reported, known := r.Staleness("us-east", t0.Add(200*time.Millisecond)); !reported || !known || lag != 2*time.Second {
		t.Fatalf("staleness behind us-east 200ms after a report of 1800ms = %v (%v, %v), want 2s", lag, reported, known)
	}
	if _, reported, known := r.Staleness("ap-south", t0); !reported || known {
		t.Fatal("an origin the report does not list is known")
	}
	if err := r.ObserveLagText("us-east=5000", t0.Add(-time.Second)); err != nil {
		t.Fatal(err)
	}
	if lag, _, _ := r.Staleness("us-east", t0); lag != 1800*time.Millisecond {
		t.Fatalf("an older report replaced a newer one: %v", lag)
	}
	if err := r.ObserveLagText("us-east=soon", t0); err == nil {
		t.Fatal("a malformed report was taken")
	}
}
