// Package tracing owns Geode's OpenTelemetry setup (a TracerProvider built from the
// configured exporter) and the attribute keys that describe a region hop. Providers are
// returned to the caller and passed into components explicitly: nothing here sets the
// global OpenTelemetry provider or propagator.
//
// It imports nothing else from Geode.
package tracing
