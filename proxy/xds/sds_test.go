package xds_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/proxy/config"
	"github.com/geodemesh/geode/proxy/xds"
)

func ring(t *testing.T, id string, secret byte) *consistency.KeyRing {
	t.Helper()
	now := time.Now()
	kr, err := consistency.NewKeyRing([]consistency.Key{{ID: id, Secret: bytes.Repeat([]byte{secret}, 32), SignFrom: now.Add(-time.Minute), Expires: now.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func withRing(t *testing.T, m *model.Model, kr *consistency.KeyRing) *model.Model {
	t.Helper()
	spec := m.Spec()
	spec.SessionKeys = kr
	out, err := model.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sessionToken sends GET / for web through the sidecar and returns the session token it
// issued ("" for none).
func (m *meshSidecar) sessionToken(t *testing.T) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, "http://"+m.outbound+"/", nil)
	req.Host = "web"
	resp, err := m.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get(consistency.HeaderSession)
}

// The fleet's session keys come from the control plane (SDS): a sidecar without a keys
// file signs session tokens with the control plane's ring, follows a rotation, persists
// the ring for a cold start, and signs nothing once the control plane stops sending one.
func TestSessionKeysFromTheControlPlane(t *testing.T) {
	backends := regionBackends(t, "us-east", "eu-west", "us-west")
	plain := fleet(t, backends)
	first, second := ring(t, "first", 1), ring(t, "second", 2)
	cp := startControlPlane(t, withRing(t, plain, first), "127.0.0.1:0")
	cache := filepath.Join(t.TempDir(), "xds-state.yaml")
	sc := startSidecar(t, cp.xdsAddr, "sidecar-us-east-keys", cache)

	verifies := func(kr *consistency.KeyRing) func() bool {
		return func() bool {
			tok := sc.sessionToken(t)
			_, err := kr.Verify(tok, time.Now())
			return tok != "" && err == nil
		}
	}
	d := eventually(t, 5*time.Second, "a token signed with the control plane's ring", verifies(first))
	t.Logf("session tokens signed with the control plane's ring %s after start", d)
	dump := sc.ConfigDump().SessionKeys
	if dump == nil || dump.Source != "control plane" || dump.Fingerprint != first.Fingerprint() {
		t.Fatalf("config_dump session_keys = %+v, want the control plane's ring %s", dump, first.Fingerprint())
	}
	if cd := cp.ConfigDump().SessionKeys; cd == nil || cd.Fingerprint != first.Fingerprint() || cd.Keys[0].ID != "first" {
		t.Fatalf("control plane config_dump session_keys = %+v, want the ring's fingerprint and key ids", cd)
	}
	for what, dump := range map[string]any{"control plane": cp.ConfigDump(), "sidecar": sc.ConfigDump()} {
		b, err := json.Marshal(dump)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32)))) {
			t.Fatalf("the %s's config_dump shows the session key's secret", what)
		}
	}
	before := sc.client.Status().Acked

	if err := cp.SetModel(context.Background(), withRing(t, plain, second)); err != nil {
		t.Fatal(err)
	}
	d = eventually(t, 5*time.Second, "tokens signed with the rotated ring", verifies(second))
	t.Logf("rotation reached the sidecar in %s", d)
	after := sc.client.Status().Acked
	if before[xds.ClusterType] != after[xds.ClusterType] || before[xds.SecretType] == after[xds.SecretType] {
		t.Fatalf("a rotation changed versions %v → %v; want only the secret's", before, after)
	}

	// The cache file carries the ring: a cold start without a control plane signs too.
	base, err := config.Parse([]byte(baseConfig))
	if err != nil {
		t.Fatal(err)
	}
	// The state is persisted right after it is applied: wait for the write.
	eventually(t, 5*time.Second, "the rotated ring in the cache file", func() bool {
		cold, err := xds.LoadCache(cache, base)
		return err == nil && cold.Session.Keys != nil && cold.Session.Keys.Fingerprint() == second.Fingerprint()
	})

	// No ring from the control plane (and no keys file): no session tokens.
	if err := cp.SetModel(context.Background(), plain); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "no session token once the control plane has no ring", func() bool { return sc.sessionToken(t) == "" })
	if dump := sc.ConfigDump().SessionKeys; dump != nil {
		t.Fatalf("config_dump session_keys = %+v, want none", dump)
	}
}
