package consistency

import (
	"net/http"
	"net/url"
	"strings"
)

// Carrier says where a request carried its session token.
type Carrier uint8

// Token carriers, in the order FromRequest looks at them.
const (
	CarrierNone    Carrier = iota // no token
	CarrierHeader                 // the geode-session header
	CarrierCookie                 // a cookie named geode-session
	CarrierBaggage                // a W3C baggage member geode-session
)

// String returns "none", "header", "cookie" or "baggage" (a bounded metric label).
func (c Carrier) String() string {
	switch c {
	case CarrierHeader:
		return "header"
	case CarrierCookie:
		return "cookie"
	case CarrierBaggage:
		return "baggage"
	}
	return "none"
}

// Canonical header keys, so lookups index the map directly without canonicalising.
const (
	canonicalSession = "Geode-Session"
	canonicalCookie  = "Cookie"
	canonicalBaggage = "Baggage"
)

// FromRequest finds the session token of a request: the geode-session header, else a
// cookie named geode-session, else the geode-session member of the W3C baggage header
// (percent-decoded). h must use canonical keys, as net/http's headers do. It returns
// the token unverified (see KeyRing.Verify) and where it was found; it allocates only
// to percent-decode a baggage value that needs it.
func FromRequest(h http.Header) (token string, carrier Carrier) {
	for _, v := range h[canonicalSession] {
		if v = strings.TrimSpace(v); v != "" {
			return v, CarrierHeader
		}
	}
	for _, line := range h[canonicalCookie] {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			name, val, ok := strings.Cut(strings.TrimSpace(part), "=")
			if !ok || name != HeaderSession {
				continue
			}
			if len(val) >= 2 && val[0] == '"' && val[len(val)-1] == '"' {
				val = val[1 : len(val)-1]
			}
			if val != "" {
				return val, CarrierCookie
			}
		}
	}
	for _, line := range h[canonicalBaggage] {
		for line != "" {
			var member string
			member, line, _ = strings.Cut(line, ",")
			member, _, _ = strings.Cut(member, ";") // drop properties
			key, val, ok := strings.Cut(member, "=")
			if !ok || strings.TrimSpace(key) != HeaderSession {
				continue
			}
			val = strings.TrimSpace(val)
			if strings.IndexByte(val, '%') >= 0 {
				dec, err := url.PathUnescape(val)
				if err != nil {
					continue
				}
				val = dec
			}
			if val != "" {
				return val, CarrierBaggage
			}
		}
	}
	return "", CarrierNone
}
