package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/geodemesh/geode/e2e/demo"
)

// maxDemoDuration keeps `geode demo` under a minute with start-up, seeding and shutdown.
const maxDemoDuration = 45 * time.Second

// runDemo runs three regions on loopback with emulated WAN latency (each region's sidecar
// fed by its own region's control plane, or with --static a static config), the same workload of
// travelling sessions routed by Geode and naively side by side, and (unless --no-fault)
// an app outage in eu-west, then prints the report. It fails when the fleet did, when any
// request of either arm failed, or when Geode's arm broke read-your-writes.
func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("geode demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	duration := fs.Duration("duration", demo.DefaultDuration, "how long the workload runs (at most 45s)")
	noFault := fs.Bool("no-fault", false, "do not stop eu-west's app in the middle of the run")
	clients := fs.Int("clients", demo.DefaultConcurrency, "sessions starting in each region, per arm (geode and naive)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	static := fs.Bool("static", false, "give every sidecar a static config instead of running a control plane per region")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "geode demo: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return errUsage
	}
	if *duration <= 0 || *duration > maxDemoDuration {
		fmt.Fprintf(stderr, "geode demo: --duration %s: want more than 0 and at most %s\n", *duration, maxDemoDuration)
		return errUsage
	}
	if *clients < 1 || *clients > 64 {
		fmt.Fprintf(stderr, "geode demo: --clients %d: want 1 to 64\n", *clients)
		return errUsage
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	report, err := demo.Run(ctx, demo.Options{
		Duration:    *duration,
		Concurrency: *clients,
		Fault:       !*noFault,
		Logger:      log,
		Static:      *static,
	})
	if report != nil {
		if *asJSON {
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			if werr := enc.Encode(report); werr != nil {
				err = errors.Join(err, werr)
			}
		} else if werr := report.WriteTable(stdout); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := report.Err(); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	return nil
}
