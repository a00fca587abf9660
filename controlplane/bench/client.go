package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// The four types a client subscribes to, in the order grpc-go asks for them.
var typeURLs = [4]string{resource.ListenerType, resource.RouteType, resource.ClusterType, resource.EndpointType}

const edsIndex = 3

func typeIndex(url string) int {
	for i, u := range typeURLs {
		if u == url {
			return i
		}
	}
	return -1
}

// ack is one ACK a client sent: the type, the version it ACKed, and when.
type ack struct {
	typ     int
	version string
	at      time.Time
}

// stream is one simulated xDS client: one ADS stream with its own node.
type stream struct {
	id     int
	region string
	names  [4][]string

	mu      sync.Mutex
	acked   [4]string // last version ACKed per type
	log     []ack     // ACKs since the last reset, bounded by maxLog
	dropped int       // ACKs not logged because log was full

	bytes     atomic.Int64 // response bytes (proto.Size) since the last reset
	responses atomic.Int64 // responses since the last reset
	err       atomic.Pointer[error]
}

const maxLog = 64

func (s *stream) record(typ int, version string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.acked[typ] = version
	if len(s.log) < maxLog {
		s.log = append(s.log, ack{typ: typ, version: version, at: at})
	} else {
		s.dropped++
	}
}

// reset forgets the ACKs and byte counts of the previous round.
func (s *stream) reset() {
	s.mu.Lock()
	s.log = s.log[:0]
	s.dropped = 0
	s.mu.Unlock()
	s.bytes.Store(0)
	s.responses.Store(0)
}

// ackedAll reports whether the stream is in sync with its region's snapshot: clusters
// and endpoints ACKed at version (the snapshot-wide version, what a region-state change
// alters), listeners and routes ACKed at all (they have a version of their own, which
// region-state changes do not touch).
func (s *stream) ackedAll(version string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, v := range s.acked {
		switch typeURLs[i] {
		case resource.ClusterType, resource.EndpointType:
			if v != version {
				return false
			}
		default:
			if v == "" {
				return false
			}
		}
	}
	return true
}

// firstAck returns when the stream first ACKed version of type typ since the last reset.
func (s *stream) firstAck(typ int, version string) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.log {
		if a.typ == typ && a.version == version {
			return a.at, true
		}
	}
	return time.Time{}, false
}

func (s *stream) fail(err error) {
	if err == nil || errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
		return
	}
	s.err.CompareAndSwap(nil, &err)
}

func (s *stream) node() *corev3.Node {
	// The simulated clients subscribe like grpc-go (each type by name), so they say so:
	// the control plane serves gRPC clients from the cache that answers named subsets.
	return &corev3.Node{
		Id:                   fmt.Sprintf("bench-%d", s.id),
		Cluster:              "bench",
		Locality:             &corev3.Locality{Region: s.region, Zone: s.region + "-a"},
		UserAgentName:        "gRPC Go (geode bench)",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: "simulated"},
	}
}

// runSotW runs a state-of-the-world ADS stream: subscribe to the four types, ACK every
// response, until ctx is done.
func (s *stream) runSotW(ctx context.Context, c discoveryv3.AggregatedDiscoveryServiceClient) {
	st, err := c.StreamAggregatedResources(ctx)
	if err != nil {
		s.fail(err)
		return
	}
	for i, url := range typeURLs {
		req := &discoveryv3.DiscoveryRequest{TypeUrl: url, ResourceNames: s.names[i]}
		if i == 0 {
			req.Node = s.node()
		}
		if err := st.Send(req); err != nil {
			s.fail(err)
			return
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.bytes.Add(int64(proto.Size(resp)))
		s.responses.Add(1)
		typ := typeIndex(resp.GetTypeUrl())
		if typ < 0 {
			s.fail(fmt.Errorf("response of unexpected type %q", resp.GetTypeUrl()))
			return
		}
		if err := st.Send(&discoveryv3.DiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResourceNames: s.names[typ],
			VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce()}); err != nil {
			s.fail(err)
			return
		}
		s.record(typ, resp.GetVersionInfo(), time.Now())
	}
}

// runDelta runs an incremental ADS stream the same way.
func (s *stream) runDelta(ctx context.Context, c discoveryv3.AggregatedDiscoveryServiceClient) {
	st, err := c.DeltaAggregatedResources(ctx)
	if err != nil {
		s.fail(err)
		return
	}
	for i, url := range typeURLs {
		req := &discoveryv3.DeltaDiscoveryRequest{TypeUrl: url, ResourceNamesSubscribe: s.names[i]}
		if i == 0 {
			req.Node = s.node()
		}
		if err := st.Send(req); err != nil {
			s.fail(err)
			return
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			s.fail(err)
			return
		}
		s.bytes.Add(int64(proto.Size(resp)))
		s.responses.Add(1)
		typ := typeIndex(resp.GetTypeUrl())
		if typ < 0 {
			s.fail(fmt.Errorf("response of unexpected type %q", resp.GetTypeUrl()))
			return
		}
		if err := st.Send(&discoveryv3.DeltaDiscoveryRequest{TypeUrl: resp.GetTypeUrl(), ResponseNonce: resp.GetNonce()}); err != nil {
			s.fail(err)
			return
		}
		s.record(typ, resp.GetSystemVersionInfo(), time.Now())
	}
}

// fleetClients is N streams multiplexed over ceil(N/perConn) gRPC connections.
type fleetClients struct {
	streams []*stream
	conns   []*grpc.ClientConn
	delta   bool
	wg      sync.WaitGroup
}

// dial opens the connections and starts every stream, startBatch streams at a time with a
// pause between batches so the control plane is not asked for N initial snapshots in
// one instant. It returns once every stream has been started.
func dial(ctx context.Context, addr string, n, perConn int, delta bool, startBatch int, pause time.Duration) (*fleetClients, error) {
	listeners, clusters := resourceNames()
	names := [4][]string{listeners, {"geode"}, clusters, clusters}
	f := &fleetClients{delta: delta}
	for i := 0; i < n; i += perConn {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			f.close()
			return nil, err
		}
		f.conns = append(f.conns, cc)
	}
	for i := range n {
		s := &stream{id: i, region: regions[i%len(regions)], names: names, log: make([]ack, 0, 8)}
		f.streams = append(f.streams, s)
	}
	for i, s := range f.streams {
		if i > 0 && i%startBatch == 0 {
			t := time.NewTimer(pause)
			select {
			case <-ctx.Done():
				t.Stop()
				return f, ctx.Err()
			case <-t.C:
			}
		}
		c := discoveryv3.NewAggregatedDiscoveryServiceClient(f.conns[i/perConn])
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			if delta {
				s.runDelta(ctx, c)
			} else {
				s.runSotW(ctx, c)
			}
		}()
	}
	return f, nil
}

// errors returns the first few stream errors and their count.
func (f *fleetClients) errors() (int, []error) {
	var n int
	var first []error
	for _, s := range f.streams {
		if e := s.err.Load(); e != nil {
			n++
			if len(first) < 3 {
				first = append(first, fmt.Errorf("stream %d: %w", s.id, *e))
			}
		}
	}
	return n, first
}

// close closes the connections; the caller cancels the streams' context first.
func (f *fleetClients) close() {
	for _, cc := range f.conns {
		cc.Close()
	}
}
