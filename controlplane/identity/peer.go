package identity

import (
	"context"
	"errors"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// FromContext returns the identity of the gRPC peer of a server-side ctx. ok is false
// when the connection is not TLS (the control plane's --insecure mode); err is set
// when it is TLS but the peer's certificate names no Geode identity.
func FromContext(ctx context.Context) (id ID, ok bool, err error) {
	p, found := peer.FromContext(ctx)
	if !found || p.AuthInfo == nil {
		return ID{}, false, nil
	}
	info, isTLS := p.AuthInfo.(credentials.TLSInfo)
	if !isTLS {
		return ID{}, false, nil
	}
	if len(info.State.PeerCertificates) == 0 {
		return ID{}, true, errors.New("the TLS peer presented no certificate")
	}
	id, err = FromCertificate(info.State.PeerCertificates[0])
	return id, true, err
}
