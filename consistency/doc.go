// Package consistency owns what "consistent enough" means on the wire and in policy:
//
//   - operation classes (Op, Classifier: read or write, from HTTP routes and gRPC
//     method lists, with the geode-op override header),
//   - consistency levels (Level: eventual, session, bounded-staleness=<dur>, strong),
//   - write versions and replica watermarks (Version, Watermark), and a replica's lag
//     behind each origin (ReplicaLag, for bounded staleness),
//   - version vectors (VersionVector: per-origin maximum, SatisfiedBy a watermark),
//   - session tokens (Token, KeyRing: compact HMAC-signed geode-session tokens with
//     key rotation, and FromRequest to find one in a request).
//
// It imports nothing else from Geode; affinity, proxy and controlplane import it.
//
// Concurrency: all types are values or immutable after construction (Classifier,
// KeyRing) and are safe for concurrent use; methods that change a value (Token.Pin)
// need the usual exclusive access to it, and never write into slices another copy
// may share.
//
// Hot path: Classifier.Classify, VersionVector.SatisfiedBy and FromRequest do not
// allocate (tests enforce it). KeyRing.Verify does a bounded amount of work: input
// longer than MaxTokenLen is rejected before decoding, and the MAC is checked before
// the token body is parsed.
package consistency
