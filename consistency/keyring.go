package consistency

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"go.yaml.in/yaml/v3"
)

// MinSecretLen is the shortest accepted key secret, in bytes.
const MinSecretLen = 32

// Key is one session-token signing key. Signers use it from SignFrom until a key with
// a later SignFrom takes over; verifiers accept it from the moment it is in the ring
// (so a new key can be distributed before anyone signs with it) until Expires.
type Key struct {
	// ID names the key inside every token it signs: 1..MaxKeyIDLen printable bytes.
	ID string
	// Secret is the HMAC-SHA256 key, at least MinSecretLen bytes.
	Secret []byte
	// SignFrom is when signers start using the key.
	SignFrom time.Time
	// Expires is when the key is retired: tokens signed with it are rejected from then.
	Expires time.Time
}

// KeyRing holds the session-token keys of a fleet. It is immutable after
// construction and safe for concurrent use; reloading keys means building a new ring.
type KeyRing struct {
	keys []Key // copies, secrets included; latest SignFrom first
}

// NewKeyRing validates keys and builds a ring. Errors name the key at fault.
func NewKeyRing(keys []Key) (*KeyRing, error) {
	if len(keys) == 0 {
		return nil, errors.New("key ring: no keys")
	}
	kr := &KeyRing{keys: make([]Key, 0, len(keys))}
	var errs []error
	for i, k := range keys {
		name := fmt.Sprintf("key ring: keys[%d] (%q)", i, k.ID)
		switch {
		case k.ID == "":
			errs = append(errs, fmt.Errorf("key ring: keys[%d]: id is required", i))
		case len(k.ID) > MaxKeyIDLen || !printable(k.ID):
			errs = append(errs, fmt.Errorf("%s: id must be 1..%d printable ASCII bytes without spaces", name, MaxKeyIDLen))
		case slices.ContainsFunc(kr.keys, func(o Key) bool { return o.ID == k.ID }):
			errs = append(errs, fmt.Errorf("%s: id listed twice", name))
		}
		if len(k.Secret) < MinSecretLen {
			errs = append(errs, fmt.Errorf("%s: secret is %d bytes, at least %d are required", name, len(k.Secret), MinSecretLen))
		}
		if !k.Expires.After(k.SignFrom) {
			errs = append(errs, fmt.Errorf("%s: expires (%s) must be after sign_from (%s)", name, k.Expires.Format(time.RFC3339), k.SignFrom.Format(time.RFC3339)))
		}
		k.Secret = bytes.Clone(k.Secret)
		kr.keys = append(kr.keys, k)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	slices.SortStableFunc(kr.keys, func(a, b Key) int { return b.SignFrom.Compare(a.SignFrom) })
	return kr, nil
}

// keyFile is the YAML form of a key ring.
type keyFile struct {
	Keys []keyFileEntry `yaml:"keys"`
}

type keyFileEntry struct {
	ID       string    `yaml:"id"`
	Secret   string    `yaml:"secret"`
	SignFrom time.Time `yaml:"sign_from"`
	Expires  time.Time `yaml:"expires"`
}

// ParseKeyRing parses a key file and builds a ring with NewKeyRing:
//
//	keys:
//	  - id: k2026-11
//	    secret: <base64, standard encoding, at least 32 bytes decoded>
//	    sign_from: 2026-11-01T00:00:00Z
//	    expires: 2027-02-01T00:00:00Z
//
// Decoding is strict: unknown fields are errors.
func ParseKeyRing(data []byte) (*KeyRing, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f keyFile
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("key file: empty")
		}
		return nil, fmt.Errorf("key file: %w", err)
	}
	keys := make([]Key, len(f.Keys))
	var errs []error
	for i, k := range f.Keys {
		secret, err := base64.StdEncoding.DecodeString(k.Secret)
		if err != nil {
			errs = append(errs, fmt.Errorf("key file: keys[%d] (%q): secret is not standard base64: %v", i, k.ID, err))
		}
		keys[i] = Key{ID: k.ID, Secret: secret, SignFrom: k.SignFrom, Expires: k.Expires}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return NewKeyRing(keys)
}

// signingKey returns the key signers use at now: the latest SignFrom ≤ now among
// keys that have not expired.
func (kr *KeyRing) signingKey(now time.Time) (*Key, bool) {
	for i := range kr.keys {
		k := &kr.keys[i]
		if !k.SignFrom.After(now) && now.Before(k.Expires) {
			return k, true
		}
	}
	return nil, false
}

// SigningKeyID returns the id of the key Sign uses at now.
func (kr *KeyRing) SigningKeyID(now time.Time) (string, bool) {
	k, ok := kr.signingKey(now)
	if !ok {
		return "", false
	}
	return k.ID, true
}

// Sign encodes and signs t with the signing key at now (see Key). If t.Issued is
// zero it is set to now. It fails if no key is valid at now, if t has already
// expired at now, or if a field exceeds the token limits (errors.Is ErrTooLarge for
// those); the result is never longer than MaxTokenLen.
func (kr *KeyRing) Sign(t Token, now time.Time) (string, error) {
	k, ok := kr.signingKey(now)
	if !ok {
		return "", fmt.Errorf("%w at %s", errNoSigningKey, now.UTC().Format(time.RFC3339))
	}
	if t.Issued.IsZero() {
		t.Issued = now
	}
	if !now.Before(t.Expires) {
		return "", fmt.Errorf("%w: expires %s, not after now (%s)", ErrExpired, t.Expires.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	raw, err := encodeToken(&t, k.ID, k.Secret)
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(raw), nil
}

// Verify decodes s and checks it: no longer than MaxTokenLen (checked first), well
// formed, signed by a key of the ring that has not expired at now (a key whose
// SignFrom is still ahead is accepted), a valid MAC (compared in constant time), and
// now before the token's Expires. Errors wrap ErrTooLarge, ErrMalformed,
// ErrUnknownKey, ErrKeyRetired, ErrBadSignature or ErrExpired.
func (kr *KeyRing) Verify(s string, now time.Time) (Token, error) {
	raw, err := decodeRaw(s)
	if err != nil {
		return Token{}, err
	}
	body, sum := raw[:len(raw)-macLen], raw[len(raw)-macLen:]
	r := reader{b: body[1:]}
	keyID := r.str("key id", MaxKeyIDLen)
	if r.err != nil {
		return Token{}, r.err
	}
	var k *Key
	for i := range kr.keys {
		if kr.keys[i].ID == keyID {
			k = &kr.keys[i]
			break
		}
	}
	switch {
	case k == nil:
		return Token{}, fmt.Errorf("%w %q", ErrUnknownKey, keyID)
	case !now.Before(k.Expires):
		return Token{}, fmt.Errorf("%w: %q expired at %s", ErrKeyRetired, keyID, k.Expires.UTC().Format(time.RFC3339))
	case !hmac.Equal(sum, mac(k.Secret, body)):
		return Token{}, fmt.Errorf("%w (key %q)", ErrBadSignature, keyID)
	}
	t, _, err := parsePayload(body)
	if err != nil {
		return Token{}, err
	}
	if !now.Before(t.Expires) {
		return Token{}, fmt.Errorf("%w at %s", ErrExpired, t.Expires.Format(time.RFC3339))
	}
	return t, nil
}

// KeyIDs returns the ids of the ring's keys, latest SignFrom first.
func (kr *KeyRing) KeyIDs() []string {
	ids := make([]string, len(kr.keys))
	for i, k := range kr.keys {
		ids[i] = k.ID
	}
	return ids
}

// Marshal renders the ring in the key-file format ParseKeyRing reads, keys latest
// SignFrom first: the same ring always renders the same bytes. The result holds the
// secrets; it is how the control plane hands a ring to sidecars (an SDS secret).
func (kr *KeyRing) Marshal() ([]byte, error) {
	var f keyFile
	for _, k := range kr.keys {
		f.Keys = append(f.Keys, keyFileEntry{
			ID: k.ID, Secret: base64.StdEncoding.EncodeToString(k.Secret),
			SignFrom: k.SignFrom.UTC(), Expires: k.Expires.UTC(),
		})
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&f); err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("key ring: %w", err)
	}
	return buf.Bytes(), nil
}

// Fingerprint identifies the ring's contents, secrets included, without revealing
// them: equal rings have equal fingerprints, and a rotation changes it.
func (kr *KeyRing) Fingerprint() string {
	h := sha256.New()
	io.WriteString(h, "geode session key ring fingerprint v1\x00")
	for _, k := range kr.keys {
		fmt.Fprintf(h, "%q %d %d ", k.ID, k.SignFrom.UnixNano(), k.Expires.UnixNano())
		h.Write(mac(k.Secret, []byte("fingerprint")))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// KeyInfo is what may be shown of a key: everything but its secret.
type KeyInfo struct {
	ID       string    `json:"id"`
	SignFrom time.Time `json:"sign_from"`
	Expires  time.Time `json:"expires"`
}

// Info describes the ring's keys, latest SignFrom first, without their secrets.
func (kr *KeyRing) Info() []KeyInfo {
	out := make([]KeyInfo, len(kr.keys))
	for i, k := range kr.keys {
		out[i] = KeyInfo{ID: k.ID, SignFrom: k.SignFrom, Expires: k.Expires}
	}
	return out
}
