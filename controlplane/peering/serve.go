package peering

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/geodemesh/geode/controlplane/identity"
)

// ServerOptions configure a Server.
type ServerOptions struct {
	// Listener is the peering listener (--peer-listen). Required; Run closes it.
	Listener net.Listener
	// Identity, if set, serves over mutual TLS (identity.Source.PeeringServerConfig)
	// and answers only clients whose certificate names a control plane. Nil serves
	// plain HTTP to anyone (the control plane's --insecure mode).
	Identity *identity.Source
	// Summary returns the own region's current summary and a channel closed when it
	// next changes (server.Server.OwnSummary). Required.
	Summary func() (Summary, <-chan struct{}, error)
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Server serves GET /peer/summary, the server side of the protocol. NewServer starts
// nothing; Run does.
type Server struct {
	o   ServerOptions
	log *slog.Logger
}

// NewServer validates o.
func NewServer(o ServerOptions) (*Server, error) {
	var errs []error
	if o.Listener == nil {
		errs = append(errs, errors.New("peering server: Listener is required"))
	}
	if o.Summary == nil {
		errs = append(errs, errors.New("peering server: Summary is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	s := &Server{o: o, log: o.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// Run serves until ctx is done, then ends the held long polls and returns nil.
func (s *Server) Run(ctx context.Context) error {
	l := s.o.Listener
	if s.o.Identity != nil {
		l = tls.NewListener(l, s.o.Identity.PeeringServerConfig())
	}
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		// Held long polls end with ctx, so that Shutdown does not wait for them.
		BaseContext: func(net.Listener) context.Context { return ctx },
		ErrorLog:    slog.NewLogLogger(s.log.Handler(), slog.LevelWarn), // refused TLS handshakes
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(l) }()
	select {
	case err := <-errc:
		return fmt.Errorf("peering listener: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("peering listener: %w", err)
	}
	return nil
}

// Handler serves GET /peer/summary?since=VERSION&wait=DURATION: the own summary, at
// once if its version differs from since, else when it changes or after wait (at most
// MaxWait), whichever is first. Over mutual TLS, a client whose certificate is not a
// control plane's gets 403 naming its identity.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /peer/summary", s.handleSummary)
	return mux
}

func (s *Server) handleSummary(w http.ResponseWriter, r *http.Request) {
	if s.o.Identity != nil {
		id, err := identity.FromTLS(r.TLS)
		switch {
		case err != nil:
			s.refuse(w, r, fmt.Sprintf("peering: client certificate: %v", err))
			return
		case id.Kind != identity.ControlPlane:
			s.refuse(w, r, fmt.Sprintf("peering: %s is a %s, not a control plane: only control planes may read region summaries", id, id.Kind))
			return
		}
		// One poll per connection: every poll is a handshake against the current
		// certificate and bundle, so a rotation or a CA dropped from the bundle takes
		// effect within one wait, at the cost of a handshake per peer per wait.
		w.Header().Set("Connection", "close")
	}
	q := r.URL.Query()
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": fmt.Sprintf("wait %q: want a non-negative duration", v)})
			return
		}
		wait = min(d, MaxWait)
	}
	sum, changed, err := s.o.Summary()
	if err != nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
		return
	}
	if since := q.Get("since"); since != "" && since == sum.Version && wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
		t.Stop()
		if sum, _, err = s.o.Summary(); err != nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, sum)
}

func (s *Server) refuse(w http.ResponseWriter, r *http.Request, msg string) {
	s.log.Warn("peering client refused", "remote", r.RemoteAddr, "err", msg)
	writeJSON(w, http.StatusForbidden, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
