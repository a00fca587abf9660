// Package consistency owns what "consistent enough" means on the wire:
// write versions, replica watermarks, operation classes and consistency levels
// (session tokens join them in a later change).
//
// It imports nothing else from Geode; affinity, proxy and controlplane import it.
// All types are values or immutable after construction and are safe for
// concurrent use unless a method says otherwise.
package consistency
