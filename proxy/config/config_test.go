package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const valid = `
region: us-east
listeners:
  outbound: 127.0.0.1:15001
  inbound: 127.0.0.1:15006
  admin: 127.0.0.1:15000
app:
  address: 127.0.0.1:8080
regions:
  - name: us-east
    rtt: {us-west: 87ms, eu-west: 81ms}
  - name: us-west
    rtt: {eu-west: 137ms}
  - name: eu-west
services:
  - name: profiles
    protocol: grpc
    endpoints:
      us-east: ["127.0.0.1:9001"]
      eu-west: ["127.0.0.1:9002", "127.0.0.1:9003"]
    timeouts: {connect: 250ms}
`

func TestParseValidAppliesDefaults(t *testing.T) {
	c, err := Parse([]byte(valid))
	if err != nil {
		t.Fatal(err)
	}
	s := c.Services[0]
	if got := s.Timeouts.Connect.Std(); got != 250*time.Millisecond {
		t.Errorf("connect timeout = %v", got)
	}
	if s.Authorities[0] != "profiles" || s.Retry.Attempts != 3 || s.Breaker.ConsecutiveFailures != 5 {
		t.Errorf("defaults not applied: %+v", s)
	}
	if d, ok := c.RTT("eu-west", "us-east"); !ok || d != 81*time.Millisecond {
		t.Errorf("RTT(eu-west, us-east) = %v, %v; RTTs are symmetric", d, ok)
	}
	if c.Limits.MaxHeaderBytes != 60<<10 || c.Tracing.Exporter != "none" {
		t.Errorf("limits/tracing defaults: %+v %+v", c.Limits, c.Tracing)
	}
}

// Each bad config must fail with an error that names the field at fault.
func TestParseRejectsBadInputNamingTheField(t *testing.T) {
	for _, tc := range []struct {
		name, edit, want string
	}{
		{"unknown top-level field", "region: us-east\nbogus: 1", "field bogus not found"},
		{"unknown nested field", "    timeouts: {connect: 250ms, connnect: 1s}", "field connnect not found"},
		{"unknown local region", "region: ap-south", `region: unknown region "ap-south"`},
		{"bad duration", "    timeouts: {connect: 10 parsecs}", `bad duration "10 parsecs"`},
		{"negative duration", "    timeouts: {connect: -1s}", `duration "-1s" is negative`},
		{"unknown endpoint region", `      us-east: ["127.0.0.1:9001"]` + "\n      eu-wset: [\"127.0.0.1:1\"]", `services[0].endpoints.eu-wset: unknown region "eu-wset"`},
		{"bad protocol", "    protocol: spdy", `services[0].protocol: "spdy" is not one of`},
		{"bad endpoint address", `      us-east: ["127.0.0.1"]`, `services[0].endpoints.us-east[0]: "127.0.0.1" is not host:port`},
		{"unknown rtt region", "    rtt: {us-west: 87ms, eu-west: 81ms, mars: 1s}", `regions[0].rtt.mars: unknown region "mars"`},
		{"bad region state", "  - name: eu-west\n    state: sleepy", `regions[2].state: "sleepy" is not one of`},
		{"bad tracing exporter", "region: us-east\ntracing: {exporter: jaeger}", `tracing.exporter: "jaeger"`},
		{"otlp without endpoint", "region: us-east\ntracing: {exporter: otlp-grpc}", "tracing.endpoint: is required"},
		{"missing rtt", "    rtt: {us-west: 87ms}", `no RTT between local region "us-east" and "eu-west"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := applyEdit(t, valid, tc.edit)
			_, err := Parse([]byte(text))
			if err == nil {
				t.Fatalf("accepted:\n%s", text)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestParseRejectsDuplicates(t *testing.T) {
	text := valid + `  - name: profiles
    endpoints: {us-east: ["127.0.0.1:1"]}
  - name: other
    authorities: ["PROFILES:80"]
    endpoints: {us-east: ["127.0.0.1:1"]}
`
	_, err := Parse([]byte(text))
	for _, want := range []string{
		`services[1].name: service "profiles" is defined twice (also services[0])`,
		`services[2].authorities[0]: authority "profiles" already belongs to service "profiles"`,
	} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not contain %q", err, want)
		}
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sidecar.yaml")
	if err := os.WriteFile(p, []byte("region: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(p)
	if err == nil || !strings.HasPrefix(err.Error(), p+": ") {
		t.Fatalf("error %v does not start with the file name", err)
	}
	if _, err := Parse(nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty config: %v", err)
	}
}

// applyEdit puts edit into base: where base has edit's first line verbatim, the lines
// after it are inserted there; else edit replaces the line with the same key at the
// same indentation; else it is appended.
func applyEdit(t *testing.T, base, edit string) string {
	t.Helper()
	first, _, _ := strings.Cut(edit, "\n")
	key, _, _ := strings.Cut(first, ":")
	lines := strings.Split(base, "\n")
	for i, l := range lines {
		if l == first { // the edit keeps this exact line and adds lines after it
			lines[i] = edit
			return strings.Join(lines, "\n")
		}
	}
	for i, l := range lines {
		if k, _, ok := strings.Cut(l, ":"); ok && k == key {
			lines[i] = edit
			return strings.Join(lines, "\n")
		}
	}
	return base + edit + "\n"
}
