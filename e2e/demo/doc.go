// Package demo is `geode demo`: three regions on loopback (e2e/fleet, with emulated WAN
// latency and 500ms replication lag), the same workload of travelling user sessions
// routed two ways side by side — by Geode, and naively, as other meshes do — an optional
// fault, and a report of what the sessions saw.
//
// # The two arms
//
// Both arms run at the same time on one fleet, with the same workload shape:
//
//   - geode: Host "profiles" (fleet.ServiceHTTP): session consistency, home regions by a
//     hash of the key, writes to the key's home. Every response carries a geode-session
//     token and the session sends the latest one back on its next request, like an app
//     would, so reads see the session's writes in every region (reasons ryw, sticky).
//   - naive: Host "profiles-naive" (fleet.ServiceNaive): the nearest healthy region, no
//     home regions, and the session sends no token.
//
// # The workload
//
// Each arm has Options.Concurrency sessions starting in each region (default 3). A
// session owns Options.KeysPerSession keys ("<arm>-s<n>-k<m>", default 3) that no other
// session touches, and calls the sidecar outbound listener of the region the user is in:
// 30% PUT /users/{key}, 70% GET /users/{key}, a random key of its own each time, with a
// jittered pause of about Options.Interval (20ms) between two requests. Every
// Options.TravelEvery requests (8) the user moves: its next requests go through another,
// randomly chosen region's sidecar. A session stops at the end of Options.Duration or
// after Duration/Interval requests, whichever comes first; a request in flight at the
// deadline is let finish (it is bounded by a 10s timeout). Nothing is seeded: a read of a
// key the session has not written yet may 404, and is not checked.
//
// # Read-your-writes check
//
// A session remembers its last acknowledged write of each of its keys (the version in the
// PUT response's geode-version, "origin:epoch:seq"). A later GET of that key is checked:
// it passes when it answers 200 with a geode-version of the same origin and epoch and a
// seq at least the write's (the session is the only writer of its keys, so nothing else
// can be newer). Anything else — a 404, an older version, a version of another origin or
// epoch, a 421 — misses. A write that got no version (an error) makes the key's state
// unknown, and its reads are not checked until the next acknowledged write. Reads that
// are errors are counted as errors, not checked.
//
// A missed read is a violation, except when the fault explains it (lost_by_fault): the
// write's origin is the fault region, the write was sent before that region's app was
// stopped, and the read finished after the stop. The stopped app takes with it every
// write it had not yet replicated (replication is Lag after the write), and the app that
// comes back is empty and has a new epoch: a read of such a key may then legitimately
// 404 (only the restarted home can answer for its old epoch, and it has nothing) or show
// a version of the new epoch. Those reads are counted in lost_by_fault, not in
// ryw_violations.
//
// # The fault
//
// With Options.Fault (`geode demo` default; --no-fault disables), eu-west's app is
// stopped at 1/3 of the duration and restarted (empty, next epoch) at 2/3. Its sidecar
// keeps running and answers 503 "unprocessed" for its app, so callers must fail over.
//
// # The report
//
// A request is an error when no response arrived or its status is 5xx or 429. Per arm,
// the Report has requests, errors (with a few samples), reads_checked, ryw_violations
// (with a few samples), lost_by_fault, the fraction served in the caller's region
// (local_fraction, and local_read_fraction for reads only: writes go to their key's home
// by design), the cross-region calls by Geode-Reason (responses whose Geode-Region is
// not the region whose sidecar was called), and one row per caller region with the
// same, p50/p99 latency and the fault window. Its JSON form is the geode arm at the top
// level, the naive arm under "naive" and the fault under "fault". Report.Err says whether
// the run failed: any error in either arm, or any violation in the geode arm (the naive
// arm's violations are the point of the comparison). cmd/geode exits non-zero then.
//
// # Imports
//
// It imports e2e/fleet, consistency (the version wire form) and the standard library;
// only cmd/geode and tests import it.
//
// # Concurrency contract
//
// Run blocks until the workload is over and the fleet is closed; every goroutine it starts
// (one per session) is joined before it returns, the fault runs on Run's own goroutine,
// and every wait is bounded by Duration, by ctx and by per-request timeouts (10s). Each
// session's state is its own; the samples are read only after all sessions ended. A
// Report is a plain value, not shared after Run returns.
package demo
