// Package identity is the mutual TLS between sidecars and the xDS control plane, and
// between the control planes of different regions (peering):
// certificates and a CA bundle loaded from files and reloaded when they change, TLS
// configurations for both ends that pick up a reload without a restart, and the
// SPIFFE IDs that name who is on the other end of a connection.
//
// # SPIFFE ID scheme
//
// Every certificate carries exactly one URI SAN, a SPIFFE ID
// (https://github.com/spiffe/spiffe/blob/main/standards/SPIFFE-ID.md):
//
//	spiffe://<trust-domain>/geode/region/<region>/node/<node-id>   a sidecar (xDS client)
//	spiffe://<trust-domain>/geode/region/<region>/controlplane     region's control plane
//	spiffe://<trust-domain>/geode/controlplane[/<name>...]         a control plane, no region
//
// <region> is a region name of the fleet model and <node-id> the xDS node id the
// sidecar sends (node.id); both are single SPIFFE path segments, so they are made of
// letters, digits, '.', '-' and '_'. The control plane refuses (PermissionDenied) a
// stream whose node.id or region differs from its certificate's, so a sidecar can only
// ever fetch its own region's configuration under its own name.
//
// Both ends verify the peer's chain against the CA bundle (--tls-ca) and require the
// peer's SPIFFE ID to be in their own trust domain: a sidecar only talks to a
// /geode/controlplane ID, and the control plane only accepts /geode/region/.../node/...
// IDs. Host names and IP SANs are not checked: the SPIFFE ID is the identity. A
// sidecar accepts either control-plane form.
//
// Peering (package peering) needs the regional form: a control plane polling region
// X's summary accepts only X's control plane (PeeringClientConfig), so "the summary of
// X" is bound to "the certificate of X's control plane"; the peering listener
// (PeeringServerConfig) verifies every client's chain and trust domain, and its handler
// refuses with 403 a client that is not a control plane (FromTLS).
//
// # Rotation
//
// Source.Run re-reads the three files every few seconds; a complete, consistent new
// set (certificate matching key, chaining to the new bundle) replaces the old one for
// every handshake that follows. A partial or broken set is logged and the last good
// one kept, so writing the files in any order is safe. Established connections keep
// the certificate they were opened with.
package identity
