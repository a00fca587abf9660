package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	lrsv3 "github.com/envoyproxy/go-control-plane/envoy/service/load_stats/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultLoadReportInterval is how often sidecars are asked to send load reports when
// Options.LoadReportInterval is zero.
const DefaultLoadReportInterval = 2 * time.Second

// lrsServer is the LoadReportingService: sidecars report, per cluster (service) and
// locality (region), the attempts that succeeded and failed since their last report;
// each LoadStatsRequest becomes one Report to the region state machine, like POST
// /reports, with the node id as reporter.
//
// The stream's first message must carry the node: its region is checked like an ADS
// node's (NodeRegion, known region) and, over mTLS, bound to the client certificate
// (the same check as ADS).
type lrsServer struct {
	lrsv3.UnimplementedLoadReportingServiceServer
	s   *Server
	ctx context.Context // Run's: streams end when the server stops
}

func (l *lrsServer) StreamLoadStats(st lrsv3.LoadReportingService_StreamLoadStatsServer) error {
	s := l.s
	first, err := st.Recv()
	if err != nil {
		return err
	}
	node := first.GetNode()
	if err := s.clients.checkNode(node); err != nil {
		return err
	}
	if err := s.clients.checkIdentity(node, peerOf(st.Context())); err != nil {
		return err
	}
	reporter := node.GetId()
	if reporter == "" {
		return status.Error(codes.InvalidArgument, "geode control plane: load reports need node.id")
	}
	// The LRS stream carries the node's registration too: it lives while either of
	// the sidecar's streams does.
	ref := streamRef{kind: refLRS, id: s.registry.lrsIDs.Add(1)}
	if _, err := s.registry.attach(ref, node, peerOf(st.Context())); err != nil {
		s.clients.countRefused()
		return err
	}
	defer s.registry.detach(ref)
	if err := st.Send(&lrsv3.LoadStatsResponse{
		SendAllClusters:       true,
		LoadReportingInterval: durationpb.New(s.lrsInterval),
	}); err != nil {
		return err
	}
	s.lrsStreams.Add(1)
	defer s.lrsStreams.Add(-1)
	s.record(reporter, first)

	// Recv blocks; it runs on a goroutine of this stream's own, which ends with the
	// stream (gRPC cancels its context when this handler returns), so that the handler
	// can return when the server stops without waiting for the client.
	reqs := make(chan *lrsv3.LoadStatsRequest)
	errc := make(chan error, 1)
	go func() {
		for {
			req, err := st.Recv()
			if err != nil {
				errc <- err
				return
			}
			select {
			case reqs <- req:
			case <-st.Context().Done():
				return
			}
		}
	}()
	for {
		select {
		case <-l.ctx.Done():
			return status.Error(codes.Unavailable, "geode control plane: shutting down")
		case err := <-errc:
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		case req := <-reqs:
			s.record(reporter, req)
		}
	}
}

// record turns one LoadStatsRequest into a Report: successes and errors summed per
// region over every cluster. A locality without a region or naming an unknown region
// is skipped and counted; a report the state machine refuses is logged and counted.
// Neither ends the stream.
func (s *Server) record(reporter string, req *lrsv3.LoadStatsRequest) {
	out := map[string]RegionOutcome{}
	for _, cs := range req.GetClusterStats() {
		for _, ls := range cs.GetUpstreamLocalityStats() {
			region := ls.GetLocality().GetRegion()
			if region == "" || !s.knownRegion(region) {
				s.lrsSkipped.Add(1)
				s.log.Debug("load report: locality skipped", "reporter", reporter, "cluster", cs.GetClusterName(), "region", region)
				continue
			}
			o := out[region]
			o.Success += ls.GetTotalSuccessfulRequests()
			o.Failure += ls.GetTotalErrorRequests()
			out[region] = o
		}
	}
	if len(out) == 0 {
		return
	}
	if err := s.RecordReport(time.Now(), Report{Reporter: reporter, RegionOutcomes: out}); err != nil {
		s.lrsRefused.Add(1)
		s.log.Warn("load report refused", "reporter", reporter, "err", err)
		return
	}
	s.lrsReports.Add(1)
}

// LoadReports is the LoadReportingService's part of Status.
type LoadReports struct {
	// Streams is the number of open LRS streams.
	Streams int64 `json:"streams"`
	// Recorded counts load reports fed to the region state machine.
	Recorded int64 `json:"recorded"`
	// Refused counts load reports the state machine refused (too many reporters, bad
	// values).
	Refused int64 `json:"refused"`
	// SkippedLocalities counts localities left out of reports: no or unknown region.
	SkippedLocalities int64 `json:"skipped_localities"`
}

func (s *Server) loadReports() LoadReports {
	return LoadReports{
		Streams: s.lrsStreams.Load(), Recorded: s.lrsReports.Load(),
		Refused: s.lrsRefused.Load(), SkippedLocalities: s.lrsSkipped.Load(),
	}
}

func checkLoadReportInterval(d time.Duration) (time.Duration, error) {
	switch {
	case d == 0:
		return DefaultLoadReportInterval, nil
	case d < 10*time.Millisecond || d > time.Hour:
		return 0, fmt.Errorf("server: Options.LoadReportInterval %s is not in [10ms, 1h]", d)
	}
	return d, nil
}
