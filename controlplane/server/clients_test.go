package server

import (
	"log/slog"
	"testing"
)

// go-control-plane numbers state-of-the-world and delta streams separately, both from 1:
// a SotW stream and a delta stream with the same id are two clients.
func TestSotWAndDeltaStreamsWithTheSameIDAreTwoClients(t *testing.T) {
	c := newClients(slog.New(slog.DiscardHandler), func(string) bool { return true })
	cb := c.callbacks()
	if err := cb.OnStreamOpen(t.Context(), 1, ""); err != nil {
		t.Fatal(err)
	}
	if err := cb.OnDeltaStreamOpen(t.Context(), 1, ""); err != nil {
		t.Fatal(err)
	}
	if n := len(c.status().Clients); n != 2 {
		t.Fatalf("%d clients, want 2", n)
	}
	cb.OnDeltaStreamClosed(1, nil)
	st := c.status()
	if len(st.Clients) != 1 || st.Clients[0].Protocol != "sotw" {
		t.Fatalf("after the delta stream closed: %+v, want the sotw client left", st.Clients)
	}
}
