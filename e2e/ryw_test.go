package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/e2e/fleet"
)

// session is one travelling user: it writes through one region's sidecar and reads its
// write back through another's, carrying its session token like an app would.
type session struct {
	f       *fleet.Fleet
	service string
	tokens  bool // carries its session token (naive routing carries none)
	token   string
	client  *http.Client
}

type result struct {
	status  int
	version string
	region  string
	reason  string
}

func (s *session) do(t *testing.T, method, region, key string) result {
	t.Helper()
	var body io.Reader
	if method == http.MethodPut {
		body = strings.NewReader(`{"name":"n","email":"e@example.com"}`)
	}
	req, _ := http.NewRequest(method, "http://"+s.f.Region(region).OutboundAddr()+"/users/"+key, body)
	req.Host = s.service
	if s.token != "" {
		req.Header.Set(consistency.HeaderSession, s.token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Errorf("%s %s via %s: %v", method, key, region, err)
		return result{}
	}
	defer resp.Body.Close()
	if tok := resp.Header.Get(consistency.HeaderSession); tok != "" && s.tokens {
		s.token = tok
	}
	var p struct{ Version string }
	json.NewDecoder(resp.Body).Decode(&p)
	return result{status: resp.StatusCode, version: p.Version, region: resp.Header.Get("Geode-Region"), reason: resp.Header.Get("Geode-Reason")}
}

// sees reports whether a read result shows the write (or a later one of the same origin
// and epoch): the read-your-writes check.
func sees(read result, wrote string) bool {
	if read.status != http.StatusOK {
		return false
	}
	w, err1 := consistency.ParseVersion(wrote)
	r, err2 := consistency.ParseVersion(read.version)
	return err1 == nil && err2 == nil && (consistency.Watermark{r.Origin: r.Position}).Covers(w)
}

// travel runs n sessions, each writing a key through one region and at once reading it
// through another, and returns how many reads missed the session's own write.
func travel(t *testing.T, f *fleet.Fleet, service string, n int) (violations int, reasons map[string]int) {
	regions := fleet.DefaultRegions()
	var mu sync.Mutex
	reasons = map[string]int{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s := &session{f: f, service: service, tokens: service != fleet.ServiceNaive, client: &http.Client{Timeout: 10 * time.Second}}
			from, to := regions[i%3], regions[(i+1+i/3%2)%3]
			key := fmt.Sprintf("%s-traveller-%d", service, i)
			w := s.do(t, http.MethodPut, from, key)
			if w.status != http.StatusOK {
				t.Errorf("write %s via %s: status %d", key, from, w.status)
				return
			}
			r := s.do(t, http.MethodGet, to, key)
			mu.Lock()
			defer mu.Unlock()
			reasons[r.reason]++
			if !sees(r, w.version) {
				violations++
			}
		}()
	}
	wg.Wait()
	return violations, reasons
}

// The read-your-writes guarantee, end to end, with 500 ms of replication lag: sessions
// that write in one region and read in another through Geode always see their writes;
// the same workload routed naively (nearest region, no tokens) reads stale data, which
// shows the check itself catches a violation.
func TestReadYourWritesAcrossRegions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	f, err := fleet.Start(ctx, fleet.Options{WAN: true, Lag: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	const n = 30
	geode, reasons := travel(t, f, fleet.ServiceHTTP, n)
	naive, _ := travel(t, f, fleet.ServiceNaive, n)
	t.Logf("read-your-writes violations: geode %d/%d (read reasons %v), naive %d/%d", geode, n, reasons, naive, n)
	if geode != 0 {
		t.Errorf("geode: %d of %d sessions did not read their own write", geode, n)
	}
	if naive == 0 {
		t.Errorf("naive routing showed no stale read in %d sessions: the check cannot fail, or the lag is not in effect", n)
	}
	if reasons["ryw"] == 0 {
		t.Errorf("no read was routed for read-your-writes (%v): the guarantee held by luck", reasons)
	}
}
