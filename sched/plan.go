package sched

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidPlan is wrapped by every error SamplePlan.Validate returns.
var ErrInvalidPlan = errors.New("sched: invalid sample plan")

// SamplePlan fixes which samples each step of a run trains on.
type SamplePlan struct {
	// Seed drives every epoch's sample order.
	Seed uint64
	// NumSamples is the size of the training set, in [1, MaxInt32]: sample
	// indices are int32 to halve the size of the order.
	NumSamples int
	// GlobalBatch is the number of samples per step, in [1, NumSamples],
	// fixed whatever the world size, so that the learning dynamics do not
	// depend on how many nodes are alive.
	GlobalBatch int
}

// Validate returns an error naming the first field out of range.
func (p SamplePlan) Validate() error {
	if p.NumSamples < 1 || p.NumSamples > math.MaxInt32 {
		return fmt.Errorf("%w: num_samples must be in [1, %d], got %d", ErrInvalidPlan, math.MaxInt32, p.NumSamples)
	}
	if p.GlobalBatch < 1 || p.GlobalBatch > p.NumSamples {
		return fmt.Errorf("%w: global_batch must be in [1, num_samples=%d], got %d", ErrInvalidPlan, p.NumSamples, p.GlobalBatch)
	}
	return nil
}

func (p SamplePlan) mustBeValid() {
	if err := p.Validate(); err != nil {
		panic(err.Error())
	}
}

// StepsPerEpoch is ceil(NumSamples/GlobalBatch): the last step of an epoch
// holds the remainder so that no sample is skipped or repeated within an
// epoch.
func (p SamplePlan) StepsPerEpoch() int {
	p.mustBeValid()
	return (p.NumSamples + p.GlobalBatch - 1) / p.GlobalBatch
}

// EpochOf locates a global step: its epoch and its 0-based step within that
// epoch. It panics on a negative step.
func (p SamplePlan) EpochOf(step int64) (epoch int, stepInEpoch int) {
	if step < 0 {
		panic(fmt.Sprintf("sched: negative step %d", step))
	}
	perEpoch := int64(p.StepsPerEpoch())
	return int(step / perEpoch), int(step % perEpoch)
}

// Order returns the epoch's permutation of [0, NumSamples), freshly
// allocated and owned by the caller. It costs O(NumSamples): a caller
// running many steps of one epoch computes it once. It panics on a negative
// epoch.
func (p SamplePlan) Order(epoch int) []int32 {
	p.mustBeValid()
	if epoch < 0 {
		panic(fmt.Sprintf("sched: negative epoch %d", epoch))
	}
	order := make([]int32, p.NumSamples)
	for i := range order {
		order[i] = int32(i)
	}
	shuffle(order, p.Seed, uint64(epoch))
	return order
}

// BatchIndices returns the global batch of step as a sub-slice of order,
// which must be Order(epoch) for the step's epoch: the slice is only as right
// as the order it is given. It does not allocate, and panics when order does
// not have NumSamples entries.
func (p SamplePlan) BatchIndices(order []int32, step int64) []int32 {
	if len(order) != p.NumSamples {
		panic(fmt.Sprintf("sched: order has %d samples, plan has %d", len(order), p.NumSamples))
	}
	_, inEpoch := p.EpochOf(step)
	lo := inEpoch * p.GlobalBatch
	hi := min(lo+p.GlobalBatch, p.NumSamples)
	return order[lo:hi:hi]
}

// RankBounds returns the half-open range [lo, hi) of a batch of n samples
// that rank reads in a world of ranks members: contiguous parts whose sizes
// differ by at most one, the lower ranks taking the larger ones. When ranks
// exceeds n, the highest ranks get empty parts. It panics unless
// 0 <= rank < ranks and n >= 0.
func RankBounds(n, ranks, rank int) (lo, hi int) {
	if n < 0 || ranks < 1 || rank < 0 || rank >= ranks {
		panic(fmt.Sprintf("sched: rank %d of %d ranks over %d samples", rank, ranks, n))
	}
	size, larger := n/ranks, n%ranks // the first `larger` ranks take size+1
	lo = rank*size + min(rank, larger)
	hi = lo + size
	if rank < larger {
		hi++
	}
	return lo, hi
}

// RankSlice returns rank's part of batch as described by RankBounds: a
// sub-slice, not a copy, with its capacity cut to its length.
func RankSlice(batch []int32, ranks, rank int) []int32 {
	lo, hi := RankBounds(len(batch), ranks, rank)
	return batch[lo:hi:hi]
}

// Cursor is the exact data position a checkpoint records: the next global
// step to run. Together with the SamplePlan it determines the epoch, the
// order and the batch, so restoring a cursor resumes on the very next sample.
type Cursor struct {
	Step int64
}

// Epoch is the data epoch the cursor's step belongs to under plan.
func (c Cursor) Epoch(plan SamplePlan) int {
	epoch, _ := plan.EpochOf(c.Step)
	return epoch
}

// StepInEpoch is the cursor's 0-based step within its epoch under plan.
func (c Cursor) StepInEpoch(plan SamplePlan) int {
	_, inEpoch := plan.EpochOf(c.Step)
	return inEpoch
}

// Next is the cursor after its step completes.
func (c Cursor) Next() Cursor { return Cursor{Step: c.Step + 1} }
