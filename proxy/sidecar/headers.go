package sidecar

import (
	"net/http"
	"net/textproto"
	"strings"
)

// Response headers Geode sets.
const (
	headerRegion = "Geode-Region" // region that served the request
	headerReason = "Geode-Reason" // routing reason, in debug mode
	// headerUnprocessed is set by an inbound sidecar on a 503 when it could not reach
	// its app: nothing was processed, so the caller's sidecar may send the request to
	// another region whatever its method. It never reaches an app or a client.
	headerUnprocessed = "Geode-Unprocessed"
	// headerDegraded tells the app that a response does not carry a guarantee its
	// service declares: "read-your-writes" when the only region with the session's
	// writes could not serve and the read was answered with what the replica had.
	headerDegraded = "Geode-Degraded"
	// headerAcceptDegraded is sent by an outbound sidecar to a peer that answered 421
	// when the region the 421 named cannot be used: serve what you have, flagged.
	headerAcceptDegraded = "Geode-Accept-Degraded"
)

// The consistency package's header names in Go's canonical form: looking a header up
// by its canonical key does not allocate (a lower-case key is canonicalized, which does).
const (
	canonOp        = "Geode-Op"        // consistency.HeaderOp
	canonVersion   = "Geode-Version"   // consistency.HeaderVersion
	canonWatermark = "Geode-Watermark" // consistency.HeaderWatermark
	canonSession   = "Geode-Session"   // consistency.HeaderSession
	// canonReplicaLag is consistency.HeaderReplicaLag.
	canonReplicaLag = "Geode-Replica-Lag"
)

// isPeerOnlyHeader reports whether a response header is between sidecars only.
func isPeerOnlyHeader(k string) bool { return k == headerUnprocessed }

// hopHeaders are the hop-by-hop headers of RFC 9110 §7.6.1 (plus the de-facto
// Proxy-Connection): they describe one connection and are never forwarded.
var hopHeaders = [...]string{
	"Connection",
	"Proxy-Connection",
	"Keep-Alive",
	"Proxy-Authenticate",
	"Proxy-Authorization",
	"Te",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
}

// copyEndToEnd copies src into dst without hop-by-hop headers, without the headers that
// src's Connection header names, and without keys for which drop is true. It keeps
// "TE: trailers", which gRPC needs end to end. It returns how many keys it dropped for
// drop.
func copyEndToEnd(dst, src http.Header, drop func(key string) bool) (dropped int) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHop(k) || namedIn(conn, k) {
			continue
		}
		if drop != nil && drop(k) {
			dropped++
			continue
		}
		dst[k] = vv
	}
	for _, v := range src["Te"] {
		if strings.EqualFold(strings.TrimSpace(v), "trailers") {
			dst["Te"] = []string{"trailers"}
		}
	}
	return dropped
}

func isHop(k string) bool {
	for _, h := range hopHeaders {
		if k == h {
			return true
		}
	}
	return false
}

// namedIn reports whether key is listed in a Connection header's values.
func namedIn(connection []string, key string) bool {
	for _, v := range connection {
		for f := range strings.SplitSeq(v, ",") {
			if textproto.CanonicalMIMEHeaderKey(strings.TrimSpace(f)) == key {
				return true
			}
		}
	}
	return false
}

// isGeodeHeader reports whether a canonical header key is in Geode's geode-* namespace.
func isGeodeHeader(k string) bool {
	return len(k) >= 6 && strings.EqualFold(k[:6], "geode-")
}

// isGRPC reports whether r is a gRPC call.
func isGRPC(r *http.Request) bool {
	return r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc")
}
