package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
)

// tlsFlags are the mutual-TLS flags of the commands that speak xDS: --tls-cert,
// --tls-key and --tls-ca, or --insecure for demos and tests.
type tlsFlags struct {
	insecure       *bool
	cert, key, ca  *string
	command, whose string // for the usage message: "geode sidecar", "--xds talks"
}

func addTLSFlags(fs *flag.FlagSet, command, whose, insecureUsage, certUsage, caUsage string) *tlsFlags {
	return &tlsFlags{
		insecure: fs.Bool("insecure", false, insecureUsage),
		cert:     fs.String("tls-cert", "", certUsage),
		key:      fs.String("tls-key", "", "private key `file` (PEM) of --tls-cert; reloaded on change"),
		ca:       fs.String("tls-ca", "", caUsage),
		command:  command,
		whose:    whose,
	}
}

// mutual reports whether the flags ask for mutual TLS (false: --insecure). Giving both,
// or only some of the --tls-* files, is a usage error, explained on stderr.
func (f *tlsFlags) mutual(stderr io.Writer) (bool, error) {
	some := *f.cert != "" || *f.key != "" || *f.ca != ""
	switch {
	case *f.insecure && some:
		return false, errors.New("--insecure and --tls-cert/--tls-key/--tls-ca are exclusive")
	case *f.insecure:
		return false, nil
	case *f.cert == "" || *f.key == "" || *f.ca == "":
		fmt.Fprintf(stderr, "%s: %s mutual TLS: --tls-cert, --tls-key and --tls-ca are required (or --insecure, for demos and tests only)\n", f.command, f.whose)
		return false, errUsage
	}
	return true, nil
}

// newLogger returns the JSON logger of a long-running command, at the --log-level given.
func newLogger(level string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})), nil
}
