// Package demo is `geode demo`: three regions on loopback (e2e/fleet, with emulated WAN
// latency and 500ms replication lag), a mixed workload of clients living in each region,
// an optional fault, and a report of what the clients saw.
//
// # What it does
//
// Run starts a fleet, seeds the keyspace (one PUT per key, spread over the regions, then
// waits out the replication lag), then runs Options.Concurrency clients per region for
// Options.Duration. Each client calls only its own region's sidecar outbound listener
// with Host: profiles: 80% GET /users/{id}, 20% PUT, over Options.Keys ids, with a
// jittered pause of about Options.Interval between requests; a client stops at the end of
// the duration or after Duration/Interval requests, whichever comes first. With
// Options.Fault, eu-west's app is stopped at 1/3 of the duration and restarted (empty, next
// epoch) at 2/3; its sidecar keeps running, so eu-west's clients must be failed over.
//
// A request is an error when no response arrived or the status is neither 200 nor 404
// (404 is a replica answering that it does not have the key, e.g. the restarted, empty
// eu-west). The Report has, per region, requests, errors, p50/p99 latency, the fraction
// served in the client's own region (Geode-Region) and the cross-region responses by
// Geode-Reason, the same for the fault window, and totals. Request errors are reported,
// not returned: the caller decides (cmd/geode exits non-zero when Errors > 0).
//
// # Imports
//
// It imports e2e/fleet and the standard library; only cmd/geode and tests import it.
//
// # Concurrency contract
//
// Run blocks until the workload is over and the fleet is closed; every goroutine it starts
// (clients, the fault) is joined before it returns, and every wait is bounded by
// Duration, by ctx and by per-request timeouts (10s). A Report is a plain value, not
// shared after Run returns.
package demo
