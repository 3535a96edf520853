package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/cluster/collective"
)

// aggregator runs the collectives of a node: the sum over the world of every rank's gradient
// and loss statistics, and on a peer the state broadcast that starts every world. In a world of
// one a reduction is the rank's own contribution, answered at once; in a larger world it is a
// ring all-reduce over the collective's streams, which blocks this actor (and only it) until
// every rank has taken part or the world is superseded.
type aggregator struct {
	link       *collective.Link // the current world's ring; nil in a world of one
	plane      *dataPlane       // on a peer: where the rings of new worlds come from
	generation uint64
	stats      [3]float32 // loss sum, correct, samples: reduced beside the gradient
	ahead      aheadBuckets
}

// aheadBuckets is what became of the buckets of one step: the time their reductions took
// and the first failure, both reported when the step's AllReduce comes (after a failure the
// step's later buckets are not reduced: the ring is broken).
type aheadBuckets struct {
	stamp Stamp
	count int
	took  time.Duration
	err   error
}

// of returns the record of the step stamp, a fresh one when the step is new.
func (b *aheadBuckets) of(stamp Stamp) *aheadBuckets {
	if b.stamp != stamp {
		*b = aheadBuckets{stamp: stamp}
	}
	return b
}

// Receive: ReduceBucket, AllReduce, joinWorld. A request from another generation is dropped:
// its world is gone.
func (a *aggregator) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *ReduceBucket:
		if msg.Generation == a.generation {
			a.reduceBucket(msg)
		}
	case *AllReduce:
		if msg.Generation == a.generation {
			a.allReduce(ctx, msg)
		}
	case *joinWorld:
		a.join(ctx, msg)
	}
}

func (a *aggregator) allReduce(ctx actor.Context, msg *AllReduce) {
	if a.link == nil || a.link.Size == 1 {
		ctx.Respond(&Reduced{Stamp: msg.Stamp, Grads: msg.Grads, LossSum: msg.LossSum, Correct: msg.Correct, Samples: msg.Samples})
		return
	}
	began := time.Now()
	ahead := a.ahead.of(msg.Stamp)
	if ahead.err != nil {
		ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: ahead.err})
		return
	}
	stamp := collective.Stamp{Generation: msg.Generation, Step: msg.Step}
	// The statistics travel as float32: counts are exact below 2^24, the loss sum is for logs.
	a.stats = [3]float32{float32(msg.LossSum), float32(msg.Correct), float32(msg.Samples)}
	if head := msg.Grads[:len(msg.Grads)-msg.SentAhead]; len(head) > 0 {
		if err := a.link.AllReduceSum(stamp, head); err != nil {
			ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: err})
			return
		}
	}
	if err := a.link.AllReduceSum(stamp, a.stats[:]); err != nil {
		ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: err})
		return
	}
	ctx.Respond(&Reduced{Stamp: msg.Stamp, Grads: msg.Grads, LossSum: float64(a.stats[0]), Correct: int(a.stats[1]), Samples: int(a.stats[2]),
		ReduceSeconds: (time.Since(began) + ahead.took).Seconds(), Ranks: a.link.Size, Buckets: ahead.count + 1})
}

// reduceBucket sums a finished part of a step's gradient over the world, unless an earlier
// bucket of the step failed: the ring is broken then, and the step's AllReduce reports it.
func (a *aggregator) reduceBucket(msg *ReduceBucket) {
	if a.link == nil || a.link.Size == 1 {
		return // the rank's own gradient is the sum
	}
	ahead := a.ahead.of(msg.Stamp)
	if ahead.err != nil {
		return
	}
	began := time.Now()
	ahead.count++
	ahead.err = a.link.AllReduceSum(collective.Stamp{Generation: msg.Generation, Step: msg.Step}, msg.Grads)
	ahead.took += time.Since(began)
}

// join connects the ring of a new world and broadcasts the state every member starts from.
func (a *aggregator) join(ctx actor.Context, msg *joinWorld) {
	a.generation, a.link, a.ahead = msg.gen, nil, aheadBuckets{}
	log := a.plane.log.With("generation", msg.gen, "rank", msg.rank, "size", len(msg.addrs))
	log.Debug("connecting the world's ring", "root", msg.root)
	link, err := a.plane.connect(msg.gen, msg.rank, msg.addrs)
	if err == nil {
		a.link = link
		log.Debug("ring connected; broadcasting the starting state", "values", len(msg.state))
		err = link.Broadcast(collective.Stamp{Generation: msg.gen, Step: max(msg.start, 0)}, msg.state, msg.root)
	}
	if err != nil {
		log.Info("could not start the world", "err", err)
	} else {
		log.Debug("world started")
	}
	ctx.Respond(&worldJoined{gen: msg.gen, state: msg.state, err: err})
}
