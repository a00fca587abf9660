package consistency

import (
	"strings"
	"testing"
)

func TestOpString(t *testing.T) {
	for _, op := range []Op{OpRead, OpWrite} {
		got, err := ParseOp(op.String())
		if err != nil || got != op {
			t.Errorf("ParseOp(%q) = %v, %v", op.String(), got, err)
		}
	}
	if _, err := ParseOp("delete"); err == nil || !strings.Contains(err.Error(), `"delete"`) {
		t.Errorf("ParseOp(delete) error = %v", err)
	}
	if Op(0).String() != "Op(0)" {
		t.Errorf("Op(0).String() = %q", Op(0).String())
	}
}

func testClassifier(t testing.TB) *Classifier {
	c, err := NewClassifier([]RouteRule{
		{PathPrefix: "/api/", Op: OpWrite},
		{PathPrefix: "/api/search", Op: OpRead},
		{PathPrefix: "/api/search", Method: "post", Op: OpRead},
		{PathPrefix: "/api/users", Method: "GET", Op: OpWrite}, // e.g. GET that bumps a counter
		{PathPrefix: "/api/users", Op: OpRead},
		{PathPrefix: "/rpc", Method: "POST", Op: OpRead},
	}, []string{"/profiles.v1.Profiles/Get", "profiles.v1.Profiles/List"}, []string{"profiles.v1.Profiles/Put"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestClassify(t *testing.T) {
	c := testClassifier(t)
	for _, tc := range []struct {
		name         string
		method, path string
		grpc         bool
		want         Op
	}{
		{"longest prefix wins over a shorter one", "GET", "/api/search?q", false, OpRead},
		{"shorter prefix applies to other paths", "GET", "/api/orders", false, OpWrite},
		{"a method rule beats an any-method rule of the same prefix", "GET", "/api/users/7", false, OpWrite},
		{"the any-method rule applies to other methods", "PUT", "/api/users/7", false, OpRead},
		{"method rules are upper-cased", "POST", "/api/search", false, OpRead},
		{"a method rule does not match other methods", "GET", "/rpc/x", false, OpRead},
		{"a method rule does not match other methods (write)", "DELETE", "/rpc/x", false, OpWrite},
		{"no rule: GET is a read", "GET", "/static/x", false, OpRead},
		{"no rule: HEAD is a read", "HEAD", "/", false, OpRead},
		{"no rule: OPTIONS is a read", "OPTIONS", "/", false, OpRead},
		{"no rule: TRACE is a read", "TRACE", "/", false, OpRead},
		{"no rule: POST is a write", "POST", "/", false, OpWrite},
		{"no rule: PATCH is a write", "PATCH", "/x", false, OpWrite},
		{"gRPC listed read", "POST", "/profiles.v1.Profiles/Get", true, OpRead},
		{"gRPC listed read, normalised", "POST", "/profiles.v1.Profiles/List", true, OpRead},
		{"gRPC listed write", "POST", "/profiles.v1.Profiles/Put", true, OpWrite},
		{"gRPC unlisted is a write", "POST", "/profiles.v1.Profiles/Delete", true, OpWrite},
		{"gRPC ignores HTTP rules", "POST", "/rpc/x", true, OpWrite},
	} {
		if got := c.Classify(tc.method, tc.path, tc.grpc); got != tc.want {
			t.Errorf("%s: Classify(%s %s grpc=%v) = %s, want %s", tc.name, tc.method, tc.path, tc.grpc, got, tc.want)
		}
	}
}

func TestNilClassifier(t *testing.T) {
	var c *Classifier
	for _, tc := range []struct {
		method string
		grpc   bool
		want   Op
	}{{"GET", false, OpRead}, {"HEAD", false, OpRead}, {"POST", false, OpWrite}, {"GET", true, OpWrite}, {"POST", true, OpWrite}} {
		if got := c.Classify(tc.method, "/x", tc.grpc); got != tc.want {
			t.Errorf("nil.Classify(%s, grpc=%v) = %s, want %s", tc.method, tc.grpc, got, tc.want)
		}
	}
}

func TestNewClassifierErrors(t *testing.T) {
	for _, tc := range []struct {
		name          string
		rules         []RouteRule
		reads, writes []string
		wantErr       string
	}{
		{name: "empty prefix", rules: []RouteRule{{PathPrefix: "/a", Op: OpRead}, {Op: OpRead}}, wantErr: "route rule 1: empty path prefix"},
		{name: "relative prefix", rules: []RouteRule{{PathPrefix: "a", Op: OpRead}}, wantErr: `route rule 0: path prefix "a" must start with /`},
		{name: "bad method", rules: []RouteRule{{PathPrefix: "/", Op: OpRead}, {PathPrefix: "/", Method: "GE T", Op: OpRead}}, wantErr: `route rule 1: bad HTTP method "GE T"`},
		{name: "missing op", rules: []RouteRule{{PathPrefix: "/"}}, wantErr: "route rule 0: op must be read or write"},
		{name: "duplicate rule", rules: []RouteRule{{PathPrefix: "/a", Method: "get", Op: OpRead}, {PathPrefix: "/a", Method: "GET", Op: OpWrite}}, wantErr: "route rule 1: same prefix"},
		{name: "read and write", reads: []string{"/p.S/M"}, writes: []string{"p.S/M"}, wantErr: "gRPC method /p.S/M is listed as both read and write"},
		{name: "bad gRPC name", reads: []string{"p.S.M"}, wantErr: `gRPC method "p.S.M"`},
		{name: "gRPC name without method", writes: []string{"/p.S/"}, wantErr: `gRPC method "/p.S/"`},
		{name: "gRPC name with extra part", writes: []string{"/p/S/M"}, wantErr: `gRPC method "/p/S/M"`},
	} {
		_, err := NewClassifier(tc.rules, tc.reads, tc.writes)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: error = %v, want it to contain %q", tc.name, err, tc.wantErr)
		}
	}
	if _, err := NewClassifier(nil, []string{"/p.S/M", "p.S/M"}, nil); err != nil {
		t.Errorf("a method listed twice on the same side: %v", err)
	}
}

func TestClassifyDoesNotAllocate(t *testing.T) {
	c := testClassifier(t)
	var sink Op
	allocs := testing.AllocsPerRun(1000, func() {
		sink += c.Classify("GET", "/api/users/7", false)
		sink += c.Classify("POST", "/nothing/here", false)
		sink += c.Classify("POST", "/profiles.v1.Profiles/Get", true)
		sink += c.Classify("POST", "/profiles.v1.Profiles/Unknown", true)
	})
	if allocs != 0 {
		t.Fatalf("Classify allocates %.1f times per run", allocs)
	}
	_ = sink
}

func BenchmarkClassify(b *testing.B) {
	c := testClassifier(b)
	b.Run("http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Classify("GET", "/api/users/7", false)
		}
	})
	b.Run("http-default", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Classify("POST", "/nothing/here", false)
		}
	})
	b.Run("grpc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c.Classify("POST", "/profiles.v1.Profiles/Get", true)
		}
	})
}
