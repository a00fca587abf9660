package consistency

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Op is the class of an operation for routing: reads may be served near the caller,
// writes go to the data's home region.
type Op uint8

// Operation classes. The zero Op is invalid, so a forgotten classification is visible.
const (
	OpRead  Op = 1
	OpWrite Op = 2
)

// HeaderOp is the request header with which the local app may override the
// classification of one request ("read" or "write"). The sidecar accepts it only
// from the local app (outbound listener) and strips it from anything else; this
// package only parses it (ParseOp).
const HeaderOp = "geode-op"

// String returns "read" or "write".
func (o Op) String() string {
	switch o {
	case OpRead:
		return "read"
	case OpWrite:
		return "write"
	}
	return fmt.Sprintf("Op(%d)", uint8(o))
}

// ParseOp parses "read" or "write" (surrounding spaces ignored, case-sensitive).
func ParseOp(s string) (Op, error) {
	switch strings.TrimSpace(s) {
	case "read":
		return OpRead, nil
	case "write":
		return OpWrite, nil
	}
	return 0, fmt.Errorf("op %q: want read or write", s)
}

// RouteRule classifies HTTP requests whose path starts with PathPrefix (a plain
// string prefix, as in Envoy's prefix match) and, if Method is set, whose method is
// Method.
type RouteRule struct {
	// PathPrefix must start with "/".
	PathPrefix string
	// Method is an HTTP method such as "GET" (upper-cased by NewClassifier); "" = any.
	Method string
	// Op is the class of matching requests.
	Op Op
}

// Classifier tells reads from writes for one service. It is immutable after
// NewClassifier and safe for concurrent use; Classify does not allocate.
//
// HTTP requests: the rule with the longest matching PathPrefix wins; between rules of
// the same prefix, one naming the request's method beats an any-method rule. With no
// matching rule, GET, HEAD, OPTIONS and TRACE are reads and every other method is a
// write.
//
// gRPC calls: the method is looked up in the read and write lists. A method listed in
// neither is a write: the safe default, since a write served by the home region is
// correct (only slower), while a write treated as a read may land on a replica that
// does not own the data.
type Classifier struct {
	rules []RouteRule // longest prefix first; a method rule before the any-method rule
	grpc  map[string]Op
}

// NewClassifier validates rules and gRPC method names and builds a Classifier.
// gRPC methods are written "/pkg.Service/Method"; the leading slash is optional.
// Errors name the offending rule index or method.
func NewClassifier(rules []RouteRule, grpcReads, grpcWrites []string) (*Classifier, error) {
	c := &Classifier{rules: make([]RouteRule, 0, len(rules)), grpc: make(map[string]Op, len(grpcReads)+len(grpcWrites))}
	type key struct{ prefix, method string }
	seen := make(map[key]int, len(rules))
	for i, r := range rules {
		switch {
		case r.PathPrefix == "":
			return nil, fmt.Errorf("route rule %d: empty path prefix", i)
		case r.PathPrefix[0] != '/':
			return nil, fmt.Errorf("route rule %d: path prefix %q must start with /", i, r.PathPrefix)
		case r.Method != "" && !isToken(r.Method):
			return nil, fmt.Errorf("route rule %d: bad HTTP method %q", i, r.Method)
		case r.Op != OpRead && r.Op != OpWrite:
			return nil, fmt.Errorf("route rule %d: op must be read or write, got %s", i, r.Op)
		}
		r.Method = strings.ToUpper(r.Method)
		k := key{r.PathPrefix, r.Method}
		if j, dup := seen[k]; dup {
			return nil, fmt.Errorf("route rule %d: same prefix %q and method %q as rule %d", i, r.PathPrefix, r.Method, j)
		}
		seen[k] = i
		c.rules = append(c.rules, r)
	}
	slices.SortStableFunc(c.rules, func(a, b RouteRule) int {
		if n := cmp.Compare(len(b.PathPrefix), len(a.PathPrefix)); n != 0 {
			return n
		}
		return boolRank(b.Method != "") - boolRank(a.Method != "") // method rules first
	})
	for _, list := range []struct {
		names []string
		op    Op
	}{{grpcReads, OpRead}, {grpcWrites, OpWrite}} {
		for _, name := range list.names {
			m, err := normaliseGRPCMethod(name)
			if err != nil {
				return nil, err
			}
			if prev, ok := c.grpc[m]; ok && prev != list.op {
				return nil, fmt.Errorf("gRPC method %s is listed as both read and write", m)
			}
			c.grpc[m] = list.op
		}
	}
	return c, nil
}

// Classify returns the class of a request. For gRPC, path is the call's
// "/pkg.Service/Method"; for HTTP it is the URL path (no query). A nil Classifier
// classifies HTTP by method and every gRPC call as a write.
func (c *Classifier) Classify(method, path string, grpc bool) Op {
	if grpc {
		if c != nil {
			if op, ok := c.grpc[path]; ok {
				return op
			}
		}
		return OpWrite
	}
	if c != nil {
		for i := range c.rules {
			r := &c.rules[i]
			if (r.Method == "" || r.Method == method) && strings.HasPrefix(path, r.PathPrefix) {
				return r.Op
			}
		}
	}
	switch method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return OpRead
	}
	return OpWrite
}

// normaliseGRPCMethod turns "pkg.Service/Method" or "/pkg.Service/Method" into the
// latter, rejecting anything else.
func normaliseGRPCMethod(name string) (string, error) {
	s := strings.TrimPrefix(name, "/")
	svc, m, ok := strings.Cut(s, "/")
	if !ok || svc == "" || m == "" || strings.Contains(m, "/") || strings.ContainsAny(s, " \t") {
		return "", fmt.Errorf("gRPC method %q: want /pkg.Service/Method", name)
	}
	return "/" + s, nil
}

// isToken reports whether s is an RFC 9110 token (the syntax of an HTTP method).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}
