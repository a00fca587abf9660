// Package health is the control plane's region state machine: it turns what sidecars
// report about each region (success and failure counts, p99 latency) into a computed
// region state — healthy, degraded or down — with hysteresis, and a per-region weight
// factor that ramps in capped steps so a failover shifts traffic gradually.
//
// It is pure: a Tracker is driven by Record (reports) and Evaluate (once per
// Config.Interval), both given the current time by the caller; it starts no goroutine
// and reads no clock. The server calls Evaluate from its Run loop.
//
// # Thresholds (Config, defaults in DefaultConfig)
//
//   - Reports are aggregated over all reporters in a sliding Window (10s), in buckets of
//     Interval (1s). Fewer than MinRequests (20) requests in the window is "no data",
//     which is never judged unhealthy.
//   - An evaluation is bad-degraded when the window's failure ratio exceeds
//     DegradedFailureRatio (0.10) or, if LatencyBound is set (default off), the
//     request-weighted mean of the reported p99s exceeds it; bad-down when the ratio
//     exceeds DownFailureRatio (0.50).
//   - healthy → degraded after BadEvaluations (3) consecutive bad evaluations;
//     degraded → down after BadEvaluations consecutive bad-down evaluations.
//   - down → degraded after GoodEvaluations (5) consecutive evaluations that are not
//     bad-down; degraded → healthy after GoodEvaluations consecutive good ones.
//     Any evaluation that breaks the streak resets it, so a region oscillating around a
//     threshold stays where it is.
//   - A region that left healthy gets no traffic, hence no reports: after ProbeAfter
//     (30s) with no data it moves one state better (down → degraded → healthy), and the
//     ramp lets a trickle of traffic back in: a half-open probe, judged again by the
//     reports that traffic produces.
//
// # Ramp
//
// Each region has a weight factor, in percent: 100 when its computed state is healthy
// and its ramp has settled, 0 when it is not healthy and its ramp has settled. On a
// transition the factor moves toward its target by at most RampStepPercent (25) per
// RampInterval (3s), the first step on the transition's evaluation: 100 → 75 → 50 → 25
// → 0 on the way out, and back up on recovery. The translator keeps a region whose
// factor is strictly between 0 and 100 in its proximity position and splits that
// priority between it (factor) and the next region (100-factor); see
// translate.ForRegionRamped.
//
// # Operator overrides
//
// Effective combines an operator override (drain, fence, down), which always wins,
// with the computed state; restore (no override) returns to the computed one. The ramp
// applies to computed transitions only: an operator action takes effect at once.
//
// Concurrency: a Tracker is safe for concurrent use.
package health
