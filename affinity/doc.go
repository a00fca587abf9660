// Package affinity owns the question "which region?": the region vocabulary of a
// routing decision (Region, RegionState, Reason), the fixed-size candidate list, and
// the ordered policies that narrow and reorder it. Later policies (home-region writes,
// stickiness, budgets, residency) join the same chain.
//
// The inputs those policies need are built here too, once per routing state:
//
//   - KeySource (key.go): where a request carries its affinity key (header, gRPC
//     metadata, cookie, query parameter, path template) and Extract, which does not
//     allocate for header, gRPC and path sources (cookie and query sources parse).
//   - Directory (directory.go): affinity key → home region by explicit table, longest
//     prefix, then rendezvous hashing (RendezvousScore), behind an LRU cache; safe for
//     concurrent use.
//   - Budget (budget.go): a ratio of calls plus a floor per second over a sliding
//     window, in shadow or enforce mode; backs the cross-region and retry budgets.
//     Its counters are runtime state: keep a Budget outside the immutable snapshot.
//   - Residency (residency.go): the regions a service's (or a key prefix's) data may
//     be served in.
//   - Annotations (annotations.go): the geode.io/* Kubernetes Service annotation names
//     and PolicyFromAnnotations, which parses them all into a ServicePolicy.
//
// It may import consistency; it never imports proxy or controlplane. Decisions run on
// the request path: nothing here blocks or allocates per request, which tests enforce
// with testing.AllocsPerRun. A View is immutable once built and safe to share; a
// Candidates value belongs to one request. Directory and Budget are safe for concurrent
// use and hold a mutex only for a few instructions; a Directory cache miss allocates
// once, to cache the key. KeySource, Residency and the parsed configs are immutable.
package affinity
