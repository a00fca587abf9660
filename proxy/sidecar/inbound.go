package sidecar

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/geodemesh/geode/tracing"
)

// serveInbound fronts the local app for calls from the mesh: it refuses malformed
// requests, drops geode-* headers that did not come from a trusted mesh peer (so no
// outside client can forge a session token or a routing hint), strips hop-by-hop
// headers, and forwards in the protocol the caller used.
func (s *Sidecar) serveInbound(w http.ResponseWriter, r *http.Request) {
	if e := checkRequest(r); e != nil {
		s.reject(w, r, listenerInbound, e)
		return
	}
	st := s.state.Load()
	conf := s.conf.Load()
	trusted := s.trustedPeer(r.RemoteAddr)
	app := appConf{address: conf.App.Address, watermarkPath: conf.App.WatermarkPath, readWait: conf.Session.ReadWait.Std()}
	// Read-your-writes: only a mesh peer's token counts (others' geode-* headers are dropped).
	if trusted && (s.checkSession(w, r, st, &app) || s.checkStaleness(w, r, st)) {
		return
	}
	ctx, span := s.startSpan(r.Context(), r.Header, "geode inbound", trace.SpanKindServer, tracing.DstRegion.String(st.LocalName()))
	defer span.End()

	out := (&http.Request{
		Method:        r.Method,
		URL:           &url.URL{Scheme: "http", Host: conf.App.Address, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: r.URL.RawQuery},
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header, len(r.Header)+2),
		ContentLength: r.ContentLength,
		Host:          r.Host,
		Trailer:       r.Trailer,
	}).WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		out.Body = r.Body
	}
	var drop func(string) bool
	if !trusted {
		drop = isGeodeHeader
	}
	if n := copyEndToEnd(out.Header, r.Header, drop); n > 0 {
		s.metrics.dropped.WithLabelValues(listenerInbound).Add(float64(n))
	}
	s.inject(ctx, out.Header)

	transport := s.appProxy
	if r.ProtoMajor == 2 {
		transport = s.appProxy2
	}
	var resp *http.Response
	var err error
	if proto := upgradeProtocol(r); proto != "" {
		resp, err = roundTripUpgrade(ctx, out, conf.App.Address, time.Second, proto)
	} else {
		resp, err = transport.RoundTrip(out)
	}
	if err != nil {
		e := errorf(StageForward, http.StatusBadGateway, "local app at %s: %s", conf.App.Address, shortError(err))
		if isConnectError(err) {
			// Nothing reached the app: tell the calling sidecar it may go elsewhere.
			e.Status = http.StatusServiceUnavailable
			w.Header().Set(headerUnprocessed, "app-unreachable")
		}
		s.metrics.requests.WithLabelValues(listenerInbound, "", st.LocalName(), "", statusLabel(e.Status)).Inc()
		e.write(w, r)
		return
	}
	s.metrics.requests.WithLabelValues(listenerInbound, "", st.LocalName(), "", statusLabel(resp.StatusCode)).Inc()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if err := s.switchProtocols(w, resp); err != nil {
			s.log.Warn("protocol upgrade to the local app failed", "err", err)
		}
		return
	}
	defer resp.Body.Close()
	s.observeReplica(st, st.Local, resp.Header, time.Now())
	copyEndToEnd(w.Header(), resp.Header, isPeerOnlyHeader) // an app cannot claim "unprocessed"
	announceTrailers(w.Header(), resp)
	w.WriteHeader(resp.StatusCode)
	if err := s.copyBody(w, resp); err != nil {
		panic(http.ErrAbortHandler)
	}
	for k, vv := range resp.Trailer {
		w.Header()[http.TrailerPrefix+k] = vv
	}
}

// trustedPeer reports whether remoteAddr is inside the configured mesh-peer CIDRs.
func (s *Sidecar) trustedPeer(remoteAddr string) bool {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return false
	}
	ip := net.IP(ap.Addr().Unmap().AsSlice())
	for _, n := range s.trusted {
		if n.Contains(ip) {
			return true
		}
	}
	return false
}
