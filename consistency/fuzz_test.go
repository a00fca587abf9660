package consistency

import "testing"

func FuzzParseWatermark(f *testing.F) {
	for _, s := range []string{"", "us-east:1:42", "us-east:1:42,eu-west:2:7", "a:0:0,a:0:1", ":::", "x:18446744073709551615:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		w, err := ParseWatermark(s)
		if err != nil {
			return
		}
		// What parses must round-trip to the same watermark.
		again, err := ParseWatermark(w.String())
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", w.String(), s, err)
		}
		if len(again) != len(w) {
			t.Fatalf("round trip of %q changed it: %v vs %v", s, w, again)
		}
		for o, p := range w {
			if again[o] != p {
				t.Fatalf("round trip of %q changed %s", s, o)
			}
		}
	})
}

func FuzzParseReplicaLag(f *testing.F) {
	for _, s := range []string{"", "us-east=1840", "eu-west=12,us-east=1840", "a=1,a=2", "=", "x=86400000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseReplicaLag(s)
		if err != nil {
			return
		}
		// What parses must round-trip to the same report.
		again, err := ParseReplicaLag(l.String())
		if err != nil {
			t.Fatalf("re-parsing %q (from %q): %v", l.String(), s, err)
		}
		if len(again) != len(l) {
			t.Fatalf("round trip of %q changed it: %v vs %v", s, l, again)
		}
		for o, d := range l {
			if again[o] != d || d < 0 || d > MaxReplicaLag {
				t.Fatalf("round trip of %q changed %s: %v vs %v", s, o, d, again[o])
			}
		}
	})
}
