package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"golang.org/x/sync/errgroup"

	"github.com/geodemesh/geode/controlplane/model"
	"github.com/geodemesh/geode/controlplane/server"
	"github.com/geodemesh/geode/controlplane/source"
)

// runControlplane runs `geode controlplane --config DIR --listen ADDR --admin ADDR
// [--insecure]`: one region's xDS control plane (ADS, SotW and Delta) and its admin API.
func runControlplane(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode controlplane", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("config", "", "`directory` of manifests: one kind: Geode manifest, plus Kubernetes Services and EndpointSlices; reloaded on change")
	listen := fs.String("listen", "127.0.0.1:18000", "xDS (ADS gRPC) listen `address`")
	admin := fs.String("admin", "127.0.0.1:18001", "admin HTTP listen `address` (keep it on loopback)")
	insecure := fs.Bool("insecure", false, "serve xDS in plaintext, without mTLS (demos and tests only)")
	check := fs.Bool("check", false, "validate the manifests and exit")
	debounce := fs.Duration("reload-debounce", source.DefaultDebounce, "wait this long after the last change in --config before reloading")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *dir == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "geode controlplane: --config DIR is required, and no arguments")
		fs.Usage()
		return errUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))

	m, err := source.Load(*dir)
	if err != nil {
		return err
	}
	if *check {
		fmt.Fprintf(stdout, "%s: ok (model %s, %d regions, %d services)\n", *dir, m.Version(), len(m.RegionNames()), len(m.Services()))
		return nil
	}
	if !*insecure {
		return errors.New("mTLS is not implemented yet; run with --insecure")
	}
	log.Warn("INSECURE: xDS is served in plaintext without client authentication; any client that reaches " +
		*listen + " can read the fleet's configuration and claim any region. Use --insecure only for demos and tests.")

	xl, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	al, err := net.Listen("tcp", *admin)
	if err != nil {
		xl.Close()
		return fmt.Errorf("--admin: %w", err)
	}
	s, err := server.New(server.Options{Model: m, XDS: xl, Admin: al, Logger: log})
	if err != nil {
		xl.Close()
		al.Close()
		return err
	}
	log.Info("control plane serving", "xds", xl.Addr().String(), "admin", al.Addr().String(),
		"model", m.Version(), "regions", m.RegionNames(), "services", len(m.Services()))

	// Reload on change: a valid directory replaces the model (SetModel keeps operator
	// overrides); an invalid one is logged with file, document and field, and the last
	// good model keeps being served.
	w := &source.Watcher{
		Dir: *dir, Current: m, Debounce: *debounce,
		Apply: func(ctx context.Context, m *model.Model) error {
			if err := s.SetModel(ctx, m); err != nil {
				return err
			}
			log.Info("manifests reloaded", "dir", *dir, "model", m.Version(), "regions", m.RegionNames(), "services", len(m.Services()))
			return nil
		},
		Report: func(err error) { log.Error("manifests rejected", "dir", *dir, "err", err.Error()) },
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Run(gctx) })
	g.Go(func() error {
		if err := w.Run(gctx); err != nil {
			return fmt.Errorf("--config: %w", err)
		}
		return nil
	})
	return g.Wait()
}
