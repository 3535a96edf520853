// Package actors is the shell of troupe: the protoactor actors that move batches, gradients and
// snapshots between the pure parts (compute, compute/optim, sched) and the I/O (data,
// checkpoint), and Run, which trains a whole job in this process.
//
// A node is a Node actor supervising four roles: a ShardReader that gathers and prefetches this
// rank's part of each global batch, a Worker that owns the model replica and drives the loop,
// an Aggregator that reduces gradients across the world (a world of one here), and a
// Checkpointer that writes snapshots while training goes on. Every message is defined in
// messages.go, with its sender and receiver.
//
// The loop the caller runs is one call:
//
//	res, err := actors.Run(ctx, actors.DefaultJob(), actors.Options{OnStep: show})
//
// # Invariants
//
//   - At most one step is in flight per node; parameters change only after the step's
//     reduction has come back.
//   - The samples of step s depend only on (seed, s): restarts, resumes and prefetching never
//     change what the Worker sees.
//   - A checkpoint's cursor is the next step to run; every step before it was applied.
//
// # Concurrency
//
// Each actor processes one message at a time on its own goroutine. State that must survive a
// restart (the reader's pending request, the worker's replica) belongs to the Node and is only
// touched by the incarnation that is alive. Options hooks run on the Node's goroutine.
//
// # Errors
//
// A job that cannot run is rejected before any actor starts, with ErrBadJob naming the field.
// Panics inside actors are handled by the Node's per-role supervision policy; a role that keeps
// failing ends the run with ErrActorFailed. Broken checkpoints are skipped and reported in
// Result.Skipped.
package actors
