package actors

import "github.com/asynkron/protoactor-go/actor"

// aggregator runs the collective of a step. In a world of one the sum over the world is the
// rank's own contribution, so it answers at once; it already speaks the messages the ring
// all-reduce among peers will use, and the Worker cannot tell the difference.
type aggregator struct {
	generation uint64
}

// Receive: AllReduce. A request from another generation is dropped: its world is gone.
func (a *aggregator) Receive(ctx actor.Context) {
	msg, ok := ctx.Message().(*AllReduce)
	if !ok || msg.Generation != a.generation {
		return
	}
	ctx.Respond(&Reduced{Stamp: msg.Stamp, Grads: msg.Grads, LossSum: msg.LossSum, Correct: msg.Correct, Samples: msg.Samples})
}
