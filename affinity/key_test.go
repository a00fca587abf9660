package affinity

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"
)

func TestParseKeySourceRoundTrips(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"header:X-User-Id", "header:X-User-Id"},
		{"header:x-user-id", "header:X-User-Id"},
		{"grpc:user-id", "grpc:user-id"},
		{"grpc:User-Id", "grpc:user-id"},
		{"cookie:uid", "cookie:uid"},
		{"query:user", "query:user"},
		{"path:/users/{key}", "path:/users/{key}"},
		{"path:/v1/tenants/{key}/...", "path:/v1/tenants/{key}/..."},
		{"path:/{key}", "path:/{key}"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			k, err := ParseKeySource(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if got := k.String(); got != tc.want {
				t.Fatalf("String() = %q, want %q", got, tc.want)
			}
			again, err := ParseKeySource(k.String())
			if err != nil {
				t.Fatalf("reparse %q: %v", k.String(), err)
			}
			if again.String() != k.String() || again.kind != k.kind || again.name != k.name || again.keyIdx != k.keyIdx || again.rest != k.rest || strings.Join(again.segs, "/") != strings.Join(k.segs, "/") {
				t.Fatalf("reparse of %q differs: %+v vs %+v", k.String(), again, k)
			}
		})
	}
}

func TestParseKeySourceErrors(t *testing.T) {
	for _, tc := range []struct{ in, wantErr string }{
		{"", "want <source>:<name>"},
		{"X-User-Id", "want <source>:<name>"},
		{"body:user", `unknown source "body"`},
		{"header:", "empty header name"},
		{"header:X User", `header name "X User"`},
		{"header:X-Üser", `header name "X-Üser"`},
		{"grpc:user-id-bin", `"-bin"`},
		{"grpc:grpc-user", `"grpc-" prefix is reserved`},
		{"grpc::authority", `gRPC metadata key ":authority"`},
		{"grpc:user id", `character ' '`},
		{"cookie:u;id", `cookie name "u;id"`},
		{"query:a&b", `query parameter "a&b"`},
		{"path:users/{key}", `must start with "/"`},
		{"path:/users", "no {key} segment"},
		{"path:/users/{key}/{key}", "segment 3: second {key} segment"},
		{"path:/users//{key}", "segment 2 is empty"},
		{"path:/users/{key}/", "segment 3 is empty"},
		{"path:/.../{key}", `segment 1: "..." is only allowed as the last segment`},
		{"path:/users/user-{key}", `segment 2 "user-{key}": braces only`},
		{"path:/users/{id}", `segment 2 "{id}"`},
	} {
		t.Run(tc.in, func(t *testing.T) {
			_, err := ParseKeySource(tc.in)
			if err == nil {
				t.Fatalf("ParseKeySource(%q) = nil error, want %q", tc.in, tc.wantErr)
			}
			if !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %q does not contain %q", err, tc.wantErr)
			}
		})
	}
}

func TestKeySourceExtract(t *testing.T) {
	req := func(target string, hdr ...string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, target, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			r.Header.Add(hdr[i], hdr[i+1])
		}
		return r
	}
	for _, tc := range []struct {
		name   string
		source string
		r      *http.Request
		want   string
		wantOK bool
	}{
		{"header present", "header:X-User-Id", req("/", "x-user-id", "alice"), "alice", true},
		{"header absent", "header:X-User-Id", req("/", "X-Other", "alice"), "", false},
		{"header empty", "header:X-User-Id", req("/", "X-User-Id", ""), "", false},
		{"header first value wins", "header:X-User-Id", req("/", "X-User-Id", "alice", "X-User-Id", "bob"), "alice", true},
		{"grpc metadata", "grpc:user-id", req("/profiles.Profiles/Get", "user-id", "bob"), "bob", true},
		{"grpc absent", "grpc:user-id", req("/profiles.Profiles/Get"), "", false},
		{"cookie present", "cookie:uid", req("/", "Cookie", "a=1; uid=carol; b=2"), "carol", true},
		{"cookie absent", "cookie:uid", req("/", "Cookie", "a=1"), "", false},
		{"cookie empty", "cookie:uid", req("/", "Cookie", "uid="), "", false},
		{"query present", "query:user", req("/x?a=1&user=dave"), "dave", true},
		{"query encoded", "query:user", req("/x?user=d%20ave"), "d ave", true},
		{"query absent", "query:user", req("/x?a=1"), "", false},
		{"query empty", "query:user", req("/x?user="), "", false},
		{"path", "path:/users/{key}", req("/users/erin"), "erin", true},
		{"path with query", "path:/users/{key}", req("/users/erin?x=1"), "erin", true},
		{"path percent-decoded", "path:/users/{key}", req("/users/caf%C3%A9"), "café", true},
		{"path encoded space", "path:/users/{key}", req("/users/a%20b"), "a b", true},
		{"path encoded slash splits segments", "path:/users/{key}", req("/users/a%2Fb"), "", false},
		{"path too long", "path:/users/{key}", req("/users/erin/orders"), "", false},
		{"path trailing slash", "path:/users/{key}", req("/users/erin/"), "", false},
		{"path too short", "path:/users/{key}", req("/users"), "", false},
		{"path empty key", "path:/users/{key}", req("/users/"), "", false},
		{"path literal mismatch", "path:/users/{key}", req("/groups/erin"), "", false},
		{"path literal case matters", "path:/users/{key}", req("/Users/erin"), "", false},
		{"path root", "path:/users/{key}", req("/"), "", false},
		{"path key first", "path:/{key}", req("/frank"), "frank", true},
		{"rest: more segments", "path:/v1/tenants/{key}/...", req("/v1/tenants/acme/orders/7"), "acme", true},
		{"rest: no more segments", "path:/v1/tenants/{key}/...", req("/v1/tenants/acme"), "acme", true},
		{"rest: trailing slash", "path:/v1/tenants/{key}/...", req("/v1/tenants/acme/"), "acme", true},
		{"rest: literal mismatch", "path:/v1/tenants/{key}/...", req("/v2/tenants/acme/orders"), "", false},
		{"rest: empty key", "path:/v1/tenants/{key}/...", req("/v1/tenants//orders"), "", false},
		{"key in the middle", "path:/v1/{key}/orders", req("/v1/acme/orders"), "acme", true},
		{"key in the middle, last literal differs", "path:/v1/{key}/orders", req("/v1/acme/order"), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ParseKeySource(tc.source)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := k.Extract(tc.r)
			if got != tc.want || ok != tc.wantOK {
				t.Fatalf("Extract = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestZeroKeySourceExtractsNothing(t *testing.T) {
	var k KeySource
	if got, ok := k.Extract(httptest.NewRequest(http.MethodGet, "/users/x", nil)); ok || got != "" {
		t.Fatalf("zero KeySource extracted %q", got)
	}
}

func TestKeySourceExtractDoesNotAllocate(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/v1/tenants/acme/orders/7", nil)
	r.Header.Set("X-User-Id", "alice")
	r.Header.Set("User-Id", "bob")
	for _, src := range []string{"header:X-User-Id", "grpc:user-id", "path:/v1/tenants/{key}/...", "path:/v1/tenants/{key}/orders/7"} {
		k, err := ParseKeySource(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := k.Extract(r); !ok {
			t.Fatalf("%s: no key", src)
		}
		if n := testing.AllocsPerRun(1000, func() { k.Extract(r) }); n != 0 {
			t.Errorf("%s: Extract allocates %v times per call, want 0", src, n)
		}
	}
}

func TestPathKeyIsASubstringOfThePath(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/users/erin", nil)
	k, _ := ParseKeySource("path:/users/{key}")
	got, _ := k.Extract(r)
	if !strings.HasSuffix(r.URL.Path, got) || len(got) == 0 {
		t.Fatalf("key %q", got)
	}
	// The key must share the path's memory (no copy): its data pointer lies within it.
	if unsafe.StringData(got) != unsafe.StringData(r.URL.Path[len("/users/"):]) {
		t.Fatal("key is a copy, want a substring of r.URL.Path")
	}
}

func BenchmarkKeySourceExtract(b *testing.B) {
	r := httptest.NewRequest(http.MethodGet, "/v1/tenants/acme/orders/7", nil)
	r.Header.Set("X-User-Id", "alice")
	for _, src := range []string{"header:X-User-Id", "path:/v1/tenants/{key}/...", "cookie:uid", "query:user"} {
		k, err := ParseKeySource(src)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(src, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				k.Extract(r)
			}
		})
	}
}

func FuzzParseKeySource(f *testing.F) {
	for _, s := range []string{"header:X-User-Id", "grpc:user-id", "cookie:uid", "query:user", "path:/users/{key}", "path:/v1/tenants/{key}/...", "path://{key}", "grpc:a-bin", ""} {
		f.Add(s, "/v1/tenants/acme/orders")
	}
	f.Fuzz(func(t *testing.T, src, path string) {
		k, err := ParseKeySource(src)
		if err != nil {
			return
		}
		again, err := ParseKeySource(k.String())
		if err != nil || again.String() != k.String() {
			t.Fatalf("%q: String() %q does not round-trip: %v", src, k.String(), err)
		}
		if k.kind != keyPath {
			return
		}
		if key := k.matchPath(path); key != "" && !strings.Contains(path, key) {
			t.Fatalf("key %q is not part of path %q", key, path)
		}
	})
}
