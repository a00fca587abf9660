package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/identity"
	"github.com/geodemesh/geode/proxy/config"
	"github.com/geodemesh/geode/proxy/sidecar"
	"github.com/geodemesh/geode/proxy/xds"
	"github.com/geodemesh/geode/tracing"
)

func runSidecar(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode sidecar", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "sidecar config `file` (YAML)")
	check := fs.String("check", "", "validate the config `file` and exit")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	xdsServer := fs.String("xds", "", "control plane `address` (host:port): regions and services come from it; the file keeps listeners, app, limits, session")
	xdsCache := fs.String("xds-cache", "", "`file` keeping the last good state from the control plane, for a start without one")
	nodeID := fs.String("node-id", "", "this sidecar's node id at the control plane (default: the one its --tls-cert names; with --insecure, host name and region)")
	zone := fs.String("zone", "", "this sidecar's zone within its region")
	service := fs.String("service", "", "with --xds, register this sidecar's inbound listener as an endpoint of this `service` (declared in the control plane's manifests)")
	advertise := fs.String("advertise", "", "with --service, the `host:port` other regions reach the inbound listener at (default: listeners.inbound, which must then name a host)")
	tlsf := addTLSFlags(fs, "geode sidecar", "--xds talks",
		"talk plaintext to the control plane, without mTLS (demos and tests only)",
		"client certificate `file` for the control plane (PEM; SPIFFE ID spiffe://<trust-domain>/geode/region/<region>/node/<node-id>); reloaded on change",
		"CA bundle `file` (PEM) that the control plane's certificate must chain to; reloaded on change")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *check != "" {
		c, err := config.Load(*check)
		if err != nil {
			return err
		}
		if f := c.Session.KeysFile; f != "" {
			b, err := os.ReadFile(f)
			if err == nil {
				_, err = consistency.ParseKeyRing(b)
			}
			if err != nil {
				return fmt.Errorf("%s: session.keys_file: %s: %w", *check, f, err)
			}
		}
		fmt.Fprintf(stdout, "%s: ok (region %s, %d regions, %d services)\n", *check, c.Region, len(c.Regions), len(c.Services))
		for i, svc := range c.Services {
			if len(svc.Endpoints) == 0 {
				fmt.Fprintf(stdout, "%s: note: services[%d] (%s) has no endpoints: its calls will be answered 503\n", *check, i, svc.Name)
			}
		}
		return nil
	}
	if *path == "" {
		fmt.Fprintln(stderr, "geode sidecar: --config is required")
		fs.Usage()
		return errUsage
	}
	log, err := newLogger(*logLevel, stderr)
	if err != nil {
		return err
	}

	c, err := config.Load(*path)
	if err != nil {
		return err
	}
	tp, flushSpans, err := tracing.NewProvider(ctx, tracing.Options{
		Exporter: c.Tracing.Exporter, Endpoint: c.Tracing.Endpoint, Insecure: c.Tracing.Insecure,
		SampleRatio: *c.Tracing.SampleRatio, ServiceName: "geode-sidecar", Region: c.Region, Stdout: stdout,
	})
	if err != nil {
		return err
	}
	first := c
	if *xdsServer != "" {
		id := *nodeID
		var ids *identity.Source
		var creds credentials.TransportCredentials
		mutual, err := tlsf.mutual(stderr)
		switch {
		case err != nil:
			return err
		case !mutual:
			log.Warn("talking PLAINTEXT to the control plane (--insecure): anyone on the path can read and change routing")
			creds = insecure.NewCredentials()
			if id == "" {
				host, _ := os.Hostname()
				id = host + "." + c.Region
			}
		default:
			// The node id and region are the certificate's: the control plane refuses
			// any other claim. A rotated certificate must keep them.
			var own identity.ID
			ids, err = identity.Load(identity.Options{
				CertFile: *tlsf.cert, KeyFile: *tlsf.key, CAFile: *tlsf.ca, Logger: log.With("component", "tls"),
				Accept: func(cid identity.ID) error {
					switch {
					case cid.Kind != identity.Node:
						return errors.New("not a sidecar identity: want spiffe://<trust-domain>/geode/region/<region>/node/<node-id>")
					case cid.Region != c.Region:
						return fmt.Errorf("names region %q, but %s says region %q", cid.Region, *path, c.Region)
					case id != "" && cid.NodeID != id:
						return fmt.Errorf("names node %q, but --node-id is %q", cid.NodeID, id)
					case own.Kind != 0 && cid.NodeID != own.NodeID:
						return fmt.Errorf("names node %q, but this sidecar runs as %q", cid.NodeID, own.NodeID)
					}
					return nil
				},
			})
			if err != nil {
				return fmt.Errorf("--tls-cert: %w", err)
			}
			own = ids.ID()
			id = own.NodeID
			creds = credentials.NewTLS(ids.ClientConfig())
			log.Info("xDS over mutual TLS", "id", own.String(), "serial", ids.Certificate().Leaf.SerialNumber.String())
		}
		if *xdsCache != "" {
			if cached, err := xds.LoadCache(*xdsCache, c); err == nil {
				first = cached // routes at once; the control plane's state replaces it
			}
		}
		sc, err := sidecar.New(sidecar.Options{Config: first, Logger: log, TracerProvider: tp})
		if err != nil {
			return err
		}
		// Registration: the control plane serves the advertised address as an endpoint of
		// --service for as long as this sidecar's streams live; without --service it
		// registers nothing (an address alone would be refused).
		var address string
		if *service != "" {
			if address = cmp.Or(*advertise, c.Listeners.Inbound); address == "" {
				return errors.New("geode sidecar: --service needs an inbound listener (listeners.inbound) or --advertise")
			}
			if host, _, err := net.SplitHostPort(address); err != nil || host == "" || net.ParseIP(host).IsUnspecified() {
				return fmt.Errorf("geode sidecar: --service: %q is not an address other regions can reach: give --advertise host:port", address)
			}
		}
		client, err := xds.New(xds.Options{
			Server: *xdsServer, DialOptions: []grpc.DialOption{grpc.WithTransportCredentials(creds)},
			NodeID: id, Zone: *zone, Service: *service, Address: address,
			Base: c, Apply: sc.Apply, CacheFile: *xdsCache, Logger: log.With("component", "xds"),
			Outcomes: sc.TakeOutcomes, // region outcomes for the control plane's health (LRS)
		})
		if err != nil {
			return err
		}
		run := client.Run
		if ids != nil {
			run = func(ctx context.Context) error {
				g, gctx := errgroup.WithContext(ctx)
				g.Go(func() error { return ids.Run(gctx) })
				g.Go(func() error { return client.Run(gctx) })
				return g.Wait()
			}
		}
		return runUntilDone(ctx, sc, run, flushSpans)
	}
	sc, err := sidecar.New(sidecar.Options{Config: c, Logger: log, TracerProvider: tp})
	if err != nil {
		return err
	}
	return runUntilDone(ctx, sc, func(ctx context.Context) error { return reloadOnHangup(ctx, *path, sc, log) }, flushSpans)
}

// runUntilDone runs the sidecar and its source of configuration (the file's SIGHUP
// reloads, or the control plane) until ctx ends, then flushes spans.
func runUntilDone(ctx context.Context, sc *sidecar.Sidecar, source func(context.Context) error, flushSpans func(context.Context) error) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return sc.Run(gctx) })
	g.Go(func() error { return source(gctx) })
	runErr := g.Wait()

	// Flush spans after the drain, on a fresh deadline.
	flush, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	return errors.Join(runErr, flushSpans(flush))
}

// reloadOnHangup re-reads the config on SIGHUP: validate, then swap; a bad file is
// reported and the running state kept.
func reloadOnHangup(ctx context.Context, path string, sc *sidecar.Sidecar, log *slog.Logger) error {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			c, err := config.Load(path)
			if err == nil {
				err = sc.Apply(c)
			}
			if err != nil {
				log.Error("reload refused; keeping the running config", "file", path, "error", err)
				continue
			}
			log.Info("reloaded", "file", path)
		}
	}
}
