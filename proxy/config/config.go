package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/geodemesh/geode/affinity"
	"github.com/geodemesh/geode/consistency"
	"github.com/geodemesh/geode/controlplane/api"
)

// Config is the sidecar's static configuration.
type Config struct {
	// Region is the region this sidecar runs in; it must be one of Regions.
	Region    string    `yaml:"region"`
	Listeners Listeners `yaml:"listeners"`
	// App is the local application behind the inbound listener.
	App      App       `yaml:"app"`
	Regions  []Region  `yaml:"regions"`
	Services []Service `yaml:"services"`
	Limits   Limits    `yaml:"limits"`
	Tracing  Tracing   `yaml:"tracing"`
	Debug    Debug     `yaml:"debug"`
	Session  Session   `yaml:"session"`
}

// Session configures session tokens: read-your-writes and region stickiness.
type Session struct {
	// KeysFile is the token key ring (YAML, see consistency.ParseKeyRing), relative to
	// the config file. Without keys the sidecar neither reads nor issues tokens.
	KeysFile string `yaml:"keys_file"`
	// Keys is the key ring the control plane distributes (its SDS secret
	// geode-session-keys), set by the xDS client; when set it is used instead of
	// KeysFile. Never read from or written to YAML.
	Keys *consistency.KeyRing `yaml:"-"`
	// TTL is how long an issued token stays valid; each response renews it. Default 24h.
	TTL Duration `yaml:"ttl"`
	// StickyTTL is how long a session stays on its region without a request; 0 means
	// the default 30m.
	StickyTTL Duration `yaml:"sticky_ttl"`
	// ReadWait bounds how long the inbound listener waits for the local replica to catch
	// up with a session's token before answering 421. Default 50ms.
	ReadWait Duration `yaml:"read_wait"`
}

// Listeners are the sidecar's listening addresses.
type Listeners struct {
	// Outbound receives the app's calls to mesh services (app → mesh).
	Outbound string `yaml:"outbound"`
	// Inbound receives calls from the mesh for the local app (mesh → app). Optional.
	Inbound string `yaml:"inbound"`
	// Admin serves health, metrics and debug endpoints; it should stay on loopback.
	Admin string `yaml:"admin"`
}

// App is the local application the inbound listener fronts.
type App struct {
	Address string `yaml:"address"`
	// TrustedPeers are CIDRs whose geode-* headers the inbound listener keeps (mesh peers);
	// geode-* headers from anyone else are dropped. Default: loopback only.
	TrustedPeers []string `yaml:"trusted_peers"`
	// WatermarkPath is the app's pull endpoint for its replica watermark (a GET whose
	// response carries geode-watermark). Optional: watermarks on the app's responses are
	// used too.
	WatermarkPath string `yaml:"watermark_path"`
}

// Region is one failure domain and its round-trip times to other regions.
type Region struct {
	Name string `yaml:"name"`
	// RTT to other regions; RTTs are symmetric, so each pair needs to be given once.
	RTT map[string]Duration `yaml:"rtt"`
	// State is the operator-set state: healthy (default), degraded, draining, down, fenced.
	State string `yaml:"state"`
	// RampPercent (1..99; 0 or absent: none) says the region is in a capped ramp of the
	// control plane's health machine and takes that percent of the traffic it would
	// take were it healthy (affinity.View.Preferred). Set by the xDS client.
	RampPercent int `yaml:"ramp_percent,omitempty"`
}

// Service is a destination the app may call through the outbound listener.
type Service struct {
	Name string `yaml:"name"`
	// Authorities are the Host/:authority values that address this service; default: Name.
	// A value matches with or without a port.
	Authorities []string `yaml:"authorities"`
	// Protocol is http1, http2 (h2c prior knowledge) or grpc.
	Protocol string `yaml:"protocol"`
	// Endpoints maps a region to the addresses (host:port) serving the service there.
	// A service with none (every region that had some is down, or its endpoints are
	// all gone) is valid: calls to it are answered 503 naming it, not 404.
	Endpoints map[string][]string `yaml:"endpoints"`
	Timeouts  Timeouts            `yaml:"timeouts"`
	Retry     Retry               `yaml:"retry"`
	Breaker   Breaker             `yaml:"breaker"`

	// Routing policy. The string forms are those of the geode.io/* Kubernetes
	// annotations, which may be given instead under Annotations.
	//
	// Consistency: eventual (default), session, bounded-staleness=<duration>, strong.
	Consistency string `yaml:"consistency"`
	// AffinityKey names the data of a request: header:NAME, path:/users/{key}/...,
	// grpc:NAME, cookie:NAME or query:NAME.
	AffinityKey string `yaml:"affinity_key"`
	// HomeRegions maps keys to home regions: table=k:region,...;prefix=p:region,...;hash=r1,r2
	HomeRegions string `yaml:"home_regions"`
	// WriteFailover is deny (default: writes fail fast while the home region is down)
	// or nearest (they go to the nearest healthy region, counted).
	WriteFailover string `yaml:"write_failover"`
	// Residency restricts the service (or key prefixes) to regions: r1,r2;prefix=p:r3|r4
	Residency string `yaml:"residency"`
	// CrossRegionBudget caps calls leaving this region: ratio=0.1,min=5,window=10s,mode=enforce
	CrossRegionBudget string `yaml:"cross_region_budget"`
	// ReplicationLagBound: for an app that reports no versions, how long a session's
	// reads of the service stay on the region that took its write.
	ReplicationLagBound Duration `yaml:"replication_lag_bound"`
	// Annotations are geode.io/* Kubernetes Service annotations, an alternative to the
	// fields above (giving both for the same thing is an error).
	Annotations map[string]string `yaml:"annotations"`
	// Ops classifies requests as reads or writes where the method alone does not.
	Ops Ops `yaml:"ops"`
}

// Ops classifies operations of a service.
type Ops struct {
	// Routes override the method-based default (GET, HEAD, OPTIONS read; others write)
	// for a path prefix, optionally for one method. The longest prefix wins.
	Routes []OpRoute `yaml:"routes"`
	// GRPCReads and GRPCWrites list gRPC methods ("/pkg.Service/Method"); an unlisted
	// gRPC method is a write.
	GRPCReads  []string `yaml:"grpc_reads"`
	GRPCWrites []string `yaml:"grpc_writes"`
}

// OpRoute is one classification rule.
type OpRoute struct {
	Prefix string `yaml:"prefix"`
	Method string `yaml:"method"`
	Op     string `yaml:"op"` // read or write
}

// Timeouts bound one call to a service.
type Timeouts struct {
	Connect Duration `yaml:"connect"` // dialing one endpoint; default 1s
	// Request bounds the whole call including retries; 0 means none (streams).
	Request Duration `yaml:"request"`
	// Idle closes idle upstream connections; default 90s.
	Idle Duration `yaml:"idle"`
}

// Retry says when a failed attempt is tried again in the next region.
type Retry struct {
	// Attempts is the most attempts per request, the first included; default 3.
	Attempts int `yaml:"attempts"`
	// BudgetRatio caps retries at this fraction of requests over a 10 s window; default 0.2.
	BudgetRatio *float64 `yaml:"budget_ratio"`
	// MinPerSecond retries are always allowed, whatever the ratio; default 10.
	MinPerSecond *int `yaml:"min_per_second"`
}

// Breaker configures the circuit breaker of each (service, region).
type Breaker struct {
	// ConsecutiveFailures opens the breaker; default 5.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// OpenFor is how long an open breaker rejects before probing; default 5s.
	OpenFor Duration `yaml:"open_for"`
	// HalfOpenProbes is how many probes a half-open breaker lets through; default 1.
	HalfOpenProbes int `yaml:"half_open_probes"`
	// Interval clears the failure counts of a closed breaker; default 10s.
	Interval Duration `yaml:"interval"`
}

// Limits protect the listeners from abusive or broken clients.
type Limits struct {
	// MaxHeaderBytes: larger request headers get 431. Default 60 KiB (Envoy's default).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// ReadHeaderTimeout: slower request headers get 408. Default 10s.
	ReadHeaderTimeout Duration `yaml:"read_header_timeout"`
	// IdleTimeout closes idle client connections. Default 120s.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// DrainTimeout bounds the graceful drain on shutdown. Default 20s.
	DrainTimeout Duration `yaml:"drain_timeout"`
}

// Tracing selects where spans go.
type Tracing struct {
	// Exporter: none (default), stdout, otlp-grpc, otlp-http.
	Exporter string `yaml:"exporter"`
	// Endpoint of the OTLP collector (host:port); required for the otlp exporters.
	Endpoint string `yaml:"endpoint"`
	// Insecure disables TLS to the collector.
	Insecure bool `yaml:"insecure"`
	// SampleRatio of new traces to record, in [0,1]; default 1. Parent decisions are kept.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

// Debug controls the explainability features.
type Debug struct {
	// ReasonHeader adds geode-reason to responses.
	ReasonHeader bool `yaml:"reason_header"`
	// Decisions is how many recent routing decisions /debug/decisions keeps; default 256.
	Decisions int `yaml:"decisions"`
}

// Duration is a time.Duration written as "250ms", "2s", "1m".
type Duration time.Duration

// UnmarshalYAML parses a Go duration string.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return fmt.Errorf("line %d: duration must be a string like \"250ms\"", n.Line)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("line %d: bad duration %q: want a number with a unit, like \"250ms\"", n.Line, s)
	}
	if v < 0 {
		return fmt.Errorf("line %d: duration %q is negative", n.Line, s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration in its string form.
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// Std returns the value as a time.Duration.
func (d Duration) Std() time.Duration { return time.Duration(d) }

// Protocols a service may speak.
const (
	ProtocolHTTP1 = "http1"
	ProtocolHTTP2 = "http2"
	ProtocolGRPC  = "grpc"
)

// Load reads, strictly decodes, defaults and validates the file at path. Errors name
// the file and, for invalid values, the field path.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Files the config names are relative to the config file, not to the process.
	if f := c.Session.KeysFile; f != "" && !filepath.IsAbs(f) {
		c.Session.KeysFile = filepath.Join(filepath.Dir(path), f)
	}
	return c, nil
}

// Parse strictly decodes, defaults and validates one YAML document.
func Parse(b []byte) (*Config, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config is empty")
		}
		return nil, fmt.Errorf("invalid configuration: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid configuration: more than one YAML document")
	}
	c.setDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("invalid configuration:\n%w", err)
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	if len(c.App.TrustedPeers) == 0 {
		c.App.TrustedPeers = []string{"127.0.0.0/8", "::1/128"}
	}
	for i := range c.Regions {
		if c.Regions[i].State == "" {
			c.Regions[i].State = "healthy"
		}
	}
	for i := range c.Services {
		s := &c.Services[i]
		if len(s.Authorities) == 0 && s.Name != "" {
			s.Authorities = []string{s.Name}
		}
		if s.Protocol == "" {
			s.Protocol = ProtocolHTTP1
		}
		def(&s.Timeouts.Connect, time.Second)
		def(&s.Timeouts.Idle, 90*time.Second)
		if s.Retry.Attempts == 0 {
			s.Retry.Attempts = 3
		}
		if s.Retry.BudgetRatio == nil {
			r := 0.2
			s.Retry.BudgetRatio = &r
		}
		if s.Retry.MinPerSecond == nil {
			m := 10
			s.Retry.MinPerSecond = &m
		}
		if s.Breaker.ConsecutiveFailures == 0 {
			s.Breaker.ConsecutiveFailures = 5
		}
		def(&s.Breaker.OpenFor, 5*time.Second)
		def(&s.Breaker.Interval, 10*time.Second)
		if s.Breaker.HalfOpenProbes == 0 {
			s.Breaker.HalfOpenProbes = 1
		}
	}
	if c.Limits.MaxHeaderBytes == 0 {
		c.Limits.MaxHeaderBytes = 60 << 10
	}
	def(&c.Limits.ReadHeaderTimeout, 10*time.Second)
	def(&c.Limits.IdleTimeout, 120*time.Second)
	def(&c.Limits.DrainTimeout, 20*time.Second)
	if c.Tracing.Exporter == "" {
		c.Tracing.Exporter = "none"
	}
	if c.Tracing.SampleRatio == nil {
		r := 1.0
		c.Tracing.SampleRatio = &r
	}
	if c.Debug.Decisions == 0 {
		c.Debug.Decisions = 256
	}
	def(&c.Session.TTL, 24*time.Hour)
	def(&c.Session.StickyTTL, 30*time.Minute)
	def(&c.Session.ReadWait, 50*time.Millisecond)
}

func def(d *Duration, v time.Duration) {
	if *d == 0 {
		*d = Duration(v)
	}
}

// Validate checks the whole configuration and returns every problem found, joined,
// each prefixed with the path of the field at fault.
func (c *Config) Validate() error {
	var errs []error
	bad := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}

	regions := map[string]int{}
	for i, r := range c.Regions {
		p := fmt.Sprintf("regions[%d]", i)
		switch {
		case r.Name == "":
			bad(p+".name", "is required")
		case !api.ValidLocalityName(r.Name):
			bad(p+".name", "%q must be lower-case letters, digits and '-'", r.Name)
		case len(r.Name) > consistency.MaxRegionNameLen:
			bad(p+".name", "%q is longer than %d bytes (session tokens carry region names)", r.Name, consistency.MaxRegionNameLen)
		case regions[r.Name] != 0:
			bad(p+".name", "region %q is listed twice", r.Name)
		default:
			regions[r.Name] = i + 1
		}
		if _, err := affinity.ParseRegionState(r.State); err != nil {
			bad(p+".state", "%v", err)
		}
		if r.RampPercent < 0 || r.RampPercent > 99 {
			bad(p+".ramp_percent", "%d is not in [0,99]", r.RampPercent)
		}
	}
	if len(c.Regions) == 0 {
		bad("regions", "at least one region is required")
	}
	if len(c.Regions) > MaxRegions {
		bad("regions", "%d regions listed; at most %d are supported", len(c.Regions), MaxRegions)
	}
	for i, r := range c.Regions {
		for other, d := range r.RTT {
			p := fmt.Sprintf("regions[%d].rtt.%s", i, other)
			if regions[other] == 0 {
				bad(p, "unknown region %q", other)
			} else if other == r.Name {
				bad(p, "RTT to itself")
			} else if back, ok := c.Regions[regions[other]-1].RTT[r.Name]; ok && back != d {
				bad(p, "%s here but %s in regions[%d].rtt.%s", d.Std(), back.Std(), regions[other]-1, r.Name)
			}
			if d == 0 && regions[other] != 0 && other != r.Name {
				bad(p, "must be positive")
			}
		}
	}
	switch {
	case c.Region == "":
		bad("region", "is required (the region this sidecar runs in)")
	case regions[c.Region] == 0:
		bad("region", "unknown region %q; regions are %s", c.Region, strings.Join(names(c.Regions), ", "))
	default:
		for _, r := range c.Regions {
			if r.Name != c.Region {
				if _, ok := c.RTT(c.Region, r.Name); !ok {
					bad("regions", "no RTT between local region %q and %q (give it in either region's rtt)", c.Region, r.Name)
				}
			}
		}
	}

	if c.Listeners.Outbound == "" {
		bad("listeners.outbound", "is required")
	}
	for path, addr := range map[string]string{"listeners.outbound": c.Listeners.Outbound, "listeners.inbound": c.Listeners.Inbound, "listeners.admin": c.Listeners.Admin, "app.address": c.App.Address} {
		if addr != "" {
			if err := checkHostPort(addr); err != nil {
				bad(path, "%v", err)
			}
		}
	}
	if c.Listeners.Inbound != "" && c.App.Address == "" {
		bad("app.address", "is required when listeners.inbound is set")
	}
	for i, cidr := range c.App.TrustedPeers {
		if _, _, err := net.ParseCIDR(cidr); err != nil {
			bad(fmt.Sprintf("app.trusted_peers[%d]", i), "%q is not a CIDR", cidr)
		}
	}

	seenSvc := map[string]int{}
	seenAuth := api.Authorities{}
	for i, s := range c.Services {
		p := fmt.Sprintf("services[%d]", i)
		switch {
		case s.Name == "":
			bad(p+".name", "is required")
		case seenSvc[s.Name] != 0:
			bad(p+".name", "service %q is defined twice (also services[%d])", s.Name, seenSvc[s.Name]-1)
		default:
			seenSvc[s.Name] = i + 1
		}
		for j, a := range s.Authorities {
			if err := seenAuth.Claim(s.Name, a); err != nil {
				bad(fmt.Sprintf("%s.authorities[%d]", p, j), "%v", err)
			}
		}
		if !slices.Contains([]string{ProtocolHTTP1, ProtocolHTTP2, ProtocolGRPC}, s.Protocol) {
			bad(p+".protocol", "%q is not one of http1, http2, grpc", s.Protocol)
		}
		for region, eps := range s.Endpoints {
			ep := p + ".endpoints." + region
			if regions[region] == 0 {
				bad(ep, "unknown region %q", region)
			}
			if len(eps) == 0 {
				bad(ep, "no addresses")
			}
			seen := map[string]bool{}
			for k, a := range eps {
				if err := checkHostPort(a); err != nil {
					bad(fmt.Sprintf("%s[%d]", ep, k), "%v", err)
				} else if seen[a] {
					bad(fmt.Sprintf("%s[%d]", ep, k), "address %q listed twice", a)
				}
				seen[a] = true
			}
			if len(eps) > MaxEndpointsPerRegion {
				bad(ep, "%d addresses; at most %d per region are supported", len(eps), MaxEndpointsPerRegion)
			}
		}
		if s.Retry.Attempts < 1 || s.Retry.Attempts > MaxRegions {
			bad(p+".retry.attempts", "%d must be in [1,%d]", s.Retry.Attempts, MaxRegions)
		}
		if r := *s.Retry.BudgetRatio; r < 0 || r > 1 {
			bad(p+".retry.budget_ratio", "%v must be in [0,1]", r)
		}
		if *s.Retry.MinPerSecond < 0 {
			bad(p+".retry.min_per_second", "must not be negative")
		}
		if s.Breaker.ConsecutiveFailures < 1 {
			bad(p+".breaker.consecutive_failures", "must be at least 1")
		}
		if s.Breaker.HalfOpenProbes < 1 {
			bad(p+".breaker.half_open_probes", "must be at least 1")
		}
		if s.ReplicationLagBound > 0 && len(s.Name) > consistency.MaxServiceNameLen {
			bad(p+".replication_lag_bound", "service name %q is longer than %d bytes: session tokens pin reads by service name", s.Name, consistency.MaxServiceNameLen)
		}
		if _, err := s.ParsePolicy(names(c.Regions)); err != nil {
			errs = append(errs, prefixErrors(p, err))
		}
	}
	if c.Limits.MaxHeaderBytes < 1024 {
		bad("limits.max_header_bytes", "%d is below 1024", c.Limits.MaxHeaderBytes)
	}
	switch c.Tracing.Exporter {
	case "none", "stdout":
	case "otlp-grpc", "otlp-http":
		if c.Tracing.Endpoint == "" {
			bad("tracing.endpoint", "is required for exporter %q", c.Tracing.Exporter)
		}
	default:
		bad("tracing.exporter", "%q is not one of none, stdout, otlp-grpc, otlp-http", c.Tracing.Exporter)
	}
	if r := *c.Tracing.SampleRatio; r < 0 || r > 1 {
		bad("tracing.sample_ratio", "%v must be in [0,1]", r)
	}
	if c.Debug.Decisions < 1 {
		bad("debug.decisions", "must be at least 1")
	}
	return errors.Join(errs...)
}

// Capacity limits of the routing state; they keep the decision path allocation-free.
const (
	MaxRegions            = 16
	MaxEndpointsPerRegion = 1024
)

// RTT returns the configured round-trip time between regions a and b, whichever of the
// two lists it.
func (c *Config) RTT(a, b string) (time.Duration, bool) {
	for _, r := range c.Regions {
		if r.Name == a {
			if d, ok := r.RTT[b]; ok {
				return d.Std(), true
			}
		}
		if r.Name == b {
			if d, ok := r.RTT[a]; ok {
				return d.Std(), true
			}
		}
	}
	return 0, false
}

func checkHostPort(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if port == "" || strings.Trim(port, "0123456789") != "" {
		return fmt.Errorf("%q has no numeric port", a)
	}
	_ = host // an empty host means all interfaces, which is fine for listeners
	return nil
}

func names(rs []Region) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Name
	}
	return out
}
