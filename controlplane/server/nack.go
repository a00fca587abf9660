package server

import (
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"

	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// nackHold is the snapshot cache as the xDS server sees it, but for one thing: a client
// that rejects (NACKs) the version in force is not sent that version again. A NACK
// carries the client's previous version, so go-control-plane's SnapshotCache would
// answer it with the current snapshot — the very version just rejected — and a client
// that cannot take it would be sent it in a loop. Held, the client keeps its last good
// state (it fails static) and gets the next snapshot when there is one; its NACK stays
// in /status for operators.
//
// The server ignores NACKs whose nonce is not the latest it sent on the stream, so a
// NACK that reaches the cache rejects the version in force for the client's region.
type nackHold struct {
	cache.Cache
	snapshots cache.SnapshotCache // where the version in force is read
	hash      cache.NodeHash
}

// CreateWatch implements cache.ConfigWatcher.
func (h nackHold) CreateWatch(req *cache.Request, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	if req.GetErrorDetail() != nil {
		if snap, err := h.snapshots.GetSnapshot(h.hash.ID(req.GetNode())); err == nil {
			held := proto.Clone(req).(*cache.Request)
			held.VersionInfo = snap.GetVersion(req.GetTypeUrl())
			req = held
		}
	}
	return h.Cache.CreateWatch(req, sub, ch)
}

// Kinds of xDS client, for the cache that serves them.
const (
	kindADS       = "ads"       // Envoy and geode sidecars
	kindProxyless = "proxyless" // gRPC libraries, which name only their own resources
)

// clientKind tells a proxyless gRPC client ("gRPC Go", "gRPC Java", …, in its node's
// user agent) from the others.
func clientKind(n *corev3.Node) string {
	if strings.HasPrefix(n.GetUserAgentName(), "gRPC") {
		return kindProxyless
	}
	return kindADS
}
