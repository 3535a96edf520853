// Package wire defines the messages that cross the network between troupe nodes and their
// encoding.
//
// protoactor remote carries only protobuf messages, so every troupe message travels as the
// bytes of one well-known protobuf type, [wrapperspb.BytesValue]: no generated code, and the
// type is in protobuf's global registry, where the receiving remote looks it up by name. Inside
// is a frame this package writes:
//
//	byte 0   Version
//	byte 1   Kind
//	msgpack  array [Generation, Step, Incarnation, From, To]   the Header
//	msgpack  map   {field: value, ...}                         the body, keyed by msgpack tags
//
// Float vectors ([Floats]) are one msgpack bin of little-endian bytes, copied in one piece.
// Vectors larger than a chunk are split with [Chunks] and sent as several ReduceChunk or
// StateChunk messages, each well under gRPC's default 4 MiB message limit.
//
// A sender calls [Frame] (or [Encode]) and sends the result; a receiver calls [Unframe] (or
// [Decode]) and switches on the message's type:
//
//	m, err := wire.Unframe(frame)
//	if err != nil { ... drop it, count it, log the sender ... }
//	switch m := m.(type) {
//	case *wire.ReduceChunk: ...
//	}
//
// [PeekHeader] reads the header alone, so a stale generation can be dropped before its
// payload is copied.
//
// The messages fall into three groups. The world protocol (Prepare, Promise, Accept, Accepted,
// Nack, Commit, JoinRequest, CatchUp) carries the bodies of sched's protocol field for field,
// with node ids as strings and the envelope (From, To, generation) in the Header; this package
// imports nothing of troupe, so the conversion lives with the actors that send them. A joiner
// fetches the job with JobRequest and JobSpec, and a member that leaves gracefully says so
// with Leaving. The data plane moves StepDone, ReduceChunk and StateChunk.
//
// # Invariants
//
//   - Encode and Decode apply the same rules: a message Encode accepts decodes to an equal
//     message (floats bit for bit, NaN payloads and -0 included), and Encode refuses what
//     Decode would reject, so a node never sends a frame its peers drop.
//   - A frame holds exactly one header and one body: no bytes before, between or after.
//   - Decode never panics and never allocates more than a small multiple of the frame's
//     length, whatever the length prefixes inside claim: it checks every prefix against the
//     bytes left and the limits ([MaxFrameBytes], [MaxFloats], [MaxStringBytes], [MaxMembers])
//     before msgpack sees the frame.
//   - Offsets, steps, counts and totals are never negative, except that a protocol cursor or a
//     world's start step may be [NoCursor]; a chunk never runs past its total.
//   - Node ids in a member or voter list are never empty; every string is at most
//     [MaxStringBytes] and every list at most [MaxMembers] long. Wire checks shape and limits,
//     not meaning: whether a world's coordinator is its first member is sched's to judge.
//
// # Ownership
//
// Encode returns a new slice owned by the caller and neither keeps nor changes its message.
// Decode returns a new message that shares no memory with the frame: the caller may reuse the
// frame buffer as soon as Decode returns, and the message is the receiver's to keep.
//
// # Concurrency
//
// Every function is safe for concurrent use. A message is a plain value: share it across
// goroutines only as any Go value, without writing to it meanwhile.
//
// # Errors
//
// Every error from Encode, Decode, PeekHeader, Frame and Unframe wraps one of [ErrMalformed],
// [ErrTooLarge], [ErrUnknownKind] or [ErrVersion]; test with errors.Is. They describe bad
// data from a peer and are never a reason to panic. Passing a nil Message to Encode, or
// impossible arguments to Chunks, is a programmer error and panics.
package wire
