// Package transport carries troupe's control-plane messages between nodes
// over protoactor-go remote, secured by mutual TLS derived from the cluster
// key.
//
// A node starts one [Transport]. Every message is a [wire.Message] framed
// by wire.Frame into the one protobuf type protoactor can carry, sent to the
// peer's inbox actor (registered as [InboxName]), decoded there with
// wire.Unframe and handed to the Config's Handler or Inbox channel with the
// sender's address. The node keeps the transport's peer set in step with
// membership:
//
//	tr, err := transport.Start(transport.Config{TLS: transport.TLS{Server: s, Client: c}, Inbox: inbox})
//	...
//	tr.SetPeers(addressesOf(world))   // on every world or membership change
//	tr.PeerGone(addr)                 // when memberlist reports a departure
//	err = tr.Send(addr, &wire.Ack{...})
//	for d := range inbox { ... d.From, d.Message ... }
//	tr.Close()
//
// Bulk vectors (all-reduce, state transfer) belong on cluster/collective's
// streams: BenchmarkReduceChunk1MiB measures about 0.2 GB/s for 1 MiB
// chunks through actor messages, where the collective ring moves about
// 2 GB/s on the same machine.
//
// # Invariants
//
//   - Send reaches only addresses in the current peer set; any other address
//     fails at once with ErrNotPeer. The gate covers Send only: watches and
//     messages a caller sends through protoactor itself are not gated.
//   - A gRPC message holds at most writerBatchSize frames, each at most
//     wire.MaxFrameBytes, and the receive limit exceeds that: a batch can
//     never kill the endpoint by size.
//   - Messages to one address arrive in the order Send queued them; a broken
//     connection can lose some, and nothing is retried by this package.
//   - Bad input never panics the inbox: a frame that fails to decode counts
//     in Stats.Malformed, a message of another protobuf type in
//     Stats.Foreign, and both are dropped.
//   - Only peers holding the same cluster key connect, in either direction.
//
// # Concurrency
//
// Every method is safe for concurrent use. Send returns once its frame is
// queued: the first send to an address also spawns that address's endpoint,
// a local round trip, and connecting happens on protoactor's goroutines. The
// handler runs on the inbox actor's goroutine, one message at a time; with
// an Inbox channel, a full channel holds up the inbox until there is room or
// Close. Close waits for in-flight Sends and for the handler to return.
//
// One Transport per process: every protoactor remote Start replaces grpc's
// global logger, which goroutines of an earlier transport read without
// synchronisation, so even a second transport after Close is a data race.
// Tests run each node in a process of its own.
//
// # Known protoactor behaviour this package works around or exposes
//
//   - protoactor's graceful Shutdown clears its endpoint map while
//     connection goroutines may still read it; Close stops the server, waits
//     for its stream handlers, then stops the endpoint actors instead.
//   - protoactor never notices a silent peer; PeerGone publishes the event
//     that makes watchers receive Terminated (within milliseconds).
//   - An endpoint that cannot connect retries about 10 s, leaks a gRPC client
//     connection per failed attempt, and holds up Close until it gives up.
//     Gate sends on membership and call PeerGone promptly.
//   - protoactor's EndpointTerminatedEvent names an address, not an
//     endpoint: for a short while after PeerGone(addr), the old endpoint's
//     late event can tear down a new endpoint to the same addr, which we
//     saw turn into a reconnect loop. A node that comes back should do so
//     at a new address; watch a departed address's actors no further.
//   - A watched remote actor that stops sends its watchers a Terminated,
//     for which protoactor dials the watchee's address, even after PeerGone.
//
// # Errors
//
// Start returns ErrConfig (wrapped, naming the field) for an inconsistent
// Config, and an error for a port it cannot listen on. Send returns
// ErrNotPeer, ErrClosed, or the wire package's error for a message it
// refuses to encode. Undeliverable messages are dropped by protoactor and
// logged at warn or above through Config.Logger; they are not reported to
// the sender.
package transport
