package consistency

import (
	"strings"
	"testing"
	"time"
)

func TestReplicaLagRoundTrip(t *testing.T) {
	l := ReplicaLag{"us-east": 1840 * time.Millisecond, "eu-west": 12 * time.Millisecond, "us-west": 48 * time.Hour}
	s := l.String()
	if s != "eu-west=12,us-east=1840,us-west=86400000" {
		t.Fatalf("String() = %q", s)
	}
	back, err := ParseReplicaLag(s)
	if err != nil {
		t.Fatal(err)
	}
	if back["us-east"] != 1840*time.Millisecond || back["us-west"] != MaxReplicaLag || len(back) != 3 {
		t.Fatalf("ParseReplicaLag = %v", back)
	}
	if empty, err := ParseReplicaLag(" "); err != nil || len(empty) != 0 {
		t.Fatalf("empty: %v %v", empty, err)
	}
	for _, bad := range []string{"us-east", "=5", "us-east=-1", "us-east=1.5", "us-east=1e3", "us-east=86400001", "a=1,a=2"} {
		if _, err := ParseReplicaLag(bad); err == nil || !strings.Contains(err.Error(), "replica lag") {
			t.Errorf("ParseReplicaLag(%q) = %v, want an error naming it", bad, err)
		}
	}
}
