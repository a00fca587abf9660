package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/geodemesh/geode/controlplane/model"
)

func TestLoadKubernetesManifests(t *testing.T) {
	m, err := Load("testdata/kube")
	if err != nil {
		t.Fatal(err)
	}
	svcs := map[string]model.Service{}
	for _, s := range m.Services() {
		svcs[s.Name] = s
	}
	if len(svcs) != 3 {
		t.Fatalf("services %v, want profiles, static, web", svcs)
	}
	p := svcs["profiles"]
	if p.Protocol != model.ProtocolGRPC {
		t.Errorf("profiles protocol %q, want grpc (appProtocol: grpc)", p.Protocol)
	}
	if got, want := strings.Join(p.Authorities, ","), "profiles,profiles.shop,profiles.shop.svc,profiles.shop.svc.cluster.local"; got != want {
		t.Errorf("authorities %s, want %s", got, want)
	}
	want := model.Policy{Consistency: "session", AffinityKey: "grpc:user-id", HomeRegions: "hash=us-east,eu-west",
		WriteFailover: "deny", ReplicationLagBound: 2 * time.Second}
	if p.Policy != want {
		t.Errorf("policy %+v, want %+v", p.Policy, want)
	}
	// Ready (or unset) endpoints only; region by zone; the slice's port named like the
	// Service's first port; an endpoint in two slices once.
	east := p.Endpoints["us-east"]
	if len(east) != 2 || east[0] != (model.Endpoint{Address: "10.0.1.10:7000", Zone: "us-east-1a"}) || east[1] != (model.Endpoint{Address: "10.0.1.11:7000", Zone: "us-east-1b"}) {
		t.Errorf("profiles us-east endpoints %+v", east)
	}
	if eu := p.Endpoints["eu-west"]; len(eu) != 1 || eu[0].Address != "10.1.1.10:7000" {
		t.Errorf("profiles eu-west endpoints %+v", eu)
	}
	w := svcs["web"]
	if w.Protocol != model.ProtocolHTTP2 || w.Authorities[1] != "web.default" || w.Policy.Consistency != "eventual" {
		t.Errorf("web = %+v (want http2, namespace default, consistency from defaults)", w)
	}
	if eu := w.Endpoints["eu-west"]; len(eu) != 1 || eu[0].Address != "[fd00::1]:8080" {
		t.Errorf("web endpoints %+v", w.Endpoints)
	}
	if s := svcs["static"]; s.Endpoints["us-east"][0].Address != "10.0.9.9:8080" {
		t.Errorf("static = %+v", s)
	}
}

const kubeGeode = `apiVersion: geode.io/v1alpha1
kind: Geode
regions:
  - {name: us-east, rtt: {eu-west: 81ms}, zones: [us-east-1a]}
  - {name: eu-west, zones: [eu-west-1a]}
`

func serviceYAML(name, extra string) string {
	return "apiVersion: v1\nkind: Service\nmetadata:\n  name: " + name + "\n" + extra +
		"spec:\n  ports: [{name: http, port: 80}]\n"
}

func sliceYAML(service, endpoints string) string {
	return "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " + service + "-x\n  labels: {kubernetes.io/service-name: " + service + "}\n" +
		"addressType: IPv4\nports: [{name: http, port: 8080}]\nendpoints:\n" + endpoints
}

const readyEast = "  - {addresses: [10.0.0.1], zone: us-east-1a}\n"

func TestLoadKubernetesRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // substrings; "{dir}" is the directory
	}{
		{"defined twice", map[string]string{
			"geode.yaml": kubeGeode + "services:\n  - {name: a, endpoints: {us-east: [\"1.2.3.4:5\"]}}\n",
			"a.yaml":     serviceYAML("a", "") + "---\n" + sliceYAML("a", readyEast),
		}, []string{`{dir}/a.yaml: document 1 (Service default/a): metadata.name: service "a" is also defined in {dir}/geode.yaml: document 1: services[0]`}},
		{"two namespaces", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     serviceYAML("a", "") + "---\n" + sliceYAML("a", readyEast),
			"b.yaml":     serviceYAML("a", "  namespace: other\n"),
		}, []string{`{dir}/b.yaml: document 1 (Service other/a): metadata.name: service "a" is also defined in {dir}/a.yaml: document 1 (Service default/a)`}},
		{"unknown zone", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     serviceYAML("a", "") + "---\n" + sliceYAML("a", "  - {addresses: [10.0.0.1], zone: mars-1a}\n"),
		}, []string{`{dir}/a.yaml: document 2 (EndpointSlice default/a-x): endpoints[0].zone: zone "mars-1a" is in no region's zones (in {dir}/geode.yaml: document 1)`}},
		{"no zone", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     serviceYAML("a", "") + "---\n" + sliceYAML("a", "  - {addresses: [10.0.0.1]}\n"),
		}, []string{`{dir}/a.yaml: document 2 (EndpointSlice default/a-x): endpoints[0].zone: is required`}},
		{"app protocol", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     strings.Replace(serviceYAML("a", ""), "port: 80}", "port: 80, appProtocol: https}", 1),
		}, []string{`{dir}/a.yaml: document 1 (Service default/a): spec.ports[0].appProtocol: "https" is not one of grpc, kubernetes.io/h2c, http`}},
		{"bad annotation", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     serviceYAML("a", "  annotations: {geode.io/residency: mars, geode.io/consistency: sometimes}\n") + "---\n" + sliceYAML("a", readyEast),
		}, []string{
			`{dir}/a.yaml: document 1 (Service default/a): metadata.annotations["geode.io/residency"]: `,
			`{dir}/a.yaml: document 1 (Service default/a): metadata.annotations["geode.io/consistency"]: `,
		}},
		{"cross-field policy from the model", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     serviceYAML("a", "  annotations: {geode.io/consistency: strong}\n") + "---\n" + sliceYAML("a", readyEast),
		}, []string{`{dir}/a.yaml: document 1 (Service default/a): metadata.annotations["geode.io/consistency"] (or the geode manifest's defaults): strong needs home_regions`}},
		{"slice without service", map[string]string{
			"geode.yaml": kubeGeode,
			"s.yaml":     sliceYAML("ghost", readyEast),
		}, []string{`{dir}/s.yaml: document 1 (EndpointSlice default/ghost-x): metadata.labels["kubernetes.io/service-name"]: no Service default/ghost among the manifests`}},
		{"slice without port", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     serviceYAML("a", "") + "---\n" + strings.Replace(sliceYAML("a", readyEast), "name: http,", "name: web,", 1),
		}, []string{`{dir}/a.yaml: document 2 (EndpointSlice default/a-x): ports: no port named "http"`}},
		{"unknown field with its line", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     "# a comment\n" + serviceYAML("a", "  colour: red\n"),
		}, []string{`{dir}/a.yaml: document 1 (Service default/a): line 6: field colour not found in Service`}},
		{"wrong type names the field", map[string]string{
			"geode.yaml": kubeGeode,
			"a.yaml":     strings.Replace(serviceYAML("a", ""), "port: 80", "port: eighty", 1),
		}, []string{`{dir}/a.yaml: document 1 (Service default/a): `, `spec.ports.port`}},
		{"wrong apiVersion", map[string]string{
			"geode.yaml": kubeGeode,
			"s.yaml":     strings.Replace(sliceYAML("a", readyEast), "discovery.k8s.io/v1", "discovery.k8s.io/v1beta1", 1),
		}, []string{`{dir}/s.yaml: document 1: apiVersion: "discovery.k8s.io/v1beta1" is not supported for kind EndpointSlice; want "discovery.k8s.io/v1"`}},
		{"zone in two regions", map[string]string{
			"geode.yaml": kubeGeode + "  - {name: us-west, rtt: {us-east: 60ms, eu-west: 140ms}, zones: [us-east-1a]}\n",
		}, []string{`{dir}/geode.yaml: document 1: regions[2].zones[0]: zone "us-east-1a" is listed in region "us-east" already`}},
		{"duplicate authority, mapped to the Service", map[string]string{
			"geode.yaml": kubeGeode + "services:\n  - {name: b, authorities: [a.default], endpoints: {us-east: [\"1.2.3.4:5\"]}}\n",
			"a.yaml":     serviceYAML("a", "") + "---\n" + sliceYAML("a", readyEast),
		}, []string{`{dir}/a.yaml: document 1 (Service default/a): authorities[1]: authority "a.default" already belongs to service "b"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, text := range tc.files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			t.Log(err)
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "{dir}", dir)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadServiceWithoutReadyEndpoint(t *testing.T) {
	for _, tc := range []struct {
		name, slices string
	}{
		{"every endpoint unready, as in a rollout", "---\n" + sliceYAML("a", "  - {addresses: [10.0.0.1], zone: us-east-1a, conditions: {ready: false}}\n")},
		{"a slice with no endpoints, as when scaled to zero", "---\n" + strings.TrimSuffix(sliceYAML("a", ""), "endpoints:\n") + "endpoints: []\n"},
		{"no slice at all", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{
				"geode.yaml": kubeGeode,
				"a.yaml":     serviceYAML("a", "") + tc.slices,
				"b.yaml":     serviceYAML("b", "") + "---\n" + sliceYAML("b", readyEast),
			}
			for name, text := range files {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			m, err := Load(dir)
			if err != nil {
				t.Fatalf("a Service without ready endpoints made the directory invalid: %v", err)
			}
			svcs := m.Services()
			if len(svcs) != 2 || svcs[0].Name != "a" || svcs[1].Name != "b" {
				t.Fatalf("services %+v, want a and b", svcs)
			}
			if a := svcs[0]; a.Endpoints != nil || a.Authorities[1] != "a.default" {
				t.Errorf("a = %+v, want it with its authorities and no endpoints (nil)", a)
			}
			if b := svcs[1]; len(b.Endpoints["us-east"]) != 1 {
				t.Errorf("b = %+v, want its ready endpoint", b)
			}
		})
	}
	// The same Service with and without an empty slice is the same model.
	versions := map[string]bool{}
	for _, slice := range []string{"", "---\n" + sliceYAML("a", "  - {addresses: [10.0.0.1], zone: us-east-1a, conditions: {ready: false}}\n")} {
		dir := t.TempDir()
		for name, text := range map[string]string{"geode.yaml": kubeGeode, "a.yaml": serviceYAML("a", "") + slice} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		versions[m.Version()] = true
	}
	if len(versions) != 1 {
		t.Errorf("model versions %v: a slice without ready endpoints changed the model", versions)
	}
}

func TestLoadSkipsEmptyDocuments(t *testing.T) {
	dir := t.TempDir()
	text := "---\n# nothing\n---\n" + kubeGeode + "---\n---\n" + serviceYAML("a", "") + "---\n" + sliceYAML("a", readyEast) + "---\n"
	if err := os.WriteFile(filepath.Join(dir, "all.yaml"), []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Services(); len(s) != 1 || s[0].Endpoints["us-east"][0].Address != "10.0.0.1:8080" {
		t.Fatalf("services %+v", s)
	}
}
