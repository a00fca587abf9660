// Command echo is the upstream used by the proxy benchmark (e2e/bench/run.sh).
//
// It serves HTTP/1.1 and h2c (prior knowledge) on one port and answers every
// request with a fixed 1 KiB body after draining the request body.
package main

import (
	"bytes"
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:18080", "listen address")
	size := flag.Int("size", 1024, "response body size in bytes")
	flag.Parse()

	body := bytes.Repeat([]byte("x"), *size)
	contentLength := strconv.Itoa(len(body))

	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("Content-Type", "application/octet-stream")
		h.Set("Content-Length", contentLength)
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
	})

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)

	srv := &http.Server{
		Addr:              *addr,
		Handler:           handler,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	log.Printf("echo listening on %s (http/1.1 + h2c), body %d bytes", *addr, len(body))
	log.Fatal(srv.ListenAndServe())
}
