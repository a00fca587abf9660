package api

import (
	"fmt"
	"net"
	"strings"
)

// The names both halves agree on: a service authority as a sidecar matches it, and a
// region name. The control plane validates its model with these, and the sidecar its
// file and what arrives over xDS, so neither accepts what the other would refuse.

// AuthorityHost returns the lower-cased host part of a Host header or :authority value:
// without a port or a trailing dot.
func AuthorityHost(a string) string {
	if h, _, err := net.SplitHostPort(a); err == nil {
		a = h
	}
	return strings.ToLower(strings.TrimSuffix(a, "."))
}

// CheckAuthority reports why a cannot name a service (a host or host:port), or nil.
func CheckAuthority(a string) error {
	if AuthorityHost(a) == "" || strings.ContainsAny(a, "/ @") {
		return fmt.Errorf("%q is not a host or host:port", a)
	}
	return nil
}

// ValidLocalityName reports whether s can name a region or a zone: lower-case letters, digits and
// '-', not starting with '-'.
func ValidLocalityName(s string) bool {
	return s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") == "" && s[0] != '-'
}

// Authorities records which service each authority belongs to, so that one authority
// never names two services. The zero value is not usable: make it with make().
type Authorities map[string]string

// Claim checks authority and records it for service; an authority already claimed by
// another (or the same) service is an error naming the owner.
func (a Authorities) Claim(service, authority string) error {
	if err := CheckAuthority(authority); err != nil {
		return err
	}
	host := AuthorityHost(authority)
	if other, dup := a[host]; dup {
		return fmt.Errorf("authority %q already belongs to service %q", host, other)
	}
	a[host] = service
	return nil
}
