package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadExample(t *testing.T) {
	m, err := Load("testdata/fleet")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(m.RegionNames(), ","); got != "us-east,eu-west,us-west" {
		t.Fatalf("regions = %s", got)
	}
	svcs := m.Services()
	if len(svcs) != 2 {
		t.Fatalf("%d services, want 2", len(svcs))
	}
	p, g := svcs[0], svcs[1]
	if p.Endpoints["us-east"][1].Zone != "us-east-1b" || p.Endpoints["us-east"][0].Address != "10.0.1.10:15006" {
		t.Errorf("profiles us-east endpoints = %+v", p.Endpoints["us-east"])
	}
	if g.Policy.Consistency != "session" || g.Policy.AffinityKey != "grpc:user-id" || g.Policy.ReplicationLagBound != 2*time.Second {
		t.Errorf("annotations not applied: %+v", g.Policy)
	}
	if g.Policy.WriteFailover != "deny" || g.Authorities[0] != "profiles-grpc" {
		t.Errorf("defaults not applied: %+v", g)
	}
}

const head = "apiVersion: geode.io/v1alpha1\nkind: Geode\n"
const regions = "regions:\n  - name: us-east\n    rtt: {eu-west: 81ms}\n  - name: eu-west\n"

func TestLoadRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  []string // substrings of the error; "{dir}" is the directory
	}{
		{"empty dir", nil, []string{"no manifest of kind: Geode"}},
		{"unknown field", map[string]string{"geode.yaml": head + regions + "services:\n  - name: a\n    timeouts: {connect: 1s}\n"},
			[]string{"{dir}/geode.yaml", "line 9: field timeouts not found"}},
		{"unknown endpoint field", map[string]string{"g.yml": head + regions + "services:\n  - name: a\n    endpoints:\n      us-east: [{addr: 1.2.3.4:5}]\n"},
			[]string{"{dir}/g.yml", "field addr not found in endpoint"}},
		{"bad duration", map[string]string{"geode.yaml": head + "regions:\n  - name: us-east\n    rtt: {eu-west: fast}\n"},
			[]string{"{dir}/geode.yaml", `bad duration "fast"`}},
		{"wrong apiVersion", map[string]string{"geode.yaml": "apiVersion: v2\nkind: Geode\n"}, []string{"{dir}/geode.yaml", `apiVersion: "v2" is not supported`}},
		{"no kind", map[string]string{"geode.yaml": "regions: []\n"}, []string{"{dir}/geode.yaml", "document 1: kind: is required"}},
		{"other kind", map[string]string{"svc.yaml": head + regions + "---\napiVersion: apps/v1\nkind: Deployment\n"},
			[]string{"{dir}/svc.yaml", `document 2: kind: "Deployment" is not supported; want Geode, Service (v1), EndpointSlice (discovery.k8s.io/v1) or Secret (v1)`}},
		{"two geode manifests", map[string]string{"a.yaml": head + regions, "b.yaml": head + regions},
			[]string{"{dir}/b.yaml: document 1: a second kind: Geode manifest (the first is {dir}/a.yaml: document 1)"}},
		{"invalid endpoint address", map[string]string{"geode.yaml": head + regions + "services:\n  - name: a\n    endpoints: {us-east: [nowhere]}\n"},
			[]string{`{dir}/geode.yaml: document 1: services[0].endpoints.us-east[0].address: "nowhere" is not host:port`}},
		{"invalid policy", map[string]string{"geode.yaml": head + regions + "services:\n  - name: a\n    endpoints: {us-east: [\"1.2.3.4:5\"]}\n    residency: mars\n"},
			[]string{"{dir}/geode.yaml: document 1: services[0].residency:"}},
		{"annotation and field", map[string]string{"geode.yaml": head + regions + "services:\n  - name: a\n    endpoints: {us-east: [\"1.2.3.4:5\"]}\n    consistency: session\n    annotations: {geode.io/consistency: strong}\n"},
			[]string{`{dir}/geode.yaml: document 1: services[0].annotations["geode.io/consistency"]: consistency is set too`}},
		{"unknown annotation", map[string]string{"geode.yaml": head + regions + "services:\n  - name: a\n    endpoints: {us-east: [\"1.2.3.4:5\"]}\n    annotations: {geode.io/colour: red}\n"},
			[]string{`{dir}/geode.yaml: document 1: services[0].annotations["geode.io/colour"]: unknown geode.io annotation`}},
		{"several errors at once", map[string]string{"geode.yaml": head + regions + "  - name: eu-west\n    state: sleepy\n"},
			[]string{`{dir}/geode.yaml: document 1: regions[2].name: region "eu-west" is listed twice`, `{dir}/geode.yaml: document 1: regions[2].state: "sleepy"`}},
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
			for _, w := range tc.want {
				w = strings.ReplaceAll(w, "{dir}", dir)
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error:\n%v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadSkipsOtherFiles(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{
		"geode.yaml": head + regions, "README.md": "not yaml: [", ".hidden.yaml": "garbage: [",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(dir); err != nil {
		t.Fatal(err)
	}
}
