package consistency

import (
	"bytes"
	"encoding/base64"
	"reflect"
	"testing"
	"time"
)

// fuzzSeeds returns valid tokens signed by testRing and some mutations of them.
func fuzzSeeds(t testing.TB, kr *KeyRing) (valid []string, seeds []string) {
	full := fullToken()
	full.Expires = base.AddDate(0, 0, 30)
	minimal := Token{SessionID: "s", Expires: base.AddDate(0, 0, 30)}
	for _, tok := range []Token{full, minimal} {
		for _, now := range []time.Time{base, base.AddDate(0, 0, 10)} { // k1, then k2
			s, err := kr.Sign(tok, now)
			if err != nil {
				t.Fatal(err)
			}
			valid = append(valid, s)
		}
	}
	seeds = append(seeds, valid...)
	for _, s := range valid {
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		for _, i := range []int{0, 1, 3, len(raw) / 2, len(raw) - macLen - 1, len(raw) - 1} {
			b := bytes.Clone(raw)
			b[i] ^= 0x20
			seeds = append(seeds, base64.RawURLEncoding.EncodeToString(b))
		}
		seeds = append(seeds, s[:len(s)-1], s[:len(s)/2], s+"A", s[:10]+"\n"+s[10:], base64.RawURLEncoding.EncodeToString(raw[:len(raw)-macLen]))
	}
	return valid, append(seeds, "", "A", "\n", "AQ", "AQAA", "!!!!", "AQEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
}

// FuzzVerify: Verify never panics and accepts nothing but the tokens the ring signed
// (every token has one encoding, so an accepted string must be one of them).
func FuzzVerify(f *testing.F) {
	kr := testRing(f)
	valid, seeds := fuzzSeeds(f, kr)
	for _, s := range seeds {
		f.Add(s)
	}
	signed := make(map[string]bool, len(valid))
	for _, s := range valid {
		signed[s] = true
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, err := kr.Verify(s, base)
		if err != nil {
			if Cause(err) == "other" {
				t.Fatalf("Verify(%q): error without a cause: %v", s, err)
			}
			return
		}
		if !signed[s] {
			t.Fatalf("Verify accepted %q, which the ring did not sign (%+v)", s, tok)
		}
	})
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to the same
// payload bytes (canonical form) and the same token.
func FuzzDecode(f *testing.F) {
	_, seeds := fuzzSeeds(f, testRing(f))
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tok, keyID, err := Decode(s)
		if err != nil {
			if Cause(err) != "malformed" && Cause(err) != "too_large" {
				t.Fatalf("Decode(%q): unexpected error class: %v", s, err)
			}
			return
		}
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		again, err := encodeToken(&tok, keyID, secret(3))
		if err != nil {
			t.Fatalf("Decode accepted %q but it does not re-encode: %v (%+v)", s, err, tok)
		}
		if !bytes.Equal(again[:len(again)-macLen], raw[:len(raw)-macLen]) {
			t.Fatalf("re-encoding %q changed the payload:\n%x\n%x", s, raw, again)
		}
		tok2, keyID2, err := Decode(base64.RawURLEncoding.EncodeToString(again))
		if err != nil || keyID2 != keyID || !reflect.DeepEqual(tok2, tok) {
			t.Fatalf("round trip of %q: %v", s, err)
		}
	})
}
