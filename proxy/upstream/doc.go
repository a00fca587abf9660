// Package upstream owns the sidecar's connections to upstream endpoints. H1 is an
// HTTP/1.1 client transport built for a proxy's request path: it writes the request
// and reads the response on the caller's goroutine (net/http's Transport hands each
// request to two goroutines of its own, which costs latency and CPU at every hop), and
// keeps idle connections per address, checking a reused one is still open with a
// non-blocking peek before sending on it.
//
// HTTP/2 (h2c) upstreams use net/http's Transport, whose multiplexing needs its
// goroutines. This package imports nothing from Geode. H1 is safe for concurrent use.
package upstream
