package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultPoll is how often Run looks at the files.
const DefaultPoll = 2 * time.Second

// Options name the files of a Source.
type Options struct {
	// CertFile is this process's certificate chain (PEM, leaf first); KeyFile its
	// private key (PEM). CAFile is the bundle of CA certificates (PEM) that peers'
	// chains must end in. All three are required.
	CertFile, KeyFile, CAFile string
	// Accept, if set, vets this process's own identity on every load: a reload whose
	// certificate it refuses is logged and the last good set kept (a sidecar pins its
	// node id and region this way).
	Accept func(ID) error
	// Poll is how often Run re-reads the files; default DefaultPoll.
	Poll time.Duration
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Source holds the current certificate, key and CA bundle, and reloads them from their
// files. Its TLS configurations read the current set at every handshake.
type Source struct {
	o   Options
	log *slog.Logger

	mu      sync.RWMutex
	cur     *material
	lastBad []byte // contents of the last set refused, to log a broken set once
}

type material struct {
	raw  []byte // cert, key and CA file contents, to see a change
	cert *tls.Certificate
	id   ID
	pool *x509.CertPool
}

// Load reads the files once; an error here is a startup error.
func Load(o Options) (*Source, error) {
	if o.CertFile == "" || o.KeyFile == "" || o.CAFile == "" {
		return nil, errors.New("identity: the certificate, key and CA files are all required")
	}
	if o.Poll <= 0 {
		o.Poll = DefaultPoll
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	s := &Source{o: o, log: log}
	raw, err := s.read()
	if err != nil {
		return nil, err
	}
	m, err := s.parse(raw)
	if err != nil {
		return nil, err
	}
	s.cur = m
	return s, nil
}

// ID is this process's own identity, from its current certificate.
func (s *Source) ID() ID { return s.current().id }

// Certificate is the current certificate (its Leaf is set).
func (s *Source) Certificate() *tls.Certificate { return s.current().cert }

func (s *Source) current() *material {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.cur
}

func (s *Source) read() ([]byte, error) {
	var all []byte
	for _, f := range []string{s.o.CertFile, s.o.KeyFile, s.o.CAFile} {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("identity: %w", err)
		}
		all = append(append(all, b...), 0) // NUL never occurs in PEM: a separator
	}
	return all, nil
}

func (s *Source) parse(raw []byte) (*material, error) {
	parts := bytes.SplitN(raw, []byte{0}, 4)
	certPEM, keyPEM, caPEM := parts[0], parts[1], parts[2]
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: %s, %s: %w", s.o.CertFile, s.o.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("identity: %s: %w", s.o.CertFile, err)
		}
		cert.Leaf = leaf
	}
	id, err := FromCertificate(leaf)
	if err != nil {
		return nil, fmt.Errorf("identity: %s: %w", s.o.CertFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("identity: %s: no PEM certificates", s.o.CAFile)
	}
	// Our own chain must verify against our own bundle: this catches a half-rotated
	// set (new CA, old certificate or the reverse) before it is served.
	inter := x509.NewCertPool()
	for _, der := range cert.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("identity: %s does not chain to %s: %w", s.o.CertFile, s.o.CAFile, err)
	}
	if s.o.Accept != nil {
		if err := s.o.Accept(id); err != nil {
			return nil, fmt.Errorf("identity: %s: %s: %w", s.o.CertFile, id, err)
		}
	}
	return &material{raw: raw, cert: &cert, id: id, pool: pool}, nil
}

// Reload re-reads the files now. It reports whether a new set was taken; on error the
// current set stays.
func (s *Source) Reload() (bool, error) {
	raw, err := s.read()
	if err != nil {
		return false, err
	}
	if bytes.Equal(raw, s.current().raw) {
		return false, nil
	}
	m, err := s.parse(raw)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	old := s.cur
	s.cur = m
	s.mu.Unlock()
	s.log.Info("TLS certificates reloaded", "id", m.id.String(), "serial", m.cert.Leaf.SerialNumber.String(),
		"not_after", m.cert.Leaf.NotAfter, "previous_serial", old.cert.Leaf.SerialNumber.String())
	return true, nil
}

// Run reloads the files when they change, every Options.Poll, until ctx ends. A broken
// set is logged once and the last good one kept.
func (s *Source) Run(ctx context.Context) error {
	t := time.NewTicker(s.o.Poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if _, err := s.Reload(); err != nil {
			raw, _ := s.read()
			s.mu.Lock()
			again := raw != nil && bytes.Equal(raw, s.lastBad)
			s.lastBad = raw
			s.mu.Unlock()
			if !again {
				s.log.Error("TLS certificates not reloaded; keeping the current ones", "err", err.Error())
			}
		}
	}
}

// verify checks a peer's chain against the current bundle and returns its identity,
// which must be in this process's trust domain and pass check (when set).
func (s *Source) verify(rawCerts [][]byte, usage x509.ExtKeyUsage, check func(ID) error) (ID, error) {
	if len(rawCerts) == 0 {
		return ID{}, errors.New("geode mTLS: the peer presented no certificate")
	}
	certs := make([]*x509.Certificate, len(rawCerts))
	for i, der := range rawCerts {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return ID{}, fmt.Errorf("geode mTLS: peer certificate: %w", err)
		}
		certs[i] = c
	}
	m := s.current()
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	if _, err := certs[0].Verify(x509.VerifyOptions{Roots: m.pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return ID{}, fmt.Errorf("geode mTLS: peer certificate: %w", err)
	}
	id, err := FromCertificate(certs[0])
	if err != nil {
		return ID{}, fmt.Errorf("geode mTLS: %w", err)
	}
	if id.TrustDomain() != m.id.TrustDomain() {
		return ID{}, fmt.Errorf("geode mTLS: peer %s is not in trust domain %q", id, m.id.TrustDomain())
	}
	if check != nil {
		if err := check(id); err != nil {
			return ID{}, fmt.Errorf("geode mTLS: peer %s: %w", id, err)
		}
	}
	return id, nil
}

// kind is a verify check: the identity is of kind want.
func kind(want Kind) func(ID) error {
	return func(id ID) error {
		if id.Kind != want {
			return fmt.Errorf("is a %s, want a %s", id.Kind, want)
		}
		return nil
	}
}

// ServerConfig is the control plane's side: it presents the current certificate and
// requires a client certificate that chains to the current bundle and names a node
// (spiffe://<td>/geode/region/<region>/node/<id>) in its trust domain. Wrap it in
// credentials.NewTLS for grpc.Creds.
func (s *Source) ServerConfig() *tls.Config {
	return s.serverConfig("h2", kind(Node))
}

// serverConfig presents the current certificate and requires a client certificate that
// chains to the current bundle and passes check (nil: any identity of the trust
// domain), speaking proto.
func (s *Source) serverConfig(proto string, check func(ID) error) *tls.Config {
	return &tls.Config{
		MinVersion:             tls.VersionTLS12,
		NextProtos:             []string{proto},
		ClientAuth:             tls.RequireAndVerifyClientCert,
		SessionTicketsDisabled: true,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return s.current().cert, nil
		},
		// Each handshake gets the bundle and certificate current at that moment.
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.current()
			return &tls.Config{
				MinVersion:   tls.VersionTLS12,
				NextProtos:   []string{proto},
				Certificates: []tls.Certificate{*m.cert},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    m.pool,
				// No resumption: every connection is verified against the current
				// bundle (a CA dropped from it locks its clients out at once).
				SessionTicketsDisabled: true,
				VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
					_, err := s.verify(raw, x509.ExtKeyUsageClientAuth, check)
					return err
				},
			}, nil
		},
	}
}

// ClientConfig is the sidecar's side: it presents the current certificate and
// accepts a server whose chain ends in the current bundle and whose SPIFFE ID is a
// control plane's (spiffe://<td>/geode/region/<region>/controlplane or
// spiffe://<td>/geode/controlplane...) in its trust domain. Host
// names are not checked (the standard library's name check is off, the chain and the
// SPIFFE ID are checked in VerifyPeerCertificate instead). Wrap it in
// credentials.NewTLS for grpc.WithTransportCredentials.
func (s *Source) ClientConfig() *tls.Config {
	return s.clientConfig("h2", kind(ControlPlane))
}

// clientConfig presents the current certificate and accepts a server whose chain ends
// in the current bundle and whose identity passes check, speaking proto.
func (s *Source) clientConfig(proto string, check func(ID) error) *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{proto},
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return s.current().cert, nil
		},
		// SPIFFE authentication: the chain is verified below against the bundle
		// current at this handshake, and the identity is the URI SAN, not a host name.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := s.verify(raw, x509.ExtKeyUsageServerAuth, check)
			return err
		},
	}
}
