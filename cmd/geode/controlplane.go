package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/peering"
	"github.com/geodemesh/geode/controlplane/server"
	"github.com/geodemesh/geode/controlplane/source"
)

// runControlplane runs `geode controlplane --config DIR --listen ADDR --admin ADDR
// [--region REGION --peer-listen ADDR --peer REGION=ADDR...] [--health-* ...]
// [--max-registrations N]
// (--tls-cert FILE --tls-key FILE --tls-ca FILE | --insecure)`: one region's xDS
// control plane (ADS, SotW and Delta) over mutual TLS, its admin API, and peering with
// the other regions' control planes over the same mutual TLS.
func runControlplane(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", "", "`directory` of manifests: one kind: Geode manifest, plus Kubernetes Services and EndpointSlices; reloaded on change")
	listen := fs.String("listen", "127.0.0.1:18000", "xDS (ADS gRPC) listen `address`")
	admin := fs.String("admin", "127.0.0.1:18001", "admin HTTP listen `address` (keep it on loopback)")
	tlsf := addTLSFlags(fs, "geode controlplane", "xDS is served over",
		"serve xDS in plaintext, without mTLS: any client can claim any node and region (demos and tests only)",
		"xDS and peering certificate `file` (PEM; SPIFFE ID spiffe://<trust-domain>/geode/region/<region>/controlplane, or spiffe://<trust-domain>/geode/controlplane without peering); reloaded on change",
		"CA bundle `file` (PEM) that sidecars' and peer control planes' certificates must chain to; reloaded on change")
	check := fs.Bool("check", false, "validate the manifests and exit")
	debounce := fs.Duration("reload-debounce", source.DefaultDebounce, "wait this long after the last change in --config before reloading")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	sendTimeout := fs.Duration("send-timeout", server.DefaultSendTimeout, "disconnect (and count) an xDS client that leaves a response unread this long; 0 or less: never")
	region := fs.String("region", "", "this control plane's own `region` (authoritative for it; served to peers); required with --peer and --peer-listen")
	peerListen := fs.String("peer-listen", "", "peering listen `address`: serves this region's summary to the other regions' control planes (mTLS, control-plane certificates only); empty: not served")
	var peers peerFlag
	fs.Var(&peers, "peer", "another region's control plane, `REGION=ADDR` (its --peer-listen address); repeatable")
	staleAfter := fs.Duration("peer-stale-after", peering.DefaultStaleAfter, "a peer unanswered this long is shown stale (its last known state stays in force)")
	maxRegistrations := fs.Int("max-registrations", server.DefaultMaxRegistrations, "most endpoints sidecars may register through xDS node metadata on this control plane")
	healthf := addHealthFlags(fs)
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "geode controlplane: --config DIR is required, and no arguments")
		fs.Usage()
		return errUsage
	}
	healthCfg, err := healthf.config()
	if err != nil {
		return err
	}
	maxRegs, err := maxRegistrationsOption(*maxRegistrations)
	if err != nil {
		return err
	}
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}

	m, err := source.Load(*dir)
	if err != nil {
		return err
	}
	peered := len(peers) > 0 || *peerListen != ""
	if peered && *region == "" {
		fmt.Fprintln(stderr, "geode controlplane: --peer and --peer-listen need --region (this control plane's own region)")
		return errUsage
	}
	if *region != "" {
		if _, ok := m.Region(*region); !ok {
			return fmt.Errorf("--region %q: not a region of the model %v", *region, m.RegionNames())
		}
	}
	for _, p := range peers {
		if _, ok := m.Region(p.Region); !ok {
			return fmt.Errorf("--peer %s=%s: %q is not a region of the model %v", p.Region, p.Addr, p.Region, m.RegionNames())
		}
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (model %s, %d regions, %d services)\n", *dir, m.Version(), len(m.RegionNames()), len(m.Services()))
		if idle := withoutEndpoints(m); len(idle) > 0 {
			fmt.Fprintf(stdout, "without endpoints (until one is ready or a sidecar registers one): %s\n", strings.Join(idle, ", "))
		}
		return nil
	}
	var ids *identity.Source
	var grpcOpts []grpc.ServerOption
	mutual, err := tlsf.mutual(stderr)
	switch {
	case err != nil:
		return err
	case !mutual:
		log.Warn("INSECURE: xDS is served in plaintext without client authentication; any client that reaches " +
			*listen + " can read the fleet's configuration, its session-token keys (SDS) included, and claim any node and region. Use --insecure only for demos and tests.")
		if peered {
			log.Warn("INSECURE: peering runs in plaintext without authentication; anyone who reaches --peer-listen " + *peerListen +
				" can read this region's state, and anyone on the path to a --peer can forge its region's state. Use --insecure only for demos and tests.")
		}
	default:
		ids, err = identity.Load(identity.Options{
			CertFile: *tlsf.cert, KeyFile: *tlsf.key, CAFile: *tlsf.ca, Logger: log.With("component", "tls"),
			Accept: func(id identity.ID) error {
				switch {
				case id.Kind != identity.ControlPlane:
					return errors.New("not a control plane identity: want spiffe://<trust-domain>/geode/region/<region>/controlplane or spiffe://<trust-domain>/geode/controlplane")
				case peered:
					// Peers bind a region's summary to that region's certificate.
					if err := identity.IsRegionControlPlane(*region)(id); err != nil {
						return fmt.Errorf("%w; peering (--peer, --peer-listen) needs the certificate of this region's control plane", err)
					}
				case *region != "" && id.Region != "" && id.Region != *region:
					return fmt.Errorf("the certificate is region %q's control plane, but --region is %q", id.Region, *region)
				}
				return nil
			},
		})
		if err != nil {
			return err
		}
		grpcOpts = append(grpcOpts, grpc.Creds(credentials.NewTLS(ids.ServerConfig())))
		log.Info("xDS over mutual TLS", "id", ids.ID().String(), "serial", ids.Certificate().Leaf.SerialNumber.String())
	}

	xl, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	al, err := net.Listen("tcp", *admin)
	if err != nil {
		xl.Close()
		return fmt.Errorf("--admin: %w", err)
	}
	var pl net.Listener
	if *peerListen != "" {
		if pl, err = net.Listen("tcp", *peerListen); err != nil {
			xl.Close()
			al.Close()
			return fmt.Errorf("--peer-listen: %w", err)
		}
	}
	closeAll := func() {
		xl.Close()
		al.Close()
		if pl != nil {
			pl.Close()
		}
	}
	s, err := server.New(server.Options{
		Model: m, XDS: xl, Admin: al, Logger: log, GRPCOptions: grpcOpts, Region: *region,
		SendTimeout: sendTimeoutOption(*sendTimeout), Health: healthCfg, MaxRegistrations: maxRegs,
	})
	if err != nil {
		closeAll()
		return err
	}
	peerLog := log.With("component", "peering")
	var pr *peering.Peers
	if len(peers) > 0 {
		pr, err = peering.New(peering.Options{
			Region: *region, Peers: peers, Apply: s.ApplyPeerSummary, Stale: s.SetPeerStale, Failed: s.RecordPeerError,
			Identity: ids, StaleAfter: *staleAfter, Logger: peerLog,
		})
		if err != nil {
			closeAll()
			return err
		}
	}
	var ps *peering.Server
	if pl != nil {
		ps, err = peering.NewServer(peering.ServerOptions{Listener: pl, Identity: ids, Summary: s.OwnSummary, Logger: peerLog})
		if err != nil {
			closeAll()
			return err
		}
	}
	attrs := []any{"xds", xl.Addr().String(), "admin", al.Addr().String(),
		"model", m.Version(), "regions", m.RegionNames(), "services", len(m.Services()),
		"without_endpoints", withoutEndpoints(m)}
	if pl != nil {
		attrs = append(attrs, "peering", pl.Addr().String(), "peering_mtls", ids != nil)
	}
	log.Info("control plane serving", attrs...)

	// Reload on change: a valid directory replaces the model (SetModel keeps operator
	// overrides); an invalid one is logged with file, document and field, and the last
	// good model keeps being served.
	w := &source.Watcher{
		Dir: *dir, Current: m, Debounce: *debounce,
		Apply: func(ctx context.Context, m *model.Model) error {
			if err := s.SetModel(ctx, m); err != nil {
				return err
			}
			log.Info("manifests reloaded", "dir", *dir, "model", m.Version(), "regions", m.RegionNames(), "services", len(m.Services()),
				"without_endpoints", withoutEndpoints(m))
			return nil
		},
		Report: func(err error) { log.Error("manifests rejected", "dir", *dir, "err", err.Error()) },
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Run(gctx) })
	if ids != nil {
		g.Go(func() error { return ids.Run(gctx) })
	}
	if pr != nil {
		g.Go(func() error { return pr.Run(gctx) })
	}
	if ps != nil {
		g.Go(func() error { return ps.Run(gctx) })
	}
	g.Go(func() error {
		if err := w.Run(gctx); err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		return nil
	})
	return g.Wait()
}

// withoutEndpoints names the model's services that have no endpoint in the manifests (a
// Kubernetes Service with no ready pod, or one its sidecars register): their clients
// find no endpoint until one is ready or registered. Never nil, so the log shows [].
func withoutEndpoints(m *model.Model) []string {
	out := []string{}
	for _, s := range m.Services() {
		if len(s.Endpoints) == 0 {
			out = append(out, s.Name)
		}
	}
	return out
}

// peerFlag is the repeatable --peer REGION=ADDR.
type peerFlag []peering.Peer

func (f *peerFlag) String() string {
	if f == nil {
		return ""
	}
	var parts []string
	for _, p := range *f {
		parts = append(parts, p.Region+"="+p.Addr)
	}
	return strings.Join(parts, ",")
}

func (f *peerFlag) Set(v string) error {
	p, err := peering.ParsePeer(v)
	if err != nil {
		return err
	}
	*f = append(*f, p)
	return nil
}

// sendTimeoutOption maps --send-timeout to server.Options.SendTimeout, where zero means
// the default and a negative value disables the check.
func sendTimeoutOption(d time.Duration) time.Duration {
	if d <= 0 {
		return -1
	}
	return d
}
