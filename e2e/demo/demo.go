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

	"github.com/geodemesh/geode/e2e/fleet"
)

// Defaults of Options.
const (
	DefaultDuration    = 15 * time.Second
	DefaultConcurrency = 4
	DefaultKeys        = 300
	DefaultInterval    = 20 * time.Millisecond
	// Lag is the replication lag of the demo's apps.
	Lag = 500 * time.Millisecond
	// FaultRegion is the region whose app the fault stops.
	FaultRegion = "eu-west"

	readShare      = 0.8              // the rest are writes
	requestTimeout = 10 * time.Second // one client request, end to end
	maxErrorSample = 5
)

// Options configure a demo run.
type Options struct {
	// Duration of the workload (seeding and start-up come on top); default 15s.
	Duration time.Duration
	// Concurrency is the number of clients per region; default 4.
	Concurrency int
	// Fault stops FaultRegion's app at 1/3 of Duration and restarts it at 2/3.
	Fault bool
	// Logger receives progress and the fleet's logs; nil discards.
	Logger *slog.Logger
	// Keys is the size of the user-id keyspace; default 300.
	Keys int
	// Interval is each client's pause between two requests; default 20ms. A client
	// also stops after Duration/Interval requests, so a run is bounded by count and time.
	Interval time.Duration
	// Seed makes the workload's choices reproducible; 0 picks one from the clock.
	Seed uint64
}

func (o *Options) defaults() {
	if o.Duration <= 0 {
		o.Duration = DefaultDuration
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Keys <= 0 {
		o.Keys = DefaultKeys
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Seed == 0 {
		o.Seed = uint64(time.Now().UnixNano())
	}
}

// sample is one client request as the client saw it.
type sample struct {
	at      time.Duration // since the workload started
	latency time.Duration
	write   bool
	status  int    // 0 when no response arrived
	served  string // Geode-Region
	reason  string // Geode-Reason
	err     string // why it counts as an error; "" if it does not
}

// Run starts a fleet (WAN emulation, 500ms replication lag), seeds the keyspace, runs
// the workload from every region through that region's sidecar, optionally with the
// fault, and reports what the clients saw. It returns an error when the fleet fails or
// the fault cannot be injected; request errors are in the Report (Report.Errors), not in
// the error. Every wait is bounded by ctx and by Duration.
func Run(ctx context.Context, opts Options) (*Report, error) {
	opts.defaults()
	log := opts.Logger
	f, err := fleet.Start(ctx, fleet.Options{WAN: true, Lag: Lag, Logger: log})
	if err != nil {
		return nil, err
	}
	transport := &http.Transport{MaxIdleConnsPerHost: opts.Concurrency * 2, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: transport, Timeout: requestTimeout}
	report, runErr := run(ctx, f, client, opts)
	transport.CloseIdleConnections()
	if err := f.Close(); err != nil {
		runErr = errors.Join(runErr, fmt.Errorf("demo: stopping the fleet: %w", err))
	}
	return report, runErr
}

func run(ctx context.Context, f *fleet.Fleet, client *http.Client, opts Options) (*Report, error) {
	log := opts.Logger
	regions := f.Regions()
	if err := seed(ctx, client, regions, opts); err != nil {
		return nil, err
	}

	log.Info("workload started", "duration", opts.Duration.String(), "clients_per_region", opts.Concurrency, "fault", opts.Fault)
	start := time.Now()
	wctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	maxPerClient := int(opts.Duration/opts.Interval) + 1

	results := make([][][]sample, len(regions)) // region → client → samples
	var wg sync.WaitGroup
	for ri, r := range regions {
		results[ri] = make([][]sample, opts.Concurrency)
		for ci := range opts.Concurrency {
			rng := rand.New(rand.NewPCG(opts.Seed, uint64(ri*1000+ci)))
			wg.Go(func() {
				results[ri][ci] = clientLoop(wctx, client, r, rng, start, maxPerClient, opts)
			})
		}
	}

	var fault *Fault
	var faultErr error
	if opts.Fault {
		fault, faultErr = injectFault(wctx, f.Region(FaultRegion), start, opts.Duration, log)
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

// seed writes every key once, spread over the regions, and waits out the replication
// lag so that reads find the keys everywhere.
func seed(ctx context.Context, client *http.Client, regions []*fleet.Region, opts Options) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	keys := make(chan int)
	errs := make(chan error, opts.Concurrency)
	var wg sync.WaitGroup
	for range opts.Concurrency {
		wg.Go(func() {
			for k := range keys {
				r := regions[k%len(regions)]
				s := do(ctx, client, r, true, k, time.Time{})
				if s.err != "" {
					errs <- fmt.Errorf("demo: seeding key %d through %s: %s", k, r.Name, s.err)
					return
				}
			}
		})
	}
	var err error
feed:
	for k := range opts.Keys {
		select {
		case keys <- k:
		case err = <-errs:
			break feed
		}
	}
	close(keys)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	if err != nil {
		return err
	}
	opts.Logger.Info("keyspace seeded", "keys", opts.Keys)
	t := time.NewTimer(Lag + 300*time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("demo: seeding: %w", ctx.Err())
	}
}

// clientLoop is one client living in region r: it calls r's sidecar until ctx ends or
// it sent limit requests.
func clientLoop(ctx context.Context, client *http.Client, r *fleet.Region, rng *rand.Rand, start time.Time, limit int, opts Options) []sample {
	out := make([]sample, 0, limit)
	pause := time.NewTimer(0)
	defer pause.Stop()
	for range limit {
		select {
		case <-ctx.Done():
			return out
		case <-pause.C:
		}
		write := rng.Float64() >= readShare
		s := do(ctx, client, r, write, rng.IntN(opts.Keys), start)
		if ctx.Err() != nil && s.err != "" {
			return out // cut off by the end of the run: not a mesh error
		}
		out = append(out, s)
		// Jitter the pause so the clients do not march in step.
		pause.Reset(opts.Interval/2 + rand.N(opts.Interval))
	}
	return out
}

// do sends one GET or PUT /users/{key} through r's sidecar with Host: profiles.
func do(ctx context.Context, client *http.Client, r *fleet.Region, write bool, key int, start time.Time) sample {
	path := fmt.Sprintf("/users/u%03d", key)
	method, body := http.MethodGet, io.Reader(nil)
	if write {
		method = http.MethodPut
		body = strings.NewReader(fmt.Sprintf(`{"name":"user %d","email":"u%d@%s.example"}`, key, key, r.Name))
	}
	s := sample{write: write}
	if !start.IsZero() {
		s.at = time.Since(start)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+r.OutboundAddr()+path, body)
	if err != nil {
		s.err = err.Error()
		return s
	}
	req.Host = fleet.ServiceHTTP
	if write {
		req.Header.Set("Content-Type", "application/json")
	}
	t0 := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		s.latency = time.Since(t0)
		s.err = fmt.Sprintf("%s %s: %v", method, path, err)
		return s
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	s.latency = time.Since(t0)
	s.status = resp.StatusCode
	s.served = resp.Header.Get("Geode-Region")
	s.reason = resp.Header.Get("Geode-Reason")
	// 404 is an answer (a key not replicated here yet, or a restarted, empty replica),
	// not a failure of the mesh.
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		s.err = fmt.Sprintf("%s %s: status %d: %s", method, path, resp.StatusCode, strings.TrimSpace(string(msg)))
	}
	return s
}

// injectFault stops region's app at duration/3 and restarts it at 2*duration/3.
func injectFault(ctx context.Context, r *fleet.Region, start time.Time, d time.Duration, log *slog.Logger) (*Fault, error) {
	if r == nil {
		return nil, fmt.Errorf("demo: no region %q to inject the fault in", FaultRegion)
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
	fault := &Fault{Region: r.Name}
	if !wait(d / 3) {
		return fault, nil
	}
	log.Info("fault: stopping the app", "region", r.Name)
	if err := r.StopApp(); err != nil {
		return nil, fmt.Errorf("demo: fault: %w", err)
	}
	fault.StoppedAtMS = ms(time.Since(start))
	fault.stopped = time.Since(start)
	fault.restarted = d // until restarted, the window lasts to the end
	if !wait(2 * d / 3) {
		return fault, nil
	}
	log.Info("fault: restarting the app", "region", r.Name)
	if err := r.StartApp(); err != nil {
		return nil, fmt.Errorf("demo: fault: %w", err)
	}
	fault.restarted = time.Since(start)
	fault.RestartedAtMS = ms(fault.restarted)
	return fault, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
