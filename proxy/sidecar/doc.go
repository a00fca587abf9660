// Package sidecar owns the geode sidecar process: its listeners (outbound app → mesh,
// inbound mesh → app, admin), the outbound request path (classify, decide, pick,
// forward), the inbound hygiene, and the sidecar's metrics and decision log.
//
// The request path is in outbound.go and forward.go, top to bottom: one atomic load of
// the routing state, the service by authority, the ordered routing policies
// (affinity.Decide), then one attempt per candidate region through that region's
// circuit breaker, and the response streamed back with its trailers. An HTTP/1.1
// upgrade (WebSocket) takes the same path; its attempt has a connection of its own, and
// after a 101 the two connections are spliced (upgrade.go).
//
// It imports affinity, consistency, tracing, proxy/config and proxy/route; nothing
// imports it but cmd and the e2e launcher. A Sidecar is safe for concurrent use; New
// starts no goroutines, Run serves until its context ends and then drains.
package sidecar
