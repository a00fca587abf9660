// Package identitytest issues throwaway certificates in the Geode SPIFFE scheme
// (see package identity), for tests: an ECDSA CA, leaf certificates for nodes and
// control planes, and the files --tls-cert, --tls-key and --tls-ca read.
package identitytest
