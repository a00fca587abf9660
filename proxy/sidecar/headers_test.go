package sidecar

import (
	"net/http"
	"testing"

	"github.com/geodemesh/geode/consistency"
)

func TestCanonicalHeaderNamesMatchTheWireNames(t *testing.T) {
	for canon, wire := range map[string]string{
		canonOp: consistency.HeaderOp, canonVersion: consistency.HeaderVersion,
		canonWatermark: consistency.HeaderWatermark, canonSession: consistency.HeaderSession, canonReplicaLag: consistency.HeaderReplicaLag,
	} {
		if http.CanonicalHeaderKey(wire) != canon {
			t.Errorf("%s is not the canonical form of %s", canon, wire)
		}
	}
}
