// Package profiles is the sample replicated service of the Geode demo and tests: a small
// user-profile store that runs one instance per region and replicates its writes to the
// other regions asynchronously, after a configurable lag.
//
// It is a workload for exercising Geode, not part of the product. It imports only
// consistency (for the version contract) and the standard gRPC/protobuf modules; nothing
// in Geode may depend on it except tests, the demo and cmd.
//
// # What it owns
//
// A Store owns an in-memory map of profiles (id → name, email, version), this region's
// write sequence, and its replica's watermark. Its Handler serves, on one port:
//
//   - an HTTP/1.1 or h2c JSON API: GET/PUT /users/{id}, GET /watermark, GET /healthz, and
//     POST /replicate (used by peer instances; it is not authenticated — a sample only);
//   - the gRPC service GRPCService (Get, Put, Watch), for HTTP/2 requests whose
//     content-type starts with "application/grpc".
//
// Every JSON response carries geode-region and geode-watermark; a write, and a read that
// finds its profile, also carry geode-version ("origin:epoch:seq"): the version the write
// produced, or the version of the profile read. gRPC Get and Put send the same names as header
// metadata.
//
// # Versions, replication and the watermark
//
// A write accepted here gets the next Seq of this origin (Config.Region, Config.Epoch).
// Each origin pushes its own writes to every peer (a full mesh, no relaying): the write is
// queued per peer and sent Config.Lag after it was accepted (Config.PeerLag[peer] instead,
// when it names that peer: one region's replica can lag far behind the others'), in order,
// with retries and a short backoff while the peer is down. A peer queue is bounded
// (Config.QueueSize): when it is full the write is dropped for that peer, counted
// (Dropped) and logged; that peer will then never see it (there is no anti-entropy in
// this sample).
//
// A receiving replica applies each origin's writes in order and ignores duplicates (a
// retried delivery). Its watermark for an origin is the last Seq up to which it has applied
// every write of that origin; on a gap (a dropped write) it still applies later writes but
// freezes that origin's watermark and logs it, so the watermark never claims a write the
// replica does not have. A write from a newer epoch of an origin restarts that origin's
// position; writes from an older epoch are ignored.
//
// Each origin also sends a heartbeat (its position and wall-clock time) down every peer's
// stream every HeartbeatInterval. A replica is current with an origin as of the time of
// the newest write or heartbeat up to which it has everything; its lag behind the origin
// is the time since then, reported on every response as geode-replica-lag
// ("origin=ms,...", consistency.ReplicaLag), with a peer it has not heard from yet listed
// as consistency.MaxReplicaLag behind. Geode routes bounded-staleness reads by it.
//
// # Conflict rule
//
// Concurrent writes of the same id in different regions are resolved last-writer-wins by a
// hybrid logical timestamp, ties broken by origin name: every replica keeps a clock, a
// local write is stamped max(clock+1, wall-clock milliseconds), an applied replicated
// write advances the clock to its stamp. (The wall-clock floor keeps a replica that
// restarted empty from stamping new writes below older ones it never saw.) The write with the larger (stamp, origin) wins everywhere, so replicas converge
// once they have applied the same writes, and a write made after observing another one
// (in the same region) always wins over it.
//
// # Concurrency contract
//
// New validates the configuration and starts nothing. All Store methods are safe for
// concurrent use. Handler may be used without Serve (e.g. under httptest), but then nothing
// is sent to peers. Serve may be called once: it owns the HTTP server and one replication
// sender goroutine per peer, and returns after all of them have stopped. gRPC Watch streams
// get one message per write applied after the call started (writes that lose the conflict
// rule change nothing and send nothing); a watcher that falls more than a buffer behind is
// closed with codes.ResourceExhausted rather than slowing down writers.
package profiles
