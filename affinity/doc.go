// Package affinity owns the question "which region?": the region vocabulary of a
// routing decision (Region, RegionState, Reason), the fixed-size candidate list, and
// the ordered policies that narrow and reorder it. Later policies (home-region writes,
// stickiness, budgets, residency) join the same chain.
//
// It may import consistency; it never imports proxy or controlplane. Decisions run on
// the request path: nothing here blocks or allocates per request, which tests enforce
// with testing.AllocsPerRun. A View is immutable once built and safe to share; a
// Candidates value belongs to one request.
package affinity
