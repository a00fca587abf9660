// Command geode is Geode's one binary: the sidecar, the demo, and operator verbs.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

const usage = `geode — region-aware sidecar and control plane for active-active multi-region services

Usage:
  geode sidecar --config FILE     run a sidecar (SIGHUP reloads FILE; SIGTERM drains and exits)
  geode sidecar --config FILE --xds ADDR --tls-cert FILE --tls-key FILE --tls-ca FILE
                                  take regions and services from a control plane, over mTLS
                                  (--insecure instead of --tls-*: plaintext, demos only)
  geode sidecar --check FILE      validate a sidecar config and exit
  geode demo [--json] [--duration 15s] [--no-fault]
                                  three regions on loopback: Geode routing next to naive routing
  geode controlplane --config DIR --tls-cert FILE --tls-key FILE --tls-ca FILE
                                  serve xDS (ADS, SotW and Delta) for one region's fleet over mTLS
                                  (--insecure instead of --tls-*: plaintext, demos only)
  geode status [--admin ADDR] [--json]
                                  the control plane's clients and what each has ACKed
  geode region drain|fence|down|restore REGION [--admin ADDR]
                                  change a region's state at the control plane
  geode token decode [--keys FILE] TOKEN
                                  print a session token's contents, and verify it with --keys
  geode token new --keys FILE     mint a session token (for tests and demos)
  geode version                   print the version

Run 'geode COMMAND --help' for a command's flags.
`

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		if !errors.Is(err, errUsage) {
			fmt.Fprintln(os.Stderr, "geode:", err)
		}
		os.Exit(exitCode(err))
	}
}

var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "sidecar":
		return runSidecar(ctx, args[1:], stdout, stderr)
	case "demo":
		return runDemo(ctx, args[1:], stdout, stderr)
	case "token":
		return runToken(ctx, args[1:], stdout, stderr)
	case "controlplane":
		return runControlplane(ctx, args[1:], stdout, stderr)
	case "status":
		return runStatus(ctx, args[1:], stdout, stderr)
	case "region":
		return runRegion(ctx, args[1:], stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "geode", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "geode: unknown command %q\n\n%s", args[0], usage)
		return errUsage
	}
}
