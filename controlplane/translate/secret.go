package translate

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/api"
)

// noSessionKeys is the SDS version of a snapshot without a session key ring.
const noSessionKeys = "none"

// sessionKeysVersion identifies a ring (its fingerprint), so the secret has a version
// of its own and a key rotation re-sends nothing else.
func sessionKeysVersion(kr *consistency.KeyRing) string {
	if kr == nil {
		return noSessionKeys
	}
	return "keys-" + kr.Fingerprint()
}

// sessionKeys returns the SDS resources for a fleet's session key ring: one generic
// secret named api.SessionKeysSecret holding the ring in the key-file format, or none
// when the model has no ring.
func sessionKeys(kr *consistency.KeyRing) ([]types.Resource, error) {
	if kr == nil {
		return []types.Resource{}, nil
	}
	b, err := kr.Marshal()
	if err != nil {
		return nil, fmt.Errorf("session keys: %w", err)
	}
	s := &tlsv3.Secret{
		Name: api.SessionKeysSecret,
		Type: &tlsv3.Secret_GenericSecret{GenericSecret: &tlsv3.GenericSecret{
			Secret: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b}},
		}},
	}
	return []types.Resource{s}, nil
}
