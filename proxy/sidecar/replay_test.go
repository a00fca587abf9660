package sidecar

import (
	"io"
	"strings"
	"testing"
)

func TestReplayBodyResendsFromTheStart(t *testing.T) {
	b := newReplayBody(io.NopCloser(strings.NewReader("hello world")), 11)
	first, _ := b.attempt()
	buf := make([]byte, 5)
	if n, _ := first.Read(buf); string(buf[:n]) != "hello" {
		t.Fatalf("first read %q", buf[:n])
	}
	if !b.touched() || !b.replayable() {
		t.Fatal("a partly read small body is touched and still replayable")
	}
	second, ok := b.attempt()
	if !ok {
		t.Fatal("cannot replay")
	}
	if _, err := first.Read(buf); err != errStaleAttempt {
		t.Fatalf("an older attempt may not read any more, got %v", err)
	}
	all, err := io.ReadAll(second)
	if err != nil || string(all) != "hello world" {
		t.Fatalf("second attempt read %q, %v", all, err)
	}
	third, _ := b.attempt()
	if all, _ := io.ReadAll(third); string(all) != "hello world" {
		t.Fatalf("third attempt read %q", all)
	}
}

func TestReplayBodyGivesUpPastTheLimit(t *testing.T) {
	big := strings.Repeat("x", maxReplay+1)
	b := newReplayBody(io.NopCloser(strings.NewReader(big)), -1)
	a, _ := b.attempt()
	n, _ := io.Copy(io.Discard, a)
	if n != int64(len(big)) {
		t.Fatalf("streamed %d bytes, want %d", n, len(big))
	}
	if b.replayable() {
		t.Fatal("a body over the limit claims to be replayable")
	}
	if _, ok := b.attempt(); ok {
		t.Fatal("attempt() on an overflowed body")
	}
}
