package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// buildGeode builds the geode binary once per test binary run.
func buildGeode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "geode")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/geode")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe to write from a process's output copier and read
// from the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func TestSidecarProcessReloadsOnHangupAndDrainsOnTerm(t *testing.T) {
	bin := buildGeode(t)
	slow := make(chan struct{})
	app := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-slow
		}
		fmt.Fprintf(w, "app %s", r.URL.Path)
	})}
	appLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go app.Serve(appLn)
	defer app.Close()

	outbound, admin := freePort(t), freePort(t)
	conf := func(authority string) string {
		return fmt.Sprintf(`region: local
listeners: {outbound: "%s", admin: "%s"}
regions: [{name: local}]
services:
  - name: app
    authorities: [%s]
    endpoints: {local: ["%s"]}
`, outbound, admin, authority, appLn.Addr())
	}
	path := filepath.Join(t.TempDir(), "sidecar.yaml")
	os.WriteFile(path, []byte(conf("app")), 0o600)

	var stderr syncBuffer
	cmd := exec.Command(bin, "sidecar", "--config", path)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()

	get := func(host, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+outbound+path, nil)
		req.Host = host
		resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	waitUntil(t, 10*time.Second, func() bool { code, _ := get("app", "/"); return code == 200 })

	// A bad file on SIGHUP is refused with its field named; the running config stays.
	os.WriteFile(path, []byte(conf("app")+"bogus: true\n"), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 5*time.Second, func() bool { return strings.Contains(stderr.String(), "reload refused") })
	if !strings.Contains(stderr.String(), "field bogus not found") {
		t.Fatalf("reload error does not name the field:\n%s", stderr.String())
	}
	if code, body := get("app", "/"); code != 200 {
		t.Fatalf("after a refused reload: %d %s", code, body)
	}

	// A good file is applied: the service now answers to a new authority only.
	os.WriteFile(path, []byte(conf("app2")), 0o600)
	cmd.Process.Signal(syscall.SIGHUP)
	waitUntil(t, 5*time.Second, func() bool { code, _ := get("app2", "/"); return code == 200 })
	if code, _ := get("app", "/"); code != http.StatusNotFound {
		t.Fatalf("old authority still routed after reload: %d", code)
	}

	// SIGTERM drains: an in-flight request finishes, then the process exits 0.
	result := make(chan string, 1)
	go func() { code, body := get("app2", "/slow"); result <- fmt.Sprint(code, " ", body) }()
	time.Sleep(200 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(200 * time.Millisecond)
	close(slow)
	if got := <-result; got != "200 app /slow" {
		t.Fatalf("in-flight request during drain: %q", got)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("geode exited with %v\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("geode did not exit within 10s of SIGTERM")
	}
}

func waitUntil(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
