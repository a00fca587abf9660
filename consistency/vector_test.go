package consistency

import (
	"fmt"
	"testing"
)

func ver(origin string, epoch, seq uint64) Version {
	return Version{Origin: origin, Position: Position{Epoch: epoch, Seq: seq}}
}

func TestVectorMerge(t *testing.T) {
	var v VersionVector
	v = v.Merge(ver("us-east", 1, 5))
	v = v.Merge(ver("eu-west", 1, 9))
	v = v.Merge(ver("ap-northeast", 2, 1))
	if got, want := v.String(), "ap-northeast:2:1,eu-west:1:9,us-east:1:5"; got != want {
		t.Fatalf("sorted vector = %s, want %s", got, want)
	}
	for _, tc := range []struct {
		name string
		in   Version
		want string // us-east entry afterwards
	}{
		{"a higher seq wins", ver("us-east", 1, 7), "us-east:1:7"},
		{"a lower seq loses", ver("us-east", 1, 3), "us-east:1:5"},
		{"a newer epoch replaces a higher seq", ver("us-east", 2, 1), "us-east:2:1"},
		{"an older epoch never wins", ver("us-east", 0, 99), "us-east:1:5"},
		{"equal is a no-op", ver("us-east", 1, 5), "us-east:1:5"},
	} {
		before := v.String()
		got := v.Merge(tc.in)
		if v.String() != before {
			t.Fatalf("%s: Merge modified its receiver", tc.name)
		}
		p, ok := got.Get("us-east")
		if s := (Version{Origin: "us-east", Position: p}).String(); !ok || s != tc.want {
			t.Errorf("%s: us-east = %s (%v), want %s", tc.name, s, ok, tc.want)
		}
		if len(got) != 3 {
			t.Errorf("%s: %d entries", tc.name, len(got))
		}
	}
	if got := v.Merge(Version{}); len(got) != 3 {
		t.Errorf("empty origin merged: %s", got)
	}
	if _, ok := v.Get("sa-east"); ok {
		t.Error("Get of an absent origin succeeded")
	}
}

func TestVectorMergeVectorAndLimit(t *testing.T) {
	a := VersionVector{ver("eu-west", 1, 9), ver("us-east", 1, 5)}
	b := VersionVector{ver("ap-northeast", 1, 1), ver("eu-west", 1, 3), ver("us-east", 2, 0)}
	if got, want := a.MergeVector(b).String(), "ap-northeast:1:1,eu-west:1:9,us-east:2:0"; got != want {
		t.Fatalf("MergeVector = %s, want %s", got, want)
	}
	if got := a.MergeVector(nil); &got[0] != &a[0] {
		t.Error("merging nothing copied the vector")
	}
	var full VersionVector
	for i := range MaxVectorEntries + 3 {
		full = full.Merge(ver(fmt.Sprintf("r%02d", i), 1, 1))
	}
	if len(full) != MaxVectorEntries || !full.valid() {
		t.Fatalf("vector grew to %d entries (valid %v)", len(full), full.valid())
	}
	if got := full.Merge(ver("r00", 1, 2)); len(got) != MaxVectorEntries || got[0].Seq != 2 {
		t.Fatalf("a full vector does not advance an existing origin: %s", got)
	}
}

func TestVectorSatisfiedBy(t *testing.T) {
	w := Watermark{"us-east": {Epoch: 2, Seq: 10}, "eu-west": {Epoch: 1, Seq: 4}}
	for _, tc := range []struct {
		v    VersionVector
		want bool
	}{
		{nil, true},
		{VersionVector{ver("us-east", 2, 10)}, true},
		{VersionVector{ver("eu-west", 1, 4), ver("us-east", 2, 9)}, true},
		{VersionVector{ver("eu-west", 1, 5), ver("us-east", 2, 9)}, false},
		{VersionVector{ver("us-east", 1, 3)}, false}, // older epoch: may have been lost in a failover
		{VersionVector{ver("us-east", 3, 0)}, false}, // newer epoch not applied yet
		{VersionVector{ver("sa-east", 1, 0)}, false},
	} {
		if got := tc.v.SatisfiedBy(w); got != tc.want {
			t.Errorf("%s.SatisfiedBy(%s) = %v, want %v", tc.v, w, got, tc.want)
		}
	}
}

func TestSatisfiedByDoesNotAllocate(t *testing.T) {
	var v VersionVector
	w := Watermark{}
	for i := range MaxVectorEntries {
		o := fmt.Sprintf("region-%02d", i)
		v = v.Merge(ver(o, 1, uint64(i)))
		w[o] = Position{Epoch: 1, Seq: 100}
	}
	ok := true
	if allocs := testing.AllocsPerRun(1000, func() { ok = ok && v.SatisfiedBy(w) }); allocs != 0 {
		t.Fatalf("SatisfiedBy allocates %.1f times per run", allocs)
	}
	if !ok {
		t.Fatal("not satisfied")
	}
}

func BenchmarkSatisfiedBy(b *testing.B) {
	var v VersionVector
	w := Watermark{}
	for i := range 6 {
		o := fmt.Sprintf("region-%02d", i)
		v = v.Merge(ver(o, 1, uint64(i)))
		w[o] = Position{Epoch: 1, Seq: 100}
	}
	b.ReportAllocs()
	for b.Loop() {
		v.SatisfiedBy(w)
	}
}
