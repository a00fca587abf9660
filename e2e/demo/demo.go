package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/e2e/fleet"
)

// Defaults of Options.
const (
	DefaultDuration       = 15 * time.Second
	DefaultConcurrency    = 3
	DefaultKeysPerSession = 3
	DefaultInterval       = 20 * time.Millisecond
	DefaultTravelEvery    = 8
	// Lag is the replication lag of the demo's apps.
	Lag = 500 * time.Millisecond
	// FaultRegion is the region whose app the fault stops.
	FaultRegion = "eu-west"

	writeShare     = 0.3              // the rest are reads
	requestTimeout = 10 * time.Second // one client request, end to end
	maxSamples     = 5                // error and violation samples kept per arm
)

// Arm names: the two ways the same workload is routed.
const (
	ArmGeode = "geode" // service profiles: Geode's policies, sessions carry their tokens
	ArmNaive = "naive" // service profiles-naive: nearest healthy region, no tokens
)

// Options configure a demo run.
type Options struct {
	// Duration of the workload (start-up and shutdown come on top); default 15s.
	Duration time.Duration
	// Concurrency is the number of sessions starting in each region, per arm; default 3.
	Concurrency int
	// Fault stops FaultRegion's app at 1/3 of Duration and restarts it at 2/3.
	Fault bool
	// Logger receives progress and the fleet's logs; nil discards.
	Logger *slog.Logger
	// KeysPerSession is how many keys (user ids) each session owns; default 3.
	KeysPerSession int
	// Interval is each session's pause between two requests; default 20ms. A session
	// also stops after Duration/Interval requests, so a run is bounded by count and time.
	Interval time.Duration
	// TravelEvery is how many requests a session sends through one region's sidecar
	// before it travels to another region; default 8.
	TravelEvery int
	// Seed makes the workload's choices reproducible; 0 picks one from the clock.
	Seed uint64
	// Static gives every sidecar its whole config (regions, services, endpoints) up
	// front. By default each region runs its own control plane and its sidecar gets
	// regions, services and endpoints from it over xDS (fleet.Options.ControlPlanes).
	Static bool
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.KeysPerSession <= 0 {
		o.KeysPerSession = DefaultKeysPerSession
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.TravelEvery <= 0 {
		o.TravelEvery = DefaultTravelEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
}

// arm is one way of routing the workload.
type arm struct {
	name    string
	service string // Host of every request
	tokens  bool   // sessions send their geode-session token back
}

// numArms is how many arms a run has: geode and naive.
const numArms = 2

// arms returns both arms, geode first.
func arms() [numArms]arm {
	return [numArms]arm{
		{name: ArmGeode, service: fleet.ServiceHTTP, tokens: true},
		{name: ArmNaive, service: fleet.ServiceNaive, tokens: false},
	}
}

// check is what the read-your-writes check made of a read.
type check uint8

const (
	unchecked check = iota // a write, an error, or a read of a key the session has not written
	seen                   // the read showed the session's last write of the key, or a later one
	missed                 // it did not (a violation, unless the fault lost the write)
	flagged                // it did not, and Geode said so (Geode-Degraded): the region with the write could not serve
)

// sample is one session request as the session saw it.
type sample struct {
	caller   string        // region whose sidecar was called
	at       time.Duration // sent, since the workload started
	latency  time.Duration
	write    bool
	key      string
	status   int    // 0 when no response arrived
	served   string // Geode-Region
	reason   string // Geode-Reason
	version  string // geode-version: the write's, or the version of the profile read
	degraded string // Geode-Degraded: a guarantee Geode says this response does not carry
	err      string // why it counts as an error; "" if it does not

	check   check
	wrote   consistency.Version // the session's last write of key, when checked
	wroteAt time.Duration       // when that write was sent
}

// lastWrite is a session's last acknowledged write of one of its keys.
type lastWrite struct {
	v  consistency.Version
	at time.Duration
	// unsure: a later write of the key failed without an answer, so it may or may not
	// have happened; reads are not checked until the next acknowledged write.
	unsure bool
}

// Run starts a fleet (WAN emulation, 500ms replication lag, a control plane per region
// unless Options.Static) and runs the same workload
// of travelling sessions through both arms at once (geode: service profiles with session
// tokens; naive: service profiles-naive without), optionally with the fault, and
// reports what the sessions saw. It returns an error when the fleet fails or the fault
// cannot be injected; request errors and read-your-writes violations are in the Report
// (see Report.Err), not in the error. Every wait is bounded by ctx and by Duration.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	log := opts.Logger
	f, err := fleet.Start(ctx, fleet.Options{WAN: true, Lag: Lag, Logger: log, ControlPlanes: !opts.Static})
	if err != nil {
		return nil, err
	}
	sessions := opts.Concurrency * len(f.Regions()) * numArms
	transport := &http.Transport{MaxIdleConnsPerHost: sessions, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: transport, Timeout: requestTimeout}
	report, runErr := run(ctx, f, client, opts)
	if report != nil {
		report.Config = ConfigControlPlanes
		if opts.Static {
			report.Config = ConfigStatic
		}
	}
	transport.CloseIdleConnections()
	if err := f.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("demo: stopping the fleet: %w", err))
	}
	return report, runErr
}

func run(ctx context.Context, f *fleet.Fleet, client *http.Client, opts Options) (*Report, error) {
	log := opts.Logger
	regions := f.Regions()
	log.Info("workload started", "duration", opts.Duration.String(), "sessions_per_region_per_arm", opts.Concurrency,
		"arms", ArmGeode+","+ArmNaive, "fault", opts.Fault, "seed", opts.Seed)
	start := time.Now()
	deadline := start.Add(opts.Duration)
	wctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	maxPerSession := int(opts.Duration/opts.Interval) + 1

	results := make([][][]sample, numArms) // arm → session → samples
	var wg sync.WaitGroup
	for ai, a := range arms() {
		results[ai] = make([][]sample, opts.Concurrency*len(regions))
		for si := range results[ai] {
			s := &session{
				arm:     a,
				client:  client,
				regions: regions,
				at:      si % len(regions), // Concurrency sessions start in each region
				rng:     rand.New(rand.NewPCG(opts.Seed, uint64(ai*1000+si))),
				wrote:   map[string]*lastWrite{},
			}
			for k := range opts.KeysPerSession {
				s.keys = append(s.keys, fmt.Sprintf("%s-s%d-k%d", a.name, si, k))
			}
			wg.Go(func() {
				// Requests use ctx, not wctx: one in flight at the deadline finishes
				// (bounded by requestTimeout) rather than being cut off.
				results[ai][si] = s.loop(ctx, wctx, start, maxPerSession, opts)
			})
		}
	}

	fault := &Fault{Region: FaultRegion, Enabled: opts.Fault}
	var faultErr error
	if opts.Fault {
		faultErr = injectFault(wctx, f.Region(FaultRegion), fault, start, opts.Duration, log)
	}
	wg.Wait()
	elapsed := time.Since(start)
	if faultErr != nil {
		return nil, faultErr
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("demo: interrupted: %w", err)
	}
	log.Info("workload done", "elapsed", elapsed.Round(time.Millisecond).String())
	return buildReport(regions, results, fault, elapsed), nil
}

// session is one travelling user of one arm: it owns a few keys, calls the sidecar of
// the region it is in, and moves to another region every TravelEvery requests.
type session struct {
	arm     arm
	client  *http.Client
	regions []*fleet.Region
	at      int // index of the region the user is in
	keys    []string
	rng     *rand.Rand
	token   string                // geode-session, carried in the geode arm only
	wrote   map[string]*lastWrite // key → the session's last write of it
}

// loop sends requests until wctx ends or it sent limit of them, pausing about
// opts.Interval between two. Requests themselves run under ctx.
func (s *session) loop(ctx, wctx context.Context, start time.Time, limit int, opts Options) []sample {
	out := make([]sample, 0, limit)
	// A random first pause, so the sessions do not march in step.
	pause := time.NewTimer(time.Duration(s.rng.Int64N(int64(opts.Interval))))
	defer pause.Stop()
	for n := range limit {
		select {
		case <-wctx.Done():
			return out
		case <-pause.C:
		}
		if wctx.Err() != nil {
			return out
		}
		if n > 0 && n%opts.TravelEvery == 0 {
			// The user moved: from now on its requests go through another region's sidecar.
			s.at = (s.at + 1 + s.rng.IntN(len(s.regions)-1)) % len(s.regions)
		}
		key := s.keys[s.rng.IntN(len(s.keys))]
		write := s.rng.Float64() < writeShare
		smp := s.do(ctx, key, write, start)
		s.observe(&smp)
		out = append(out, smp)
		pause.Reset(opts.Interval/2 + time.Duration(s.rng.Int64N(int64(opts.Interval))))
	}
	return out
}

// do sends one GET or PUT /users/{key} through the sidecar of the region the session
// is in, with the arm's Host, and the session token in the geode arm.
func (s *session) do(ctx context.Context, key string, write bool, start time.Time) sample {
	r := s.regions[s.at]
	path := "/users/" + key
	method, body := http.MethodGet, io.Reader(nil)
	if write {
		method = http.MethodPut
		body = strings.NewReader(fmt.Sprintf(`{"name":"%s","email":"%s@%s.example"}`, key, key, r.Name))
	}
	smp := sample{caller: r.Name, at: time.Since(start), write: write, key: key}
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.OutboundAddr()+path, body)
	if err != nil {
		smp.err = err.Error()
		return smp
	}
	req.Host = s.arm.service
	if write {
		req.Header.Set("Content-Type", "application/json")
	}
	if s.arm.tokens && s.token != "" {
		req.Header.Set(consistency.HeaderSession, s.token)
	}
	t0 := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		smp.latency = time.Since(t0)
		smp.err = fmt.Sprintf("%s %s via %s: %v", method, path, r.Name, err)
		return smp
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	smp.latency = time.Since(t0)
	smp.status = resp.StatusCode
	smp.served = resp.Header.Get("Geode-Region")
	smp.reason = resp.Header.Get("Geode-Reason")
	smp.version = resp.Header.Get(consistency.HeaderVersion)
	smp.degraded = resp.Header.Get("Geode-Degraded")
	if tok := resp.Header.Get(consistency.HeaderSession); tok != "" && s.arm.tokens {
		s.token = tok
	}
	if resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests {
		smp.err = fmt.Sprintf("%s %s via %s: status %d: %s", method, path, r.Name, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return smp
}

// observe records a write, or checks a read against the session's last write of its key.
func (s *session) observe(smp *sample) {
	w := s.wrote[smp.key]
	if smp.write {
		v, err := consistency.ParseVersion(smp.version)
		switch {
		case smp.status == http.StatusOK && err == nil:
			s.wrote[smp.key] = &lastWrite{v: v, at: smp.at}
		case w != nil:
			// No acknowledged version: the write may or may not have happened.
			w.unsure = true
		}
		return
	}
	if w == nil || w.unsure || smp.err != "" {
		return // nothing to check (a never-written key may 404), or an error (counted as such)
	}
	smp.wrote, smp.wroteAt = w.v, w.at
	switch {
	case sees(smp.status, smp.version, w.v):
		smp.check = seen
	case smp.degraded != "":
		smp.check = flagged
	default:
		smp.check = missed
	}
}

// sees reports whether a read answered status with the version read shows the write
// wrote (or a later write of the same origin and epoch): the read-your-writes check.
func sees(status int, read string, wrote consistency.Version) bool {
	if status != http.StatusOK {
		return false
	}
	r, err := consistency.ParseVersion(read)
	return err == nil && (consistency.Watermark{r.Origin: r.Position}).Covers(wrote)
}

// injectFault stops r's app at d/3 and restarts it at 2d/3, recording when in fault.
func injectFault(ctx context.Context, r *fleet.Region, fault *Fault, start time.Time, d time.Duration, log *slog.Logger) error {
	if r == nil {
		return fmt.Errorf("demo: no region %q to inject the fault in", FaultRegion)
	}
	wait := func(at time.Duration) bool {
		t := time.NewTimer(time.Until(start.Add(at)))
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !wait(d / 3) {
		return nil
	}
	log.Info("fault: stopping the app", "region", r.Name)
	fault.stopped = time.Since(start) // from here on its un-replicated writes are gone
	if err := r.StopApp(); err != nil {
		return fmt.Errorf("demo: fault: %w", err)
	}
	fault.StoppedAtMS = ms(fault.stopped)
	fault.restarted = d // until restarted, the window lasts to the end
	if !wait(2 * d / 3) {
		return nil
	}
	log.Info("fault: restarting the app", "region", r.Name)
	if err := r.StartApp(); err != nil {
		return fmt.Errorf("demo: fault: %w", err)
	}
	fault.restarted = time.Since(start)
	fault.RestartedAtMS = ms(fault.restarted)
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
