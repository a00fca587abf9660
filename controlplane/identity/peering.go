package identity

import (
	"crypto/tls"
	"errors"
	"fmt"
)

// PeeringServerConfig is a control plane's peering listener (package peering): it
// presents the current certificate and requires a client certificate that chains to
// the current bundle and names a Geode identity of its trust domain. What the identity
// may do is left to the HTTP handler (see FromTLS), so that a node or another wrong
// client gets a 403 naming its identity instead of a bare TLS alert. HTTP/1.1 only.
func (s *Source) PeeringServerConfig() *tls.Config {
	return s.serverConfig("http/1.1", nil)
}

// PeeringClientConfig is a control plane polling region's control plane: it presents
// the current certificate and accepts only a server whose chain ends in the current
// bundle and whose SPIFFE ID is region's control plane,
// spiffe://<td>/geode/region/<region>/controlplane, in its trust domain. So a summary
// read over such a connection comes from that region's control plane. Host names are
// not checked (the SPIFFE ID is the identity), as in ClientConfig.
func (s *Source) PeeringClientConfig(region string) *tls.Config {
	return s.clientConfig("http/1.1", IsRegionControlPlane(region))
}

// IsRegionControlPlane returns a check that an identity is region's control plane
// (spiffe://<td>/geode/region/<region>/controlplane); its error says what it is instead.
func IsRegionControlPlane(region string) func(ID) error {
	return func(id ID) error {
		switch {
		case id.Kind != ControlPlane:
			return fmt.Errorf("is a %s, not the control plane of region %q", id.Kind, region)
		case id.Region == "":
			return fmt.Errorf("is a control plane without a region, not the control plane of region %q (want spiffe://<trust-domain>/geode/region/%s/controlplane)", region, region)
		case id.Region != region:
			return fmt.Errorf("is the control plane of region %q, not of region %q", id.Region, region)
		}
		return nil
	}
}

// FromTLS returns the identity of the peer of a TLS connection whose handshake has
// completed (an http.Request's TLS field on a listener of PeeringServerConfig or
// ServerConfig). The chain was verified during the handshake.
func FromTLS(cs *tls.ConnectionState) (ID, error) {
	if cs == nil {
		return ID{}, errors.New("not a TLS connection")
	}
	if len(cs.PeerCertificates) == 0 {
		return ID{}, errors.New("the TLS peer presented no certificate")
	}
	return FromCertificate(cs.PeerCertificates[0])
}
