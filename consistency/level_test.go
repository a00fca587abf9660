package consistency

import (
	"strings"
	"testing"
	"time"
)

func TestParseLevel(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Level
		str     string // String() of the result; "" = same as in
		wantErr string
	}{
		{in: "eventual", want: Level{Kind: Eventual}},
		{in: "session", want: Level{Kind: Session}},
		{in: "strong", want: Level{Kind: Strong}},
		{in: " session ", want: Level{Kind: Session}, str: "session"},
		{in: "bounded-staleness=250ms", want: Level{Kind: BoundedStaleness, Staleness: 250 * time.Millisecond}},
		{in: "bounded-staleness=1m", want: Level{Kind: BoundedStaleness, Staleness: time.Minute}, str: "bounded-staleness=1m0s"},
		{in: "", wantErr: `consistency level "": want one of eventual, session, bounded-staleness=<duration>, strong`},
		{in: "Strong", wantErr: `"Strong": want one of`},
		{in: "linearizable", wantErr: `"linearizable": want one of eventual, session`},
		{in: "bounded-staleness", wantErr: "needs a duration"},
		{in: "bounded-staleness=", wantErr: "needs a duration"},
		{in: "bounded-staleness=fast", wantErr: `bad staleness duration "fast"`},
		{in: "bounded-staleness=0s", wantErr: "must be positive"},
		{in: "bounded-staleness=-1s", wantErr: "must be positive"},
		{in: "session=1s", wantErr: "want one of"},
	} {
		got, err := ParseLevel(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseLevel(%q) error = %v, want it to contain %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("ParseLevel(%q) = %+v, %v; want %+v", tc.in, got, err, tc.want)
			continue
		}
		want := tc.str
		if want == "" {
			want = tc.in
		}
		if got.String() != want {
			t.Errorf("ParseLevel(%q).String() = %q, want %q", tc.in, got.String(), want)
		}
		if again, err := ParseLevel(got.String()); err != nil || again != got {
			t.Errorf("round trip of %q: %+v, %v", tc.in, again, err)
		}
	}
}

func TestLevelText(t *testing.T) {
	var l Level
	if err := l.UnmarshalText([]byte("bounded-staleness=2s")); err != nil || l != (Level{Kind: BoundedStaleness, Staleness: 2 * time.Second}) {
		t.Fatalf("UnmarshalText = %+v, %v", l, err)
	}
	if b, err := l.MarshalText(); err != nil || string(b) != "bounded-staleness=2s" {
		t.Fatalf("MarshalText = %q, %v", b, err)
	}
	for _, bad := range []Level{{Kind: BoundedStaleness}, {Kind: Strong, Staleness: time.Second}, {Kind: 9}} {
		if _, err := bad.MarshalText(); err == nil {
			t.Errorf("MarshalText(%+v) accepted an invalid level", bad)
		}
	}
	if got := LevelKind(9).String(); got != "LevelKind(9)" {
		t.Errorf("LevelKind(9).String() = %q", got)
	}
}
