package xds

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/geodemesh/geode/controlplane/api"
	"github.com/geodemesh/geode/proxy/config"
	"github.com/geodemesh/geode/proxy/route"
)

// Options configure a Client.
type Options struct {
	// Server is the control plane's xDS address (host:port). Required.
	Server string
	// DialOptions for the gRPC connection. They must carry transport credentials:
	// grpc.NewClient refuses a dial without them, so plaintext is always an explicit
	// choice of the caller (insecure.NewCredentials() behind --insecure).
	DialOptions []grpc.DialOption
	// NodeID identifies this sidecar to the control plane. Required.
	NodeID string
	// Zone is the sidecar's zone within its region (node.locality.zone). Optional.
	Zone string
	// Service and Address (host:port of the inbound listener) are registration data,
	// sent as node metadata geode.service and geode.address. Optional.
	Service, Address string
	// Base is the sidecar's own configuration (its file): listeners, app, limits,
	// session, tracing and debug stay as given; regions and services come from the
	// control plane. Its Region is the node's region. Required.
	Base *config.Config
	// Apply swaps in a new configuration (the sidecar's Apply). It must validate and
	// keep the current state on error. Required.
	Apply func(*config.Config) error
	// CacheFile, if set, is where the last good state from the control plane is written
	// after every update, and read back when Run has no update ColdStartAfter after it
	// started (a cold start without a control plane).
	CacheFile string
	// ColdStartAfter defaults to 1s.
	ColdStartAfter time.Duration
	// MinBackoff and MaxBackoff bound the delay between reconnects (exponential, with
	// jitter); defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Settle is how long the client waits after a response for the rest of an update
	// (CDS and EDS come as separate responses) before applying; default 20ms.
	Settle time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
	// Outcomes, if set, returns the upstream attempt outcomes counted since its
	// previous call, by service and region, and resets them (the sidecar's
	// TakeOutcomes). The client then reports them to the control plane over LRS
	// (envoy.service.load_stats.v3) on the ADS connection, at the interval the control
	// plane asks for, one ClusterStats per service with one UpstreamLocalityStats per
	// region; the control plane's region health is computed from these reports.
	Outcomes func() map[string]map[string]route.Outcome
}

// Status is what the client knows of its control plane, for admin endpoints and tests.
type Status struct {
	Connected bool `json:"connected"`
	// Streams counts ADS streams opened, the first included.
	Streams int64 `json:"streams"`
	// Source of the applied state: "" (none yet: the base config), "xds" or "cache".
	Source string `json:"source"`
	// Acked maps a type URL to the version last applied and ACKed.
	Acked     map[string]string `json:"acked"`
	AppliedAt time.Time         `json:"applied_at"`
	Updates   int64             `json:"updates"` // states applied from xDS
	NACKs     int64             `json:"nacks"`
	LastNACK  string            `json:"last_nack,omitempty"`
	// LoadReports counts load reports (region outcomes) sent to the control plane.
	LoadReports int64 `json:"load_reports"`
	// NoEndpoints lists services the control plane sent without any usable endpoint
	// (every region that has some is down or fenced, or none has any): they are routed
	// nowhere, and calls to them are answered 503 naming the service.
	NoEndpoints []string `json:"no_endpoints,omitempty"`
}

// Client is a geode sidecar's xDS client. Build it with New, run it with Run.
type Client struct {
	opts    Options
	log     *slog.Logger
	node    *corev3.Node
	applied chan struct{} // closed once a state from xDS is applied
	once    sync.Once

	applyMu sync.Mutex // serializes Apply between the stream and the cold start
	fromXDS bool       // guarded by applyMu: an xDS state was applied
	last    []byte     // guarded by applyMu: encoded Part last applied (versions left out)
	good    resources  // guarded by applyMu: the resources last applied, for the next stream

	mu     sync.Mutex
	status Status
}

// New checks opts and builds a Client. It starts nothing.
func New(opts Options) (*Client, error) {
	var errs []error
	if opts.Server == "" {
		errs = append(errs, errors.New("xds: Options.Server is required"))
	}
	if opts.NodeID == "" {
		errs = append(errs, errors.New("xds: Options.NodeID is required"))
	}
	if opts.Base == nil {
		errs = append(errs, errors.New("xds: Options.Base is required"))
	} else if opts.Base.Region == "" {
		errs = append(errs, errors.New("xds: Options.Base.Region is required"))
	}
	if opts.Apply == nil {
		errs = append(errs, errors.New("xds: Options.Apply is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if opts.ColdStartAfter <= 0 {
		opts.ColdStartAfter = time.Second
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 100 * time.Millisecond
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = 5 * time.Second
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.Settle <= 0 {
		opts.Settle = 20 * time.Millisecond
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	meta := map[string]*structpb.Value{api.NodeRegionKey: structpb.NewStringValue(opts.Base.Region)}
	if opts.Service != "" {
		meta[api.NodeServiceKey] = structpb.NewStringValue(opts.Service)
	}
	if opts.Address != "" {
		meta[api.NodeAddressKey] = structpb.NewStringValue(opts.Address)
	}
	return &Client{
		opts: opts,
		log:  opts.Logger.With("component", "xds", "server", opts.Server),
		node: &corev3.Node{
			Id:            opts.NodeID,
			Locality:      &corev3.Locality{Region: opts.Base.Region, Zone: opts.Zone},
			Metadata:      &structpb.Struct{Fields: meta},
			UserAgentName: "geode-sidecar",
		},
		applied: make(chan struct{}),
		status:  Status{Acked: map[string]string{}},
	}, nil
}

// Status returns a copy of the client's status.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.status
	st.Acked = maps.Clone(st.Acked)
	st.NoEndpoints = slices.Clone(st.NoEndpoints)
	return st
}

// Run keeps an ADS stream to the control plane until ctx is done, applying every
// complete, valid update and reconnecting with backoff when the stream breaks. It
// returns nil when ctx is done; it is meant to be called once.
func (c *Client) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	if c.opts.CacheFile != "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.coldStart(ctx)
		}()
	}
	backoff := c.opts.MinBackoff
	for {
		got, err := c.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errDial) {
			return err // a configuration error: retrying cannot fix it
		}
		if got {
			backoff = c.opts.MinBackoff // the control plane answered: start over
		}
		// Full jitter over the upper half: spreads a fleet's reconnects after a
		// control-plane restart without ever retrying sooner than half the backoff.
		delay := backoff/2 + rand.N(backoff/2+1)
		c.log.Warn("xds stream ended; serving the last good state", "err", err, "retry_in", delay.Round(time.Millisecond).String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

// coldStart applies the persisted state if no xDS update arrived in time.
func (c *Client) coldStart(ctx context.Context) {
	t := time.NewTimer(c.opts.ColdStartAfter)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return
	case <-c.applied:
		return
	case <-t.C:
	}
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	if c.fromXDS {
		return
	}
	cfg, err := LoadCache(c.opts.CacheFile, c.opts.Base)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			c.log.Info("no control plane yet and no cached state; serving the base configuration")
		} else {
			c.log.Error("cached xDS state not used", "file", c.opts.CacheFile, "err", err)
		}
		return
	}
	if err := c.opts.Apply(cfg); err != nil {
		c.log.Error("cached xDS state rejected", "file", c.opts.CacheFile, "err", err)
		return
	}
	c.mu.Lock()
	c.status.Source = "cache"
	c.status.AppliedAt = time.Now()
	c.mu.Unlock()
	c.log.Warn("control plane unreachable: serving the cached state", "file", c.opts.CacheFile, "services", len(cfg.Services))
}

// LoadCache reads a state persisted by a Client (Options.CacheFile) and merges it into
// base, validated like a config file. A cmd can use it for the sidecar's first config.
func LoadCache(path string, base *config.Config) (*config.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := decodePart(b)
	if err != nil {
		return nil, fmt.Errorf("xds cache %s: %w", path, err)
	}
	cfg, err := Merge(base, p)
	if err != nil {
		return nil, fmt.Errorf("xds cache %s: %w", path, err)
	}
	return cfg, nil
}

// errDial marks a gRPC client that cannot be built (bad target or dial options).
var errDial = errors.New("xds: dial")

// pending is a response received but not yet ACKed or NACKed.
type pending struct {
	typeURL, version, nonce string
}

// session is the protocol state of one ADS stream.
type session struct {
	c        *Client
	stream   discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	sentNode bool
	nonce    map[string]string // type URL → last nonce received
	acked    map[string]string // type URL → last version applied
	rejected map[string]string // type URL → last version NACKed
	why      map[string]string // type URL → why it was NACKed
	eds      []string          // EDS names subscribed
	good     resources         // last applied
	staged   resources         // good + what arrived since
	pending  []pending
}

// stream runs one ADS stream until it breaks or ctx is done. got reports whether the
// control plane answered at all (then the backoff starts over).
func (c *Client) stream(ctx context.Context) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cc, err := grpc.NewClient(c.opts.Server, c.opts.DialOptions...)
	if err != nil {
		return false, fmt.Errorf("%w %s: %w", errDial, c.opts.Server, err)
	}
	defer cc.Close()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(cc).StreamAggregatedResources(sctx)
	if err != nil {
		return false, err
	}
	recv, errc, waitRecv := receive(sctx, st.Recv)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		waitRecv()
		wg.Wait()
	}()
	if c.opts.Outcomes != nil {
		// Load reports go on the same connection, for as long as this stream lasts.
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.loadReports(sctx, cc)
		}()
	}

	s := c.newSession(st)
	c.mu.Lock()
	c.status.Streams++
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.status.Connected = false
		c.mu.Unlock()
	}()
	// Resync: ask for everything, telling the control plane which versions this
	// sidecar already runs; a new stream gets a full answer either way.
	if err := s.send(ClusterType, s.acked[ClusterType], "", nil, nil); err != nil {
		return false, err
	}
	if len(s.eds) > 0 {
		if err := s.send(EndpointType, s.acked[EndpointType], "", s.eds, nil); err != nil {
			return false, err
		}
	}
	if err := s.send(SecretType, s.acked[SecretType], "", s.names(SecretType), nil); err != nil {
		return false, err
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case err := <-errc:
			return got, err
		case r := <-recv:
			if !got {
				got = true
				c.mu.Lock()
				c.status.Connected = true
				c.mu.Unlock()
				c.log.Info("xds stream established")
			}
			if err := s.receive(r); err != nil {
				return got, err
			}
			settle.Reset(c.opts.Settle)
		case <-settle.C:
			if err := s.apply(); err != nil {
				return got, err
			}
		}
	}
}

func (c *Client) newSession(st discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesClient) *session {
	c.applyMu.Lock()
	defer c.applyMu.Unlock()
	s := &session{
		c: c, stream: st,
		nonce: map[string]string{}, rejected: map[string]string{}, why: map[string]string{},
		acked: c.Status().Acked,
		good:  resources{clas: map[string]endpoints{}},
	}
	if c.good.clusters != nil {
		s.good = c.good.clone()
	}
	s.staged = s.good.clone()
	s.eds = s.good.edsNames()
	return s
}

// send writes one DiscoveryRequest: a subscription, an ACK (nack nil) or a NACK.
func (s *session) send(typeURL, version, nonce string, names []string, nack error) error {
	req := &discoveryv3.DiscoveryRequest{TypeUrl: typeURL, VersionInfo: version, ResponseNonce: nonce, ResourceNames: names}
	if !s.sentNode {
		req.Node = s.c.node
		s.sentNode = true
	}
	if nack != nil {
		req.ErrorDetail = &rpcstatus.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
	}
	if err := s.stream.Send(req); err != nil {
		return fmt.Errorf("xds: send %s: %w", typeURL, err)
	}
	return nil
}

// receive decodes a response into the staged resources, or NACKs it at once when it
// does not decode.
func (s *session) receive(r *discoveryv3.DiscoveryResponse) error {
	typeURL, version, nonce := r.GetTypeUrl(), r.GetVersionInfo(), r.GetNonce()
	s.nonce[typeURL] = nonce
	if v, ok := s.rejected[typeURL]; ok && v == version {
		// The control plane sent a version again that was NACKed already (a NACK
		// names the previous version, and a SnapshotCache answers that with its
		// current one). NACK it naming the version itself: the control plane then
		// waits for a new version instead of resending this one in a loop.
		s.c.log.Debug("xds: rejected version sent again", "type", typeURL, "version", version)
		return s.send(typeURL, version, nonce, s.names(typeURL), fmt.Errorf("version %s was rejected: %s", version, s.why[typeURL]))
	}
	var err error
	switch typeURL {
	case ClusterType:
		var clusters map[string]cluster
		if clusters, err = decodeClusters(r.GetResources()); err == nil {
			s.staged.clusters = clusters
			if names := s.staged.edsNames(); !slices.Equal(names, s.eds) {
				// New subscription for EDS. Its nonce supersedes any unanswered EDS
				// response, whose data stays staged.
				s.eds = names
				s.pending = slices.DeleteFunc(s.pending, func(p pending) bool { return p.typeURL == EndpointType })
				if err := s.send(EndpointType, s.acked[EndpointType], s.nonce[EndpointType], names, nil); err != nil {
					return err
				}
			}
		}
	case EndpointType:
		var clas map[string]endpoints
		if clas, err = decodeAssignments(r.GetResources()); err == nil {
			for name, eps := range clas {
				s.staged.clas[name] = eps
			}
		}
	case SecretType:
		var keys []byte
		if keys, err = decodeSecrets(r.GetResources()); err == nil {
			s.staged.keys, s.staged.keysSeen = keys, true
		}
	default:
		err = fmt.Errorf("unexpected type %q: this client subscribes to CDS, EDS and SDS only", typeURL)
	}
	if err != nil {
		return s.nack(pending{typeURL: typeURL, version: version, nonce: nonce}, err)
	}
	s.pending = slices.DeleteFunc(s.pending, func(p pending) bool { return p.typeURL == typeURL })
	s.pending = append(s.pending, pending{typeURL: typeURL, version: version, nonce: nonce})
	return nil
}

func (s *session) names(typeURL string) []string {
	switch typeURL {
	case EndpointType:
		return s.eds
	case SecretType:
		return []string{api.SessionKeysSecret}
	}
	return nil
}

// nack rejects one response: it keeps the last good version and records the error.
func (s *session) nack(p pending, cause error) error {
	s.rejected[p.typeURL] = p.version
	s.why[p.typeURL] = cause.Error()
	s.c.mu.Lock()
	s.c.status.NACKs++
	s.c.status.LastNACK = cause.Error()
	s.c.mu.Unlock()
	s.c.log.Error("xds update rejected; serving the last good state", "type", p.typeURL, "version", p.version, "err", cause)
	return s.send(p.typeURL, s.acked[p.typeURL], p.nonce, s.names(p.typeURL), cause)
}

// apply builds a configuration from the staged resources once they are complete,
// applies it, and ACKs (or, if anything fails, NACKs) every pending response.
func (s *session) apply() error {
	if len(s.pending) == 0 || !s.staged.complete() {
		return nil
	}
	c := s.c
	c.applyMu.Lock()
	err := func() error {
		p, empty, err := s.staged.part(c.opts.Base.Region, c.opts.Base.Regions)
		if err != nil {
			return err
		}
		enc, err := encodePart(p)
		if err != nil {
			return err
		}
		// Unchanged for the sidecar (a resync, or a version bump elsewhere): ACK
		// without rebuilding its routing state.
		changed := !c.fromXDS || !bytes.Equal(enc, c.last)
		if changed {
			cfg, err := Merge(c.opts.Base, p)
			if err != nil {
				return err
			}
			if err := c.opts.Apply(cfg); err != nil {
				return err
			}
		}
		c.fromXDS, c.last = true, enc
		c.good = s.staged.clone()
		versions := map[string]string{}
		for t, v := range s.acked {
			versions[t] = v
		}
		for _, pd := range s.pending {
			versions[pd.typeURL] = pd.version
		}
		p.Versions = versions
		c.mu.Lock()
		c.status.Source = "xds"
		c.status.AppliedAt = time.Now()
		if changed {
			c.status.Updates++
		}
		c.status.NoEndpoints = empty
		c.status.Acked = maps.Clone(versions) // the ACKs are sent right after
		c.mu.Unlock()
		if changed {
			c.persist(p)
		}
		if len(empty) > 0 {
			c.log.Warn("services without usable endpoints: their calls are answered 503", "services", empty)
		}
		c.log.Info("xds state ACKed", "versions", versions, "changed", changed, "services", len(p.Services), "regions", len(p.Regions))
		c.once.Do(func() { close(c.applied) })
		return nil
	}()
	c.applyMu.Unlock()
	list := s.pending
	s.pending = nil
	if err != nil {
		s.staged = s.good.clone()
		for _, p := range list {
			if sendErr := s.nack(p, err); sendErr != nil {
				return sendErr
			}
		}
		return nil
	}
	s.good = s.staged.clone()
	for _, p := range list {
		s.acked[p.typeURL] = p.version
		delete(s.rejected, p.typeURL)
		delete(s.why, p.typeURL)
		if err := s.send(p.typeURL, p.version, p.nonce, s.names(p.typeURL), nil); err != nil {
			return err
		}
	}
	c.mu.Lock()
	c.status.Acked = maps.Clone(s.acked)
	c.mu.Unlock()
	return nil
}

// persist writes p to the cache file, atomically (write a temporary file, rename).
func (c *Client) persist(p Part) {
	if c.opts.CacheFile == "" {
		return
	}
	b, err := encodePart(p)
	if err == nil {
		b = append([]byte("# Last good state from the geode control plane, written by the sidecar's xDS client.\n"), b...)
		var f *os.File
		if f, err = os.CreateTemp(filepath.Dir(c.opts.CacheFile), ".xds-cache-*"); err == nil {
			_, err = f.Write(b)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err == nil {
				err = os.Rename(f.Name(), c.opts.CacheFile)
			}
			if err != nil {
				os.Remove(f.Name())
			}
		}
	}
	if err != nil {
		c.log.Error("xds state not persisted", "file", c.opts.CacheFile, "err", err)
	}
}
