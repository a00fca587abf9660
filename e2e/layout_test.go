package e2e

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const module = "github.com/geodemesh/geode"

type pkg struct {
	Dir        string
	ImportPath string
	Name       string
	Imports    []string
	GoFiles    []string
}

func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", module+"/...")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// The import direction of DESIGN.md ("Packages"): each rule lists the Geode packages a
// package may import (by prefix); anything else from Geode is a violation.
var allowedImports = []struct {
	pkg     string
	allowed []string
}{
	{"consistency", nil},
	{"tracing", nil},
	{"affinity", []string{"consistency"}},
	{"controlplane", []string{"affinity", "consistency", "controlplane"}},
	{"proxy", []string{"affinity", "consistency", "tracing", "controlplane/api", "proxy"}},
	{"examples/profiles", []string{"consistency"}},
}

func TestImportDirection(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		for _, rule := range allowedImports {
			if rel != rule.pkg && !strings.HasPrefix(rel, rule.pkg+"/") {
				continue
			}
			for _, imp := range p.Imports {
				dep, ok := strings.CutPrefix(imp, module+"/")
				if !ok {
					continue
				}
				if !hasPrefixIn(dep, rule.allowed) {
					t.Errorf("%s imports %s; %s may import only %v", rel, dep, rule.pkg, rule.allowed)
				}
			}
		}
	}
}

func hasPrefixIn(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if s == p || strings.HasPrefix(s, p+"/") {
			return true
		}
	}
	return false
}

// Every package says what it owns in a doc.go; no init() registration; no grab-bag
// package names.
func TestHouseRules(t *testing.T) {
	for _, p := range listPackages(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		if p.Name != "main" {
			if _, err := os.Stat(filepath.Join(p.Dir, "doc.go")); err != nil {
				t.Errorf("%s has no doc.go saying what it owns", rel)
			}
		}
		for _, part := range strings.Split(rel, "/") {
			switch part {
			case "util", "utils", "common", "helpers":
				t.Errorf("%s: name packages for what they own, not %q", rel, part)
			}
		}
		for _, f := range p.GoFiles {
			b, err := os.ReadFile(filepath.Join(p.Dir, f))
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Contains(b, []byte("\nfunc init()")) {
				t.Errorf("%s/%s: func init() — wire things explicitly instead", rel, f)
			}
		}
	}
}
