package source

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// keysYAML is a valid key ring in the key-file format.
const keysYAML = `keys:
  - id: k2026-11
    secret: c2Vzc2lvbi1rZXktc2VjcmV0LWZvci10ZXN0cy1vbmx5IQ==
    sign_from: 2026-11-01T00:00:00Z
    expires: 2027-03-01T00:00:00Z
`

func secretYAML(name, data string) string {
	return "apiVersion: v1\nkind: Secret\nmetadata: {name: " + name + ", namespace: geode-system}\ntype: Opaque\n" + data
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    ") + "\n"
}

func loadFiles(t *testing.T, files map[string]string) (string, error) {
	t.Helper()
	dir := t.TempDir()
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	_, err := Load(dir)
	return dir, err
}

// The Secret geode-session-keys gives the model the fleet's key ring, from data
// (base64, as Kubernetes stores it) or stringData; the model's version changes with it.
func TestLoadSessionKeysSecret(t *testing.T) {
	for name, doc := range map[string]string{
		"data":       secretYAML("geode-session-keys", "data:\n  keys.yaml: "+base64.StdEncoding.EncodeToString([]byte(keysYAML))+"\n"),
		"stringData": secretYAML("geode-session-keys", "stringData:\n  keys.yaml: |\n"+indent(keysYAML)),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "geode.yaml"), []byte(kubeGeode), 0o600)
			without, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(dir, "keys.yaml"), []byte(doc), 0o600)
			m, err := Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			kr := m.SessionKeys()
			if kr == nil || len(kr.KeyIDs()) != 1 || kr.KeyIDs()[0] != "k2026-11" {
				t.Fatalf("session keys = %v, want the ring with k2026-11", kr)
			}
			if m.Version() == without.Version() {
				t.Fatal("model version unchanged by the session keys")
			}
		})
	}
}

func TestLoadSessionKeysRejects(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"other secret", secretYAML("db-password", "stringData: {password: hunter2}\n"),
			`{dir}/keys.yaml: document 1 (Secret geode-system/db-password): metadata.name: "db-password": the only Secret geode reads is "geode-session-keys"`},
		{"no keys.yaml", secretYAML("geode-session-keys", "stringData: {other: x}\n"),
			`{dir}/keys.yaml: document 1 (Secret geode-system/geode-session-keys): data: "keys.yaml" is required`},
		{"both data and stringData", secretYAML("geode-session-keys", "data: {keys.yaml: "+base64.StdEncoding.EncodeToString([]byte(keysYAML))+"}\nstringData:\n  keys.yaml: |\n"+indent(keysYAML)),
			`stringData: "keys.yaml" is also in data`},
		{"short secret", secretYAML("geode-session-keys", "stringData:\n  keys.yaml: |\n"+indent(strings.Replace(keysYAML, "c2Vzc2lvbi1rZXktc2VjcmV0LWZvci10ZXN0cy1vbmx5IQ==", "c2hvcnQ=", 1))),
			`{dir}/keys.yaml: document 1 (Secret geode-system/geode-session-keys): stringData["keys.yaml"]: key ring: keys[0] ("k2026-11"): secret is 5 bytes, at least 32 are required`},
		{"unknown field", secretYAML("geode-session-keys", "stringData:\n  keys.yaml: |\n"+indent(strings.Replace(keysYAML, "expires:", "expiry:", 1))),
			`stringData["keys.yaml"]: key file: `},
		{"two", secretYAML("geode-session-keys", "stringData:\n  keys.yaml: |\n"+indent(keysYAML)) + "---\n" + secretYAML("geode-session-keys", "stringData:\n  keys.yaml: |\n"+indent(keysYAML)),
			`{dir}/keys.yaml: document 2 (Secret geode-system/geode-session-keys): metadata.name: a second Secret "geode-session-keys"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir, err := loadFiles(t, map[string]string{"geode.yaml": kubeGeode, "keys.yaml": tc.doc})
			if err == nil {
				t.Fatal("Load succeeded")
			}
			if want := strings.ReplaceAll(tc.want, "{dir}", dir); !strings.Contains(err.Error(), want) {
				t.Fatalf("error:\n%v\nwant it to contain %q", err, want)
			}
			if strings.Contains(err.Error(), "c2Vzc2lvbi1rZXktc2VjcmV0") || strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("error shows a secret: %v", err)
			}
		})
	}
}
