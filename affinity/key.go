package affinity

import (
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// keyKind is where a KeySource finds the affinity key.
type keyKind uint8

const (
	keyNone keyKind = iota
	keyHeader
	keyGRPC
	keyCookie
	keyQuery
	keyPath
)

// keyTemplateSegment is the one path segment of a path template that holds the key.
const keyTemplateSegment = "{key}"

// keyTemplateRest is the optional last segment of a path template: any rest of the path.
const keyTemplateRest = "..."

// KeySource says where a request carries its affinity key, the value that names the data
// of the request (a user, a tenant). It is parsed from the text form used by the
// geode.io/affinity-key annotation:
//
//	header:X-User-Id            an HTTP header (name canonicalised: "x-user-id" is the same)
//	grpc:user-id                gRPC metadata, i.e. an HTTP/2 header; lower-case, not "-bin", not "grpc-"
//	cookie:uid                  a cookie
//	query:user                  a URL query parameter
//	path:/users/{key}           a path template: literal segments and exactly one {key} segment
//	path:/v1/tenants/{key}/...  ... as the last segment: any rest of the path, including none
//
// An empty value counts as absent: it names no data. A KeySource is immutable after
// ParseKeySource and safe for concurrent use; the zero value extracts nothing.
type KeySource struct {
	kind keyKind
	// name is the header name in canonical form (header, grpc), the cookie name, or the
	// query parameter name.
	name string
	// text is the source as written by String: the gRPC key lower-case, the header name
	// canonical, the path template as given.
	text string
	// segs are the path template's segments without the leading "/" and without a
	// trailing "..."; segs[keyIdx] is "{key}".
	segs   []string
	keyIdx int
	rest   bool
}

// ParseKeySource parses the text form of a key source (see KeySource). Errors name the
// part that is wrong.
func ParseKeySource(s string) (KeySource, error) {
	kind, arg, ok := strings.Cut(s, ":")
	if !ok {
		return KeySource{}, fmt.Errorf("affinity key %q: want <source>:<name>, source one of header, grpc, cookie, query, path", s)
	}
	if arg == "" {
		return KeySource{}, fmt.Errorf("affinity key %q: empty %s name", s, kind)
	}
	switch kind {
	case "header":
		if err := checkToken(arg); err != nil {
			return KeySource{}, fmt.Errorf("affinity key %q: header name %q: %w", s, arg, err)
		}
		name := textproto.CanonicalMIMEHeaderKey(arg)
		return KeySource{kind: keyHeader, name: name, text: "header:" + name}, nil
	case "grpc":
		key := strings.ToLower(arg)
		if err := checkGRPCKey(key); err != nil {
			return KeySource{}, fmt.Errorf("affinity key %q: gRPC metadata key %q: %w", s, arg, err)
		}
		return KeySource{kind: keyGRPC, name: textproto.CanonicalMIMEHeaderKey(key), text: "grpc:" + key}, nil
	case "cookie":
		if err := checkToken(arg); err != nil {
			return KeySource{}, fmt.Errorf("affinity key %q: cookie name %q: %w", s, arg, err)
		}
		return KeySource{kind: keyCookie, name: arg, text: s}, nil
	case "query":
		if i := strings.IndexAny(arg, "&=#;? \t"); i >= 0 {
			return KeySource{}, fmt.Errorf("affinity key %q: query parameter %q: character %q not allowed", s, arg, arg[i])
		}
		return KeySource{kind: keyQuery, name: arg, text: s}, nil
	case "path":
		k, err := parsePathTemplate(arg)
		if err != nil {
			return KeySource{}, fmt.Errorf("affinity key %q: path template %q: %w", s, arg, err)
		}
		k.text = s
		return k, nil
	default:
		return KeySource{}, fmt.Errorf("affinity key %q: unknown source %q, want header, grpc, cookie, query or path", s, kind)
	}
}

// parsePathTemplate parses "/a/{key}/b" or "/a/{key}/...".
func parsePathTemplate(t string) (KeySource, error) {
	if !strings.HasPrefix(t, "/") {
		return KeySource{}, fmt.Errorf("must start with \"/\"")
	}
	k := KeySource{kind: keyPath, keyIdx: -1}
	segs := strings.Split(t[1:], "/")
	for i, seg := range segs {
		switch {
		case seg == "":
			return KeySource{}, fmt.Errorf("segment %d is empty", i+1)
		case seg == keyTemplateRest:
			if i != len(segs)-1 {
				return KeySource{}, fmt.Errorf("segment %d: %q is only allowed as the last segment", i+1, keyTemplateRest)
			}
			k.rest = true
			continue
		case seg == keyTemplateSegment:
			if k.keyIdx >= 0 {
				return KeySource{}, fmt.Errorf("segment %d: second %s segment, want exactly one", i+1, keyTemplateSegment)
			}
			k.keyIdx = i
		case strings.ContainsAny(seg, "{}"):
			return KeySource{}, fmt.Errorf("segment %d %q: braces only as a whole %s segment", i+1, seg, keyTemplateSegment)
		}
		k.segs = append(k.segs, seg)
	}
	if k.keyIdx < 0 {
		return KeySource{}, fmt.Errorf("no %s segment", keyTemplateSegment)
	}
	return k, nil
}

// checkToken reports whether s is an RFC 9110 token (a valid header or cookie name).
func checkToken(s string) error {
	for i := range len(s) {
		c := s[i]
		if c >= 0x80 || !isTokenChar(c) {
			return fmt.Errorf("character %q at %d is not allowed in a token", c, i)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// checkGRPCKey checks a lower-case gRPC metadata key: [0-9a-z-_.], not binary ("-bin",
// whose values are base64 of bytes, not a key), not reserved ("grpc-"), not a pseudo-header.
func checkGRPCKey(key string) error {
	for i := range len(key) {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("character %q at %d is not allowed (want 0-9 a-z - _ .)", c, i)
		}
	}
	switch {
	case strings.HasSuffix(key, "-bin"):
		return fmt.Errorf("binary metadata (\"-bin\") cannot carry an affinity key")
	case strings.HasPrefix(key, "grpc-"):
		return fmt.Errorf("the \"grpc-\" prefix is reserved by gRPC")
	}
	return nil
}

// String returns the text form; ParseKeySource(k.String()) gives back an equal source.
// A header name is shown canonicalised and a gRPC key lower-case.
func (k *KeySource) String() string { return k.text }

// Extract returns the request's affinity key, or false when the request does not carry
// one (the source is absent or its value is empty).
//
// Header and grpc sources read the first value of the header from r.Header, which must
// hold canonical names (net/http's server guarantees it, also for HTTP/2 and gRPC). Path
// sources match r.URL.Path, which is already percent-decoded: "/users/caf%C3%A9" gives
// "café", and an encoded slash ("%2F") splits segments, so a key containing "/" cannot
// be carried in a path. Every literal segment must match exactly and, without a trailing
// "...", the path must have exactly as many segments as the template. The returned key
// is a substring of the request's path or header value. Header, grpc and path
// extraction do not allocate.
//
// Cookie and query sources allocate: they parse the Cookie header and the raw query.
func (k *KeySource) Extract(r *http.Request) (string, bool) {
	var v string
	switch k.kind {
	case keyHeader, keyGRPC:
		if vs := r.Header[k.name]; len(vs) > 0 {
			v = vs[0]
		}
	case keyPath:
		if r.URL != nil {
			v = k.matchPath(r.URL.Path)
		}
	case keyCookie:
		if c, err := r.Cookie(k.name); err == nil {
			v = c.Value
		}
	case keyQuery:
		if r.URL != nil {
			v = r.URL.Query().Get(k.name)
		}
	}
	return v, v != ""
}

// matchPath returns the key segment of p, or "" when p does not match the template.
func (k *KeySource) matchPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		return ""
	}
	var key, seg string
	rest, more := p[1:], true
	for i, want := range k.segs {
		if !more {
			return "" // the path is shorter than the template
		}
		seg, rest, more = strings.Cut(rest, "/")
		if i == k.keyIdx {
			key = seg
		} else if seg != want {
			return ""
		}
	}
	if more && !k.rest {
		return "" // the path is longer than the template
	}
	return key
}
