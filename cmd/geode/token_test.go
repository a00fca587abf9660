package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeKeyFile(t *testing.T, ids ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("keys:\n")
	for i, id := range ids {
		secret := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{byte(i + 1)}, 32))
		b.WriteString("  - id: " + id + "\n    secret: " + secret + "\n    sign_from: 2026-11-01T00:00:00Z\n    expires: 2027-02-01T00:00:00Z\n")
	}
	path := filepath.Join(t.TempDir(), "keys.yaml")
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func runTokenCmd(args ...string) (stdout, stderr string, err error) {
	var out, errOut bytes.Buffer
	err = runToken(context.Background(), args, &out, &errOut)
	return out.String(), errOut.String(), err
}

const tokenNow = "2026-11-15T12:00:00Z"

func TestTokenNewAndDecode(t *testing.T) {
	keys := writeKeyFile(t, "k1")
	out, _, err := runTokenCmd("new", "--keys", keys, "--region", "us-east", "--ttl", "1h", "--session", "sess-1",
		"--version", "us-east:1:42", "--version", "eu-west:2:7", "--now", tokenNow)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)

	out, _, err = runTokenCmd("decode", "--keys", keys, "--now", tokenNow, tok)
	if err != nil {
		t.Fatalf("decode: %v\n%s", err, out)
	}
	for _, want := range []string{
		"key id         k1\n",
		"session id     sess-1\n",
		"sticky region  us-east until 2026-11-15T13:00:00Z (in 1h0m0s)\n",
		"issued         2026-11-15T12:00:00Z (in 0s)\n",
		"expires        2026-11-15T13:00:00Z (in 1h0m0s)\n",
		"vector         eu-west  epoch 2  seq 7\n",
		"               us-east  epoch 1  seq 42\n",
		"pins           -\n",
		"signature      verified with key k1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("decode output lacks %q:\n%s", want, out)
		}
	}

	// Flags after the token work too; without --keys the signature is not checked.
	out, _, err = runTokenCmd("decode", tok, "--now", tokenNow)
	if err != nil || !strings.Contains(out, "signature      not checked (no --keys)") {
		t.Fatalf("decode without keys: %v\n%s", err, out)
	}

	out, _, err = runTokenCmd("decode", "--json", "--keys", keys, "--now", tokenNow, tok)
	if err != nil {
		t.Fatal(err)
	}
	var j struct {
		KeyID     string `json:"key_id"`
		SessionID string `json:"session_id"`
		Region    string `json:"sticky_region"`
		Vector    []struct {
			Origin     string
			Epoch, Seq uint64
		}
		Verified *bool
	}
	if err := json.Unmarshal([]byte(out), &j); err != nil || j.KeyID != "k1" || j.SessionID != "sess-1" || j.Region != "us-east" || len(j.Vector) != 2 || j.Vector[1].Seq != 42 || j.Verified == nil || !*j.Verified {
		t.Fatalf("JSON %+v (%v):\n%s", j, err, out)
	}
}

func TestTokenDecodeNotVerified(t *testing.T) {
	keys := writeKeyFile(t, "k1")
	other := writeKeyFile(t, "k9")
	out, _, err := runTokenCmd("new", "--keys", keys, "--now", tokenNow)
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(out)
	for _, tc := range []struct {
		name, keys, now, want string
	}{
		{"unknown key", other, tokenNow, "NOT VERIFIED: unknown_key"},
		{"expired", keys, "2026-11-17T12:00:00Z", "NOT VERIFIED: expired"},
		{"retired key", keys, "2027-02-01T00:00:00Z", "NOT VERIFIED: retired_key"},
	} {
		out, _, err := runTokenCmd("decode", "--keys", tc.keys, "--now", tc.now, tok)
		if err == nil || !strings.Contains(out, tc.want) || !strings.Contains(out, "key id         k1") {
			t.Errorf("%s: %v\n%s", tc.name, err, out)
		}
	}
	// A forged token: flip a byte of the MAC.
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	raw[len(raw)-1] ^= 1
	forged := base64.RawURLEncoding.EncodeToString(raw)
	out, _, err = runTokenCmd("decode", "--keys", keys, "--now", tokenNow, forged)
	if err == nil || !strings.Contains(out, "NOT VERIFIED: forged") {
		t.Errorf("forged: %v\n%s", err, out)
	}
	out, _, err = runTokenCmd("decode", "--json", "--keys", keys, "--now", tokenNow, forged)
	if err == nil || !strings.Contains(out, `"verified": false`) || !strings.Contains(out, `"cause": "forged"`) {
		t.Errorf("forged JSON: %v\n%s", err, out)
	}
	if _, _, err := runTokenCmd("decode", "not a token"); err == nil || !strings.Contains(err.Error(), "malformed") {
		t.Errorf("malformed: %v", err)
	}
}

func TestTokenUsage(t *testing.T) {
	keys := writeKeyFile(t, "k1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"frob"}, `unknown verb "frob"`},
		{[]string{"decode"}, "exactly one TOKEN"},
		{[]string{"decode", "a", "b"}, "exactly one TOKEN"},
		{[]string{"decode", "--now", "noon", "tok"}, "--now"},
		{[]string{"decode", "--bogus", "tok"}, ""},
		{[]string{"new"}, "--keys is required"},
		{[]string{"new", "--keys", keys, "--ttl", "-1h"}, "--ttl"},
		{[]string{"new", "--keys", keys, "--version", "nope"}, ""},
		{[]string{"new", "--keys", keys, "extra"}, `unexpected argument "extra"`},
	} {
		_, _, err := runTokenCmd(tc.args...)
		if !errors.Is(err, errUsage) || exitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error = %v, want a usage error containing %q", tc.args, err, tc.want)
		}
	}
	if _, _, err := runTokenCmd("new", "--keys", filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !strings.Contains(err.Error(), "--keys") {
		t.Errorf("missing key file: %v", err)
	}
	if _, _, err := runTokenCmd("new", "--keys", keys, "--region", strings.Repeat("r", 40), "--now", tokenNow); err == nil || !strings.Contains(err.Error(), "sticky region") {
		t.Errorf("long region: %v", err)
	}
	if _, _, err := runTokenCmd("new", "--keys", keys, "--now", "2030-01-01T00:00:00Z"); err == nil || !strings.Contains(err.Error(), "no signing key") {
		t.Errorf("no valid key: %v", err)
	}
	if out, _, err := runTokenCmd("help"); err != nil || !strings.Contains(out, "geode token decode") {
		t.Errorf("help: %v", err)
	}
}
