package server

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/controlplane/model"
)

// Sidecar registration: a sidecar names its service and the address of its inbound
// listener in its xDS node metadata (api.NodeServiceKey, api.NodeAddressKey), and the
// control plane serves that address as an endpoint of the service in the node's region
// (zone: node.locality.zone) for as long as one of the node's streams carrying it
// lives. See doc.go for the rules; this file owns them.

// Defaults of the registration options.
const (
	// DefaultMaxRegistrations caps the registered endpoints of one control plane when
	// Options.MaxRegistrations is zero.
	DefaultMaxRegistrations = 10000
	// DefaultRegistrationDelay is how long registration changes are gathered before
	// one republish when Options.RegistrationDelay is zero.
	DefaultRegistrationDelay = 100 * time.Millisecond
)

// The churn limit of one node: a token bucket of registrationBurst attempts, refilled
// by one every registrationRefill. A sidecar's connection costs two (ADS and LRS), so a
// sidecar can reconnect five times at once and then once every two seconds; a node
// that opens and closes streams in a loop is refused with ResourceExhausted and cannot
// make the control plane republish more often than that.
const (
	registrationBurst  = 10
	registrationRefill = time.Second
)

// maxAddressLen bounds geode.address: a DNS name (253) and a port, with room for
// brackets.
const maxAddressLen = 262

// Reasons a registration is refused: the keys of RegistrationStatus.RefusedByReason.
const (
	RefusedUnknownMetadata = "unknown_metadata" // a geode.* key that is not one of api.Node*Key
	RefusedBadMetadata     = "bad_metadata"     // geode.service or geode.address not a string
	RefusedIncomplete      = "incomplete"       // geode.service without geode.address, or the reverse
	RefusedNoNodeID        = "no_node_id"       // registration without node.id
	RefusedBadAddress      = "bad_address"      // geode.address not a reachable host:port
	RefusedBadZone         = "bad_zone"         // node.locality.zone not a valid zone name
	RefusedUnknownService  = "unknown_service"  // geode.service not a service of the model
	RefusedConflict        = "conflict"         // the node already registers something else
	RefusedRateLimited     = "rate_limited"     // the node's churn limit
	RefusedCapacity        = "capacity"         // Options.MaxRegistrations reached
)

// RegistrationStatus is the registrations' part of Status.
type RegistrationStatus struct {
	// Active is the number of registered endpoints (one per node); Max caps it.
	Active int `json:"active"`
	Max    int `json:"max"`
	// Registered and Deregistered count registrations made and ended since start.
	Registered   int64 `json:"registered"`
	Deregistered int64 `json:"deregistered"`
	// Refused counts refused registrations (each also refused its stream), and
	// RefusedByReason by reason (the Refused* constants).
	Refused         int64            `json:"refused"`
	RefusedByReason map[string]int64 `json:"refused_by_reason"`
	// Publishes counts republishes for registration changes: changes arriving within
	// Options.RegistrationDelay of each other share one.
	Publishes int64 `json:"publishes"`
}

// RegistrationDump is one registration in a ConfigDump.
type RegistrationDump struct {
	NodeID string `json:"node_id"`
	// Identity is the SPIFFE ID of the node's certificate; empty without mTLS.
	Identity string    `json:"identity,omitempty"`
	Service  string    `json:"service"`
	Region   string    `json:"region"`
	Zone     string    `json:"zone,omitempty"`
	Address  string    `json:"address"`
	Since    time.Time `json:"since"`
	// Streams is the number of the node's streams carrying the registration; it ends
	// with the last of them.
	Streams int `json:"streams"`
	// Served: "registered" (served from this registration), "manifest" (the manifests
	// list the address already), or why it is not served: "service not in model",
	// "region not in model" (after a manifest reload removed it).
	Served string `json:"served"`
}

// streamRef names a stream that may carry a registration: ADS (SotW or delta) or LRS.
type streamRef struct {
	kind uint8
	id   int64
}

const (
	refSotW uint8 = iota
	refDelta
	refLRS
)

func refOf(k streamKey) streamRef {
	if k.delta {
		return streamRef{kind: refDelta, id: k.id}
	}
	return streamRef{kind: refSotW, id: k.id}
}

// registration is one node's registered endpoint.
type registration struct {
	nodeID, identity, service, region, zone, address string
	since                                            time.Time
	streams                                          map[streamRef]struct{}
}

func (r *registration) same(o *registration) bool {
	return r.service == o.service && r.region == o.region && r.zone == o.zone && r.address == o.address
}

// refusal is a refused registration: a gRPC status code and a counted reason.
type refusal struct {
	reason string
	code   codes.Code
	err    error
}

func (r *refusal) Error() string { return r.err.Error() }

func refuse(reason string, code codes.Code, format string, args ...any) *refusal {
	return &refusal{reason: reason, code: code, err: fmt.Errorf(format, args...)}
}

// registry holds the registrations. Its methods are safe for concurrent use; they are
// called from the xDS callbacks, so they never take Server.mu.
type registry struct {
	log     *slog.Logger
	model   func() *model.Model // the published model: which services exist
	max     int
	delay   time.Duration
	now     func() time.Time
	changed chan struct{} // holds one token while a change waits to be published
	lrsIDs  atomic.Int64
	publish atomic.Int64

	mu      sync.Mutex
	nodes   map[string]*registration // node id →
	streams map[streamRef]string     // stream → node id
	buckets map[string]*rate.Limiter // node id → its churn limit
	refused map[string]int64
	total   int64
	made    int64
	ended   int64
}

func newRegistry(log *slog.Logger, m func() *model.Model, max int, delay time.Duration) (*registry, error) {
	switch {
	case max == 0:
		max = DefaultMaxRegistrations
	case max < 0:
		return nil, fmt.Errorf("server: Options.MaxRegistrations %d is negative", max)
	}
	switch {
	case delay == 0:
		delay = DefaultRegistrationDelay
	case delay < 0 || delay > time.Minute:
		return nil, fmt.Errorf("server: Options.RegistrationDelay %s is not in (0, 1m]", delay)
	}
	return &registry{
		log: log, model: m, max: max, delay: delay, now: time.Now,
		changed: make(chan struct{}, 1),
		nodes:   map[string]*registration{}, streams: map[streamRef]string{},
		buckets: map[string]*rate.Limiter{}, refused: map[string]int64{},
	}, nil
}

// attach checks a stream's node metadata and, when it registers an endpoint, adds the
// stream to the node's registration (making it if need be) and returns it as
// "service@address". A refusal is a gRPC status naming the field, counted by reason
// and logged; nothing else changes.
func (r *registry) attach(ref streamRef, node *corev3.Node, p peerIdentity) (string, error) {
	reg, rf := r.parse(node, p)
	if rf == nil && reg != nil {
		rf = r.add(ref, reg)
	}
	if rf == nil {
		if reg == nil {
			return "", nil
		}
		return reg.service + "@" + reg.address, nil
	}
	r.mu.Lock()
	r.refused[rf.reason]++
	r.total++
	r.mu.Unlock()
	r.log.Warn("xds registration refused", "node", node.GetId(), "reason", rf.reason, "err", rf.err)
	return "", status.Error(rf.code, "geode control plane: "+rf.err.Error())
}

// parse reads the registration a node's metadata asks for: nil when it asks for none.
func (r *registry) parse(node *corev3.Node, p peerIdentity) (*registration, *refusal) {
	id := node.GetId()
	fields := node.GetMetadata().GetFields()
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if strings.HasPrefix(k, "geode.") && k != api.NodeRegionKey && k != api.NodeServiceKey && k != api.NodeAddressKey {
			return nil, refuse(RefusedUnknownMetadata, codes.InvalidArgument,
				"node %q: unknown node metadata %q: the geode.* keys are %s, %s and %s", id, k, api.NodeRegionKey, api.NodeServiceKey, api.NodeAddressKey)
		}
	}
	sv, hasService := fields[api.NodeServiceKey]
	av, hasAddress := fields[api.NodeAddressKey]
	if !hasService && !hasAddress {
		return nil, nil
	}
	for key, v := range map[string]*structpb.Value{api.NodeServiceKey: sv, api.NodeAddressKey: av} {
		if _, ok := v.GetKind().(*structpb.Value_StringValue); v != nil && !ok {
			return nil, refuse(RefusedBadMetadata, codes.InvalidArgument, "node %q: metadata %s must be a string", id, key)
		}
	}
	service, address := sv.GetStringValue(), av.GetStringValue()
	switch {
	case service == "":
		return nil, refuse(RefusedIncomplete, codes.InvalidArgument,
			"node %q: metadata %s %q needs %s (the service it serves) to register", id, api.NodeAddressKey, address, api.NodeServiceKey)
	case address == "":
		return nil, refuse(RefusedIncomplete, codes.InvalidArgument,
			"node %q: metadata %s %q needs %s (host:port of its inbound listener) to register", id, api.NodeServiceKey, service, api.NodeAddressKey)
	case id == "":
		return nil, refuse(RefusedNoNodeID, codes.InvalidArgument, "metadata %s: registering needs node.id", api.NodeServiceKey)
	}
	if err := checkAdvertised(address); err != nil {
		return nil, refuse(RefusedBadAddress, codes.InvalidArgument, "node %q: metadata %s: %v", id, api.NodeAddressKey, err)
	}
	zone := node.GetLocality().GetZone()
	if zone != "" && !api.ValidLocalityName(zone) {
		return nil, refuse(RefusedBadZone, codes.InvalidArgument, "node %q: locality.zone %q must be lower-case letters, digits and '-' to register", id, zone)
	}
	if m := r.model(); m == nil || !m.HasService(service) {
		return nil, refuse(RefusedUnknownService, codes.InvalidArgument,
			"node %q: metadata %s: unknown service %q: a service (and its policy) is declared in the manifests before its sidecars register", id, api.NodeServiceKey, service)
	}
	region, _ := NodeRegion(node) // checkNode has passed
	reg := &registration{nodeID: id, service: service, region: region, zone: zone, address: address}
	if p.tls && p.err == nil {
		reg.identity = p.id.String()
	}
	return reg, nil
}

// checkAdvertised reports why a cannot be dialled from other regions: not host:port, a
// bad port, a host that is not an IP address or a DNS name, or an unspecified address.
func checkAdvertised(a string) error {
	if len(a) > maxAddressLen {
		return fmt.Errorf("%q is longer than %d bytes", a[:32]+"...", maxAddressLen)
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not host:port", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("%q: port must be a number in [1,65535]", a)
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsUnspecified() {
			return fmt.Errorf("%q: host %s is unspecified: give an address other regions can reach", a, host)
		}
		return nil
	}
	if strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") != "" || host[0] == '-' || host[0] == '.' {
		return fmt.Errorf("%q: host %q is neither an IP address nor a DNS name", a, host)
	}
	return nil
}

// add applies the limits and adds ref to reg's node's registration.
func (r *registry) add(ref streamRef, reg *registration) *refusal {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.takeLocked(reg.nodeID, now) {
		return refuse(RefusedRateLimited, codes.ResourceExhausted,
			"node %q: registering too often: at most %d registering streams at once, then one every %s", reg.nodeID, registrationBurst, registrationRefill)
	}
	cur, ok := r.nodes[reg.nodeID]
	switch {
	case ok && !cur.same(reg):
		return refuse(RefusedConflict, codes.ResourceExhausted,
			"node %q: already registers %s for service %q in %s (since %s): one endpoint per node; it ends with the node's last stream carrying it",
			reg.nodeID, cur.address, cur.service, cur.region, cur.since.UTC().Format(time.RFC3339))
	case ok:
		cur.streams[ref] = struct{}{}
		r.streams[ref] = reg.nodeID
		return nil
	case len(r.nodes) >= r.max:
		return refuse(RefusedCapacity, codes.ResourceExhausted,
			"node %q: this control plane holds %d registered endpoints, its limit (--max-registrations)", reg.nodeID, r.max)
	}
	reg.since = now
	reg.streams = map[streamRef]struct{}{ref: {}}
	r.nodes[reg.nodeID] = reg
	r.streams[ref] = reg.nodeID
	r.made++
	r.signal()
	r.log.Info("endpoint registered", "node", reg.nodeID, "service", reg.service, "region", reg.region, "zone", reg.zone, "address", reg.address)
	return nil
}

// takeLocked takes one token of node's churn limit. Full buckets of nodes without a
// registration are forgotten when the map grows past twice the registration cap, so
// distinct node ids cannot grow it without bound either.
func (r *registry) takeLocked(node string, now time.Time) bool {
	b, ok := r.buckets[node]
	if !ok {
		if len(r.buckets) >= 2*r.max+1024 {
			for n, x := range r.buckets {
				if _, live := r.nodes[n]; !live && x.TokensAt(now) >= registrationBurst {
					delete(r.buckets, n)
				}
			}
			if len(r.buckets) >= 2*r.max+1024 {
				return false
			}
		}
		b = rate.NewLimiter(rate.Every(registrationRefill), registrationBurst)
		r.buckets[node] = b
	}
	return b.AllowN(now, 1)
}

// detach removes a closed stream; the registration ends with its last stream.
func (r *registry) detach(ref streamRef) {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.streams[ref]
	if !ok {
		return
	}
	delete(r.streams, ref)
	reg := r.nodes[id]
	delete(reg.streams, ref)
	if len(reg.streams) > 0 {
		return
	}
	delete(r.nodes, id)
	r.ended++
	r.signal()
	r.log.Info("endpoint deregistered", "node", id, "service", reg.service, "region", reg.region, "address", reg.address, "held", r.now().Sub(reg.since).Round(time.Millisecond))
}

func (r *registry) signal() {
	select {
	case r.changed <- struct{}{}:
	default: // a change is already waiting: its publish will include this one
	}
}

// endpoints returns the registered endpoints sorted by service, region and address, so
// that the model's version does not depend on the order sidecars came in.
func (r *registry) endpoints() []model.RegionalEndpoint {
	r.mu.Lock()
	out := make([]model.RegionalEndpoint, 0, len(r.nodes))
	for _, reg := range r.nodes {
		out = append(out, model.RegionalEndpoint{Service: reg.service, Region: reg.region,
			Endpoint: model.Endpoint{Address: reg.address, Zone: reg.zone}})
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b model.RegionalEndpoint) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Region, b.Region), cmp.Compare(a.Address, b.Address), cmp.Compare(a.Zone, b.Zone))
	})
	return out
}

func (r *registry) status() RegistrationStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	return RegistrationStatus{
		Active: len(r.nodes), Max: r.max, Registered: r.made, Deregistered: r.ended,
		Refused: r.total, RefusedByReason: maps.Clone(r.refused), Publishes: r.publish.Load(),
	}
}

// dump lists the registrations by node id; base is the manifests' model.
func (r *registry) dump(base *model.Model) []RegistrationDump {
	r.mu.Lock()
	defer r.mu.Unlock()
	var svcs map[string]model.Service
	out := make([]RegistrationDump, 0, len(r.nodes))
	for _, reg := range r.nodes {
		d := RegistrationDump{NodeID: reg.nodeID, Identity: reg.identity, Service: reg.service, Region: reg.region,
			Zone: reg.zone, Address: reg.address, Since: reg.since, Streams: len(reg.streams), Served: "registered"}
		_, known := base.Region(reg.region)
		switch {
		case !base.HasService(reg.service):
			d.Served = "service not in model"
		case !known:
			d.Served = "region not in model"
		default:
			if svcs == nil {
				svcs = map[string]model.Service{}
				for _, s := range base.Services() {
					svcs[s.Name] = s
				}
			}
			if slices.ContainsFunc(svcs[reg.service].Endpoints[reg.region], func(e model.Endpoint) bool { return e.Address == reg.address }) {
				d.Served = "manifest"
			}
		}
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b RegistrationDump) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// withRegistrations is base with the registered endpoints: this control plane's own
// registrations, then those its peers' summaries carry for their regions. Both are
// checked before they are accepted, so this does not fail; if it did, they are left out
// and logged rather than stop a manifest reload or a region-state change. s.mu is held.
func (s *Server) withRegistrations(base *model.Model) *model.Model {
	m, err := base.WithEndpoints(append(s.registry.endpoints(), s.peerEndpointsLocked()...))
	if err != nil {
		s.log.Error("registered endpoints left out", "err", err)
		return base
	}
	return m
}

// runRegistrations republishes when registrations change, at most once per
// RegistrationDelay: the first change waits that long for others (a fleet of sidecars
// connecting at once), then one publish takes them all. The wait is at least as long
// as the last publish took, so churn keeps the publisher busy half the time at most
// (one publish of 3 regions: 8 ms with 1,000 registrations, 116 ms with 10,000). It
// returns when ctx is done.
func (s *Server) runRegistrations(ctx context.Context) error {
	r := s.registry
	var took time.Duration
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-r.changed:
		}
		t := time.NewTimer(max(r.delay, took))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		select {
		case <-r.changed: // taken by this publish, which reads the registrations after it
		default:
		}
		start := time.Now()
		s.mu.Lock()
		err := s.publishLocked(ctx, s.base, s.overrides)
		s.mu.Unlock()
		took = time.Since(start)
		r.publish.Add(1)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("publishing registrations", "err", err)
		}
	}
}
