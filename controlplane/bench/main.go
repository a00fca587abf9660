// Command bench is the control plane's scale benchmark (issue 4): N simulated ADS
// clients against one `geode controlplane`, the time from an operator's region-state
// change to each client's ACK of the changed EDS, control-plane memory per client and
// bytes sent per push.
//
//	go run ./controlplane/bench -n 1000,10000            # SotW, results on stdout
//	go run ./controlplane/bench -n 1000,10000 -mode sotw,delta -benchmarks BENCHMARKS.md
//
// The control plane runs as its own process (built from ./cmd/geode unless -geode names
// a binary) so that its RSS is its own; -inprocess runs it in this process instead (for
// -cpuprofile; memory is then not reported). Clients are raw ADS streams made with
// envoy's generated client, -per-conn streams multiplexed on each gRPC connection, one
// goroutine per stream; each subscribes to LDS, RDS, CDS and EDS by name (as grpc-go
// does) and ACKs every response.
package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/geodemesh/geode/controlplane/server"
	"github.com/geodemesh/geode/controlplane/source"
)

type config struct {
	ns             []int
	modes          []string
	perConn        int
	rounds         int
	geode          string
	inprocess      bool
	connectTimeout time.Duration
	pushTimeout    time.Duration
	startBatch     int
	startPause     time.Duration
	cpuprofile     string
	benchmarks     string
	quiet          bool
	settle         time.Duration
	clientGOGC     int
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	ns := fs.String("n", "1000,10000", "comma-separated client `counts`")
	modes := fs.String("mode", "sotw", "comma-separated ADS variants: sotw, delta")
	fs.IntVar(&c.perConn, "per-conn", 100, "ADS streams per gRPC connection")
	fs.IntVar(&c.rounds, "rounds", 3, "region-state changes per run, alternating down and restore of us-east")
	fs.StringVar(&c.geode, "geode", "", "geode `binary` to run (default: go build ./cmd/geode into a temp dir)")
	fs.BoolVar(&c.inprocess, "inprocess", false, "run the control plane in this process (no memory numbers)")
	fs.DurationVar(&c.connectTimeout, "connect-timeout", 3*time.Minute, "bound on connecting N clients and their initial ACKs")
	fs.DurationVar(&c.pushTimeout, "push-timeout", time.Minute, "bound on one change reaching every client")
	fs.IntVar(&c.startBatch, "start-batch", 500, "streams started at once while connecting")
	fs.DurationVar(&c.startPause, "start-pause", 100*time.Millisecond, "pause between start batches")
	fs.StringVar(&c.cpuprofile, "cpuprofile", "", "write a CPU profile of the push rounds to `file` (-inprocess only)")
	fs.StringVar(&c.benchmarks, "benchmarks", "", "rewrite the cp-bench section of this BENCHMARKS.md `file`")
	fs.BoolVar(&c.quiet, "quiet", false, "no progress lines on stderr")
	fs.DurationVar(&c.settle, "settle", time.Second, "quiet time before each memory reading and between rounds")
	fs.IntVar(&c.clientGOGC, "client-gogc", 400, "GOGC of this (client) process; the control plane's comes from the environment")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for f := range strings.SplitSeq(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-n: bad count %q", f)
		}
		c.ns = append(c.ns, n)
	}
	for m := range strings.SplitSeq(*modes, ",") {
		if m = strings.TrimSpace(m); m != "sotw" && m != "delta" {
			return fmt.Errorf("-mode: %q is not sotw or delta", m)
		}
		c.modes = append(c.modes, strings.TrimSpace(m))
	}
	if c.perConn <= 0 || c.rounds <= 0 || c.startBatch <= 0 {
		return errors.New("-per-conn, -rounds and -start-batch must be positive")
	}
	if c.cpuprofile != "" && !c.inprocess {
		return errors.New("-cpuprofile needs -inprocess")
	}
	raiseFDLimit()
	if !c.inprocess {
		// The simulated clients are load, not the system under test: fewer GC cycles
		// here leave more of the 2 cores to the control plane.
		defer debug.SetGCPercent(debug.SetGCPercent(c.clientGOGC))
	}
	progress := func(format string, a ...any) {
		if !c.quiet {
			fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
		}
	}

	tmp, err := os.MkdirTemp("", "geode-cp-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	cfgDir := filepath.Join(tmp, "config")
	if err := os.Mkdir(cfgDir, 0o755); err != nil {
		return err
	}
	if err := writeFleet(cfgDir); err != nil {
		return err
	}
	if !c.inprocess && c.geode == "" {
		c.geode = filepath.Join(tmp, "geode")
		progress("building %s", c.geode)
		build := exec.CommandContext(ctx, "go", "build", "-o", c.geode, "./cmd/geode")
		build.Dir, err = moduleRoot()
		if err != nil {
			return err
		}
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("go build ./cmd/geode: %w", err)
		}
	}
	if c.cpuprofile != "" {
		f, err := os.Create(c.cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	var results []runResult
	for _, mode := range c.modes {
		for _, n := range c.ns {
			r, err := runOne(ctx, c, cfgDir, tmp, n, mode, progress)
			if err != nil {
				return fmt.Errorf("n=%d %s: %w", n, mode, err)
			}
			results = append(results, r)
			fmt.Fprintln(stdout, r.row())
		}
	}
	section := report(c, results, args)
	fmt.Fprintln(stdout)
	fmt.Fprint(stdout, section)
	if c.benchmarks != "" {
		return rewriteSection(c.benchmarks, section)
	}
	return nil
}

// controlPlane is a running control plane: its addresses and the pid whose memory and
// CPU time are its own (0 when it runs in this process).
type controlPlane struct {
	xds, admin string
	pid        int
	stop       func()
}

func startControlPlane(ctx context.Context, c config, cfgDir, tmp string) (*controlPlane, error) {
	if c.inprocess {
		m, err := source.Load(cfgDir)
		if err != nil {
			return nil, err
		}
		xl, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		al, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			xl.Close()
			return nil, err
		}
		s, err := server.New(server.Options{Model: m, XDS: xl, Admin: al})
		if err != nil {
			xl.Close()
			al.Close()
			return nil, err
		}
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- s.Run(rctx) }()
		cp := &controlPlane{xds: xl.Addr().String(), admin: "http://" + al.Addr().String(), stop: func() { cancel(); <-done }}
		return cp, waitAdmin(ctx, cp.admin)
	}
	xds, err := freeAddr()
	if err != nil {
		return nil, err
	}
	admin, err := freeAddr()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(tmp, "controlplane.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.geode, "controlplane", "--config", cfgDir, "--listen", xds, "--admin", admin, "--insecure", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	cp := &controlPlane{xds: xds, admin: "http://" + admin, pid: cmd.Process.Pid}
	cp.stop = func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		t := time.NewTimer(15 * time.Second)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			_ = cmd.Process.Kill()
			<-done
		}
		logf.Close()
	}
	if err := waitAdmin(ctx, cp.admin); err != nil {
		cp.stop()
		b, _ := os.ReadFile(logf.Name())
		return nil, fmt.Errorf("%w; control plane log:\n%s", err, b)
	}
	return cp, nil
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitAdmin(ctx context.Context, admin string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := configVersions(ctx, admin); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			return fmt.Errorf("control plane admin %s not up after 15s: %w", admin, err)
		}
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return err
		}
	}
}

func configVersions(ctx context.Context, admin string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/config_dump", nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Snapshots map[string]string `json:"snapshot_versions"`
	}
	return out.Snapshots, doJSON(req, &out)
}

func setRegion(ctx context.Context, admin, region, action string) (map[string]string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, admin+"/regions/"+region+"/"+action, nil)
	if err != nil {
		return nil, err
	}
	var out struct {
		Snapshots map[string]string `json:"snapshot_versions"`
	}
	return out.Snapshots, doJSON(req, &out)
}

func doJSON(req *http.Request, v any) error {
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func connectedClients(ctx context.Context, admin string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, admin+"/status", nil)
	if err != nil {
		return 0, err
	}
	var st server.Status
	if err := doJSON(req, &st); err != nil {
		return 0, err
	}
	return len(st.Clients), nil
}

// runResult is one (N, mode) run.
type runResult struct {
	n, conns            int
	mode                string
	connectAll          time.Duration // from the first stream started to every stream ACKing its snapshot
	rssIdle, rssClients int64         // control-plane VmRSS before clients and with all connected (bytes)
	rssEnd, hwmEnd      int64         // VmRSS and VmHWM after the rounds
	connected           int           // clients the control plane's /status listed
	rounds              []roundResult
}

// roundResult is one region-state change.
type roundResult struct {
	action             string
	p50, p90, p99, max time.Duration // POST → the client's ACK of the changed EDS
	acked              int
	bytesPerClient     float64 // response bytes (proto.Size) each client received for the change
	respPerClient      float64
	cpu                time.Duration // control-plane CPU time (user+sys) for the change
}

func runOne(ctx context.Context, c config, cfgDir, tmp string, n int, mode string, progress func(string, ...any)) (runResult, error) {
	res := runResult{n: n, mode: mode, conns: (n + c.perConn - 1) / c.perConn}
	cp, err := startControlPlane(ctx, c, cfgDir, tmp)
	if err != nil {
		return res, err
	}
	defer cp.stop()
	if err := sleep(ctx, c.settle); err != nil {
		return res, err
	}
	res.rssIdle, _ = memStat(cp.pid, "VmRSS")
	versions, err := configVersions(ctx, cp.admin)
	if err != nil {
		return res, err
	}

	cctx, cancel := context.WithCancel(ctx)
	progress("n=%d %s: connecting %d streams over %d connections", n, mode, n, res.conns)
	start := time.Now()
	f, err := dial(cctx, cp.xds, n, c.perConn, mode == "delta", c.startBatch, c.startPause)
	defer func() {
		cancel()
		f.wg.Wait()
		f.close()
	}()
	if err != nil {
		return res, err
	}
	if err := waitAll(ctx, f, c.connectTimeout, func(s *stream) bool { return s.ackedAll(versions[s.region]) }); err != nil {
		return res, fmt.Errorf("initial snapshot: %w", err)
	}
	res.connectAll = time.Since(start)
	progress("n=%d %s: all %d ACKed their initial snapshot in %v", n, mode, n, res.connectAll.Round(time.Millisecond))
	if err := sleep(ctx, 2*c.settle); err != nil {
		return res, err
	}
	res.rssClients, _ = memStat(cp.pid, "VmRSS")
	if res.connected, err = connectedClients(ctx, cp.admin); err != nil {
		return res, err
	}

	for i := range c.rounds {
		action := "down"
		if i%2 == 1 {
			action = "restore"
		}
		r, err := pushRound(ctx, c, cp, f, action)
		if err != nil {
			return res, fmt.Errorf("round %d (%s): %w", i+1, action, err)
		}
		progress("n=%d %s: %s us-east: p50 %v p99 %v all %v, %.0f B/client, cp CPU %v", n, mode, action,
			r.p50.Round(time.Microsecond), r.p99.Round(time.Microsecond), r.max.Round(time.Microsecond), r.bytesPerClient, r.cpu)
		res.rounds = append(res.rounds, r)
		if err := sleep(ctx, c.settle); err != nil {
			return res, err
		}
	}
	res.rssEnd, _ = memStat(cp.pid, "VmRSS")
	res.hwmEnd, _ = memStat(cp.pid, "VmHWM")
	if k, errs := f.errors(); k > 0 {
		return res, fmt.Errorf("%d stream(s) failed, first: %v", k, errors.Join(errs...))
	}
	return res, nil
}

// pushRound posts one region-state change and waits until every client has ACKed the
// EDS version it produced for the client's region.
func pushRound(ctx context.Context, c config, cp *controlPlane, f *fleetClients, action string) (roundResult, error) {
	r := roundResult{action: action}
	for _, s := range f.streams {
		s.reset()
	}
	cpu0 := cpuTime(cp.pid)
	t0 := time.Now()
	versions, err := setRegion(ctx, cp.admin, "us-east", action)
	if err != nil {
		return r, err
	}
	if err := waitAll(ctx, f, c.pushTimeout, func(s *stream) bool { _, ok := s.firstAck(edsIndex, versions[s.region]); return ok }); err != nil {
		return r, err
	}
	// Let the rest of the change (the other types, for SotW) arrive before counting bytes.
	// (Delta sends only the types whose resources changed: EDS here.)
	if !f.delta {
		if err := waitAll(ctx, f, c.pushTimeout, func(s *stream) bool { return s.ackedAll(versions[s.region]) }); err != nil {
			return r, err
		}
	}
	if err := sleep(ctx, c.settle/2); err != nil {
		return r, err
	}
	r.cpu = cpuTime(cp.pid) - cpu0
	lat := make([]time.Duration, 0, len(f.streams))
	var bytes, resps int64
	for _, s := range f.streams {
		at, _ := s.firstAck(edsIndex, versions[s.region])
		lat = append(lat, at.Sub(t0))
		bytes += s.bytes.Load()
		resps += s.responses.Load()
	}
	slices.Sort(lat)
	r.acked = len(lat)
	r.p50, r.p90, r.p99, r.max = quantile(lat, 0.50), quantile(lat, 0.90), quantile(lat, 0.99), lat[len(lat)-1]
	r.bytesPerClient = float64(bytes) / float64(len(f.streams))
	r.respPerClient = float64(resps) / float64(len(f.streams))
	return r, nil
}

// quantile is the nearest-rank quantile of sorted.
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// waitAll polls until done holds for every stream, a stream fails, or timeout passes.
func waitAll(ctx context.Context, f *fleetClients, timeout time.Duration, done func(*stream) bool) error {
	deadline := time.Now().Add(timeout)
	next := 0 // streams before next are done; they stay done
	for {
		for next < len(f.streams) && done(f.streams[next]) {
			next++
		}
		if next == len(f.streams) {
			return nil
		}
		if k, errs := f.errors(); k > 0 {
			return fmt.Errorf("%d stream(s) failed, first: %v", k, errors.Join(errs...))
		}
		if time.Now().After(deadline) {
			pending := 0
			for _, s := range f.streams[next:] {
				if !done(s) {
					pending++
				}
			}
			return fmt.Errorf("%d of %d clients not done after %v", pending, len(f.streams), timeout)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// memStat reads a kB field of /proc/PID/status, in bytes.
func memStat(pid int, field string) (int64, bool) {
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err == nil
		}
	}
	return 0, false
}

// cpuTime is utime+stime of pid (this process when pid is 0).
func cpuTime(pid int) time.Duration {
	p := "self"
	if pid != 0 {
		p = strconv.Itoa(pid)
	}
	b, err := os.ReadFile("/proc/" + p + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

func raiseFDLimit() {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err == nil && l.Cur < l.Max {
		l.Cur = l.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
	}
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("run from inside the geode module, or pass -geode")
	}
	return filepath.Dir(mod), nil
}

// ---- report ----

func ms(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }

const kb = 1000 // the "KB"

func (r runResult) memPerClient() (float64, bool) {
	if r.rssClients == 0 || r.rssIdle == 0 {
		return 0, false
	}
	return float64(r.rssClients-r.rssIdle) / float64(r.n) / kb, true
}

func (r runResult) row() string {
	var b strings.Builder
	mem := "n/a"
	if m, ok := r.memPerClient(); ok {
		mem = strconv.FormatFloat(m, 'f', 1, 64)
	}
	for i, x := range r.rounds {
		fmt.Fprintf(&b, "| %d | %s | %d | %s | %s | %s | %s | %s | %s | %d/%d | %s | %.0f | %.1f | %s |",
			r.n, r.mode, i+1, x.action, ms(x.p50), ms(x.p90), ms(x.p99), ms(x.max), ms(x.max), x.acked, r.n,
			mem, x.bytesPerClient, x.respPerClient, ms(x.cpu))
		if i < len(r.rounds)-1 {
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// summary is one row over all rounds: median p50, worst p99/max/all, mean bytes,
// responses and CPU.
func (r runResult) summary() string {
	mem := "n/a"
	if m, ok := r.memPerClient(); ok {
		mem = strconv.FormatFloat(m, 'f', 1, 64)
	}
	var p50s []time.Duration
	var worstMax, worstAll time.Duration
	var bytes, resps float64
	var cpu time.Duration
	all := true
	for _, x := range r.rounds {
		p50s = append(p50s, x.p50)
		worstMax = max(worstMax, x.max)
		if x.acked == r.n {
			worstAll = max(worstAll, x.max)
		} else {
			all = false
		}
		bytes += x.bytesPerClient
		resps += x.respPerClient
		cpu += x.cpu
	}
	slices.Sort(p50s)
	k := float64(len(r.rounds))
	allCell := ms(worstAll)
	if !all {
		allCell = "not all"
	}
	return fmt.Sprintf("| %d | %s | %d | %s | %s | %s | %s | %s | %.0f | %.1f | %s |", r.n, r.mode, len(r.rounds),
		ms(p50s[len(p50s)/2]), ms(r.worstP99()), ms(worstMax), allCell, mem, bytes/k, resps/k, ms(cpu/time.Duration(len(r.rounds))))
}

func (r runResult) worstP99() time.Duration {
	var w time.Duration
	for _, x := range r.rounds {
		w = max(w, x.p99)
	}
	return w
}

func report(c config, results []runResult, args []string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### Control-plane fan-out — %s\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(&b, "- machine: %d cores, %s, %s RAM, kernel %s\n", runtime.NumCPU(), cpuModel(), memTotal(), kernel())
	fmt.Fprintf(&b, "- %s, %s, %s\n", runtime.Version(), depVersion("github.com/envoyproxy/go-control-plane"), depVersion("google.golang.org/grpc"))
	fmt.Fprintf(&b, "- geode commit: %s\n", gitCommit())
	fmt.Fprintf(&b, "- command: `go run ./controlplane/bench %s`\n", strings.Join(args, " "))
	where := "its own process (`geode controlplane --insecure --log-level warn`, built from this tree); memory is its VmRSS with all clients connected and ACKed, minus its VmRSS before any client, over N"
	if c.inprocess {
		where = "in the benchmark's process (-inprocess); no memory numbers"
	}
	fmt.Fprintf(&b, "- control plane: %s\n", where)
	fmt.Fprintf(&b, "- fleet: 3 regions (RTTs of shared/data/regions.csv), 10 services (5 HTTP with 2 authorities, 5 gRPC), 3 endpoints per region each: 15 listeners, 1 route configuration, 10 clusters, 10 assignments per region\n")
	fmt.Fprintf(&b, "- clients: one process (this one), raw ADS streams with envoy's generated client, %d streams per gRPC connection, one goroutine per stream; node.locality.region round-robin over the 3 regions; each subscribes to LDS/RDS/CDS/EDS by name and ACKs every response; started %d at a time every %v; GOGC of the client process %d\n", c.perConn, c.startBatch, c.startPause, c.clientGOGC)
	fmt.Fprintf(&b, "- change: %d rounds alternating `POST /regions/us-east/down` and `/restore` (every region's EDS priorities change); latency is from just before the POST to the moment the client has sent its ACK of the EDS version the POST published for its region; clients and control plane share the 2 cores\n", c.rounds)
	fmt.Fprintf(&b, "- bytes/client: serialized size (proto.Size) of every response a client received for the change, all types; gRPC/HTTP/2 framing not included. cp CPU: the control plane's user+sys time from the POST to %v after the last ACK\n\n", c.settle/2)
	b.WriteString("Summary (per N and ADS variant over the rounds: p50 is the median of the rounds' p50, the other latencies the worst round; all ACKed is when the last of the N clients ACKed, so it equals max when every client ACKed):\n\n")
	b.WriteString("| N | ADS | rounds | p50 ms | p99 ms | max ms | all ACKed ms | cp memory KB/client | bytes/client per push | responses/client per push | cp CPU ms per push |\n")
	b.WriteString("|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		b.WriteString(r.summary())
		b.WriteByte('\n')
	}
	b.WriteString("\nEvery round:\n\n")
	b.WriteString("| N | ADS | round | change | p50 ms | p90 ms | p99 ms | max ms | all ACKed ms | ACKed | cp memory KB/client | bytes/client per push | responses/client | cp CPU ms |\n")
	b.WriteString("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		b.WriteString(r.row())
		b.WriteByte('\n')
	}
	b.WriteString("\n")
	for _, r := range results {
		if r.rssIdle > 0 {
			fmt.Fprintf(&b, "- N=%d %s: %d connections; all clients connected and ACKed their first snapshot in %.1f s; /status listed %d clients; cp VmRSS idle %.1f MiB, with clients %.1f MiB, after the rounds %.1f MiB (peak %.1f MiB)\n",
				r.n, r.mode, r.conns, r.connectAll.Seconds(), r.connected, mib(r.rssIdle), mib(r.rssClients), mib(r.rssEnd), mib(r.hwmEnd))
		} else {
			fmt.Fprintf(&b, "- N=%d %s: %d connections; all clients connected and ACKed their first snapshot in %.1f s; /status listed %d clients\n",
				r.n, r.mode, r.conns, r.connectAll.Seconds(), r.connected)
		}
	}
	b.WriteString("\nTargets from issue 4 (p99 = worst round):\n\n")
	for _, r := range results {
		switch r.n {
		case 1000:
			fmt.Fprintf(&b, "- 1,000 clients (%s) p99 ≤ 200 ms: %s (%s ms)\n", r.mode, pass(r.worstP99() <= 200*time.Millisecond), ms(r.worstP99()))
		case 10000:
			fmt.Fprintf(&b, "- 10,000 clients (%s) p99 ≤ 2 s: %s (%s ms)\n", r.mode, pass(r.worstP99() <= 2*time.Second), ms(r.worstP99()))
			if m, ok := r.memPerClient(); ok {
				fmt.Fprintf(&b, "- 10,000 clients (%s) ≤ 100 KB of control-plane memory per client: %s (%.1f KB)\n", r.mode, pass(m <= 100), m)
			}
		}
	}
	return b.String()
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func pass(ok bool) string {
	if ok {
		return "**PASS**"
	}
	return "**FAIL**"
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func memTotal() string {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "MemTotal:"); ok {
			kB, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return fmt.Sprintf("%.1f GiB", float64(kB)/(1<<20))
		}
	}
	return "?"
}

func kernel() string {
	b, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	return cmp.Or(strings.TrimSpace(string(b)), "?")
}

func depVersion(path string) string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == path {
				return path + " " + d.Version
			}
		}
	}
	return path + " (version unknown)"
}

func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	commit := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(st) > 0 {
		commit += " (dirty tree)"
	}
	return commit
}

const (
	beginMarker = "<!-- cp-bench:begin -->"
	endMarker   = "<!-- cp-bench:end -->"
)

// rewriteSection replaces what is between the cp-bench markers of file with section,
// appending the markers at the end of the file if it has none.
func rewriteSection(file, section string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	s := string(b)
	i, j := strings.Index(s, beginMarker), strings.Index(s, endMarker)
	switch {
	case i >= 0 && j > i:
		s = s[:i+len(beginMarker)] + "\n" + section + s[j:]
	case i < 0 && j < 0:
		s = strings.TrimRight(s, "\n") + "\n\n" + beginMarker + "\n" + section + endMarker + "\n"
	default:
		return fmt.Errorf("%s: cp-bench markers out of order", file)
	}
	return os.WriteFile(file, []byte(s), 0o644)
}
