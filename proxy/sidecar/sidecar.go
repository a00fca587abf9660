package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	"golang.org/x/sync/errgroup"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/proxy/config"
	"github.com/geodemesh/geode/proxy/route"
	"github.com/geodemesh/geode/tracing"
)

const (
	listenerOutbound = "outbound"
	listenerInbound  = "inbound"
)

// Options configure a Sidecar.
type Options struct {
	Config *config.Config
	// Logger defaults to discarding.
	Logger *slog.Logger
	// TracerProvider defaults to a no-op provider. The caller owns it and flushes it
	// after Run returns.
	TracerProvider trace.TracerProvider
	// Listeners already bound, for tests and socket activation; nil fields are bound
	// from the config's addresses by Run.
	Outbound, Inbound, Admin net.Listener
	// KeyRing, if set, is used for session tokens instead of session.keys_file.
	KeyRing *consistency.KeyRing
}

// Sidecar is one geode sidecar: its listeners, its routing state and its telemetry.
type Sidecar struct {
	log          *slog.Logger
	tracing      bool // spans are recorded; when false no span work is done at all
	tracer       trace.Tracer
	propagator   propagation.TextMapPropagator
	metrics      *metrics
	decisions    *decisionLog
	registry     *route.Registry
	policies     []affinity.Policy
	buffers      *sync.Pool
	reasonHeader bool

	state   atomic.Pointer[route.State]
	conf    atomic.Pointer[config.Config]
	keys    atomic.Pointer[consistency.KeyRing] // nil: no session tokens
	pulling atomic.Bool                         // a pull of the app's watermark is under way
	ready   atomic.Bool
	version atomic.Uint64

	opts      Options
	trusted   []*net.IPNet
	tunnels   tunnels         // upgraded connections (upgrade.go)
	appProxy  route.Transport // inbound → local app, HTTP/1.1
	appProxy2 route.Transport // inbound → local app, h2c

	mu    sync.Mutex
	addrs map[string]net.Addr
}

// New builds a sidecar and its first routing state from opts.Config. It starts nothing.
func New(opts Options) (*Sidecar, error) {
	if opts.Config == nil {
		return nil, errors.New("sidecar: no config")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.TracerProvider == nil {
		opts.TracerProvider = noop.NewTracerProvider()
	}
	s := &Sidecar{
		log:          opts.Logger,
		tracing:      tracing.Enabled(opts.TracerProvider),
		tracer:       opts.TracerProvider.Tracer("github.com/geodemesh/geode/proxy/sidecar"),
		propagator:   tracing.Propagator(),
		decisions:    newDecisionLog(opts.Config.Debug.Decisions),
		registry:     route.NewRegistry(),
		policies:     affinity.Chain(),
		buffers:      newBufferPool(),
		reasonHeader: opts.Config.Debug.ReasonHeader,
		opts:         opts,
		addrs:        map[string]net.Addr{},
	}
	s.metrics = newMetrics(s.state.Load)
	s.registry.OnBreakerChange = s.metrics.breakerChanged
	for _, cidr := range opts.Config.App.TrustedPeers {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			return nil, fmt.Errorf("app.trusted_peers: %w", err)
		}
		s.trusted = append(s.trusted, n)
	}
	s.appProxy = route.NewTransport(false, time.Second, 90*time.Second)
	s.appProxy2 = route.NewTransport(true, time.Second, 90*time.Second)
	if err := s.Apply(opts.Config); err != nil {
		return nil, err
	}
	return s, nil
}

// TakeOutcomes returns the upstream attempt outcomes counted since the previous call,
// by service and region, and resets them: successes are attempts the region answered
// (results ok and misdirected), failures the results status_5xx, connect_error and
// error, less those of clients that went away. Breaker-rejected and canceled attempts
// are not counted. It is what the xDS client reports to the control plane
// (xds.Options.Outcomes).
func (s *Sidecar) TakeOutcomes() map[string]map[string]route.Outcome {
	return s.registry.TakeOutcomes()
}

// Apply validates c, builds a new routing state from it and swaps it in. On error the
// current state stays in place (fail static) and the error says why.
func (s *Sidecar) Apply(c *config.Config) error {
	if err := c.Validate(); err != nil {
		s.metrics.swaps.WithLabelValues("rejected").Inc()
		return fmt.Errorf("sidecar: invalid configuration, keeping the current one:\n%w", err)
	}
	if old := s.conf.Load(); old != nil && old.Region != c.Region {
		s.metrics.swaps.WithLabelValues("rejected").Inc()
		return fmt.Errorf("sidecar: region: cannot change from %q to %q without a restart", old.Region, c.Region)
	}
	// Session keys: the caller's (Options.KeyRing), else the control plane's, else the
	// keys file's.
	keys := s.opts.KeyRing
	switch {
	case keys != nil:
	case c.Session.Keys != nil:
		keys = c.Session.Keys
	case c.Session.KeysFile != "":
		b, err := os.ReadFile(c.Session.KeysFile)
		if err == nil {
			keys, err = consistency.ParseKeyRing(b)
		}
		if err != nil {
			s.metrics.swaps.WithLabelValues("rejected").Inc()
			return fmt.Errorf("sidecar: session.keys_file: %s: %w", c.Session.KeysFile, err)
		}
	}
	v := s.version.Add(1)
	st, err := route.Build(c, fmt.Sprintf("static-%d", v), s.registry)
	if err != nil {
		s.metrics.swaps.WithLabelValues("rejected").Inc()
		return fmt.Errorf("sidecar: keeping the current routing state: %w", err)
	}
	s.conf.Store(c)
	s.keys.Store(keys)
	s.state.Store(st)
	s.metrics.swaps.WithLabelValues("applied").Inc()
	s.log.Info("routing state applied", "version", st.Version, "region", st.LocalName(), "services", len(st.Services()))
	return nil
}

// Addr returns the bound address of a listener ("outbound", "inbound", "admin") once Run
// has bound it, or nil.
func (s *Sidecar) Addr(listener string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.addrs[listener]
}

// Run serves until ctx ends, then stops accepting, drains in-flight requests for up to
// the configured drain timeout, and returns.
func (s *Sidecar) Run(ctx context.Context) error {
	c := s.opts.Config
	type server struct {
		name  string
		ln    net.Listener
		srv   *http.Server
		fresh *newConns
	}
	var servers []server
	add := func(name, addr string, ln net.Listener, h http.Handler, guarded bool) error {
		if ln == nil {
			if addr == "" {
				return nil
			}
			var err error
			if ln, err = net.Listen("tcp", addr); err != nil {
				return fmt.Errorf("sidecar: %s listener: %w", name, err)
			}
		}
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: c.Limits.ReadHeaderTimeout.Std(),
			IdleTimeout:       c.Limits.IdleTimeout.Std(),
			MaxHeaderBytes:    c.Limits.MaxHeaderBytes,
			ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
			Protocols:         new(http.Protocols),
		}
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
		fresh := new(newConns)
		srv.ConnState = fresh.track
		if guarded {
			ln = guardListener{Listener: ln, onTimeout: func() { s.metrics.rejected.WithLabelValues(name, "header_timeout").Inc() }}
			srv.ConnState = func(c net.Conn, st http.ConnState) {
				connState(c, st)
				fresh.track(c, st)
			}
			srv.ConnContext = connContext
		}
		s.mu.Lock()
		s.addrs[name] = ln.Addr()
		s.mu.Unlock()
		servers = append(servers, server{name: name, ln: ln, srv: srv, fresh: fresh})
		return nil
	}
	closeAll := func() {
		for _, sv := range servers {
			sv.ln.Close()
		}
	}
	if err := add(listenerOutbound, c.Listeners.Outbound, s.opts.Outbound, http.HandlerFunc(s.serveOutbound), true); err != nil {
		return err
	}
	if err := add(listenerInbound, c.Listeners.Inbound, s.opts.Inbound, http.HandlerFunc(s.serveInbound), true); err != nil {
		closeAll()
		return err
	}
	if err := add("admin", c.Listeners.Admin, s.opts.Admin, s.adminHandler(), false); err != nil {
		closeAll()
		return err
	}

	g, gctx := errgroup.WithContext(ctx)
	for _, sv := range servers {
		g.Go(func() error {
			if err := sv.srv.Serve(sv.ln); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("sidecar: %s listener: %w", sv.name, err)
			}
			return nil
		})
		s.log.Info("listening", "listener", sv.name, "addr", sv.ln.Addr().String())
	}
	s.ready.Store(true)
	g.Go(func() error {
		s.refreshLocalReplica(gctx)
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		s.ready.Store(false)
		drain, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.Limits.DrainTimeout.Std())
		defer cancel()
		s.log.Info("draining", "timeout", c.Limits.DrainTimeout.Std().String())
		go func() {
			tick := time.NewTicker(newConnGrace / 4)
			defer tick.Stop()
			for {
				for _, sv := range servers {
					sv.fresh.closeQuiet(newConnGrace)
				}
				select {
				case <-drain.Done():
					return
				case <-tick.C:
				}
			}
		}()
		var errs []error
		for _, sv := range servers {
			if err := sv.srv.Shutdown(drain); err != nil {
				errs = append(errs, fmt.Errorf("sidecar: draining %s: %w", sv.name, err))
				sv.srv.Close()
			}
		}
		s.tunnels.drain(drain) // upgraded connections get what is left of the drain
		s.registry.CloseIdleConnections()
		s.appProxy.CloseIdleConnections()
		s.appProxy2.CloseIdleConnections()
		return errors.Join(errs...)
	})
	return g.Wait()
}
