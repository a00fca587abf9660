package translate

import (
	"bytes"
	"encoding/base64"
	"testing"
	"time"

	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/controlplane/model"
)

func withKeys(t *testing.T, m *model.Model, secret byte) *model.Model {
	t.Helper()
	now := time.Now()
	kr, err := consistency.NewKeyRing([]consistency.Key{{ID: "k1", Secret: bytes.Repeat([]byte{secret}, 32), SignFrom: now.Add(-time.Hour), Expires: now.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	spec := m.Spec()
	spec.SessionKeys = kr
	out, err := model.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// The session key ring travels as one SDS generic secret that parses back to the same
// ring; it has a version of its own, so a rotation re-sends the secret alone; without a
// ring, the secret type is there, empty, with a version (so a client asking for it gets
// an answer).
func TestSessionKeysTravelAsAnSDSSecret(t *testing.T) {
	plain := testModel(t)
	none, err := ForRegion(plain, "us-east")
	if err != nil {
		t.Fatal(err)
	}
	if got := len(none.GetResources(resource.SecretType)); got != 0 || none.GetVersion(resource.SecretType) == "" {
		t.Fatalf("without keys: %d secrets, version %q; want none, with a version", got, none.GetVersion(resource.SecretType))
	}

	m1, m2 := withKeys(t, plain, 1), withKeys(t, plain, 2)
	s1, err := ForRegion(m1, "us-east")
	if err != nil {
		t.Fatal(err)
	}
	s2, err := ForRegion(m2, "us-east")
	if err != nil {
		t.Fatal(err)
	}
	sec, ok := s1.GetResources(resource.SecretType)[api.SessionKeysSecret].(*tlsv3.Secret)
	if !ok {
		t.Fatalf("no secret %q in %v", api.SessionKeysSecret, s1.GetResources(resource.SecretType))
	}
	kr, err := consistency.ParseKeyRing(sec.GetGenericSecret().GetSecret().GetInlineBytes())
	if err != nil {
		t.Fatal(err)
	}
	if kr.Fingerprint() != m1.SessionKeys().Fingerprint() {
		t.Fatal("the secret's ring differs from the model's")
	}
	if s1.GetVersion(resource.SecretType) == s2.GetVersion(resource.SecretType) {
		t.Fatal("secret version unchanged by a rotation")
	}
	for _, typ := range []resource.Type{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		if s1.GetVersion(typ) != s2.GetVersion(typ) || s1.GetVersion(typ) != none.GetVersion(typ) {
			t.Errorf("%s version changed with the session keys", typ)
		}
	}
	// The secret travels in the SDS resource only: no other resource holds its bytes.
	secretBytes := bytes.Repeat([]byte{1}, 32)
	for _, typ := range []resource.Type{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		for name, r := range s1.GetResources(typ) {
			b, err := proto.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, secretBytes) || bytes.Contains(b, []byte(base64.StdEncoding.EncodeToString(secretBytes))) {
				t.Errorf("%s %q carries the session key's secret", typ, name)
			}
		}
	}
}
