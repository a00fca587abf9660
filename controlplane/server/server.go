package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/health"
	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/translate"
)

// Options configure a Server.
type Options struct {
	// Model is the initial fleet model. Required.
	Model *model.Model
	// XDS is the listener the gRPC (ADS) server serves on. Required.
	XDS net.Listener
	// Admin is the listener of the admin HTTP API; nil for none.
	Admin net.Listener
	// Logger; nil discards.
	Logger *slog.Logger
	// GRPCOptions are passed to grpc.NewServer (credentials, limits).
	GRPCOptions []grpc.ServerOption
	// Health configures the region state machine fed by POST /reports; zero fields take
	// health.DefaultConfig's values.
	Health health.Config
	// LoadReportInterval is how often sidecars send load reports (LRS) on the xDS
	// connection, which feed the region state machine like POST /reports; zero means
	// DefaultLoadReportInterval.
	LoadReportInterval time.Duration
	// SendTimeout is how long one response may wait for a client to read before the
	// client is disconnected as too slow (stall.go); zero means DefaultSendTimeout,
	// negative disables the check.
	SendTimeout time.Duration
	// Region is this control plane's own region, which it is authoritative for and
	// serves to peers through peering.Server (OwnSummary, peer.go); "" disables peering.
	Region string
	// MaxRegistrations caps the endpoints sidecars register through node metadata
	// (registry.go); zero means DefaultMaxRegistrations.
	MaxRegistrations int
	// RegistrationDelay gathers registration changes into one republish; zero means
	// DefaultRegistrationDelay.
	RegistrationDelay time.Duration
}

// Server serves xDS and the admin API for one control plane.
type Server struct {
	log      *slog.Logger
	xdsLis   net.Listener
	adminLis net.Listener
	grpcOpts []grpc.ServerOption
	// cache serves Envoy and geode sidecars in ADS mode; proxyless serves proxyless
	// gRPC clients the same snapshots, answering a request that names some resources
	// of a type with those (a gRPC client names only its own service; in ADS mode the
	// cache would wait for a request naming every resource of the type, forever).
	cache     cache.SnapshotCache
	proxyless cache.SnapshotCache
	clients   *clients
	health    *health.Tracker
	stalls    *stallGuard
	registry  *registry // endpoints registered through node metadata (registry.go)

	lrsInterval                                    time.Duration
	lrsStreams, lrsReports, lrsRefused, lrsSkipped atomic.Int64

	mu        sync.Mutex // serializes publishing; guards the fields below
	base      *model.Model
	overrides map[string]affinity.RegionState // operator-set region states
	current   *model.Model                    // base with overrides and computed states applied
	computed  map[string]health.Status        // the health view the current snapshots use
	versions  map[string]string               // region → published snapshot version
	published time.Time

	// regions is the current model too, for the xDS callbacks: they must not take mu,
	// which is held while SetSnapshot answers their streams' watches.
	regions atomic.Pointer[model.Model]

	peer peerState // guarded by mu; peer.go
}

// New builds a Server and publishes the initial snapshots. It starts no goroutine.
func New(o Options) (*Server, error) {
	if o.Model == nil {
		return nil, errors.New("server: Options.Model is required")
	}
	if o.XDS == nil {
		return nil, errors.New("server: Options.XDS listener is required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var err error
	s := &Server{
		log: log, xdsLis: o.XDS, adminLis: o.Admin, grpcOpts: o.GRPCOptions,
		cache:     cache.NewSnapshotCache(true, regionHash{}, nil),
		proxyless: cache.NewSnapshotCache(false, regionHash{}, nil),
		overrides: map[string]affinity.RegionState{},
		versions:  map[string]string{},
		peer:      peerState{own: o.Region},
	}
	if o.SendTimeout == 0 {
		o.SendTimeout = DefaultSendTimeout
	}
	s.stalls = newStallGuard(o.SendTimeout)
	if s.lrsInterval, err = checkLoadReportInterval(o.LoadReportInterval); err != nil {
		return nil, err
	}
	s.clients = newClients(log, s.knownRegion)
	if s.registry, err = newRegistry(log, s.regions.Load, o.MaxRegistrations, o.RegistrationDelay); err != nil {
		return nil, err
	}
	s.clients.reg = s.registry
	tr, err := health.New(o.Health, o.Model.RegionNames())
	if err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	s.health = tr
	s.computed = tr.Statuses()
	if err := s.SetModel(context.Background(), o.Model); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Server) knownRegion(name string) bool {
	_, ok := s.regions.Load().Region(name)
	return ok
}

// SetModel replaces the fleet model (operator overrides of regions that still exist are
// kept) and republishes every region. On error nothing changes.
func (s *Server) SetModel(ctx context.Context, m *model.Model) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	overrides := maps.Clone(s.overrides)
	maps.DeleteFunc(overrides, func(r string, _ affinity.RegionState) bool { _, ok := m.Region(r); return !ok })
	s.health.SetRegions(m.RegionNames())
	prev := s.computed
	s.computed = s.withPeersLocked(s.health.Statuses())
	if err := s.publishLocked(ctx, m, overrides); err != nil {
		s.computed = prev
		return err
	}
	return nil
}

// Actions of the admin API on a region, and the state each sets.
var actions = map[string]affinity.RegionState{
	"drain": affinity.Draining,
	"fence": affinity.Fenced,
	"down":  affinity.Down,
}

// ErrUnknownRegion is returned for a region the model does not have.
var ErrUnknownRegion = errors.New("unknown region")

// SetRegionState sets an operator override of a region's state and republishes.
func (s *Server) SetRegionState(ctx context.Context, region string, st affinity.RegionState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.base.Region(region); !ok {
		return fmt.Errorf("%w %q", ErrUnknownRegion, region)
	}
	overrides := maps.Clone(s.overrides)
	overrides[region] = st
	return s.publishLocked(ctx, s.base, overrides)
}

// RestoreRegion clears the operator override of a region: it goes back to the state the
// model gives it.
func (s *Server) RestoreRegion(ctx context.Context, region string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.base.Region(region); !ok {
		return fmt.Errorf("%w %q", ErrUnknownRegion, region)
	}
	overrides := maps.Clone(s.overrides)
	delete(overrides, region)
	return s.publishLocked(ctx, s.base, overrides)
}

// publishLocked translates base+overrides for every region and, only if all succeed,
// sets the snapshots and commits the new state.
//
// A region's state is the operator override if any, else the worse of the configured and
// the computed state (health.Effective); a region without override whose configured
// state is healthy and whose computed ramp is in progress is published ramped.
func (s *Server) publishLocked(ctx context.Context, base *model.Model, overrides map[string]affinity.RegionState) error {
	cur := s.withRegistrations(base) // base stays the manifests' model
	ramp := map[string]int{}
	for _, reg := range base.Regions() {
		var o *affinity.RegionState
		if st, ok := overrides[reg.Name]; ok {
			o = &st
		}
		hs, ok := s.computed[reg.Name]
		if !ok {
			hs = health.Status{Computed: affinity.Healthy, Factor: 100}
		}
		eff := health.Effective(o, reg.State, hs.Computed)
		if o == nil && reg.State == affinity.Healthy && hs.Ramping() {
			ramp[reg.Name] = hs.Factor
		}
		if eff != reg.State {
			var err error
			if cur, err = cur.WithRegionState(reg.Name, eff); err != nil {
				return err
			}
		}
	}
	snaps := map[string]*cache.Snapshot{}
	var errs []error
	for _, r := range cur.RegionNames() {
		snap, err := translate.ForRegionWith(cur, r, ramp, translate.Options{Outbound: true})
		if err == nil {
			snap, err = encodeOnce(snap)
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		snaps[r] = snap
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("model %s not published: %w", cur.Version(), err)
	}
	versions := map[string]string{}
	for _, r := range cur.RegionNames() {
		for _, c := range []cache.SnapshotCache{s.cache, s.proxyless} {
			if err := c.SetSnapshot(ctx, r, snaps[r]); err != nil {
				// Only a context error or a closed watch channel gets here; the regions
				// already set keep their new snapshot, which is itself consistent.
				return fmt.Errorf("publishing region %q: %w", r, err)
			}
		}
		versions[r] = snaps[r].GetVersion(resource.ClusterType)
	}
	// Regions that left the model: stop serving their old snapshot.
	for r := range s.versions {
		if _, ok := versions[r]; !ok {
			s.cache.ClearSnapshot(r)
			s.proxyless.ClearSnapshot(r)
		}
	}
	changed := 0
	for r, v := range versions {
		if s.versions[r] != v {
			changed++
		}
	}
	s.base, s.overrides, s.current, s.versions, s.published = base, overrides, cur, versions, time.Now()
	s.regions.Store(cur)
	s.peerPublishedLocked()
	s.log.Info("published", "model", cur.Version(), "regions", len(versions), "changed", changed)
	return nil
}

// Evaluate runs one evaluation of the region state machine at now and republishes when
// a computed state or ramp factor changed. Run calls it every health interval.
func (s *Server) Evaluate(ctx context.Context, now time.Time) error {
	s.health.Evaluate(now)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Compare with what is published rather than trusting Evaluate's list: a publish that
	// failed last time is retried.
	prev, next := s.computed, s.withPeersLocked(s.health.Statuses())
	var changed []string
	for r, st := range next {
		if p, ok := prev[r]; !ok || p.Computed != st.Computed || p.Factor != st.Factor {
			changed = append(changed, r)
		}
	}
	if len(changed) == 0 {
		s.computed = next // window figures for /config_dump
		return nil
	}
	slices.Sort(changed)
	s.computed = next
	for _, r := range changed {
		s.log.Info("region health changed", "region", r,
			"computed", s.computed[r].Computed.String(), "was", prev[r].Computed.String(),
			"weight_factor_percent", s.computed[r].Factor, "failure_ratio", s.computed[r].FailureRatio)
	}
	if err := s.publishLocked(ctx, s.base, s.overrides); err != nil {
		s.computed = prev
		return err
	}
	return nil
}

// Report is the body of POST /reports: what one reporter (a sidecar) saw of each region
// since its last report.
type Report struct {
	Reporter       string                   `json:"reporter"`
	RegionOutcomes map[string]RegionOutcome `json:"region_outcomes"`
}

// RegionOutcome is one region's part of a Report.
type RegionOutcome struct {
	Success uint64  `json:"success"`
	Failure uint64  `json:"failure"`
	P99ms   float64 `json:"p99_ms"`
}

// maxReportBytes bounds a POST /reports body.
const maxReportBytes = 64 << 10

// RecordReport feeds a report to the region state machine at now. Every region is
// checked before any is recorded: a report naming an unknown region changes nothing.
func (s *Server) RecordReport(now time.Time, rep Report) error {
	if rep.Reporter == "" {
		return errors.New("reporter is required")
	}
	if len(rep.Reporter) > 256 {
		return errors.New("reporter: longer than 256 bytes")
	}
	for _, name := range slices.Sorted(maps.Keys(rep.RegionOutcomes)) {
		o := rep.RegionOutcomes[name]
		if !s.knownRegion(name) {
			return fmt.Errorf("region_outcomes.%s: %w", name, ErrUnknownRegion)
		}
		if o.P99ms < 0 || o.P99ms > 3.6e6 {
			return fmt.Errorf("region_outcomes.%s.p99_ms: %v is not in [0, 3600000]", name, o.P99ms)
		}
	}
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(rep.RegionOutcomes)) {
		o := rep.RegionOutcomes[name]
		err := s.health.Record(now, rep.Reporter, name, health.Outcome{
			Success: o.Success, Failure: o.Failure, P99: time.Duration(o.P99ms * float64(time.Millisecond)),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("region_outcomes.%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request) {
	var rep Report
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxReportBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rep); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "decoding report: " + err.Error()})
		return
	}
	if err := s.RecordReport(time.Now(), rep); err != nil {
		code := http.StatusBadRequest
		if errors.Is(err, health.ErrTooManyReports) {
			code = http.StatusTooManyRequests
		}
		writeJSON(w, code, map[string]string{"error": err.Error()})
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Versions returns the published snapshot version of each region.
func (s *Server) Versions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.versions)
}

// Status returns the connected clients and the refusal and NACK counts.
func (s *Server) Status() Status {
	st := s.clients.status()
	st.LoadReports = s.loadReports()
	st.Registrations = s.registry.status()
	st.SlowDisconnected = s.stalls.disconnected.Load()
	return st
}

// Run serves xDS and the admin API until ctx is done, then stops both.
func (s *Server) Run(ctx context.Context) error {
	gs := grpc.NewServer(append(slices.Clone(s.grpcOpts), grpc.ChainStreamInterceptor(s.stalls.intercept))...)
	caches := &cache.MuxCache{
		Classify:      func(r *cache.Request) string { return clientKind(r.GetNode()) },
		ClassifyDelta: func(r *cache.DeltaRequest) string { return clientKind(r.GetNode()) },
		Caches:        map[string]cache.Cache{kindADS: s.cache, kindProxyless: s.proxyless},
	}
	xs := xdsserver.NewServer(ctx, nackHold{Cache: caches, snapshots: s.cache, hash: regionHash{}}, s.clients.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xs)
	lrsv3.RegisterLoadReportingServiceServer(gs, &lrsServer{s: s, ctx: ctx})

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		s.stalls.run(gctx)
		return nil
	})
	g.Go(func() error {
		t := time.NewTicker(s.health.Config().Interval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case now := <-t.C:
				if err := s.Evaluate(gctx, now); err != nil && gctx.Err() == nil {
					s.log.Error("publishing region health", "err", err)
				}
			}
		}
	})
	g.Go(func() error { return s.runRegistrations(gctx) })
	g.Go(func() error {
		if err := gs.Serve(s.xdsLis); err != nil {
			return fmt.Errorf("xds server: %w", err)
		}
		return nil
	})
	var hs *http.Server
	if s.adminLis != nil {
		hs = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second,
			BaseContext: func(net.Listener) context.Context { return gctx }} // ends long-polls
		g.Go(func() error {
			if err := hs.Serve(s.adminLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		<-gctx.Done()
		// Streams end when ctx is done (go-control-plane watches it); Stop is the
		// backstop for one that does not.
		t := time.AfterFunc(5*time.Second, gs.Stop)
		defer t.Stop()
		if hs != nil {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = hs.Shutdown(sctx)
		}
		gs.GracefulStop()
		return nil
	})
	err := g.Wait()
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// Handler is the admin HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /regions/{name}/{action}", s.handleRegion)
	mux.HandleFunc("GET /config_dump", s.handleConfigDump)
	mux.HandleFunc("POST /reports", s.handleReport)
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, http.StatusOK, s.Status()) })
	return mux
}

func (s *Server) handleRegion(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	var err error
	switch st, ok := actions[action]; {
	case ok:
		err = s.SetRegionState(r.Context(), name, st)
	case action == "restore":
		err = s.RestoreRegion(r.Context(), name)
	default:
		writeJSON(w, http.StatusNotFound, map[string]string{"error": fmt.Sprintf("unknown action %q: want drain, fence, down or restore", action)})
		return
	}
	switch {
	case errors.Is(err, ErrUnknownRegion):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	s.mu.Lock()
	reg, _ := s.current.Region(name)
	out := map[string]any{"region": name, "state": reg.State.String(), "model_version": s.current.Version(), "snapshot_versions": maps.Clone(s.versions)}
	s.mu.Unlock()
	s.log.Info("region state set by operator", "region", name, "action", action, "state", reg.State.String())
	writeJSON(w, http.StatusOK, out)
}

// ConfigDump is what GET /config_dump returns.
type ConfigDump struct {
	ModelVersion string            `json:"model_version"`
	PublishedAt  time.Time         `json:"published_at"`
	Regions      []RegionDump      `json:"regions"`
	Services     []model.Service   `json:"services"`
	Snapshots    map[string]string `json:"snapshot_versions"` // region → version
	Peers        []PeerDump        `json:"peers,omitempty"`   // peer control planes (peer.go)
	// Registrations are the endpoints sidecars registered (registry.go); Services
	// include the ones served.
	Registrations []RegistrationDump `json:"registrations"`
	// SessionKeys describes the session key ring sent to sidecars as an SDS secret,
	// without its secrets; nil when the manifests have none.
	SessionKeys *SessionKeysDump `json:"session_keys,omitempty"`
}

// SessionKeysDump is the session key ring in a ConfigDump: its fingerprint (which
// sidecars show too) and its keys' ids and validity.
type SessionKeysDump struct {
	Fingerprint string                `json:"fingerprint"`
	Keys        []consistency.KeyInfo `json:"keys"`
}

// RegionDump is one region in a ConfigDump.
type RegionDump struct {
	Name string `json:"name"`
	// State is the effective state; Configured is the model's, Override the operator's.
	// Computed is the health state machine's (health.Status: its weight factor and the
	// window it judged are in Health).
	State      string        `json:"state"`
	Configured string        `json:"configured"`
	Override   string        `json:"override,omitempty"`
	Computed   string        `json:"computed"`
	Health     health.Status `json:"health"`
	Order      []string      `json:"priority_order"` // regions its clients use, best first
}

// ConfigDump returns the current model and published versions.
func (s *Server) ConfigDump() ConfigDump {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := ConfigDump{ModelVersion: s.current.Version(), PublishedAt: s.published, Services: s.current.Services(), Snapshots: maps.Clone(s.versions)}
	for _, r := range s.current.Regions() {
		conf, _ := s.base.Region(r.Name)
		hs := s.computed[r.Name]
		rd := RegionDump{Name: r.Name, State: r.State.String(), Configured: conf.State.String(), Computed: hs.Computed.String(), Health: hs}
		if o, ok := s.overrides[r.Name]; ok {
			rd.Override = o.String()
		}
		rd.Order, _ = translate.Order(s.current, r.Name)
		d.Regions = append(d.Regions, rd)
	}
	d.Peers = s.peerDumpLocked()
	d.Registrations = s.registry.dump(s.base)
	if kr := s.current.SessionKeys(); kr != nil {
		d.SessionKeys = &SessionKeysDump{Fingerprint: kr.Fingerprint(), Keys: kr.Info()}
	}
	return d
}

func (s *Server) handleConfigDump(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.ConfigDump())
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
