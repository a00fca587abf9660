package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/e2e/fleet"
	"github.com/geodemesh/geode/proxy/config"
)

// The bounded-staleness scenario: replication into one region (lagging) is delayed by
// slowLag, far beyond the service's bound; every other replication takes fastLag.
const (
	serviceBounded = "profiles-bounded"
	staleBound     = 300 * time.Millisecond
	slowLag        = 2 * time.Second
	fastLag        = 50 * time.Millisecond
	lagging        = "us-west"
	// readAfter is how long after a write's acknowledgement its key is read in the
	// lagging region: past the bound, well within slowLag, so the lagging replica
	// certainly lacks the write and serving the read from it breaks the bound.
	readAfter = 2 * staleBound
)

// boundedService adds serviceBounded to a region's sidecar config: the profiles
// service's endpoints and settings, read at bounded staleness, its keys homed in
// us-east and eu-west only (never in the lagging region: every key read there was
// written elsewhere).
func boundedService(_ string, c *config.Config) {
	for _, svc := range c.Services {
		if svc.Name != fleet.ServiceHTTP {
			continue
		}
		svc.Name, svc.Authorities = serviceBounded, []string{serviceBounded}
		svc.Endpoints = maps.Clone(svc.Endpoints) // the slices are never written
		svc.Consistency = "bounded-staleness=" + staleBound.String()
		svc.HomeRegions = "hash=us-east,eu-west"
		c.Services = append(c.Services, svc)
		return
	}
}

// writeLog is every write the scenario made, by origin, with the time its
// acknowledgement reached the client.
type writeLog struct {
	mu     sync.Mutex
	writes map[string][]ackedWrite
}

type ackedWrite struct {
	v     consistency.Version
	acked time.Time
}

func (l *writeLog) add(v consistency.Version, acked time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes[v.Origin] = append(l.writes[v.Origin], ackedWrite{v: v, acked: acked})
}

// staleness is how stale a read sent at sent was, for the writes of origin, as the
// watermark the serving replica reported with its answer shows: the time between the
// acknowledgement of the oldest write of origin that the replica had not applied and
// the read, counting only writes acknowledged before the read was sent; zero when it
// had applied all of them. A read is stale beyond the bound when this exceeds the
// bound: some write had been acknowledged by its origin more than the bound before the
// read was sent, and the replica that answered did not have it.
func (l *writeLog) staleness(origin string, served consistency.Watermark, sent time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	var worst time.Duration
	for _, w := range l.writes[origin] {
		if w.acked.Before(sent) && !served.Covers(w.v) {
			worst = max(worst, sent.Sub(w.acked))
		}
	}
	return worst
}

// staleRead is how one read in the lagging region went.
type staleRead struct {
	status    int
	served    string // geode-region of the read (for the report only)
	reason    string // geode-reason of the read
	staleness time.Duration
	seesWrite bool // the read returned the key's write
}

// staleRounds runs n rounds, 6 at a time: write a key of serviceBounded through
// writer's sidecar, wait readAfter, then read it through reader's sidecar once per
// service of reads, in order. Each read is judged by the serving app's own
// watermark (geode-watermark) against the write log. It returns the reads by service.
func staleRounds(t *testing.T, f *fleet.Fleet, writer, reader string, reads []string, n int, log *writeLog) map[string][]staleRead {
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	out := map[string][]staleRead{}
	for _, svc := range reads {
		out[svc] = make([]staleRead, n)
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			key := fmt.Sprintf("stale-via-%s-read-in-%s-%d", writer, reader, i)
			resp, err := call(client, http.MethodPut, f.Region(writer).OutboundAddr(), serviceBounded, key)
			if err != nil {
				t.Errorf("write %s via %s: %v", key, writer, err)
				return
			}
			if resp.StatusCode != http.StatusOK {
				t.Errorf("write %s via %s: status %d", key, writer, resp.StatusCode)
				return
			}
			acked := time.Now()
			wrote, err := consistency.ParseVersion(resp.Header.Get(consistency.HeaderVersion))
			if err != nil {
				t.Errorf("write %s: version: %v", key, err)
				return
			}
			log.add(wrote, acked)
			time.Sleep(time.Until(acked.Add(readAfter)))
			for _, svc := range reads {
				sent := time.Now()
				resp, err = call(client, http.MethodGet, f.Region(reader).OutboundAddr(), svc, key)
				if err != nil {
					t.Errorf("read %s of %s via %s: %v", key, svc, reader, err)
					continue
				}
				text := resp.Header.Get(consistency.HeaderWatermark)
				wm, err := consistency.ParseWatermark(text)
				if err != nil || text == "" {
					t.Errorf("read %s of %s: status %d without the app's watermark (%v)", key, svc, resp.StatusCode, err)
					continue
				}
				got, _ := consistency.ParseVersion(resp.Header.Get(consistency.HeaderVersion))
				out[svc][i] = staleRead{
					status:    resp.StatusCode,
					served:    resp.Header.Get("Geode-Region"),
					reason:    resp.Header.Get("Geode-Reason"),
					staleness: log.staleness(wrote.Origin, wm, sent),
					seesWrite: resp.StatusCode == http.StatusOK && (consistency.Watermark{got.Origin: got.Position}).Covers(wrote),
				}
			}
		})
	}
	wg.Wait()
	return out
}

// call sends one request for /users/key to service through a sidecar's outbound
// listener and returns the response with its body read and closed.
func call(client *http.Client, method, outbound, service, key string) (*http.Response, error) {
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader(`{"name":"n","email":"e@example.com"}`)
	}
	req, err := http.NewRequest(method, "http://"+outbound+"/users/"+key, body)
	if err != nil {
		return nil, err
	}
	req.Host = service
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	_, err = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	return resp, err
}

// staleSummary is an arm's figures.
type staleSummary struct {
	violations int // reads stale beyond the bound
	missed     int // reads that did not return their key's write
	worst      time.Duration
	reasons    map[string]int // geode-reason → reads
	served     map[string]int // geode-region → reads
}

func summarize(reads []staleRead) staleSummary {
	s := staleSummary{reasons: map[string]int{}, served: map[string]int{}}
	for _, r := range reads {
		if r.status == 0 {
			continue // failed, already reported
		}
		s.reasons[r.reason]++
		s.served[r.served]++
		s.worst = max(s.worst, r.staleness)
		if r.staleness > staleBound {
			s.violations++
		}
		if !r.seesWrite {
			s.missed++
		}
	}
	return s
}

// crossRegionReads sums the lagging sidecar's geode_cross_region_requests_total for
// service and reason.
func crossRegionReads(t *testing.T, f *fleet.Fleet, service, reason string) int {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + f.Region(lagging).AdminAddr() + "/metrics")
	if err != nil {
		t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	total := 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "geode_cross_region_requests_total{") ||
			!strings.Contains(line, `service="`+service+`"`) || !strings.Contains(line, `reason="`+reason+`"`) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metrics line %q: %v", line, err)
		}
		total += int(v)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("metrics: %v", err)
	}
	return total
}

// Bounded staleness, end to end: replication into us-west takes 2 s while the
// service's bound is 300 ms; keys are homed in us-east and eu-west. Clients in us-west
// write keys (the writes go to their home regions) and read them back 600 ms later,
// once through Geode and once routed naively (nearest region). Judged by the serving
// app's own watermark, no Geode read is stale beyond the bound — the reads leave us-west
// for a fresh region with reason staleness — while the naive reads, served by us-west's
// lagging replica, break it: the check can fail.
//
// A first subtest reads, the same way, keys written through us-east's sidecar, while
// us-west's sidecar has seen nothing of the other regions' traffic: what it knows of
// its replica's lag comes from the app itself (geode-replica-lag, pulled from the app's
// watermark endpoint), so it still sends the reads to a fresh region.
func TestBoundedStalenessAcrossRegions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, err := fleet.Start(ctx, fleet.Options{
		WAN:       true,
		Lag:       fastLag,
		LagInto:   map[string]time.Duration{lagging: slowLag},
		Configure: boundedService,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	log := &writeLog{writes: map[string][]ackedWrite{}}
	const n = 30

	// First, while us-west's sidecar has seen nothing of the other regions: keys
	// written through us-east's sidecar.
	t.Run("data written through another region's sidecar", func(t *testing.T) {
		geode := summarize(staleRounds(t, f, "us-east", lagging, []string{serviceBounded}, n, log)[serviceBounded])
		t.Logf("reads beyond the bound: geode %d/%d (worst %v, missed the write %d; reasons %v, served by %v)",
			geode.violations, n, geode.worst, geode.missed, geode.reasons, geode.served)
		if geode.violations > 0 {
			t.Errorf("geode: %d of %d reads stale beyond %v (worst %v)", geode.violations, n, staleBound, geode.worst)
		}
		if geode.reasons["staleness"] == 0 {
			t.Errorf("geode: no read left the lagging region with reason staleness (reasons %v)", geode.reasons)
		}
	})

	t.Run("data written through the lagging region's sidecar", func(t *testing.T) {
		before := crossRegionReads(t, f, serviceBounded, "staleness")
		reads := staleRounds(t, f, lagging, lagging, []string{serviceBounded, fleet.ServiceNaive}, n, log)
		staleness := crossRegionReads(t, f, serviceBounded, "staleness") - before
		geode, naive := summarize(reads[serviceBounded]), summarize(reads[fleet.ServiceNaive])
		t.Logf("bounded staleness (bound %v, lag into %s %v): reads beyond the bound: geode %d/%d (worst %v, missed the write %d; reasons %v, served by %v; cross-region staleness metric +%d), naive %d/%d (worst %v, missed the write %d; served by %v)",
			staleBound, lagging, slowLag, geode.violations, n, geode.worst, geode.missed, geode.reasons, geode.served, staleness,
			naive.violations, n, naive.worst, naive.missed, naive.served)
		if geode.violations != 0 {
			t.Errorf("geode: %d of %d reads were stale beyond %v (worst %v)", geode.violations, n, staleBound, geode.worst)
		}
		if geode.reasons["staleness"] == 0 || staleness != geode.reasons["staleness"] {
			t.Errorf("geode: %d reads with reason staleness, cross-region metric +%d: want them equal and non-zero", geode.reasons["staleness"], staleness)
		}
		if naive.violations == 0 {
			t.Errorf("naive routing read nothing stale beyond the bound in %d reads: the check cannot fail, or the lag is not in effect", n)
		}
	})

	// A replica within the bound keeps its reads: the bound costs no cross-region call
	// where it is not needed.
	t.Run("a fresh replica serves its own region", func(t *testing.T) {
		geode := summarize(staleRounds(t, f, "us-east", "eu-west", []string{serviceBounded}, n, log)[serviceBounded])
		t.Logf("eu-west (replication %v): reads beyond the bound %d/%d; reasons %v, served by %v", fastLag, geode.violations, n, geode.reasons, geode.served)
		if geode.violations != 0 {
			t.Errorf("geode: %d of %d reads stale beyond %v", geode.violations, n, staleBound)
		}
		if local := geode.served["eu-west"]; local < n*9/10 {
			t.Errorf("only %d of %d reads served by eu-west, whose replica is within the bound (reasons %v)", local, n, geode.reasons)
		}
	})
}
