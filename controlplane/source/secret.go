package source

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/api"
)

// SessionKeysDataKey is the key, in the data (or stringData) of the Secret named
// api.SessionKeysSecret, that holds the fleet's session-token key ring in the key-file
// format (consistency.ParseKeyRing).
const SessionKeysDataKey = "keys.yaml"

// kubeSecret is a decoded Secret and where it was.
type kubeSecret struct {
	secret *corev1.Secret
	at     origin
}

// sessionKeys returns the key ring of the one Secret geode reads, or nil when there is
// none. Any other Secret is an error: a directory of manifests is not a place for
// secrets geode does not use.
func sessionKeys(list []kubeSecret) (*consistency.KeyRing, error) {
	var found *kubeSecret
	for i := range list {
		s := &list[i]
		switch {
		case s.secret.Name != api.SessionKeysSecret:
			return nil, s.at.errorf("metadata.name", "%q: the only Secret geode reads is %q (the session-token key ring)", s.secret.Name, api.SessionKeysSecret)
		case found != nil:
			return nil, s.at.errorf("metadata.name", "a second Secret %q (the first is %s); exactly one is allowed", api.SessionKeysSecret, found.at)
		}
		found = s
	}
	if found == nil {
		return nil, nil
	}
	sec := found.secret
	data, field := sec.Data[SessionKeysDataKey], "data"
	if v, ok := sec.StringData[SessionKeysDataKey]; ok {
		if data != nil {
			return nil, found.at.errorf("stringData", "%q is also in data: give it once", SessionKeysDataKey)
		}
		data, field = []byte(v), "stringData"
	}
	if data == nil {
		return nil, found.at.errorf("data", "%q is required: the session-token key ring (keys: [{id, secret, sign_from, expires}])", SessionKeysDataKey)
	}
	kr, err := consistency.ParseKeyRing(data)
	if err != nil {
		return nil, found.at.errorf(field+"["+`"`+SessionKeysDataKey+`"`+"]", "%v", err)
	}
	return kr, nil
}
