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
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	xdsserver "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"

	"github.com/geodemesh/geode/affinity"
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
}

// Server serves xDS and the admin API for one control plane.
type Server struct {
	log      *slog.Logger
	xdsLis   net.Listener
	adminLis net.Listener
	grpcOpts []grpc.ServerOption
	cache    cache.SnapshotCache
	clients  *clients

	mu        sync.Mutex // serializes publishing; guards the fields below
	base      *model.Model
	overrides map[string]affinity.RegionState // operator-set region states
	current   *model.Model                    // base with overrides applied
	versions  map[string]string               // region → published snapshot version
	published time.Time

	// regions is the current model too, for the xDS callbacks: they must not take mu,
	// which is held while SetSnapshot answers their streams' watches.
	regions atomic.Pointer[model.Model]
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
	s := &Server{
		log: log, xdsLis: o.XDS, adminLis: o.Admin, grpcOpts: o.GRPCOptions,
		cache:     cache.NewSnapshotCache(true, regionHash{}, nil),
		overrides: map[string]affinity.RegionState{},
		versions:  map[string]string{},
	}
	s.clients = newClients(log, s.knownRegion)
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
	return s.publishLocked(ctx, m, overrides)
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
func (s *Server) publishLocked(ctx context.Context, base *model.Model, overrides map[string]affinity.RegionState) error {
	cur := base
	for _, r := range slices.Sorted(maps.Keys(overrides)) {
		var err error
		if cur, err = cur.WithRegionState(r, overrides[r]); err != nil {
			return err
		}
	}
	snaps := map[string]*cache.Snapshot{}
	var errs []error
	for _, r := range cur.RegionNames() {
		snap, err := translate.ForRegion(cur, r)
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
		if err := s.cache.SetSnapshot(ctx, r, snaps[r]); err != nil {
			// Only a context error or a closed watch channel gets here; the regions
			// already set keep their new snapshot, which is itself consistent.
			return fmt.Errorf("publishing region %q: %w", r, err)
		}
		versions[r] = snaps[r].GetVersion(resource.ClusterType)
	}
	// Regions that left the model: stop serving their old snapshot.
	for r := range s.versions {
		if _, ok := versions[r]; !ok {
			s.cache.ClearSnapshot(r)
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
	s.log.Info("published", "model", cur.Version(), "regions", len(versions), "changed", changed)
	return nil
}

// Versions returns the published snapshot version of each region.
func (s *Server) Versions() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.versions)
}

// Status returns the connected clients and the refusal and NACK counts.
func (s *Server) Status() Status { return s.clients.status() }

// Run serves xDS and the admin API until ctx is done, then stops both.
func (s *Server) Run(ctx context.Context) error {
	gs := grpc.NewServer(s.grpcOpts...)
	xs := xdsserver.NewServer(ctx, nackHold{SnapshotCache: s.cache, hash: regionHash{}}, s.clients.callbacks())
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(gs, xs)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := gs.Serve(s.xdsLis); err != nil {
			return fmt.Errorf("xds server: %w", err)
		}
		return nil
	})
	var hs *http.Server
	if s.adminLis != nil {
		hs = &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
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
}

// RegionDump is one region in a ConfigDump.
type RegionDump struct {
	Name string `json:"name"`
	// State is the effective state; Configured is the model's, Override the operator's.
	State      string   `json:"state"`
	Configured string   `json:"configured"`
	Override   string   `json:"override,omitempty"`
	Order      []string `json:"priority_order"` // regions its clients use, best first
}

// ConfigDump returns the current model and published versions.
func (s *Server) ConfigDump() ConfigDump {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := ConfigDump{ModelVersion: s.current.Version(), PublishedAt: s.published, Services: s.current.Services(), Snapshots: maps.Clone(s.versions)}
	for _, r := range s.current.Regions() {
		conf, _ := s.base.Region(r.Name)
		rd := RegionDump{Name: r.Name, State: r.State.String(), Configured: conf.State.String()}
		if o, ok := s.overrides[r.Name]; ok {
			rd.Override = o.String()
		}
		rd.Order, _ = translate.Order(s.current, r.Name)
		d.Regions = append(d.Regions, rd)
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
