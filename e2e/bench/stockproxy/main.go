// Command stockproxy is the baseline Go proxy for the benchmark
// (e2e/bench/run.sh): a stock httputil.ReverseProxy with the default
// Transport, only MaxIdleConnsPerHost raised to 128.
//
// It listens with HTTP/1.1 + h2c (prior knowledge), talks HTTP/1.1 upstream,
// and exposes expvar (memstats, including Mallocs) at GET /debug/vars on a
// separate admin address.
package main

import (
	"expvar"
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18090", "proxy listen address")
	upstream := flag.String("upstream", "http://127.0.0.1:18080", "upstream base URL")
	admin := flag.String("admin", "127.0.0.1:18091", "admin listen address (GET /debug/vars)")
	flag.Parse()

	target, err := url.Parse(*upstream)
	if err != nil {
		log.Fatalf("bad -upstream: %v", err)
	}

	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 128

	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(target)
		},
		Transport: transport,
	}

	adminMux := http.NewServeMux()
	adminMux.Handle("GET /debug/vars", expvar.Handler())
	go func() {
		log.Printf("stockproxy admin on %s", *admin)
		log.Fatal((&http.Server{Addr: *admin, Handler: adminMux, ReadHeaderTimeout: 10 * time.Second}).ListenAndServe())
	}()

	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{
		Addr:              *listen,
		Handler:           proxy,
		Protocols:         &protocols,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
	}
	log.Printf("stockproxy listening on %s -> %s", *listen, target)
	log.Fatal(srv.ListenAndServe())
}
