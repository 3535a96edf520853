package actors

import (
	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/cluster/collective"
)

// aggregator runs the collective of a step: the sum over the world of every rank's gradient
// and loss statistics. In a world of one that is the rank's own contribution, answered at once;
// in a larger world it is a ring all-reduce over the collective's streams, which blocks this
// actor (and only it) until every rank has taken part.
type aggregator struct {
	link       *collective.Link // nil in a world of one
	generation uint64
	stats      [3]float32 // loss sum, correct, samples: reduced beside the gradient
}

// Receive: AllReduce. A request from another generation is dropped: its world is gone.
func (a *aggregator) Receive(ctx actor.Context) {
	msg, ok := ctx.Message().(*AllReduce)
	if !ok || msg.Generation != a.generation {
		return
	}
	if a.link == nil {
		ctx.Respond(&Reduced{Stamp: msg.Stamp, Grads: msg.Grads, LossSum: msg.LossSum, Correct: msg.Correct, Samples: msg.Samples})
		return
	}
	stamp := collective.Stamp{Generation: msg.Generation, Step: msg.Step}
	// The statistics travel as float32: counts are exact below 2^24, the loss sum is for logs.
	a.stats = [3]float32{float32(msg.LossSum), float32(msg.Correct), float32(msg.Samples)}
	if err := a.link.AllReduceSum(stamp, msg.Grads); err != nil {
		ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: err})
		return
	}
	if err := a.link.AllReduceSum(stamp, a.stats[:]); err != nil {
		ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: err})
		return
	}
	ctx.Respond(&Reduced{Stamp: msg.Stamp, Grads: msg.Grads, LossSum: float64(a.stats[0]), Correct: int(a.stats[1]), Samples: int(a.stats[2])})
}
