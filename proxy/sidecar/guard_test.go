package sidecar

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// scanAll feeds raw to a guardConn's scanner in chunks of the given size.
func scanAll(raw []byte, chunk int) *guardConn {
	c := &guardConn{}
	for len(raw) > 0 {
		n := min(chunk, len(raw))
		c.scan(raw[:n])
		raw = raw[n:]
	}
	return c
}

func TestGuardFlagsOnlyHeaderBlocksWithBothLengthFields(t *testing.T) {
	for _, tc := range []struct {
		raw  string
		want bool
	}{
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\nCONTENT-LENGTH: 3\r\n\r\n", true},
		{"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc", false},
		{"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		// The two fields in different requests of one connection are fine.
		{"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\nPOST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", false},
		// A header whose value mentions the other name is not the field.
		{"GET / HTTP/1.1\r\nX-Note: content-length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", false},
		{"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", false},
	} {
		for _, chunk := range []int{1, 3, 4096} {
			if got := scanAll([]byte(tc.raw), chunk).smuggled.Load(); got != tc.want {
				t.Errorf("chunk %d: smuggled(%q) = %v, want %v", chunk, tc.raw, got, tc.want)
			}
		}
	}
}

func FuzzGuardScan(f *testing.F) {
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"), 3)
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 1)
	f.Fuzz(func(t *testing.T, raw []byte, chunk int) {
		if chunk < 1 || chunk > 1<<16 {
			return
		}
		got := scanAll(raw, chunk).smuggled.Load()
		// The verdict does not depend on how the bytes were split into reads.
		if again := scanAll(raw, len(raw)+1).smuggled.Load(); got != again {
			t.Fatalf("chunking changed the verdict on %q", raw)
		}
		// A block without both names can never be flagged.
		lower := bytes.ToLower(raw)
		if got && (!bytes.Contains(lower, []byte("transfer-encoding:")) || !bytes.Contains(lower, []byte("content-length:"))) {
			t.Fatalf("flagged %q without both fields", raw)
		}
	})
}

var _ net.Conn = (*guardConn)(nil)

func TestGuardIgnoresLongNames(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nX-" + strings.Repeat("a", 100) + ": 1\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n"
	if !scanAll([]byte(raw), 7).smuggled.Load() {
		t.Fatal("a long header name before the pair hid it")
	}
}
