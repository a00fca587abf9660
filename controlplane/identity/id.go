package identity

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Kind says what a SPIFFE ID names.
type Kind int

const (
	// Node is a sidecar: spiffe://<td>/geode/region/<region>/node/<node-id>.
	Node Kind = iota + 1
	// ControlPlane is an xDS control plane: spiffe://<td>/geode/region/<region>/controlplane
	// (a region's control plane, which can peer) or spiffe://<td>/geode/controlplane[/...]
	// (no region: serves xDS only).
	ControlPlane
)

func (k Kind) String() string {
	switch k {
	case Node:
		return "node"
	case ControlPlane:
		return "controlplane"
	}
	return "unknown"
}

// ID is a parsed Geode SPIFFE ID.
type ID struct {
	SPIFFE spiffeid.ID
	Kind   Kind
	// Region is set for a Node and for a region's ControlPlane; NodeID for a Node.
	Region, NodeID string
}

// TrustDomain is the ID's trust domain name, e.g. "geode.example".
func (id ID) TrustDomain() string { return id.SPIFFE.TrustDomain().Name() }

// String is the SPIFFE ID URI.
func (id ID) String() string { return id.SPIFFE.String() }

// NodeID builds a sidecar's SPIFFE ID.
func NodeID(trustDomain, region, nodeID string) (ID, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return ID{}, err
	}
	s, err := spiffeid.FromSegments(td, "geode", "region", region, "node", nodeID)
	if err != nil {
		return ID{}, fmt.Errorf("region %q, node %q: %w", region, nodeID, err)
	}
	return ID{SPIFFE: s, Kind: Node, Region: region, NodeID: nodeID}, nil
}

// RegionControlPlaneID builds the SPIFFE ID of region's control plane,
// spiffe://<td>/geode/region/<region>/controlplane: the identity a control plane needs
// to peer, since it binds the summary of a region to the control plane of that region.
func RegionControlPlaneID(trustDomain, region string) (ID, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return ID{}, err
	}
	s, err := spiffeid.FromSegments(td, "geode", "region", region, "controlplane")
	if err != nil {
		return ID{}, fmt.Errorf("region %q: %w", region, err)
	}
	return ID{SPIFFE: s, Kind: ControlPlane, Region: region}, nil
}

// ControlPlaneID builds a control plane's SPIFFE ID without a region
// (spiffe://<td>/geode/controlplane[/<name>]); name may be empty. Such a control plane
// serves xDS but cannot peer: see RegionControlPlaneID.
func ControlPlaneID(trustDomain, name string) (ID, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return ID{}, err
	}
	segs := []string{"geode", "controlplane"}
	if name != "" {
		segs = append(segs, name)
	}
	s, err := spiffeid.FromSegments(td, segs...)
	if err != nil {
		return ID{}, err
	}
	return ID{SPIFFE: s, Kind: ControlPlane}, nil
}

// Parse parses a SPIFFE ID URI in the Geode scheme (see the package documentation).
func Parse(uri string) (ID, error) {
	s, err := spiffeid.FromString(uri)
	if err != nil {
		return ID{}, fmt.Errorf("%q is not a SPIFFE ID: %w", uri, err)
	}
	segs := strings.Split(strings.TrimPrefix(s.Path(), "/"), "/")
	switch {
	case len(segs) == 5 && segs[0] == "geode" && segs[1] == "region" && segs[3] == "node":
		return ID{SPIFFE: s, Kind: Node, Region: segs[2], NodeID: segs[4]}, nil
	case len(segs) == 4 && segs[0] == "geode" && segs[1] == "region" && segs[3] == "controlplane":
		return ID{SPIFFE: s, Kind: ControlPlane, Region: segs[2]}, nil
	case len(segs) >= 2 && segs[0] == "geode" && segs[1] == "controlplane":
		return ID{SPIFFE: s, Kind: ControlPlane}, nil
	}
	return ID{}, fmt.Errorf("SPIFFE ID %s is not a Geode identity: want spiffe://<trust-domain>/geode/region/<region>/node/<node-id>, spiffe://<trust-domain>/geode/region/<region>/controlplane or spiffe://<trust-domain>/geode/controlplane", s)
}

// FromCertificate returns the identity a certificate names in its one SPIFFE URI SAN.
func FromCertificate(cert *x509.Certificate) (ID, error) {
	if cert == nil {
		return ID{}, errors.New("no certificate")
	}
	var found []string
	for _, u := range cert.URIs {
		if u.Scheme == "spiffe" {
			found = append(found, u.String())
		}
	}
	switch len(found) {
	case 0:
		return ID{}, fmt.Errorf("certificate %q (serial %s) has no spiffe:// URI SAN", cert.Subject.CommonName, cert.SerialNumber)
	case 1:
		return Parse(found[0])
	default:
		return ID{}, fmt.Errorf("certificate %q (serial %s) has %d SPIFFE IDs, want one", cert.Subject.CommonName, cert.SerialNumber, len(found))
	}
}
