// Package route owns the sidecar's routing state: an immutable State (regions,
// proximity, services by authority, endpoint pools per region) that the request path
// reads with one atomic load, and the Registry of runtime objects that outlive any one
// State (circuit breakers, endpoint load counters, retry budgets), keyed by stable names
// so that swapping in a new State never resets them.
//
// The static-config loader and, later, the xDS client build States; the request
// pipeline reads them; neither imports the other. This package imports affinity and
// proxy/config only. A State is never modified after Build returns and is safe for
// concurrent use; Registry and the runtime objects are safe for concurrent use.
package route
