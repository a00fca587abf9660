// Package e2e holds Geode's end-to-end tests and the house rules that keep the tree in
// shape (import direction, package docs, no init()). The multi-region launcher shared by
// `geode demo` and the tests lives in e2e/fleet; the benchmark harness in e2e/bench.
package e2e
