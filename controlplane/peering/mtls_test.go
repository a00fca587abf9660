package peering_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/identity/identitytest"
	"github.com/geodemesh/geode/controlplane/peering"
)

const td = "geode.test"

// cpIdentity loads a certificate for uri issued by ca, its files re-read every 20ms
// until the test ends; it returns the files, to rotate.
func cpIdentity(t *testing.T, ca *identitytest.CA, uri string) (*identity.Source, identitytest.Files) {
	t.Helper()
	files := ca.Write(t, t.TempDir(), "cp", ca.Issue(t, uri))
	ids, err := identity.Load(identity.Options{CertFile: files.Cert, KeyFile: files.Key, CAFile: files.CA, Poll: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ids.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return ids, files
}

// mtlsGet is GET /peer/summary on addr over TLS with cfg.
func mtlsGet(t *testing.T, addr string, cfg *tls.Config) (int, string, error) {
	t.Helper()
	code, body, _, err := mtlsGetConn(t, addr, cfg)
	return code, body, err
}

// mtlsGetConn is mtlsGet that also says whether the server closed the connection.
func mtlsGetConn(t *testing.T, addr string, cfg *tls.Config) (code int, body string, closed bool, err error) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + "/peer/summary")
	if err != nil {
		return 0, "", false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Close, err
}

// TestPeeringOverMTLS: three control planes with their regions' certificates peer over
// mutual TLS; a node's certificate and a plaintext client get no summary; rotating
// every certificate and the CA keeps peering going; a control plane that answers for
// eu-west with us-west's certificate, or with eu-west's certificate and a summary of
// another region, is refused by the pollers, which keep eu-west's last good state and
// show why in /config_dump.
func TestPeeringOverMTLS(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	ids := map[string]*identity.Source{}
	files := map[string]identitytest.Files{}
	peerLis := map[string]string{}
	cps := map[string]*cp{}
	for _, r := range regions {
		ids[r], files[r] = cpIdentity(t, ca, identitytest.ControlPlaneURI(td, r))
	}
	lis := map[string]*cpConfig{}
	for _, r := range regions {
		lis[r] = &cpConfig{region: r, peer: listen(t, "127.0.0.1:0"), ids: ids[r]}
		peerLis[r] = lis[r].peer.Addr().String()
	}
	for _, r := range regions {
		for _, o := range regions {
			if o != r {
				lis[r].peers = append(lis[r].peers, peering.Peer{Region: o, Addr: peerLis[o]})
			}
		}
		cps[r] = startCP(t, *lis[r])
	}

	t.Run("summaries flow", func(t *testing.T) {
		for _, r := range regions {
			eventually(t, 5*time.Second, r+" synced", func() error {
				d := configDump(t, cps[r].admin)
				if len(d.Peers) != 2 {
					return fmt.Errorf("peers %+v", d.Peers)
				}
				for _, p := range d.Peers {
					if p.Version == "" || p.Stale || p.Errors != 0 {
						return fmt.Errorf("peer %+v", p)
					}
				}
				return nil
			})
		}
		// A poll is one connection (so each is authenticated with the current files).
		code, body, closed, err := mtlsGetConn(t, peerLis["eu-west"], ids["us-east"].PeeringClientConfig("eu-west"))
		if err != nil || code != http.StatusOK || !strings.Contains(body, `"region":"eu-west"`) || !closed {
			t.Fatalf("GET /peer/summary as us-east's control plane = %d %s (connection closed: %t), %v", code, body, closed, err)
		}
		eventually(t, 5*time.Second, "eu-west degraded at eu-west", func() error {
			report(t, cps["eu-west"].admin, "eu-west", 10)
			if st := regionOf(configDump(t, cps["eu-west"].admin), "eu-west").State; st != "degraded" {
				return fmt.Errorf("state %s", st)
			}
			return nil
		})
		for _, r := range []string{"us-east", "us-west"} {
			eventually(t, 3*time.Second, "eu-west degraded at "+r, func() error {
				if rd := regionOf(configDump(t, cps[r].admin), "eu-west"); rd.Computed != "degraded" {
					return fmt.Errorf("eu-west %+v", rd)
				}
				return nil
			})
		}
	})

	t.Run("a node certificate is refused with 403 naming it", func(t *testing.T) {
		node, _ := cpIdentity(t, ca, identitytest.NodeURI(td, "us-east", "sc-1"))
		cfg := node.PeeringClientConfig("eu-west")
		code, body, err := mtlsGet(t, peerLis["eu-west"], cfg)
		if err != nil || code != http.StatusForbidden || !strings.Contains(body, identitytest.NodeURI(td, "us-east", "sc-1")) || !strings.Contains(body, "not a control plane") {
			t.Fatalf("GET /peer/summary with a node certificate = %d %q, %v; want 403 naming the node", code, body, err)
		}
		if strings.Contains(body, `"state"`) {
			t.Fatalf("a refused client got a summary: %s", body)
		}
	})

	t.Run("no summary without a client certificate or in plaintext", func(t *testing.T) {
		cfg := ids["us-east"].PeeringClientConfig("eu-west")
		cfg.GetClientCertificate = nil
		if code, body, err := mtlsGet(t, peerLis["eu-west"], cfg); err == nil {
			t.Fatalf("GET without a client certificate = %d %q", code, body)
		}
		c := &http.Client{Timeout: 5 * time.Second}
		resp, err := c.Get("http://" + peerLis["eu-west"] + "/peer/summary")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || strings.Contains(string(b), `"state"`) {
				t.Fatalf("plaintext GET = %s %s", resp.Status, b)
			}
		}
	})

	t.Run("rotation to a new CA keeps peering going", func(t *testing.T) {
		// Every control plane moves to certificates of a new CA, and a bundle of that CA
		// only: the old CA is no longer trusted anywhere.
		next := identitytest.NewCA(t, td)
		for _, r := range regions {
			leaf := next.Issue(t, identitytest.ControlPlaneURI(td, r))
			writeFile(t, files[r].Key, leaf.KeyPEM) // key first: a half-written pair is not taken
			writeFile(t, files[r].Cert, leaf.CertPEM)
			writeFile(t, files[r].CA, next.PEM)
			eventually(t, 5*time.Second, r+" reloaded", func() error {
				if got := ids[r].Certificate().Leaf.SerialNumber; got.Cmp(leaf.Cert.SerialNumber) != 0 {
					return fmt.Errorf("serial %s, want %s", got, leaf.Cert.SerialNumber)
				}
				return nil
			})
		}
		// A poll ends its connection: after a wait (200ms), every poll runs on a
		// connection authenticated with the new certificates.
		time.Sleep(400 * time.Millisecond)
		old, _ := cpIdentity(t, ca, identitytest.ControlPlaneURI(td, "us-east"))
		if code, body, err := mtlsGet(t, peerLis["eu-west"], old.PeeringClientConfig("eu-west")); err == nil {
			t.Fatalf("a control plane of the old CA after the rotation: %d %s", code, body)
		}
		// A new summary of eu-west still reaches the others (eu-west goes down from degraded).
		for _, r := range []string{"us-east", "us-west"} {
			eventually(t, 5*time.Second, "eu-west down at "+r+" after the rotation", func() error {
				report(t, cps["eu-west"].admin, "eu-west", 30)
				if rd := regionOf(configDump(t, cps[r].admin), "eu-west"); rd.Computed != "down" {
					return fmt.Errorf("eu-west %s", rd.Computed)
				}
				return nil
			})
		}
	})

	// eu-west's control plane goes away; something else answers on its address.
	lastGood := regionOf(configDump(t, cps["us-east"].admin), "eu-west").Computed
	euAddr := peerLis["eu-west"]
	cps["eu-west"].stop()
	impostor := func(t *testing.T, ids *identity.Source, sum peering.Summary, wantErr string) {
		t.Helper()
		srv, err := peering.NewServer(peering.ServerOptions{Listener: listen(t, euAddr), Identity: ids,
			Summary: func() (peering.Summary, <-chan struct{}, error) { return sum, nil, nil }})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		defer func() {
			cancel()
			if err := <-done; err != nil {
				t.Error(err)
			}
		}()
		for _, r := range []string{"us-east", "us-west"} {
			eventually(t, 5*time.Second, "impostor refused at "+r, func() error {
				d := configDump(t, cps[r].admin)
				p, _ := peerOf(d, "eu-west")
				if !strings.Contains(p.LastError, wantErr) {
					return fmt.Errorf("peer %+v, want last error %q", p, wantErr)
				}
				if rd := regionOf(d, "eu-west"); rd.Computed != lastGood || p.State != lastGood {
					t.Fatalf("eu-west at %s = %s (peer %+v) with an impostor answering; want its last good %s", r, rd.Computed, p, lastGood)
				}
				return nil
			})
		}
	}
	t.Run("us-west's certificate answering for eu-west is refused by the poller", func(t *testing.T) {
		impostor(t, ids["us-west"], peering.Summary{Region: "eu-west", State: "healthy", WeightFactor: 100, Version: "x.1"},
			`is the control plane of region "us-west", not of region "eu-west"`)
	})
	t.Run("eu-west's certificate with a summary of another region is refused by the poller", func(t *testing.T) {
		impostor(t, ids["eu-west"], peering.Summary{Region: "us-west", State: "down", Version: "x.2"},
			`the control plane of region "eu-west" sent a summary of region "us-west"`)
	})
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// A control plane whose own certificate is not its region's control plane cannot peer:
// its peers would refuse it.
func TestPeeringNeedsTheRegionsCertificate(t *testing.T) {
	ca := identitytest.NewCA(t, td)
	for uri, want := range map[string]string{
		identitytest.ControlPlaneURI(td, "eu-west"): `is the control plane of region "eu-west", not of region "us-east"`,
		identitytest.ControlPlaneURI(td, ""):        "without a region",
	} {
		ids, _ := cpIdentity(t, ca, uri)
		_, err := peering.New(peering.Options{Region: "us-east", Identity: ids,
			Apply: func(context.Context, peering.Summary) error { return nil }})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("peering.New with %s as us-east: %v, want %q", uri, err, want)
		}
	}
}
