package consistency

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A marshaled ring parses back to the same ring: tokens signed by one verify with the
// other, the fingerprint is the same, and the rendering is stable.
func TestKeyRingMarshalRoundTrip(t *testing.T) {
	kr := testRing(t)
	b, err := kr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseKeyRing(b)
	if err != nil {
		t.Fatalf("ParseKeyRing(Marshal()): %v\n%s", err, b)
	}
	if kr.Fingerprint() != back.Fingerprint() {
		t.Fatalf("fingerprint changed across a round trip: %s vs %s", kr.Fingerprint(), back.Fingerprint())
	}
	again, _ := back.Marshal()
	if !bytes.Equal(b, again) {
		t.Fatalf("rendering not stable:\n%s\n---\n%s", b, again)
	}
	now := base
	tok, err := kr.Sign(Token{SessionID: "s", Expires: now.Add(time.Hour)}, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := back.Verify(tok, now); err != nil {
		t.Fatalf("token of the original ring rejected by the parsed one: %v", err)
	}
	for _, info := range kr.Info() {
		if !strings.Contains(string(b), info.ID) {
			t.Fatalf("key %q missing from the rendering", info.ID)
		}
	}
}

// The fingerprint changes when any key's secret, id or validity changes.
func TestKeyRingFingerprintChangesWithTheKeys(t *testing.T) {
	ring := func(id string, s byte, exp time.Duration) string {
		kr, err := NewKeyRing([]Key{{ID: id, Secret: secret(s), SignFrom: base, Expires: base.Add(exp)}})
		if err != nil {
			t.Fatal(err)
		}
		return kr.Fingerprint()
	}
	a := ring("k1", 1, time.Hour)
	for name, other := range map[string]string{
		"secret": ring("k1", 2, time.Hour), "id": ring("k2", 1, time.Hour), "expires": ring("k1", 1, 2*time.Hour),
	} {
		if other == a {
			t.Errorf("fingerprint unchanged when the %s changes", name)
		}
	}
	if ring("k1", 1, time.Hour) != a {
		t.Error("fingerprint of an equal ring differs")
	}
}
