package profiles

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"

	"github.com/geodemesh/geode/consistency"
)

// maxBody bounds JSON request bodies (a replication batch is at most one queue).
const maxBody = 8 << 20

// profileJSON is the JSON form of a Profile: {"id","name","email","version"}.
type profileJSON struct {
	ID      string `json:"id"`
	Name    string `json:"name"`
	Email   string `json:"email"`
	Version string `json:"version"`
}

func toJSON(p Profile) profileJSON {
	return profileJSON{ID: p.ID, Name: p.Name, Email: p.Email, Version: p.Version.String()}
}

// replicateJSON is the body of POST /replicate: writes of one origin, in seq order.
type replicateJSON struct {
	Writes []writeJSON `json:"writes"`
}

type writeJSON struct {
	profileJSON
	Stamp     uint64 `json:"stamp"`
	At        int64  `json:"at,omitempty"`        // the origin's clock, unix ms
	Heartbeat bool   `json:"heartbeat,omitempty"` // a position and time, no write
}

// Handler returns the handler serving both the JSON API and gRPC (see doc.go).
func (s *Store) Handler() http.Handler { return s.handler }

func (s *Store) newHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /users/{id}", s.getUser)
	mux.HandleFunc("PUT /users/{id}", s.putUser)
	mux.HandleFunc("POST /replicate", s.replicate)
	mux.HandleFunc("GET /watermark", func(w http.ResponseWriter, r *http.Request) {
		wm := s.Watermark()
		s.reply(w, wm, http.StatusOK, map[string]string{"region": s.cfg.Region, "watermark": wm.String()})
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		s.reply(w, s.Watermark(), http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, "no route for %s %s", r.Method, r.URL.Path)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(HeaderRegion, s.cfg.Region)
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			s.grpc.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (s *Store) getUser(w http.ResponseWriter, r *http.Request) {
	wm := s.Watermark() // taken first: the answer is at least this fresh
	p, ok := s.Get(r.PathValue("id"))
	if !ok {
		s.fail(w, http.StatusNotFound, "user %q not found", r.PathValue("id"))
		return
	}
	// The version of the data read: a session that saw it must never see older data
	// (monotonic reads), so Geode folds it into the session token like a write's.
	w.Header().Set(consistency.HeaderVersion, p.Version.String())
	s.reply(w, wm, http.StatusOK, toJSON(p))
}

func (s *Store) putUser(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Name  string `json:"name"`
		Email string `json:"email"`
	}
	if err := decode(w, r, &in); err != nil {
		s.fail(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	p := s.Put(r.PathValue("id"), in.Name, in.Email)
	w.Header().Set(consistency.HeaderVersion, p.Version.String())
	s.reply(w, s.Watermark(), http.StatusOK, toJSON(p))
}

func (s *Store) replicate(w http.ResponseWriter, r *http.Request) {
	var in replicateJSON
	if err := decode(w, r, &in); err != nil {
		s.fail(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	ws := make([]write, 0, len(in.Writes))
	for i, wj := range in.Writes {
		v, err := consistency.ParseVersion(wj.Version)
		if err != nil {
			s.fail(w, http.StatusBadRequest, "writes[%d].version: %v", i, err)
			return
		}
		if wj.ID == "" && !wj.Heartbeat {
			s.fail(w, http.StatusBadRequest, "writes[%d].id: must not be empty", i)
			return
		}
		ws = append(ws, write{
			Profile: Profile{ID: wj.ID, Name: wj.Name, Email: wj.Email, Version: v},
			Stamp:   wj.Stamp, At: wj.At, Heartbeat: wj.Heartbeat,
		})
	}
	s.apply(ws)
	wm := s.Watermark()
	s.reply(w, wm, http.StatusOK, map[string]string{"region": s.cfg.Region, "watermark": wm.String()})
}

func decode(w http.ResponseWriter, r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// reply writes v as JSON with the replica's watermark and lag headers.
func (s *Store) reply(w http.ResponseWriter, wm consistency.Watermark, status int, v any) {
	h := w.Header()
	h.Set(consistency.HeaderWatermark, wm.String())
	if lag := s.ReplicaLag(); len(lag) > 0 {
		h.Set(consistency.HeaderReplicaLag, lag.String())
	}
	h.Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("writing response", "err", err)
	}
}

// fail writes a JSON error {"error": "..."}.
func (s *Store) fail(w http.ResponseWriter, status int, format string, args ...any) {
	s.reply(w, s.Watermark(), status, map[string]string{"error": fmt.Sprintf(format, args...)})
}
