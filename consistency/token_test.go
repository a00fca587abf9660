package consistency

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"
)

var base = time.Date(2026, 11, 15, 12, 0, 0, 0, time.UTC)

func secret(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// testRing has k1 (signing now) and k2 (distributed, signing from base+10d).
func testRing(t testing.TB) *KeyRing {
	kr, err := NewKeyRing([]Key{
		{ID: "k1", Secret: secret(1), SignFrom: base.AddDate(0, 0, -30), Expires: base.AddDate(0, 0, 60)},
		{ID: "k2", Secret: secret(2), SignFrom: base.AddDate(0, 0, 10), Expires: base.AddDate(0, 0, 120)},
	})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func fullToken() Token {
	return Token{
		SessionID:   "s-123",
		Region:      "us-east",
		StickyUntil: base.Add(30 * time.Minute),
		Issued:      base,
		Expires:     base.Add(24 * time.Hour),
		Vector:      VersionVector{ver("eu-west", 1, 17), ver("us-east", 3, 42)},
		Pins: []Pin{
			{Service: "billing", Region: "ap-northeast", Until: base.Add(2 * time.Second)},
			{Service: "profiles", Region: "eu-west", Until: base.Add(5 * time.Second)},
		},
	}
}

func TestTokenRoundTrip(t *testing.T) {
	kr := testRing(t)
	in := fullToken()
	s, err := kr.Sign(in, base)
	if err != nil {
		t.Fatal(err)
	}
	got, err := kr.Verify(s, base.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, in) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, in)
	}
	dec, keyID, err := Decode(s)
	if err != nil || keyID != "k1" || !reflect.DeepEqual(dec, in) {
		t.Fatalf("Decode = %+v, %q, %v", dec, keyID, err)
	}
	// The minimal token: no stickiness, vector or pins; Sign fills in Issued.
	min := Token{SessionID: NewSessionID(), Expires: base.Add(time.Minute)}
	s, err = kr.Sign(min, base)
	if err != nil {
		t.Fatal(err)
	}
	min.Issued = base
	if got, err := kr.Verify(s, base); err != nil || !reflect.DeepEqual(got, min) {
		t.Fatalf("minimal token: %+v, %v", got, err)
	}
}

func TestTokenTimePrecision(t *testing.T) {
	kr := testRing(t)
	in := Token{SessionID: "s", Region: "us-east", Issued: base.Add(700 * time.Millisecond),
		StickyUntil: base.Add(90*time.Second + 500*time.Millisecond), Expires: base.Add(time.Hour + 999*time.Millisecond),
		Pins: []Pin{{Service: "svc", Region: "us-east", Until: base.Add(time.Second + time.Millisecond)}}}
	s, err := kr.Sign(in, base)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want time.Time
	}{
		{"issued rounds down", got.Issued, base},
		{"sticky until rounds down", got.StickyUntil, base.Add(90 * time.Second)},
		{"expires rounds down", got.Expires, base.Add(time.Hour)},
		{"pin until rounds up", got.Pins[0].Until, base.Add(2 * time.Second)},
	} {
		if !c.got.Equal(c.want) {
			t.Errorf("%s: %s, want %s", c.name, c.got, c.want)
		}
	}
}

func TestSignRotation(t *testing.T) {
	kr := testRing(t)
	for _, tc := range []struct {
		now     time.Time
		wantKey string
	}{
		{base, "k1"},
		{base.AddDate(0, 0, 10).Add(-time.Second), "k1"},
		{base.AddDate(0, 0, 10), "k2"}, // the newer key takes over at its SignFrom
		{base.AddDate(0, 0, 100), "k2"},
		{base.AddDate(0, 0, -31), ""}, // before any key
		{base.AddDate(0, 0, 120), ""}, // every key expired
	} {
		id, ok := kr.SigningKeyID(tc.now)
		if id != tc.wantKey || ok != (tc.wantKey != "") {
			t.Errorf("SigningKeyID(%s) = %q, %v; want %q", tc.now, id, ok, tc.wantKey)
		}
		s, err := kr.Sign(Token{SessionID: "s", Expires: tc.now.Add(time.Hour)}, tc.now)
		if tc.wantKey == "" {
			if err == nil {
				t.Errorf("Sign at %s succeeded with no valid key", tc.now)
			}
			continue
		}
		if _, keyID, err := Decode(s); err != nil || keyID != tc.wantKey {
			t.Errorf("Sign at %s used %q (%v), want %q", tc.now, keyID, err, tc.wantKey)
		}
	}
}

func TestVerifyRejections(t *testing.T) {
	kr := testRing(t)
	tok := fullToken()
	valid, err := kr.Sign(tok, base)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := base64.RawURLEncoding.DecodeString(valid)
	reencode := func(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }
	flip := func(i int) string {
		b := bytes.Clone(raw)
		b[i] ^= 0x01
		return reencode(b)
	}
	signWith := func(keys []Key, t Token, now time.Time) string {
		r, err := NewKeyRing(keys)
		if err != nil {
			panic(err)
		}
		s, err := r.Sign(t, now)
		if err != nil {
			panic(err)
		}
		return s
	}
	// A payload that is well signed but not a valid token (trailing byte after the pins).
	body := append(bytes.Clone(raw[:len(raw)-macLen]), 0x00)
	signedGarbage := reencode(append(body, mac(secret(1), body)...))

	// A token signed with the next key (k2) while it is already signing, then
	// verified before k2's SignFrom.
	nextKeyToken := signWith([]Key{{ID: "k2", Secret: secret(2), SignFrom: base, Expires: base.AddDate(1, 0, 0)}}, tok, base)

	for _, tc := range []struct {
		name  string
		s     string
		now   time.Time
		want  error // nil = accepted
		cause string
	}{
		{"valid", valid, base, nil, "ok"},
		{"next key accepted before its SignFrom", nextKeyToken, base, nil, "ok"},
		{"forged: one payload byte flipped", flip(len(raw) - macLen - 1), base, ErrBadSignature, "forged"},
		{"forged: session id byte flipped", flip(5), base, ErrBadSignature, "forged"},
		{"forged: MAC byte flipped", flip(len(raw) - 1), base, ErrBadSignature, "forged"},
		{"token of another ring, same key id", signWith([]Key{{ID: "k1", Secret: secret(9), SignFrom: base, Expires: base.AddDate(1, 0, 0)}}, tok, base), base, ErrBadSignature, "forged"},
		{"unknown key", signWith([]Key{{ID: "other", Secret: secret(1), SignFrom: base, Expires: base.AddDate(1, 0, 0)}}, tok, base), base, ErrUnknownKey, "unknown_key"},
		{"expired token", valid, tok.Expires, ErrExpired, "expired"},
		{"retired key", signWith([]Key{{ID: "k1", Secret: secret(1), SignFrom: base, Expires: base.AddDate(1, 0, 0)}},
			Token{SessionID: "s", Expires: base.AddDate(0, 3, 0)}, base), base.AddDate(0, 0, 60), ErrKeyRetired, "retired_key"},
		{"oversized", strings.Repeat("A", MaxTokenLen+1), base, ErrTooLarge, "too_large"},
		{"empty", "", base, ErrMalformed, "malformed"},
		{"malformed base64", "!!not-base64!!", base, ErrMalformed, "malformed"},
		{"padded base64", valid + "=", base, ErrMalformed, "malformed"},
		{"line break inside", valid[:10] + "\r\n" + valid[10:], base, ErrMalformed, "malformed"},
		{"one character", "A", base, ErrMalformed, "malformed"},
		{"only a line break", "\n", base, ErrMalformed, "malformed"},
		{"unknown version", reencode(append([]byte{2}, raw[1:]...)), base, ErrMalformed, "malformed"},
		{"truncated below the MAC", reencode(raw[:20]), base, ErrMalformed, "malformed"},
		{"truncated payload", reencode(append(bytes.Clone(raw[:10]), raw[len(raw)-macLen:]...)), base, ErrBadSignature, "forged"},
		{"signed but malformed payload", signedGarbage, base, ErrMalformed, "malformed"},
	} {
		got, err := kr.Verify(tc.s, tc.now)
		switch {
		case tc.want == nil && err != nil:
			t.Errorf("%s: rejected: %v", tc.name, err)
		case tc.want == nil && !reflect.DeepEqual(got, tok):
			t.Errorf("%s: token changed: %+v", tc.name, got)
		case tc.want != nil && !errors.Is(err, tc.want):
			t.Errorf("%s: error = %v, want %v", tc.name, err, tc.want)
		case tc.want != nil && !reflect.DeepEqual(got, Token{}):
			t.Errorf("%s: rejected but returned %+v", tc.name, got)
		}
		if c := Cause(err); c != tc.cause {
			t.Errorf("%s: Cause = %q, want %q", tc.name, c, tc.cause)
		}
	}
	// Decode (unverified) still rejects what is not well formed.
	for _, s := range []string{"", "!!", reencode(raw[:20]), reencode(append(bytes.Clone(raw[:10]), raw[len(raw)-macLen:]...)), signedGarbage} {
		if _, _, err := Decode(s); !errors.Is(err, ErrMalformed) {
			t.Errorf("Decode(%.20q) error = %v, want malformed", s, err)
		}
	}
	if Cause(errors.New("x")) != "other" {
		t.Error("Cause of an unrelated error")
	}
}

func TestSignRefuses(t *testing.T) {
	kr := testRing(t)
	long := strings.Repeat("r", MaxRegionNameLen+1)
	var manyRegions VersionVector
	for i := range MaxVectorEntries {
		manyRegions = manyRegions.Merge(ver(fmt.Sprintf("r%02d", i), 1, 1))
	}
	ok := func(f func(*Token)) Token {
		t := Token{SessionID: "s", Expires: base.Add(time.Hour)}
		f(&t)
		return t
	}
	for _, tc := range []struct {
		name    string
		tok     Token
		wantErr string
		tooBig  bool
	}{
		{"no session id", ok(func(t *Token) { t.SessionID = "" }), "session id is empty", false},
		{"no expiry", ok(func(t *Token) { t.Expires = time.Time{} }), "expired", false},
		{"already expired", ok(func(t *Token) { t.Expires = base }), "expired", false},
		{"long session id", ok(func(t *Token) { t.SessionID = strings.Repeat("s", MaxSessionIDLen+1) }), "session id", true},
		{"session id with a space", ok(func(t *Token) { t.SessionID = "a b" }), "printable", false},
		{"long region", ok(func(t *Token) { t.Region = long }), "sticky region", true},
		{"sticky until without region", ok(func(t *Token) { t.StickyUntil = base.Add(time.Hour) }), "without a sticky region", false},
		{"unsorted vector", ok(func(t *Token) { t.Vector = VersionVector{ver("b", 1, 1), ver("a", 1, 1)} }), "sorted", false},
		{"17 vector entries", ok(func(t *Token) { t.Vector = append(manyRegions[:16:16], ver("zz", 1, 1)) }), "17 vector entries", true},
		{"17 regions", ok(func(t *Token) { t.Vector = manyRegions; t.Region = "zz" }), "more than 16 distinct regions", true},
		{"epoch too large", ok(func(t *Token) { t.Vector = VersionVector{ver("a", 1<<32, 1)} }), "epoch at most", true},
		{"seq too large", ok(func(t *Token) { t.Vector = VersionVector{ver("a", 1, 1<<63)} }), "seq at most", true},
		{"9 pins", ok(func(t *Token) {
			for i := range MaxPins + 1 {
				t.Pins = append(t.Pins, Pin{Service: fmt.Sprint("s", i), Region: "a", Until: base.Add(time.Hour)})
			}
		}), "9 pins", true},
		{"pin twice", ok(func(t *Token) {
			t.Pins = []Pin{{Service: "a", Region: "a", Until: base.Add(time.Hour)}, {Service: "a", Region: "b", Until: base.Add(time.Hour)}}
		}), "pinned twice", false},
		{"long service", ok(func(t *Token) {
			t.Pins = []Pin{{Service: strings.Repeat("s", MaxServiceNameLen+1), Region: "a", Until: base.Add(time.Hour)}}
		}), "pins[0] service", true},
		{"year 3100", ok(func(t *Token) { t.Expires = time.Date(3100, 1, 1, 0, 0, 0, 0, time.UTC) }), "outside 1970..3058", false},
	} {
		_, err := kr.Sign(tc.tok, base)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: Sign error = %v, want it to contain %q", tc.name, err, tc.wantErr)
			continue
		}
		if errors.Is(err, ErrTooLarge) != tc.tooBig {
			t.Errorf("%s: errors.Is(ErrTooLarge) = %v", tc.name, !tc.tooBig)
		}
	}
}

// TestTokenWorstCaseSize builds the largest token the limits allow (16 vector entries
// of 16 distinct longest region names at the largest positions, 8 pins with the
// longest service names, every time at its largest) and checks the computed bound.
func TestTokenWorstCaseSize(t *testing.T) {
	const (
		str    = 1 // a length byte (every limit is < 128)
		timeB  = 5 // uvarint of a unix second < 2^35
		idx    = 1 // region index or count < 128
		epochB = 5 // uvarint of an epoch < 2^32
		seqB   = 9 // uvarint of a seq < 2^63
	)
	worst := 1 + // version
		str + MaxKeyIDLen +
		str + MaxSessionIDLen +
		2*timeB + // issued, expires
		idx + MaxTokenRegions*(str+MaxRegionNameLen) +
		idx + timeB + // sticky region and until
		idx + MaxVectorEntries*(idx+epochB+seqB) +
		idx + MaxPins*(str+MaxServiceNameLen+idx+timeB) +
		macLen
	if worst != 758 || base64.RawURLEncoding.EncodedLen(worst) != 1011 {
		t.Fatalf("worst case = %d raw bytes, %d encoded; the documentation says 758 and 1011", worst, base64.RawURLEncoding.EncodedLen(worst))
	}

	last := time.Unix(maxUnixSecond, 0).UTC()
	kr, err := NewKeyRing([]Key{{ID: strings.Repeat("k", MaxKeyIDLen), Secret: secret(7), SignFrom: base, Expires: last.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	tok := Token{SessionID: strings.Repeat("s", MaxSessionIDLen), Issued: last, Expires: last, StickyUntil: last}
	for i := range MaxVectorEntries {
		origin := fmt.Sprintf("%0*d", MaxRegionNameLen, i)
		tok.Vector = tok.Vector.Merge(ver(origin, MaxTokenEpoch, MaxTokenSeq))
	}
	tok.Region = tok.Vector[MaxVectorEntries-1].Origin
	for i := range MaxPins {
		tok.Pin(fmt.Sprintf("%0*d", MaxServiceNameLen, i), tok.Vector[i].Origin, last, base)
	}
	if len(tok.Vector) != MaxVectorEntries || len(tok.Pins) != MaxPins {
		t.Fatalf("built %d entries and %d pins", len(tok.Vector), len(tok.Pins))
	}
	s, err := kr.Sign(tok, base)
	if err != nil {
		t.Fatalf("the worst-case token does not fit: %v", err)
	}
	if len(s) != base64.RawURLEncoding.EncodedLen(worst) || len(s) > MaxTokenLen {
		t.Fatalf("worst-case token is %d bytes, computed %d (limit %d)", len(s), base64.RawURLEncoding.EncodedLen(worst), MaxTokenLen)
	}
	got, err := kr.Verify(s, base)
	if err != nil || !reflect.DeepEqual(got, tok) {
		t.Fatalf("worst-case round trip: %v", err)
	}
}

func TestTokenPin(t *testing.T) {
	var tok Token
	at := func(d time.Duration) time.Time { return base.Add(d) }
	tok.Pin("profiles", "us-east", at(5*time.Second), base)
	tok.Pin("billing", "eu-west", at(3*time.Second), base)
	tok.Pin("profiles", "eu-west", at(4*time.Second), base) // replaces the earlier pin
	if got := fmt.Sprint(tok.Pins); got != fmt.Sprint([]Pin{{"billing", "eu-west", at(3 * time.Second)}, {"profiles", "eu-west", at(4 * time.Second)}}) {
		t.Fatalf("pins = %v", got)
	}
	copied := tok
	tok.Pin("cart", "us-east", at(10*time.Second), at(3*time.Second)) // billing has expired at now
	if len(copied.Pins) != 2 {
		t.Fatal("Pin changed a copy of the token")
	}
	if got := len(tok.Pins); got != 2 || tok.Pins[0].Service != "cart" || tok.Pins[1].Service != "profiles" {
		t.Fatalf("after expiry: %v", tok.Pins)
	}
	tok.Pin("gone", "us-east", at(time.Second), at(3*time.Second)) // already expired: not added
	if len(tok.Pins) != 2 {
		t.Fatalf("an expired pin was added: %v", tok.Pins)
	}
	// Fill past MaxPins: the soonest-expiring pins go.
	for i := range MaxPins {
		tok.Pin(fmt.Sprintf("svc%d", i), "us-east", at(time.Duration(20+i)*time.Second), at(3*time.Second))
	}
	if len(tok.Pins) != MaxPins {
		t.Fatalf("%d pins kept", len(tok.Pins))
	}
	for _, p := range tok.Pins {
		if p.Service == "cart" || p.Service == "profiles" {
			t.Fatalf("soonest-expiring pin %s kept: %v", p.Service, tok.Pins)
		}
	}
	if r, ok := tok.PinnedRegion("svc3", at(22*time.Second)); !ok || r != "us-east" {
		t.Fatalf("PinnedRegion(svc3) = %q, %v", r, ok)
	}
	if _, ok := tok.PinnedRegion("svc3", at(23*time.Second)); ok {
		t.Fatal("PinnedRegion after Until")
	}
	st := Token{Region: "eu-west", StickyUntil: at(time.Minute)}
	if r, ok := st.StickyRegion(base); !ok || r != "eu-west" {
		t.Fatalf("StickyRegion = %q, %v", r, ok)
	}
	if _, ok := st.StickyRegion(at(time.Minute)); ok {
		t.Fatal("sticky after StickyUntil")
	}
}

func TestNewSessionID(t *testing.T) {
	a, b := NewSessionID(), NewSessionID()
	if len(a) != 22 || a == b {
		t.Fatalf("NewSessionID = %q, %q", a, b)
	}
	if raw, err := base64.RawURLEncoding.DecodeString(a); err != nil || len(raw) != 16 {
		t.Fatalf("NewSessionID %q: %v", a, err)
	}
}

func TestNewKeyRingErrors(t *testing.T) {
	good := Key{ID: "k1", Secret: secret(1), SignFrom: base, Expires: base.AddDate(0, 1, 0)}
	with := func(f func(*Key)) Key { k := good; f(&k); return k }
	for _, tc := range []struct {
		name    string
		keys    []Key
		wantErr string
	}{
		{"no keys", nil, "no keys"},
		{"duplicate id", []Key{good, with(func(k *Key) { k.Secret = secret(2) })}, `keys[1] ("k1"): id listed twice`},
		{"short secret", []Key{with(func(k *Key) { k.ID = "short"; k.Secret = secret(1)[:31] })}, `keys[0] ("short"): secret is 31 bytes, at least 32`},
		{"expires before sign_from", []Key{good, with(func(k *Key) { k.ID = "k2"; k.Expires = k.SignFrom })}, `keys[1] ("k2"): expires`},
		{"no id", []Key{with(func(k *Key) { k.ID = "" })}, "keys[0]: id is required"},
		{"long id", []Key{with(func(k *Key) { k.ID = strings.Repeat("k", MaxKeyIDLen+1) })}, "id must be 1..16"},
	} {
		_, err := NewKeyRing(tc.keys)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v, want it to contain %q", tc.name, err, tc.wantErr)
		}
	}
	// The ring keeps its own copy of the secrets.
	k := good
	k.Secret = secret(1)
	kr, err := NewKeyRing([]Key{k})
	if err != nil {
		t.Fatal(err)
	}
	s, _ := kr.Sign(Token{SessionID: "s", Expires: base.Add(time.Hour)}, base)
	k.Secret[0] ^= 0xff
	if _, err := kr.Verify(s, base); err != nil {
		t.Fatalf("changing the caller's secret changed the ring: %v", err)
	}
}

func TestParseKeyRing(t *testing.T) {
	sec := base64.StdEncoding.EncodeToString(secret(1))
	kr, err := ParseKeyRing([]byte(`keys:
  - id: k2026-11
    secret: ` + sec + `
    sign_from: 2026-11-01T00:00:00Z
    expires: 2027-02-01T00:00:00Z
  - id: k2027-01
    secret: ` + base64.StdEncoding.EncodeToString(secret(2)) + `
    sign_from: 2027-01-01T00:00:00Z
    expires: 2027-04-01T00:00:00Z
`))
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(kr.KeyIDs()); got != "[k2027-01 k2026-11]" {
		t.Fatalf("KeyIDs = %s", got)
	}
	if id, _ := kr.SigningKeyID(base); id != "k2026-11" {
		t.Fatalf("signing key = %q", id)
	}
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"empty", "", "empty"},
		{"unknown field", "keys:\n  - id: a\n    secret: " + sec + "\n    sign_from: 2026-11-01T00:00:00Z\n    expires: 2027-02-01T00:00:00Z\n    algorithm: hs256\n", "field algorithm not found"},
		{"unknown top-level field", "key: []\n", "field key not found"},
		{"bad base64", "keys:\n  - id: a\n    secret: '***'\n    sign_from: 2026-11-01T00:00:00Z\n    expires: 2027-02-01T00:00:00Z\n", `keys[0] ("a"): secret is not standard base64`},
		{"short secret", "keys:\n  - id: a\n    secret: c2hvcnQ=\n    sign_from: 2026-11-01T00:00:00Z\n    expires: 2027-02-01T00:00:00Z\n", `keys[0] ("a"): secret is 5 bytes`},
		{"missing expires", "keys:\n  - id: a\n    secret: " + sec + "\n    sign_from: 2026-11-01T00:00:00Z\n", `keys[0] ("a"): expires`},
		{"bad time", "keys:\n  - id: a\n    secret: " + sec + "\n    sign_from: yesterday\n    expires: 2027-02-01T00:00:00Z\n", "key file"},
		{"no keys", "keys: []\n", "no keys"},
	} {
		_, err := ParseKeyRing([]byte(tc.yaml))
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v, want it to contain %q", tc.name, err, tc.wantErr)
		}
	}
}

func TestFromRequest(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       http.Header
		want    string
		carrier Carrier
	}{
		{"nothing", http.Header{}, "", CarrierNone},
		{"header", http.Header{"Geode-Session": {" tok1 "}, "Cookie": {"geode-session=tok2"}}, "tok1", CarrierHeader},
		{"cookie", http.Header{"Cookie": {"a=b; geode-session=tok2; c=d"}}, "tok2", CarrierCookie},
		{"quoted cookie", http.Header{"Cookie": {`geode-session="tok2"`}}, "tok2", CarrierCookie},
		{"second cookie line", http.Header{"Cookie": {"a=b", "geode-session=tok3"}}, "tok3", CarrierCookie},
		{"cookie with a similar name", http.Header{"Cookie": {"xgeode-session=no; geode-sessionx=no"}}, "", CarrierNone},
		{"baggage", http.Header{"Baggage": {"userId=alice, geode-session = tok4;prop=1,other=x"}}, "tok4", CarrierBaggage},
		{"percent-encoded baggage", http.Header{"Baggage": {"geode-session=a%2Db%3D"}}, "a-b=", CarrierBaggage},
		{"bad percent-encoding is skipped", http.Header{"Baggage": {"geode-session=%zz"}}, "", CarrierNone},
		{"cookie beats baggage", http.Header{"Baggage": {"geode-session=b"}, "Cookie": {"geode-session=c"}}, "c", CarrierCookie},
		{"empty header falls through", http.Header{"Geode-Session": {""}, "Baggage": {"geode-session=b"}}, "b", CarrierBaggage},
	} {
		got, c := FromRequest(tc.h)
		if got != tc.want || c != tc.carrier {
			t.Errorf("%s: FromRequest = %q, %s; want %q, %s", tc.name, got, c, tc.want, tc.carrier)
		}
	}
	for c, want := range map[Carrier]string{CarrierNone: "none", CarrierHeader: "header", CarrierCookie: "cookie", CarrierBaggage: "baggage"} {
		if c.String() != want {
			t.Errorf("Carrier(%d).String() = %q", c, c.String())
		}
	}
}

func TestFromRequestDoesNotAllocate(t *testing.T) {
	h := http.Header{"Cookie": {"a=b; c=d"}, "Baggage": {"userId=alice,geode-session=tok"}}
	var n int
	if allocs := testing.AllocsPerRun(1000, func() { s, _ := FromRequest(h); n += len(s) }); allocs != 0 {
		t.Fatalf("FromRequest allocates %.1f times per run", allocs)
	}
}

func BenchmarkVerify(b *testing.B) {
	kr := testRing(b)
	s, err := kr.Sign(fullToken(), base)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := kr.Verify(s, base); err != nil {
			b.Fatal(err)
		}
	}
}
