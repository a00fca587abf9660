package consistency

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Session token, version 1. The encoded token is base64url without padding of
//
//	byte     version, 0x01
//	str      key id                      the signing key (inside the signed bytes)
//	str      session id
//	uvarint  issued                      unix seconds
//	uvarint  expires                     unix seconds
//	uvarint  n regions, then n × str     every region the token names, in order of first use
//	uvarint  sticky region               0 = none, else 1 + index into the regions
//	uvarint  sticky until                unix seconds, 0 = none
//	uvarint  n vector entries, then n × (uvarint region index, uvarint epoch, uvarint seq)
//	uvarint  n pins, then n × (str service, uvarint region index, uvarint until)
//	[32]byte HMAC-SHA256(key secret, "geode-session-v1\x00" || all of the above)
//
// where str is a uvarint length and that many bytes. Varints are minimal, strings are
// printable ASCII without spaces, vector entries are sorted by origin, pins name each
// service once, and nothing follows the MAC: every token has exactly one encoding.
//
// Times are carried in whole seconds: Issued, Expires and StickyUntil are rounded
// down, Pin.Until up (a pin never ends early). Zero times other than Issued and
// Expires mean "none".
//
// Size: the field limits below bound the raw token at 758 bytes with 16 vector
// entries and 8 pins at their largest (TestTokenWorstCaseSize computes it), i.e.
// 1011 encoded bytes, within MaxTokenLen.
const (
	// MaxTokenLen is the longest encoded token Sign produces and Verify or Decode
	// look at; longer input is rejected before any other work.
	MaxTokenLen = 1024
	// MaxPins is the most pins a signed token carries.
	MaxPins = 8
	// MaxKeyIDLen is the longest key id.
	MaxKeyIDLen = 16
	// MaxSessionIDLen is the longest session id (NewSessionID's are 22 bytes).
	MaxSessionIDLen = 24
	// MaxRegionNameLen is the longest region name a token can carry.
	MaxRegionNameLen = 14
	// MaxServiceNameLen is the longest service name a pin can carry.
	MaxServiceNameLen = 16
	// MaxTokenRegions is the most distinct regions one token names (sticky region,
	// vector origins and pin regions together): Geode's fleet limit.
	MaxTokenRegions = 16
	// MaxTokenEpoch is the largest epoch a token carries (epochs count failovers).
	MaxTokenEpoch = 1<<32 - 1
	// MaxTokenSeq is the largest sequence number a token carries (int64-safe).
	MaxTokenSeq = 1<<63 - 1
)

// HeaderSession is the wire name of the session token: request and response header,
// cookie name, and W3C baggage member.
const HeaderSession = "geode-session"

const (
	tokenVersion1 = 0x01
	macLen        = sha256.Size
	macDomain     = "geode-session-v1\x00"
	maxRawLen     = MaxTokenLen / 4 * 3 // base64 without padding: 4 characters per 3 bytes
	maxUnixSecond = 1<<35 - 1           // year 3058: every time field fits 5 varint bytes
)

// Errors returned by Verify and Decode, wrapped with details; test with errors.Is and
// label metrics with Cause.
var (
	ErrMalformed     = errors.New("session token: malformed")
	ErrTooLarge      = errors.New("session token: too large")
	ErrUnknownKey    = errors.New("session token: unknown key")
	ErrKeyRetired    = errors.New("session token: key retired")
	ErrBadSignature  = errors.New("session token: bad signature")
	ErrExpired       = errors.New("session token: expired")
	errNoSigningKey  = errors.New("session token: no signing key valid now")
	errInvalidFields = errors.New("session token: invalid")
)

// Cause returns a short, bounded label for a Verify or Decode error, for metrics:
// "ok" (nil), "forged", "expired", "unknown_key", "retired_key", "malformed",
// "too_large", or "other".
func Cause(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, ErrBadSignature):
		return "forged"
	case errors.Is(err, ErrExpired):
		return "expired"
	case errors.Is(err, ErrUnknownKey):
		return "unknown_key"
	case errors.Is(err, ErrKeyRetired):
		return "retired_key"
	case errors.Is(err, ErrMalformed):
		return "malformed"
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	}
	return "other"
}

// Token is a session's state as the client carries it between requests.
// Tokens are values; the methods that change one replace its slices rather than
// writing into them, so copies never share updates.
type Token struct {
	// SessionID names the session (NewSessionID).
	SessionID string
	// Region is the sticky region: where the session prefers to be served; "" = none.
	Region string
	// StickyUntil is when stickiness to Region ends.
	StickyUntil time.Time
	// Issued is when the token was issued (Sign uses now if zero).
	Issued time.Time
	// Expires is when the token stops being accepted (required).
	Expires time.Time
	// Vector holds the newest version of each origin the session depends on.
	Vector VersionVector
	// Pins route reads of services that report no versions (see Pin).
	Pins []Pin
}

// Pin sends a service's reads to the region that took the session's last write to it,
// until Until: read-your-writes by time for services that report no versions.
type Pin struct {
	Service string
	Region  string
	Until   time.Time
}

// Pin records that the session wrote to service in region and must read it there
// until until. It replaces an earlier pin of the same service, drops pins that have
// expired at now, keeps pins sorted by service, and keeps at most MaxPins by dropping
// the ones that expire soonest. A pin that has already expired is not added.
func (t *Token) Pin(service, region string, until, now time.Time) {
	pins := make([]Pin, 0, len(t.Pins)+1)
	for _, p := range t.Pins {
		if p.Service != service && p.Until.After(now) {
			pins = append(pins, p)
		}
	}
	if until.After(now) {
		pins = append(pins, Pin{Service: service, Region: region, Until: until})
	}
	if len(pins) > MaxPins {
		slices.SortStableFunc(pins, func(a, b Pin) int { return b.Until.Compare(a.Until) }) // latest first
		pins = pins[:MaxPins]
	}
	slices.SortFunc(pins, func(a, b Pin) int { return strings.Compare(a.Service, b.Service) })
	t.Pins = pins
}

// PinnedRegion returns the region service's reads are pinned to at now, if any.
func (t *Token) PinnedRegion(service string, now time.Time) (string, bool) {
	for _, p := range t.Pins {
		if p.Service == service && p.Until.After(now) {
			return p.Region, true
		}
	}
	return "", false
}

// StickyRegion returns the sticky region if stickiness still holds at now.
func (t *Token) StickyRegion(now time.Time) (string, bool) {
	if t.Region != "" && t.StickyUntil.After(now) {
		return t.Region, true
	}
	return "", false
}

// NewSessionID returns a new random session id: 16 bytes from crypto/rand, base64url
// without padding (22 characters).
func NewSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Decode parses a token WITHOUT checking its signature or expiry, for operators'
// tools; it returns the id of the key that claims to have signed it. Never use its
// result to route.
func Decode(s string) (Token, string, error) {
	raw, err := decodeRaw(s)
	if err != nil {
		return Token{}, "", err
	}
	return parsePayload(raw[:len(raw)-macLen])
}

// decodeRaw checks the outer form (size, base64url, version byte, minimum length) and
// returns the raw bytes, MAC included.
func decodeRaw(s string) ([]byte, error) {
	if len(s) > MaxTokenLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(s), MaxTokenLen)
	}
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	// The decoder skips CR and LF; a token has exactly one spelling, so refuse them.
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("%w: not base64url: line break at %d", ErrMalformed, i)
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64url: %v", ErrMalformed, err)
	}
	if len(raw) < 1+1+macLen {
		return nil, fmt.Errorf("%w: truncated", ErrMalformed)
	}
	if raw[0] != tokenVersion1 {
		return nil, fmt.Errorf("%w: unknown version %d", ErrMalformed, raw[0])
	}
	return raw, nil
}

// mac computes the token MAC of body under secret.
func mac(secret, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(macDomain))
	m.Write(body)
	return m.Sum(nil)
}

// encodeToken appends the signed raw token to dst. It validates every field limit.
func encodeToken(t *Token, keyID string, secret []byte) ([]byte, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", errInvalidFields, fmt.Sprintf(format, args...))
	}
	tooLarge := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrTooLarge, fmt.Sprintf(format, args...))
	}
	if err := checkString("session id", t.SessionID, MaxSessionIDLen); err != nil {
		return nil, err
	}
	if len(t.Vector) > MaxVectorEntries {
		return nil, tooLarge("%d vector entries, at most %d", len(t.Vector), MaxVectorEntries)
	}
	if !t.Vector.valid() {
		return nil, bad("vector must be sorted by origin with each origin once (build it with Merge)")
	}
	if len(t.Pins) > MaxPins {
		return nil, tooLarge("%d pins, at most %d", len(t.Pins), MaxPins)
	}
	if t.Region == "" && !t.StickyUntil.IsZero() {
		return nil, bad("sticky until is set without a sticky region")
	}
	var regions []string
	index := func(field, r string) (uint64, error) {
		if i := slices.Index(regions, r); i >= 0 {
			return uint64(i), nil
		}
		if err := checkString(field, r, MaxRegionNameLen); err != nil {
			return 0, err
		}
		if len(regions) == MaxTokenRegions {
			return 0, tooLarge("more than %d distinct regions", MaxTokenRegions)
		}
		regions = append(regions, r)
		return uint64(len(regions) - 1), nil
	}
	// First pass: the region table, in order of first use, and all other checks.
	var sticky uint64
	if t.Region != "" {
		i, err := index("sticky region", t.Region)
		if err != nil {
			return nil, err
		}
		sticky = i + 1
	}
	vidx := make([]uint64, len(t.Vector))
	for n, x := range t.Vector {
		i, err := index(fmt.Sprintf("vector[%d] origin", n), x.Origin)
		if err != nil {
			return nil, err
		}
		if x.Epoch > MaxTokenEpoch || x.Seq > MaxTokenSeq {
			return nil, tooLarge("vector[%d] %s: epoch at most %d and seq at most %d", n, x, uint64(MaxTokenEpoch), uint64(MaxTokenSeq))
		}
		vidx[n] = i
	}
	pidx := make([]uint64, len(t.Pins))
	for n, p := range t.Pins {
		if err := checkString(fmt.Sprintf("pins[%d] service", n), p.Service, MaxServiceNameLen); err != nil {
			return nil, err
		}
		if slices.IndexFunc(t.Pins[:n], func(q Pin) bool { return q.Service == p.Service }) >= 0 {
			return nil, bad("pins[%d]: service %q pinned twice", n, p.Service)
		}
		i, err := index(fmt.Sprintf("pins[%d] region", n), p.Region)
		if err != nil {
			return nil, err
		}
		pidx[n] = i
	}
	issued, err := unixSeconds("issued", t.Issued, false, false)
	if err != nil {
		return nil, err
	}
	expires, err := unixSeconds("expires", t.Expires, false, false)
	if err != nil {
		return nil, err
	}
	stickyUntil, err := unixSeconds("sticky until", t.StickyUntil, true, false)
	if err != nil {
		return nil, err
	}

	b := make([]byte, 0, maxRawLen)
	b = append(b, tokenVersion1)
	b = appendString(b, keyID)
	b = appendString(b, t.SessionID)
	b = binary.AppendUvarint(b, issued)
	b = binary.AppendUvarint(b, expires)
	b = binary.AppendUvarint(b, uint64(len(regions)))
	for _, r := range regions {
		b = appendString(b, r)
	}
	b = binary.AppendUvarint(b, sticky)
	b = binary.AppendUvarint(b, stickyUntil)
	b = binary.AppendUvarint(b, uint64(len(t.Vector)))
	for n, x := range t.Vector {
		b = binary.AppendUvarint(b, vidx[n])
		b = binary.AppendUvarint(b, x.Epoch)
		b = binary.AppendUvarint(b, x.Seq)
	}
	b = binary.AppendUvarint(b, uint64(len(t.Pins)))
	for n, p := range t.Pins {
		until, err := unixSeconds(fmt.Sprintf("pins[%d] until", n), p.Until, false, true)
		if err != nil {
			return nil, err
		}
		b = appendString(b, p.Service)
		b = binary.AppendUvarint(b, pidx[n])
		b = binary.AppendUvarint(b, until)
	}
	b = append(b, mac(secret, b)...)
	if n := base64.RawURLEncoding.EncodedLen(len(b)); n > MaxTokenLen {
		return nil, tooLarge("%d bytes encoded, at most %d", n, MaxTokenLen)
	}
	return b, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// checkString enforces the common rule for token strings: 1..max printable ASCII
// bytes without spaces.
func checkString(field, s string, maxLen int) error {
	if s == "" {
		return fmt.Errorf("%w: %s is empty", errInvalidFields, field)
	}
	if len(s) > maxLen {
		return fmt.Errorf("%w: %s %q is %d bytes, at most %d", ErrTooLarge, field, s, len(s), maxLen)
	}
	if !printable(s) {
		return fmt.Errorf("%w: %s %q must be printable ASCII without spaces", errInvalidFields, field, s)
	}
	return nil
}

func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

// unixSeconds converts a token time to its wire value (0 = zero time when optional).
func unixSeconds(field string, t time.Time, optional, roundUp bool) (uint64, error) {
	if t.IsZero() {
		if optional {
			return 0, nil
		}
		return 0, fmt.Errorf("%w: %s is required", errInvalidFields, field)
	}
	s := t.Unix()
	if roundUp && t.Nanosecond() != 0 {
		s++
	}
	if s < 1 || s > maxUnixSecond {
		return 0, fmt.Errorf("%w: %s %s is outside 1970..3058", errInvalidFields, field, t.Format(time.RFC3339))
	}
	return uint64(s), nil
}

// reader decodes the payload; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (r *reader) uvarint(field string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || (n > 1 && r.b[n-1] == 0) {
		r.fail("%s: bad or truncated varint", field)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) str(field string, maxLen int) string {
	n := r.uvarint(field)
	if r.err != nil {
		return ""
	}
	if n == 0 || n > uint64(maxLen) || n > uint64(len(r.b)) {
		r.fail("%s: bad length %d", field, n)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	if !printable(s) {
		r.fail("%s: not printable", field)
	}
	return s
}

func (r *reader) count(field string, maxN int) int {
	n := r.uvarint(field)
	if n > uint64(maxN) {
		r.fail("%s: %d, at most %d", field, n, maxN)
		return 0
	}
	return int(n)
}

func (r *reader) time(field string, optional bool) time.Time {
	s := r.uvarint(field)
	switch {
	case r.err != nil:
		return time.Time{}
	case s == 0 && optional:
		return time.Time{}
	case s == 0 || s > maxUnixSecond:
		r.fail("%s: %d out of range", field, s)
		return time.Time{}
	}
	return time.Unix(int64(s), 0).UTC()
}

// parsePayload decodes the signed part of a raw token (version byte first, MAC
// removed) and checks that it is in canonical form.
func parsePayload(p []byte) (Token, string, error) {
	r := reader{b: p[1:]}
	var t Token
	keyID := r.str("key id", MaxKeyIDLen)
	t.SessionID = r.str("session id", MaxSessionIDLen)
	t.Issued = r.time("issued", false)
	t.Expires = r.time("expires", false)
	regions := make([]string, r.count("regions", MaxTokenRegions))
	for i := range regions {
		regions[i] = r.str("region name", MaxRegionNameLen)
		if r.err == nil && slices.Contains(regions[:i], regions[i]) {
			r.fail("regions[%d]: %q listed twice", i, regions[i])
		}
	}
	used := 0 // regions must appear in order of first use
	region := func(field string, n int) string {
		i := r.uvarint(field)
		if r.err != nil {
			return ""
		}
		if i > uint64(used) || i >= uint64(len(regions)) {
			r.fail("%s %d: region index %d out of order", field, n, i)
			return ""
		}
		if i == uint64(used) {
			used++
		}
		return regions[i]
	}
	switch sticky := r.uvarint("sticky region"); {
	case r.err != nil:
	case sticky > 1 || (sticky == 1 && len(regions) == 0):
		r.fail("sticky region: index %d out of order", sticky-1)
	case sticky == 1:
		t.Region = regions[0]
		used = 1
	}
	t.StickyUntil = r.time("sticky until", true)
	if r.err == nil && t.Region == "" && !t.StickyUntil.IsZero() {
		r.fail("sticky until without a sticky region")
	}
	if n := r.count("vector entries", MaxVectorEntries); n > 0 {
		t.Vector = make(VersionVector, n)
		for i := range t.Vector {
			x := &t.Vector[i]
			x.Origin = region("vector entry", i)
			x.Epoch = r.uvarint("epoch")
			x.Seq = r.uvarint("seq")
			if r.err == nil && (x.Epoch > MaxTokenEpoch || x.Seq > MaxTokenSeq) {
				r.fail("vector[%d]: position out of range", i)
			}
			if r.err == nil && i > 0 && t.Vector[i-1].Origin >= x.Origin {
				r.fail("vector[%d]: origins not sorted", i)
			}
		}
	}
	if n := r.count("pins", MaxPins); n > 0 {
		t.Pins = make([]Pin, n)
		for i := range t.Pins {
			p := &t.Pins[i]
			p.Service = r.str("pin service", MaxServiceNameLen)
			if r.err == nil && slices.ContainsFunc(t.Pins[:i], func(q Pin) bool { return q.Service == p.Service }) {
				r.fail("pins[%d]: service %q pinned twice", i, p.Service)
			}
			p.Region = region("pin", i)
			p.Until = r.time("pin until", false)
		}
	}
	if r.err == nil && used != len(regions) {
		r.fail("%d regions listed but %d used", len(regions), used)
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return Token{}, "", r.err
	}
	return t, keyID, nil
}
