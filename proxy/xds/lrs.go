package xds

import (
	"context"
	"maps"
	"math/rand/v2"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/geodemesh/geode/proxy/route"
)

// minReportInterval bounds how often load reports are sent, whatever the control plane
// asks.
const minReportInterval = 10 * time.Millisecond

// loadReports keeps a LoadReportingService stream on cc (the ADS stream's connection)
// until ctx is done, reconnecting with the same backoff as ADS. A control plane that
// does not serve LRS (Unimplemented) is not asked again on this connection.
func (c *Client) loadReports(ctx context.Context, cc *grpc.ClientConn) {
	backoff := c.opts.MinBackoff
	for {
		got, err := c.loadReportStream(ctx, cc)
		if ctx.Err() != nil {
			return
		}
		if status.Code(err) == codes.Unimplemented {
			c.log.Warn("the control plane does not take load reports: region outcomes are not reported", "err", err)
			return
		}
		if got {
			backoff = c.opts.MinBackoff
		}
		delay := backoff/2 + rand.N(backoff/2+1)
		c.log.Warn("load report stream ended", "err", err, "retry_in", delay.Round(time.Millisecond).String())
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, c.opts.MaxBackoff)
	}
}

// loadReportStream runs one LRS stream: it sends the node, waits for the control
// plane to ask for reports, then sends what Options.Outcomes returns every interval
// the control plane asked for (nothing when nothing was counted). got reports whether
// the control plane answered.
func (c *Client) loadReportStream(ctx context.Context, cc *grpc.ClientConn) (got bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := lrsv3.NewLoadReportingServiceClient(cc).StreamLoadStats(sctx)
	if err != nil {
		return false, err
	}
	if err := st.Send(&lrsv3.LoadStatsRequest{Node: c.node}); err != nil {
		return false, err
	}
	resps, errc, waitRecv := receive(sctx, st.Recv)
	defer func() {
		cancel()
		waitRecv()
	}()

	var (
		interval time.Duration
		all      bool
		clusters map[string]bool
		last     time.Time
	)
	tick := time.NewTimer(time.Hour)
	tick.Stop()
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case err := <-errc:
			return got, err
		case r := <-resps:
			all = r.GetSendAllClusters()
			clusters = map[string]bool{}
			for _, n := range r.GetClusters() {
				clusters[n] = true
			}
			interval = max(r.GetLoadReportingInterval().AsDuration(), minReportInterval)
			if !got {
				got = true
				// What was counted before the control plane asked is stale (it may span
				// a disconnection): reports start now.
				c.opts.Outcomes()
				last = time.Now()
				c.log.Info("load reports requested", "interval", interval.String(), "all_clusters", all)
			}
			tick.Reset(interval)
		case now := <-tick.C:
			tick.Reset(interval)
			req := loadStatsRequest(c.opts.Outcomes(), all, clusters, now.Sub(last))
			last = now
			if req == nil {
				continue
			}
			if err := st.Send(req); err != nil {
				return got, err
			}
			c.mu.Lock()
			c.status.LoadReports++
			c.mu.Unlock()
		}
	}
}

// loadStatsRequest builds a report of outcomes (service → region → counts): one
// ClusterStats per service the control plane asked for (all, or those in clusters),
// named by the service, with one UpstreamLocalityStats per region. It returns nil when
// there is nothing to report.
func loadStatsRequest(outcomes map[string]map[string]route.Outcome, all bool, clusters map[string]bool, since time.Duration) *lrsv3.LoadStatsRequest {
	var req *lrsv3.LoadStatsRequest
	for _, svc := range slices.Sorted(maps.Keys(outcomes)) {
		if !all && !clusters[svc] {
			continue
		}
		cs := &endpointv3.ClusterStats{ClusterName: svc, LoadReportInterval: durationpb.New(since)}
		for _, region := range slices.Sorted(maps.Keys(outcomes[svc])) {
			o := outcomes[svc][region]
			if o == (route.Outcome{}) {
				continue
			}
			cs.UpstreamLocalityStats = append(cs.UpstreamLocalityStats, &endpointv3.UpstreamLocalityStats{
				Locality:                &corev3.Locality{Region: region},
				TotalSuccessfulRequests: o.Success,
				TotalErrorRequests:      o.Failure,
				TotalIssuedRequests:     o.Success + o.Failure,
			})
		}
		if len(cs.UpstreamLocalityStats) == 0 {
			continue
		}
		if req == nil {
			req = &lrsv3.LoadStatsRequest{}
		}
		req.ClusterStats = append(req.ClusterStats, cs)
	}
	return req
}
