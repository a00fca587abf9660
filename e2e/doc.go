// Package e2e holds Geode's end-to-end tests and the house rules that keep the tree in
// shape (import direction, package docs, no init()). The multi-region launcher shared by
// `geode demo` and the tests lives in e2e/fleet; the benchmark harness in e2e/bench.
// Scenarios include read-your-writes across regions (ryw_test.go) and bounded staleness
// with one region's replica lagging far behind (staleness_test.go), each against naive
// routing to show its check can fail.
package e2e
