// Package sched holds troupe's decisions as pure, deterministic code: the
// shell (actors and cluster) feeds it plain values and acts on the values it
// returns, the way etcd's raft separates its state machine from the node
// that drives it.
//
// Its second piece is the world protocol (world.go, node.go): Node, a pure
// state machine per node that decides, with its peers, the chain of worlds
// (generation, members in rank order, coordinator, start step) through one
// Paxos instance per generation. Events in (membership, ticks, StepDone,
// peer messages), a Ready out (messages to send, the adopted world, a state
// transfer to fetch, paused/out). world.go's comment states the protocol and
// why it departs from a single-round ack.
//
// Its first piece is the sample plan: which training samples every
// step of the run consumes, and which rank of the current world reads which
// of them.
//
// Inputs: a SamplePlan (seed, number of samples, global batch size), a step
// number, and the world's size and a rank in it.
//
// Outputs: the epoch's sample order (Order), the step's global batch as a
// slice of that order (BatchIndices), and one rank's contiguous part of the
// batch (RankSlice, RankBounds).
//
// The loop a shell runs, once per step:
//
//	epoch, _ := plan.EpochOf(cursor.Step)
//	if epoch != cachedEpoch {
//		order, cachedEpoch = plan.Order(epoch), epoch // O(NumSamples): cache it
//	}
//	batch := plan.BatchIndices(order, cursor.Step)
//	mine := sched.RankSlice(batch, world.Size, world.Rank)
//	// read, train and all-reduce on mine; then
//	cursor = cursor.Next()
//
// Because the global batch of a step depends only on the plan and the step,
// never on the world's size, a world that grows or shrinks between two steps
// neither skips nor repeats a sample, and the gradient each step averages is
// the gradient of the same samples.
//
// # Invariants
//
//   - Order(e) is a permutation of [0, NumSamples), a pure function of
//     (Seed, e). Its algorithm is written here (Fisher-Yates driven by
//     math/rand/v2's PCG with our own unbiased bounded draw), not taken from
//     rand.Perm, so the order of a checkpointed run does not change when the
//     Go toolchain does.
//   - An epoch has StepsPerEpoch() steps; every step holds GlobalBatch
//     samples except the epoch's last, which holds the remainder. Across the
//     steps of one epoch every sample appears exactly once.
//   - RankSlice splits a batch into ranks contiguous, disjoint parts whose
//     concatenation in rank order is the batch; sizes differ by at most one,
//     the larger parts going to the lower ranks.
//   - A Cursor is the next step to run: it alone locates the data position.
//
// # Concurrency
//
// Nothing here starts goroutines, reads clocks or does I/O. Plans and
// cursors are values; the slices returned by Order belong to the caller,
// and BatchIndices and RankSlice return sub-slices of their input, with
// capacity cut to their length so that an append cannot overwrite a
// neighbour's samples.
//
// # Errors
//
// Validate reports a plan that makes no sense with an error wrapping
// ErrInvalidPlan that names the field. Using an invalid plan, a negative step
// or epoch, an order of the wrong length, or a rank outside the world is a
// programmer error and panics with the values in the message.
package sched
