package server

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/geodemesh/geode/controlplane/identity"
)

// RegionMetadataKey is the node metadata field a client may use to name its region
// when it does not set node.locality.region.
const RegionMetadataKey = "geode.region"

// NodeRegion returns the region a node claims: node.locality.region, or the string
// metadata field RegionMetadataKey. It is an error when neither is set, or both are and
// they differ.
func NodeRegion(node *corev3.Node) (string, error) {
	loc := node.GetLocality().GetRegion()
	meta := node.GetMetadata().GetFields()[RegionMetadataKey].GetStringValue()
	switch {
	case loc == "" && meta == "":
		return "", fmt.Errorf("node %q has no region: set node.locality.region (or metadata %q)", node.GetId(), RegionMetadataKey)
	case loc != "" && meta != "" && loc != meta:
		return "", fmt.Errorf("node %q: locality.region %q and metadata %s %q differ", node.GetId(), loc, RegionMetadataKey, meta)
	case loc != "":
		return loc, nil
	default:
		return meta, nil
	}
}

// regionHash keys the snapshot cache by region. Nodes without a valid region never
// reach the cache: the callbacks refuse them first.
type regionHash struct{}

func (regionHash) ID(node *corev3.Node) string {
	r, _ := NodeRegion(node)
	return r
}

// ClientStatus is one connected xDS stream, as /status shows it.
type ClientStatus struct {
	Stream      int64     `json:"stream"`
	Protocol    string    `json:"protocol"` // sotw or delta
	NodeID      string    `json:"node_id"`
	Region      string    `json:"region"`
	ConnectedAt time.Time `json:"connected_at"`
	// Identity is the SPIFFE ID of the client's certificate; empty without mTLS.
	Identity string `json:"identity,omitempty"`
	// Registered is the endpoint the stream registers, "service@address" (registry.go).
	Registered string `json:"registered,omitempty"`
	// Acked maps a type URL to the last version the client ACKed.
	Acked map[string]string `json:"acked"`
	// Sent maps a type URL to the last version sent.
	Sent     map[string]string `json:"sent"`
	LastNACK *NACK             `json:"last_nack,omitempty"`
	NACKs    int               `json:"nacks"`
}

// NACK is a rejected update.
type NACK struct {
	TypeURL string    `json:"type_url"`
	Version string    `json:"version"`
	Error   string    `json:"error"`
	At      time.Time `json:"at"`
}

// Status is the control plane's view of its clients.
type Status struct {
	Clients []ClientStatus `json:"clients"`
	// Refused counts streams refused for a missing or unknown region, for a node id or
	// region that differs from the client's certificate, or for a registration refused
	// (Registrations.RefusedByReason says why).
	Refused int64 `json:"refused"`
	// NACKs counts rejected updates over all clients.
	NACKs int64 `json:"nacks"`
	// SlowDisconnected counts streams ended because a response waited longer than
	// Options.SendTimeout for the client to read (stall.go).
	SlowDisconnected int64 `json:"slow_disconnected"`
	// LoadReports are the sidecars' region outcome reports over LRS.
	LoadReports LoadReports `json:"load_reports"`
	// Registrations are the endpoints sidecars registered through node metadata.
	Registrations RegistrationStatus `json:"registrations"`
}

type sent struct{ nonce, version string }

type client struct {
	ClientStatus
	lastSent map[string]sent // type URL → last response
	nodeSeen bool
	peer     peerIdentity
}

// peerIdentity is what a stream's TLS peer proved: nothing without TLS (--insecure),
// or the identity of its certificate (or why it names none).
type peerIdentity struct {
	tls bool
	id  identity.ID
	err error
}

func peerOf(ctx context.Context) peerIdentity {
	id, ok, err := identity.FromContext(ctx)
	return peerIdentity{tls: ok, id: id, err: err}
}

// clients tracks streams through go-control-plane's callbacks.
type clients struct {
	log     *slog.Logger
	regions func(string) bool // whether a region is known
	reg     *registry         // nil: node metadata registers nothing

	mu sync.Mutex
	// streams is keyed by protocol and id: go-control-plane numbers state-of-the-world
	// and delta streams separately, both from 1.
	streams map[streamKey]*client
	refused int64
	nacks   int64
}

// streamKey names one stream.
type streamKey struct {
	delta bool
	id    int64
}

func sotw(id int64) streamKey  { return streamKey{id: id} }
func delta(id int64) streamKey { return streamKey{delta: true, id: id} }

func newClients(log *slog.Logger, known func(string) bool) *clients {
	return &clients{log: log, regions: known, streams: map[streamKey]*client{}}
}

func (c *clients) callbacks() xdsserver.Callbacks {
	return xdsserver.CallbackFuncs{
		StreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			c.open(sotw(id), peerOf(ctx))
			return nil
		},
		StreamClosedFunc: func(id int64, _ *corev3.Node) { c.close(sotw(id)) },
		DeltaStreamOpenFunc: func(ctx context.Context, id int64, _ string) error {
			c.open(delta(id), peerOf(ctx))
			return nil
		},
		DeltaStreamClosedFunc: func(id int64, _ *corev3.Node) { c.close(delta(id)) },
		StreamRequestFunc: func(id int64, req *discoveryv3.DiscoveryRequest) error {
			return c.request(sotw(id), req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), req.GetVersionInfo(), req.GetErrorDetail())
		},
		StreamResponseFunc: func(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
			c.response(sotw(id), resp.GetTypeUrl(), resp.GetNonce(), resp.GetVersionInfo())
		},
		StreamDeltaRequestFunc: func(id int64, req *discoveryv3.DeltaDiscoveryRequest) error {
			// Delta requests carry no version: the ACKed version is the one sent with
			// the nonce they answer.
			return c.request(delta(id), req.GetNode(), req.GetTypeUrl(), req.GetResponseNonce(), "", req.GetErrorDetail())
		},
		StreamDeltaResponseFunc: func(id int64, _ *discoveryv3.DeltaDiscoveryRequest, resp *discoveryv3.DeltaDiscoveryResponse) {
			c.response(delta(id), resp.GetTypeUrl(), resp.GetNonce(), resp.GetSystemVersionInfo())
		},
		FetchRequestFunc: func(ctx context.Context, req *discoveryv3.DiscoveryRequest) error {
			if err := c.checkNode(req.GetNode()); err != nil {
				return err
			}
			return c.checkIdentity(req.GetNode(), peerOf(ctx))
		},
	}
}

func (c *clients) open(k streamKey, p peerIdentity) {
	proto := "sotw"
	if k.delta {
		proto = "delta"
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.streams[k] = &client{
		ClientStatus: ClientStatus{Stream: k.id, Protocol: proto, ConnectedAt: time.Now(), Acked: map[string]string{}, Sent: map[string]string{}},
		lastSent:     map[string]sent{},
		peer:         p,
	}
	if p.err == nil {
		c.streams[k].Identity = p.id.String()
	}
}

func (c *clients) close(k streamKey) {
	c.mu.Lock()
	delete(c.streams, k)
	c.mu.Unlock()
	if c.reg != nil {
		c.reg.detach(refOf(k))
	}
}

// checkNode refuses a node whose region is missing or unknown.
func (c *clients) checkNode(node *corev3.Node) error {
	region, err := NodeRegion(node)
	if err == nil && !c.regions(region) {
		err = fmt.Errorf("node %q: unknown region %q", node.GetId(), region)
	}
	if err != nil {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		c.log.Warn("xds client refused", "node", node.GetId(), "err", err)
		return status.Error(codes.InvalidArgument, "geode control plane: "+err.Error())
	}
	return nil
}

// checkIdentity binds a node's claims to its certificate: over mTLS, node.id and the
// region must be the ones its SPIFFE ID names. Without TLS (--insecure) there is
// nothing to bind to.
func (c *clients) checkIdentity(node *corev3.Node, p peerIdentity) error {
	if !p.tls {
		return nil
	}
	region, _ := NodeRegion(node) // checkNode has passed
	var err error
	switch {
	case p.err != nil:
		err = fmt.Errorf("node %q: client certificate: %v", node.GetId(), p.err)
	case p.id.Kind != identity.Node:
		err = fmt.Errorf("node %q: client certificate %s does not name a node", node.GetId(), p.id)
	case node.GetId() != p.id.NodeID && region != p.id.Region:
		err = fmt.Errorf("node %q in region %q does not match its certificate %s (node %q, region %q)", node.GetId(), region, p.id, p.id.NodeID, p.id.Region)
	case node.GetId() != p.id.NodeID:
		err = fmt.Errorf("node %q does not match its certificate %s (node %q)", node.GetId(), p.id, p.id.NodeID)
	case region != p.id.Region:
		err = fmt.Errorf("node %q claims region %q but its certificate %s is for region %q", node.GetId(), region, p.id, p.id.Region)
	}
	if err != nil {
		c.mu.Lock()
		c.refused++
		c.mu.Unlock()
		c.log.Warn("xds client refused", "node", node.GetId(), "region", region, "identity", p.id.String(), "err", err)
		return status.Error(codes.PermissionDenied, "geode control plane: "+err.Error())
	}
	return nil
}

func (c *clients) request(k streamKey, node *corev3.Node, typeURL, nonce, version string, nack *rpcstatus.Status) error {
	c.mu.Lock()
	cl := c.streams[k]
	first := cl != nil && !cl.nodeSeen
	c.mu.Unlock()
	if cl == nil {
		return status.Error(codes.Internal, "geode control plane: request on an unknown stream")
	}
	if first {
		if err := c.checkNode(node); err != nil {
			return err
		}
		if err := c.checkIdentity(node, cl.peer); err != nil {
			return err
		}
	}
	var registered string
	if first && c.reg != nil {
		var err error
		if registered, err = c.reg.attach(refOf(k), node, cl.peer); err != nil {
			c.countRefused()
			return err
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if first {
		cl.nodeSeen = true
		cl.Registered = registered
		cl.NodeID = node.GetId()
		cl.Region, _ = NodeRegion(node)
	}
	if nonce == "" {
		return nil // a subscription, not an answer
	}
	last := cl.lastSent[typeURL]
	if version == "" && last.nonce == nonce {
		version = last.version
	}
	if nack != nil {
		rejected := last.version
		if last.nonce != nonce {
			rejected = ""
		}
		cl.LastNACK = &NACK{TypeURL: typeURL, Version: rejected, Error: nack.GetMessage(), At: time.Now()}
		cl.NACKs++
		c.nacks++
		c.log.Warn("xds update rejected", "node", cl.NodeID, "region", cl.Region, "type", typeURL, "version", rejected, "error", nack.GetMessage())
		return nil
	}
	if version != "" {
		cl.Acked[typeURL] = version
	}
	return nil
}

func (c *clients) response(k streamKey, typeURL, nonce, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl := c.streams[k]; cl != nil {
		cl.lastSent[typeURL] = sent{nonce: nonce, version: version}
		cl.Sent[typeURL] = version
	}
}

func (c *clients) status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := Status{Refused: c.refused, NACKs: c.nacks, Clients: []ClientStatus{}}
	for _, cl := range c.streams {
		cs := cl.ClientStatus
		cs.Acked = clone(cs.Acked)
		cs.Sent = clone(cs.Sent)
		if cs.LastNACK != nil {
			n := *cs.LastNACK
			cs.LastNACK = &n
		}
		st.Clients = append(st.Clients, cs)
	}
	slices.SortFunc(st.Clients, func(a, b ClientStatus) int {
		return cmp.Or(cmp.Compare(a.NodeID, b.NodeID), cmp.Compare(a.Stream, b.Stream))
	})
	return st
}

func clone(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (c *clients) countRefused() {
	c.mu.Lock()
	c.refused++
	c.mu.Unlock()
}
