package consistency

import "testing"

func TestParseVersion(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{in: "us-east:1:42", want: Version{Origin: "us-east", Position: Position{Epoch: 1, Seq: 42}}},
		{in: " eu-west:3:0 ", want: Version{Origin: "eu-west", Position: Position{Epoch: 3}}},
		{in: "us-east", wantErr: true},
		{in: ":1:2", wantErr: true},
		{in: "us-east:x:2", wantErr: true},
		{in: "us-east:1:-2", wantErr: true},
		{in: "us-east:1", wantErr: true},
	} {
		got, err := ParseVersion(tc.in)
		if (err != nil) != tc.wantErr {
			t.Fatalf("ParseVersion(%q) error = %v, wantErr %v", tc.in, err, tc.wantErr)
		}
		if err == nil && got != tc.want {
			t.Fatalf("ParseVersion(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
		if err == nil && got.String() != tc.want.String() {
			t.Fatalf("round trip of %q = %q", tc.in, got.String())
		}
	}
}

func TestWatermarkRoundTripAndCovers(t *testing.T) {
	w, err := ParseWatermark("us-east:1:42,eu-west:2:7")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := w.String(), "eu-west:2:7,us-east:1:42"; got != want {
		t.Fatalf("String() = %q, want %q", got, want)
	}
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"us-east:1:42", true},
		{"us-east:1:41", true},
		{"us-east:1:43", false},
		{"us-east:0:1", false}, // older epoch: only the origin can answer
		{"us-east:2:1", false}, // newer epoch not applied yet
		{"ap-northeast:1:1", false},
	} {
		v, _ := ParseVersion(tc.v)
		if got := w.Covers(v); got != tc.want {
			t.Errorf("Covers(%s) = %v, want %v", tc.v, got, tc.want)
		}
	}
	if _, err := ParseWatermark("us-east:1:1,us-east:1:2"); err == nil {
		t.Fatal("duplicate origin accepted")
	}
	if w, err := ParseWatermark(""); err != nil || len(w) != 0 {
		t.Fatalf("empty watermark = %v, %v", w, err)
	}
}
