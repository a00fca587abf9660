package fleet

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/server"
	"github.com/geodemesh/geode/examples/profiles"
	"github.com/geodemesh/geode/proxy/config"
	"github.com/geodemesh/geode/proxy/sidecar"
	"github.com/geodemesh/geode/proxy/xds"
)

// Services every sidecar of a fleet routes. Both point at the same inbound listeners;
// the second lets gRPC calls (profiles.Client) go through the mesh too.
const (
	// ServiceHTTP is the profiles service routed with Geode's policies: session
	// consistency, the affinity key from the path /users/{key}, home regions by a stable
	// hash over the fleet's regions, and writes failing over to the nearest region.
	ServiceHTTP = "profiles"
	// ServiceNaive is the same endpoints routed as other meshes do: the nearest healthy
	// region, no home regions, no session tokens. For comparisons.
	ServiceNaive = "profiles-naive"
	ServiceGRPC  = "profiles-grpc" // protocol grpc, authority "profiles-grpc"
)

// DefaultRegions returns the regions of a fleet whose Options.Regions is empty.
func DefaultRegions() []string { return []string{"us-east", "eu-west", "us-west"} }

const (
	readyTimeout   = 10 * time.Second // Start: every sidecar and app answering (and routing from xDS)
	stopAppTimeout = 10 * time.Second // StopApp: the app's graceful shutdown (it bounds itself at 5s)
	requestTimeout = 5 * time.Second  // services[].timeouts.request of the sidecar configs
	drainTimeout   = 2 * time.Second  // limits.drain_timeout of the sidecar configs
)

// ErrClosed is returned by StartApp after the fleet was closed.
var ErrClosed = errors.New("fleet: closed")

// Options configure a fleet.
type Options struct {
	// Regions to run; default DefaultRegions(). Every pair must have a row in the embedded
	// RTT table (regions.csv).
	Regions []string
	// Lag is the replication lag of the profiles apps.
	Lag time.Duration
	// LagInto overrides Lag for replication into the regions it names (region → delay
	// before every other region's writes are sent to it), e.g. to make one region's
	// replica lag far behind the others. Every key must be a region of the fleet.
	LagInto map[string]time.Duration
	// WAN puts an emulated WAN link (toxiproxy, one-way latency rtt/2 each way) between a
	// sidecar and every other region's inbound listener. Without it, cross-region calls go
	// straight to the other region's inbound listener.
	WAN bool
	// Logger receives the sidecars' and apps' logs; nil discards.
	Logger *slog.Logger
	// Configure, if set, may change each region's sidecar config before the sidecar is
	// built. The config has its defaults filled in; it is validated again afterwards.
	Configure func(region string, c *config.Config)
	// KeyRing signs and verifies session tokens in every region; nil means a fresh
	// random ring for this fleet.
	KeyRing *consistency.KeyRing
	// ControlPlanes runs one control plane per region (regional autonomy) and feeds
	// each region's sidecar from its own region's control plane over xDS, instead of
	// giving it the whole static config. Each control plane's model has every region
	// and the services with that region's view of the endpoints (through its WAN
	// links); the sidecar's own file keeps its listeners, app, session, limits, debug
	// and, per service, the settings xDS does not carry (request timeout, breaker,
	// retry), which xds.Merge keeps for the services the control plane sends.
	ControlPlanes bool
}

// Fleet is a running set of regions on loopback. See doc.go for the contract.
type Fleet struct {
	log     *slog.Logger
	regions []*Region
	links   []*toxiproxy.Proxy
	cancel  context.CancelFunc
	ctx     context.Context // lifetime of every goroutine Start and StartApp start

	mu     sync.Mutex // guards closed, errs and wg.Add against Close's wg.Wait
	closed bool
	errs   []error
	wg     sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
}

// Region is one region of a fleet: a profiles app and its sidecar.
type Region struct {
	Name string

	f        *Fleet
	log      *slog.Logger
	sc       *sidecar.Sidecar
	cp       *server.Server // with Options.ControlPlanes: the region's control plane
	xdsAddr  string         // its xDS listener
	cpAdmin  string         // its admin listener
	xc       *xds.Client    // the sidecar's xDS client
	outbound string
	inbound  string
	admin    string
	appAddr  string
	peers    map[string]string        // region → base URL of that region's app (replication is direct)
	lag      time.Duration            // Options.Lag
	peerLag  map[string]time.Duration // peer region → its Options.LagInto, where set

	mu    sync.Mutex // guards epoch and app
	epoch uint64
	app   *app // nil while the app is stopped
}

// app is one run of a region's profiles app.
type app struct {
	store  *profiles.Store
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve has returned
}

// Start binds every listener, builds every config, starts the apps, the sidecars and the
// WAN links, and returns once every sidecar's /ready and every app's /healthz answer 200.
// The fleet runs until Close is called or ctx ends; either way Close must be called to
// join its goroutines. On error everything started is stopped before Start returns.
func Start(ctx context.Context, opts Options) (_ *Fleet, err error) {
	names := opts.Regions
	if len(names) == 0 {
		names = DefaultRegions()
	}
	if len(names) > config.MaxRegions {
		return nil, fmt.Errorf("fleet: %d regions; at most %d", len(names), config.MaxRegions)
	}
	rtts, err := rttTable()
	if err != nil {
		return nil, err
	}
	for i, a := range names {
		if slices.Contains(names[:i], a) {
			return nil, fmt.Errorf("fleet: region %q listed twice", a)
		}
		for _, b := range names[:i] {
			if _, ok := rtts[newPair(a, b)]; !ok {
				return nil, fmt.Errorf("fleet: no RTT between %q and %q in regions.csv", a, b)
			}
		}
	}
	for region, lag := range opts.LagInto {
		if !slices.Contains(names, region) {
			return nil, fmt.Errorf("fleet: LagInto: %q is not a region of the fleet", region)
		}
		if lag < 0 {
			return nil, fmt.Errorf("fleet: LagInto[%q]: must not be negative, got %v", region, lag)
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}

	runCtx, cancel := context.WithCancel(ctx)
	f := &Fleet{log: log, cancel: cancel, ctx: runCtx}

	// Listeners not yet owned by a running server; closed here if Start fails.
	var pending []net.Listener
	defer func() {
		if err != nil {
			for _, ln := range pending {
				ln.Close()
			}
			if cerr := f.Close(); cerr != nil {
				err = errors.Join(err, cerr)
			}
		}
	}()
	listen := func() (net.Listener, error) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("fleet: %w", err)
		}
		pending = append(pending, ln)
		return ln, nil
	}

	// 1. Every listener, up front, so the configs can name each other's addresses.
	type bound struct{ app, outbound, inbound, admin, xds, cpAdmin net.Listener }
	lns := make([]bound, len(names))
	for i, name := range names {
		var b bound
		ps := []*net.Listener{&b.app, &b.outbound, &b.inbound, &b.admin}
		if opts.ControlPlanes {
			ps = append(ps, &b.xds, &b.cpAdmin)
		}
		for _, p := range ps {
			if *p, err = listen(); err != nil {
				return nil, err
			}
		}
		lns[i] = b
		f.regions = append(f.regions, &Region{
			Name:     name,
			f:        f,
			log:      log.With("region", name),
			outbound: b.outbound.Addr().String(),
			inbound:  b.inbound.Addr().String(),
			admin:    b.admin.Addr().String(),
			appAddr:  b.app.Addr().String(),
			lag:      opts.Lag,
		})
		if opts.ControlPlanes {
			r := f.regions[i]
			r.xdsAddr, r.cpAdmin = b.xds.Addr().String(), b.cpAdmin.Addr().String()
		}
	}
	for _, r := range f.regions {
		r.peers = map[string]string{}
		for _, o := range f.regions {
			if o == r {
				continue
			}
			r.peers[o.Name] = "http://" + o.appAddr
			if lag, ok := opts.LagInto[o.Name]; ok {
				if r.peerLag == nil {
					r.peerLag = map[string]time.Duration{}
				}
				r.peerLag[o.Name] = lag
			}
		}
	}

	// 2. WAN links: one per (source, destination) region, in front of the destination's
	// inbound listener.
	link := map[[2]string]string{} // (src, dst) → address the src sidecar dials
	if opts.WAN {
		server := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
		for _, src := range f.regions {
			for _, dst := range f.regions {
				if src == dst {
					continue
				}
				addr, err := f.startLink(server, src.Name, dst.Name, dst.inbound, rtts[newPair(src.Name, dst.Name)])
				if err != nil {
					return nil, err
				}
				link[[2]string{src.Name, dst.Name}] = addr
			}
		}
	}

	// 3. One config and one sidecar per region, all sharing one session key ring. With
	// control planes, the config is split: what xDS carries (the key ring included, as
	// an SDS secret) goes into the region's control plane model, the rest is the
	// sidecar's base config.
	keys := opts.KeyRing
	if keys == nil {
		var err error
		if keys, err = randomKeyRing(); err != nil {
			return nil, err
		}
	}
	for i, r := range f.regions {
		c, err := f.config(r, rtts, link)
		if err != nil {
			return nil, err
		}
		if opts.Configure != nil {
			opts.Configure(r.Name, c)
			if err := c.Validate(); err != nil {
				return nil, fmt.Errorf("fleet: %s: config after Configure: %w", r.Name, err)
			}
		}
		sidecarKeys := keys
		if opts.ControlPlanes {
			// The control plane hands the key ring to its sidecars (SDS).
			sp := spec(c)
			sp.SessionKeys, sidecarKeys = keys, nil
			m, err := model.New(sp)
			if err != nil {
				return nil, fmt.Errorf("fleet: %s: control plane model: %w", r.Name, err)
			}
			if r.cp, err = server.New(server.Options{
				Model:  m,
				XDS:    lns[i].xds,
				Admin:  lns[i].cpAdmin,
				Logger: r.log.With("component", "controlplane"),
			}); err != nil {
				return nil, fmt.Errorf("fleet: %s: control plane: %w", r.Name, err)
			}
			if c, err = baseConfig(c); err != nil {
				return nil, fmt.Errorf("fleet: %s: %w", r.Name, err)
			}
		}
		r.sc, err = sidecar.New(sidecar.Options{
			Config:   c,
			KeyRing:  sidecarKeys,
			Logger:   r.log.With("component", "sidecar"),
			Outbound: lns[i].outbound,
			Inbound:  lns[i].inbound,
			Admin:    lns[i].admin,
		})
		if err != nil {
			return nil, fmt.Errorf("fleet: %s: %w", r.Name, err)
		}
		if opts.ControlPlanes {
			if r.xc, err = xds.New(xds.Options{
				Server:      r.xdsAddr,
				DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())},
				NodeID:      "sidecar-" + r.Name,
				Service:     ServiceHTTP,
				Address:     r.inbound,
				Base:        c,
				Apply:       r.sc.Apply,
				MinBackoff:  50 * time.Millisecond,
				MaxBackoff:  time.Second,
				Logger:      r.log,
			}); err != nil {
				return nil, fmt.Errorf("fleet: %s: xds client: %w", r.Name, err)
			}
		}
	}

	// 4. Run everything: the control planes first, then the apps, the sidecars and
	// their xDS clients. From here on the servers own their listeners.
	for _, r := range f.regions {
		if r.cp == nil {
			continue
		}
		cp, name := r.cp, r.Name
		if err := f.goRun(func() error {
			if err := cp.Run(runCtx); err != nil {
				return fmt.Errorf("fleet: %s: control plane: %w", name, err)
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	for i, r := range f.regions {
		if err := r.startAppLocked(lns[i].app); err != nil {
			return nil, err
		}
		sc := r.sc
		if err := f.goRun(func() error { return sc.Run(runCtx) }); err != nil {
			return nil, err
		}
		if xc, name := r.xc, r.Name; xc != nil {
			if err := f.goRun(func() error {
				if err := xc.Run(runCtx); err != nil {
					return fmt.Errorf("fleet: %s: xds client: %w", name, err)
				}
				return nil
			}); err != nil {
				return nil, err
			}
		}
	}
	pending = nil

	// 5. Wait until everything answers.
	if err := f.waitReady(ctx); err != nil {
		return nil, err
	}
	log.Info("fleet ready", "regions", strings.Join(names, ","), "wan", opts.WAN, "lag", opts.Lag.String(), "control_planes", opts.ControlPlanes)
	return f, nil
}

// startLink starts the emulated WAN link src → dst and returns its address.
func (f *Fleet) startLink(server *toxiproxy.ApiServer, src, dst, upstream string, rtt time.Duration) (string, error) {
	p := toxiproxy.NewProxy(server, src+"->"+dst, "127.0.0.1:0", upstream)
	if err := p.Start(); err != nil {
		return "", fmt.Errorf("fleet: WAN link %s->%s: %w", src, dst, err)
	}
	f.links = append(f.links, p)
	// One-way delay rtt/2 each way; the halves add up to the RTT exactly.
	up := rtt.Milliseconds() / 2
	down := rtt.Milliseconds() - up
	for _, t := range []struct {
		stream string
		ms     int64
	}{{"upstream", up}, {"downstream", down}} {
		js := fmt.Sprintf(`{"name":"wan_%s","type":"latency","stream":%q,"toxicity":1,"attributes":{"latency":%d,"jitter":0}}`, t.stream, t.stream, t.ms)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			return "", fmt.Errorf("fleet: WAN link %s->%s: %s latency: %w", src, dst, t.stream, err)
		}
	}
	return p.Listen, nil
}

// config builds region r's sidecar config: every region with its RTTs, and the profiles
// services with endpoints = every region's inbound listener (through a WAN link when
// there is one). It goes through config.Parse so defaults are filled in as for a file.
func (f *Fleet) config(r *Region, rtts map[pair]time.Duration, link map[[2]string]string) (*config.Config, error) {
	regions := make([]config.Region, len(f.regions))
	for i, a := range f.regions {
		regions[i] = config.Region{Name: a.Name, RTT: map[string]config.Duration{}}
		for _, b := range f.regions[i+1:] { // each pair once: the config checks symmetry
			regions[i].RTT[b.Name] = config.Duration(rtts[newPair(a.Name, b.Name)])
		}
	}
	eps := map[string][]string{}
	for _, dst := range f.regions {
		addr := dst.inbound
		if l, ok := link[[2]string{r.Name, dst.Name}]; ok {
			addr = l
		}
		eps[dst.Name] = []string{addr}
	}
	c := config.Config{
		Region:    r.Name,
		Listeners: config.Listeners{Outbound: r.outbound, Inbound: r.inbound, Admin: r.admin},
		App:       config.App{Address: r.appAddr, WatermarkPath: "/watermark"},
		Regions:   regions,
		Services: []config.Service{
			{Name: ServiceHTTP, Authorities: []string{ServiceHTTP}, Protocol: config.ProtocolHTTP1, Endpoints: eps,
				Timeouts:      config.Timeouts{Request: config.Duration(requestTimeout)},
				Breaker:       fastBreaker(),
				Consistency:   "session",
				AffinityKey:   "path:/users/{key}",
				HomeRegions:   "hash=" + strings.Join(f.names(), ","),
				WriteFailover: "nearest"},
			{Name: ServiceNaive, Authorities: []string{ServiceNaive}, Protocol: config.ProtocolHTTP1, Endpoints: eps,
				Timeouts: config.Timeouts{Request: config.Duration(requestTimeout)}, Breaker: fastBreaker()},
			{Name: ServiceGRPC, Authorities: []string{ServiceGRPC}, Protocol: config.ProtocolGRPC, Endpoints: eps},
		},
		Limits: config.Limits{DrainTimeout: config.Duration(drainTimeout)},
		Debug:  config.Debug{ReasonHeader: true},
	}
	out, err := parse(&c)
	if err != nil {
		return nil, fmt.Errorf("fleet: %s: %w", r.Name, err)
	}
	return out, nil
}

// parse renders c and parses it back, so defaults are filled in and it is validated as
// a file would be.
func parse(c *config.Config) (*config.Config, error) {
	b, err := yaml.Marshal(c)
	if err != nil {
		return nil, fmt.Errorf("encoding config: %w", err)
	}
	return config.Parse(b)
}

// spec is the part of a region's full sidecar config that a control plane carries:
// every region with its RTTs and state, and every service with its endpoints (this
// region's view of them: through its WAN links) and its routing policy.
func spec(c *config.Config) model.Spec {
	var s model.Spec
	for _, r := range c.Regions {
		rs := model.RegionSpec{Name: r.Name, State: r.State, RTT: map[string]time.Duration{}}
		for other, d := range r.RTT {
			rs.RTT[other] = time.Duration(d)
		}
		s.Regions = append(s.Regions, rs)
	}
	for _, svc := range c.Services {
		ss := model.ServiceSpec{
			Name:        svc.Name,
			Protocol:    svc.Protocol,
			Authorities: slices.Clone(svc.Authorities),
			Endpoints:   map[string][]model.Endpoint{},
			Policy: model.Policy{
				Consistency:         svc.Consistency,
				AffinityKey:         svc.AffinityKey,
				HomeRegions:         svc.HomeRegions,
				WriteFailover:       svc.WriteFailover,
				Residency:           svc.Residency,
				CrossRegionBudget:   svc.CrossRegionBudget,
				ReplicationLagBound: time.Duration(svc.ReplicationLagBound),
			},
		}
		for region, addrs := range svc.Endpoints {
			for _, a := range addrs {
				ss.Endpoints[region] = append(ss.Endpoints[region], model.Endpoint{Address: a})
			}
		}
		s.Services = append(s.Services, ss)
	}
	return s
}

// baseConfig is a region's sidecar file when a control plane feeds it: the full
// config's listeners, app, session, limits and debug, only its own region, and each
// service with only its own region's endpoints, no routing policy, and the settings
// xDS does not carry (timeouts, retry, breaker), which xds.Merge keeps for the
// service of the same name from the control plane. Until the first xDS update it
// serves its own region only.
func baseConfig(full *config.Config) (*config.Config, error) {
	c := *full
	c.Regions = []config.Region{{Name: full.Region}}
	for _, r := range full.Regions {
		if r.Name == full.Region {
			c.Regions[0].State = r.State
		}
	}
	c.Services = nil
	for _, svc := range full.Services {
		eps := svc.Endpoints[full.Region]
		if len(eps) == 0 {
			continue
		}
		c.Services = append(c.Services, config.Service{
			Name:        svc.Name,
			Authorities: slices.Clone(svc.Authorities),
			Protocol:    svc.Protocol,
			Endpoints:   map[string][]string{full.Region: slices.Clone(eps)},
			Timeouts:    svc.Timeouts,
			Retry:       svc.Retry,
			Breaker:     svc.Breaker,
		})
	}
	out, err := parse(&c)
	if err != nil {
		return nil, fmt.Errorf("base config: %w", err)
	}
	return out, nil
}

func (f *Fleet) names() []string {
	out := make([]string, len(f.regions))
	for i, r := range f.regions {
		out[i] = r.Name
	}
	return out
}

// fastBreaker opens after 3 failures and probes again after a second, so that a
// region's recovery shows within a short demo.
func fastBreaker() config.Breaker {
	return config.Breaker{ConsecutiveFailures: 3, OpenFor: config.Duration(time.Second)}
}

// randomKeyRing returns a ring with one fresh random key, valid for a day.
func randomKeyRing() (*consistency.KeyRing, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("fleet: session key: %w", err)
	}
	now := time.Now()
	return consistency.NewKeyRing([]consistency.Key{{ID: "fleet", Secret: secret, SignFrom: now.Add(-time.Minute), Expires: now.Add(24 * time.Hour)}})
}

// goRun runs fn in a goroutine that Close joins, recording its error. It refuses once
// the fleet is closed, so no goroutine starts after Close began waiting.
func (f *Fleet) goRun(fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return ErrClosed
	}
	f.wg.Go(func() {
		if err := fn(); err != nil {
			f.mu.Lock()
			f.errs = append(f.errs, err)
			f.mu.Unlock()
		}
	})
	return nil
}

// waitReady polls every sidecar's /ready and every app's /healthz until all answer 200,
// for at most readyTimeout.
func (f *Fleet) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for _, r := range f.regions {
		for _, url := range []string{"http://" + r.admin + "/ready", "http://" + r.appAddr + "/healthz"} {
			for {
				if ok200(ctx, client, url) {
					break
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("fleet: %s: %s not ready: %w", r.Name, url, context.Cause(ctx))
				case <-tick.C:
				}
			}
		}
		if r.xc == nil {
			continue
		}
		for !f.routesFromXDS(r) {
			select {
			case <-ctx.Done():
				return fmt.Errorf("fleet: %s: no routing state from the control plane (xds status %+v): %w", r.Name, r.xc.Status(), context.Cause(ctx))
			case <-tick.C:
			}
		}
	}
	return nil
}

// routesFromXDS reports whether r's sidecar routes a state from its control plane:
// every region of the fleet, and every service with a pool in every region.
func (f *Fleet) routesFromXDS(r *Region) bool {
	if st := r.xc.Status(); st.Source != "xds" {
		return false
	}
	d := r.sc.ConfigDump()
	if len(d.Regions) != len(f.regions) {
		return false
	}
	want := []string{ServiceHTTP, ServiceNaive, ServiceGRPC}
	for _, svc := range d.Services {
		if slices.Contains(want, svc.Name) && len(svc.Pools) == len(f.regions) {
			want = slices.DeleteFunc(want, func(n string) bool { return n == svc.Name })
		}
	}
	return len(want) == 0
}

func ok200(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Region returns the named region, or nil.
func (f *Fleet) Region(name string) *Region {
	for _, r := range f.regions {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Regions returns the regions in the order of Options.Regions. The slice is the
// caller's; the regions are shared.
func (f *Fleet) Regions() []*Region { return slices.Clone(f.regions) }

// Close stops the sidecars (they drain for at most 2s) and the apps, waits for every
// goroutine the fleet started, then stops the WAN links. It returns the errors the
// sidecars and apps returned. Close is idempotent and safe to call concurrently.
func (f *Fleet) Close() error {
	f.closeOnce.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.mu.Unlock()
		f.cancel()
		f.wg.Wait()
		// The links go last: draining sidecars may still be talking through them.
		for _, l := range f.links {
			l.Stop()
		}
		f.mu.Lock()
		f.closeErr = errors.Join(f.errs...)
		f.mu.Unlock()
	})
	return f.closeErr
}

// OutboundAddr is the address of the region's sidecar outbound listener: what the
// region's clients call, with Host: profiles.
func (r *Region) OutboundAddr() string { return r.outbound }

// InboundAddr is the address of the region's sidecar inbound listener (mesh → app).
func (r *Region) InboundAddr() string { return r.inbound }

// AdminAddr is the address of the region's sidecar admin listener.
func (r *Region) AdminAddr() string { return r.admin }

// AppAddr is the address of the region's profiles app. It stays the same across
// StopApp and StartApp.
func (r *Region) AppAddr() string { return r.appAddr }

// Sidecar returns the region's sidecar.
func (r *Region) Sidecar() *sidecar.Sidecar { return r.sc }

// ControlPlane returns the region's control plane, or nil without
// Options.ControlPlanes.
func (r *Region) ControlPlane() *server.Server { return r.cp }

// ControlPlaneAddrs returns the addresses of the region's control plane: its xDS and
// admin listeners; empty without Options.ControlPlanes.
func (r *Region) ControlPlaneAddrs() (xdsAddr, admin string) { return r.xdsAddr, r.cpAdmin }

// XDS returns the xDS client of the region's sidecar, or nil without
// Options.ControlPlanes.
func (r *Region) XDS() *xds.Client { return r.xc }

// Store returns the running app's store, or nil while the app is stopped.
func (r *Region) Store() *profiles.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.app == nil {
		return nil
	}
	return r.app.store
}

// StopApp stops the region's app (a graceful shutdown, bounded) and waits for it; the
// sidecar keeps running, so its inbound listener answers 503, marked unprocessed (so callers go elsewhere), until StartApp. Stopping a
// stopped app does nothing.
func (r *Region) StopApp() error {
	r.mu.Lock()
	a := r.app
	r.app = nil
	r.mu.Unlock()
	if a == nil {
		return nil
	}
	a.cancel()
	t := time.NewTimer(stopAppTimeout)
	defer t.Stop()
	select {
	case <-a.done:
		r.log.Info("app stopped")
		return nil
	case <-t.C:
		return fmt.Errorf("fleet: %s: app did not stop within %s", r.Name, stopAppTimeout)
	}
}

// StartApp starts a new, empty instance of the region's app on the same address, with
// the next epoch (so its peers accept its restarted write sequence). Starting a running
// app is an error.
func (r *Region) StartApp() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.app != nil {
		return fmt.Errorf("fleet: %s: app is already running", r.Name)
	}
	ln, err := net.Listen("tcp", r.appAddr)
	if err != nil {
		return fmt.Errorf("fleet: %s: restarting the app: %w", r.Name, err)
	}
	if err := r.startAppLocked(ln); err != nil {
		ln.Close()
		return err
	}
	r.log.Info("app started", "epoch", r.epoch)
	return nil
}

// startAppLocked serves a new store on ln; r.mu is held (or r is not shared yet). On
// success ln belongs to the store.
func (r *Region) startAppLocked(ln net.Listener) error {
	r.epoch++
	store, err := profiles.New(profiles.Config{
		Region:  r.Name,
		Epoch:   r.epoch,
		Lag:     r.lag,
		PeerLag: r.peerLag,
		Peers:   r.peers,
		Logger:  r.log.With("component", "app"),
	})
	if err != nil {
		return fmt.Errorf("fleet: %s: %w", r.Name, err)
	}
	ctx, cancel := context.WithCancel(r.f.ctx)
	a := &app{store: store, cancel: cancel, done: make(chan struct{})}
	if err := r.f.goRun(func() error {
		defer close(a.done)
		defer cancel()
		if err := store.Serve(ctx, ln); err != nil {
			return fmt.Errorf("fleet: %s: app: %w", r.Name, err)
		}
		return nil
	}); err != nil {
		cancel()
		return err
	}
	r.app = a
	return nil
}
