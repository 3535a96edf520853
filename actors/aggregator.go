package actors

import (
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/cluster/collective"
	"github.com/troupe-ml/troupe/compute/optim"
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
	stats      []float32 // loss sum, correct, samples (and a sharded step's norm and flags): reduced beside the gradient
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
	case *GatherParams:
		if msg.Generation == a.generation {
			a.gather(ctx, msg)
		}
	case *joinWorld:
		a.join(ctx, msg)
	}
}

func (a *aggregator) allReduce(ctx actor.Context, msg *AllReduce) {
	size, rank := a.world()
	if size == 1 && !msg.Sharded {
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
	// A sharded step adds its slice's squared norm, as a float32 and the float32 of what that
	// rounded off (so the sum keeps about 48 bits), rank 0's save flag and a leaving flag per rank.
	a.stats = append(a.stats[:0], float32(msg.LossSum), float32(msg.Correct), float32(msg.Samples))
	if head := msg.Grads[:len(msg.Grads)-msg.SentAhead]; len(head) > 0 && size > 1 {
		reduce := a.link.AllReduceSum
		if msg.Sharded {
			reduce = a.link.ReduceScatterSum
		}
		if err := reduce(stamp, head); err != nil {
			ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: err})
			return
		}
	}
	if msg.Sharded {
		lo, hi := collective.Shard(len(msg.Grads), size, rank)
		sq := optim.SumSquares(msg.Grads[lo:hi])
		hiPart := float32(sq)
		a.stats = append(a.stats, hiPart, float32(sq-float64(hiPart)), flag(msg.Save && rank == 0))
		for k := range size {
			a.stats = append(a.stats, flag(msg.Leaving && k == rank))
		}
	}
	if size > 1 {
		if err := a.link.AllReduceSum(stamp, a.stats); err != nil {
			ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: err})
			return
		}
	}
	out := &Reduced{Stamp: msg.Stamp, Grads: msg.Grads, LossSum: float64(a.stats[0]), Correct: int(a.stats[1]), Samples: int(a.stats[2]),
		ReduceSeconds: (time.Since(began) + ahead.took).Seconds(), Ranks: size, Buckets: ahead.count + 1}
	if msg.Sharded {
		out.SumSquares = float64(a.stats[3]) + float64(a.stats[4])
		out.Save = a.stats[5] != 0
		for k, f := range a.stats[6:] {
			if f != 0 {
				out.Leavers = append(out.Leavers, k)
			}
		}
	}
	ctx.Respond(out)
}

// world is the size of this node's world and its rank there.
func (a *aggregator) world() (size, rank int) {
	if a.link == nil {
		return 1, 0
	}
	return a.link.Size, a.link.Rank
}

// ring is the world's ring, nil in a world of one.
func (a *aggregator) ring() *collective.Ring {
	if size, _ := a.world(); size == 1 {
		return nil
	}
	return &a.link.Ring
}

func flag(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

// gather ends a sharded step: the parameters' all-gather, then what the step's Reduced asked.
func (a *aggregator) gather(ctx actor.Context, msg *GatherParams) {
	began := time.Now()
	stamp := collective.Stamp{Generation: msg.Generation, Step: msg.Step}
	size, rank := a.world()
	if size > 1 {
		if err := a.link.AllGather(stamp, msg.Params); err != nil {
			ctx.Respond(&ReduceFailed{Stamp: msg.Stamp, Err: err})
			return
		}
	}
	out := &ParamsGathered{Stamp: msg.Stamp, Params: msg.Params}
	rc := recut{ring: a.ring(), stamp: stamp, shardSpec: msg.Spec}
	n := len(msg.Params)
	if msg.Save {
		targets := make([]optim.Range, size)
		targets[0] = optim.Range{Hi: n}
		res, err := rc.run(msg.Holding, msg.Buffers, targets, msg.Holding.cursor)
		if out.Err = err; err == nil && rank == 0 {
			out.State = res.buffers
		}
	}
	if len(msg.Leavers) > 0 && out.Err == nil {
		targets := make([]optim.Range, size)
		stay := size - len(msg.Leavers)
		if stay == 0 {
			targets[0] = optim.Range{Hi: n} // all go: rank 0 keeps the whole state for the final snapshot
		}
		for k, i := 0, 0; k < size && stay > 0; k++ {
			if !slices.Contains(msg.Leavers, k) {
				lo, hi := collective.Shard(n, stay, i)
				targets[k] = optim.Range{Lo: lo, Hi: hi}
				i++
			}
		}
		res, err := rc.run(msg.Holding, msg.Buffers, targets, msg.Holding.cursor)
		if out.Err = err; err == nil {
			out.Handover = &res
			out.Owns = holding{lo: targets[rank].Lo, hi: targets[rank].Hi, cursor: msg.Holding.cursor}
		}
	}
	out.Seconds = time.Since(began).Seconds()
	ctx.Respond(out)
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
	out := &worldJoined{}
	link, err := a.plane.connect(msg.gen, msg.rank, msg.addrs)
	if err == nil {
		a.link = link
		log.Debug("ring connected; broadcasting the starting state", "values", len(msg.state))
		stamp := collective.Stamp{Generation: msg.gen, Step: max(msg.start, 0)}
		err = link.Broadcast(stamp, msg.state, msg.root)
		if sh := msg.shard; err == nil && sh != nil {
			// The root's cursor is the world's start: re-cut the slices for this world.
			start, _ := stateCursor(msg.state)
			out.shard = &worldShard{owns: holding{cursor: start}}
			targets := shardsOf(sh.spec.n, len(msg.addrs))
			out.shard.owns.lo, out.shard.owns.hi = targets[msg.rank].Lo, targets[msg.rank].Hi
			var ring *collective.Ring
			if link.Size > 1 {
				ring = &link.Ring
			}
			out.shard.recutResult, err = recut{ring: ring, stamp: stamp, shardSpec: sh.spec}.run(sh.holds, sh.buffers, targets, start)
		}
	}
	if err != nil {
		log.Info("could not start the world", "err", err)
	} else {
		log.Debug("world started")
	}
	out.gen, out.state, out.err = msg.gen, msg.state, err
	ctx.Respond(out)
}
