// Package collective moves the bulk bytes of data-parallel training between nodes: a pipelined
// ring all-reduce over streams of its own, apart from the actor messages that carry control.
//
// The core object is a Ring: one rank's stream to the next rank and stream from the previous.
// An Endpoint listens for the streams of each world and builds Rings (Connect); a Ring sums a
// flat []float32 over the world in place (AllReduceSum): reduce-scatter, then all-gather, each
// round's segment sent in chunks while the previous rank's is received and added. The rounds
// are pipelined: a chunk is forwarded as soon as it is summed, so no link waits for a whole
// round. Broadcast copies one rank's vector to all, bit for bit, chunks flowing round the ring:
// the state transfer that brings joiners and ranks behind to a new world's starting state.
//
// Why streams of their own: protoactor's remote carries protobuf messages through gRPC with a
// per-message size limit and its own batching; measured throughput for large payloads was a
// fraction of loopback TCP's. A ring all-reduce wants each link to stream at memory speed, so
// floats go straight from the parameter vector to the socket as little-endian bytes (on
// little-endian hosts the vector's memory is written and read as it is), received floats are
// added in from a cache-sized scratch with a SIMD kernel as they arrive, and the actors only
// say when to start and what came of it. On Linux, TCP streams are read and written with
// system calls of the package's own (rawStream), under crypto/tls where TLS is on.
//
// # Invariants
//
//   - Every chunk carries the (generation, step) of its reduction; a chunk of another one is
//     an error (ErrStale), never summed in.
//   - A stream belongs to one world: its hello names the generation, the sender's rank and the
//     world size; streams of older generations are dropped when a newer world connects.
//   - The sum of each element is taken in an order fixed by the world's size, so reductions are
//     deterministic for a given world.
//
// # Concurrency
//
// A Ring runs one reduction at a time; AllReduceSum and Broadcast use one extra goroutine to
// send while the caller's receives and adds; the two hand chunks over through counters, with no
// allocation per chunk. Endpoint methods are safe for concurrent use.
//
// # Errors
//
// A peer that dies or closes its stream makes AllReduceSum return an error; the caller closes
// the Link and reports the step as not done. The first direction to fail stops the other (a
// past deadline on its stream), so a reduction does not hang on a full socket after an error;
// data is then partly reduced. A chunk header is only compared with the one expected, never
// used to size a read. Garbage on the data port (or a TLS handshake with a wrong key) is
// dropped at the hello.
package collective
