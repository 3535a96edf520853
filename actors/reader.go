package actors

import (
	"fmt"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/sched"
)

// readerCursor is the part of a ShardReader that outlives the actor instance: the request it
// owes an answer to. The Node owns it and hands it to every incarnation, so a reader restarted
// after a panic serves the same step again and the Worker sees the sample sequence it would
// have seen without the fault.
type readerCursor struct {
	pending *BatchRequest
	replyTo *actor.PID
}

// readerConfig is what a ShardReader reads from and for whom.
type readerConfig struct {
	set         samples
	plan        sched.SamplePlan
	ranks, rank int
	prefetch    int
	// fault, when set, is asked before a batch is built and panics the reader when it says so:
	// the hook tests use to exercise supervision.
	fault func(step int64) bool
}

// prefetchStep: ShardReader -> itself. Build the batch of Step ahead of its request.
type prefetchStep struct{ step int64 }

// shardReader gathers, normalizes and prefetches this rank's part of every global batch.
// Its batches depend on nothing but the step, so it can be restarted at any time.
type shardReader struct {
	cfg    readerConfig
	cursor *readerCursor

	orders map[int]*[]int32 // epoch -> sample order; at most the two epochs a window can span
	ready  map[int64]*BatchReady
	served int64 // last step handed to the worker; prefetching stays within served+prefetch
	slots  []batchSlot
}

// batchSlot is one reusable set of batch buffers. Step t uses slot t mod len(slots): with
// prefetch p there are p+1 slots, enough for the batch the worker holds plus p ready ones.
type batchSlot struct {
	x      []float32
	labels []int32
}

func newShardReader(cfg readerConfig, cursor *readerCursor) *shardReader {
	r := &shardReader{cfg: cfg, cursor: cursor, orders: map[int]*[]int32{}, served: -1}
	r.reshape(cfg.rank, cfg.ranks)
	return r
}

// reshape serves rank of ranks from now on: batches prefetched for another shape are dropped,
// and the slots grow when a smaller world gives each rank more samples.
func (r *shardReader) reshape(rank, ranks int) {
	r.cfg.rank, r.cfg.ranks = rank, ranks
	r.ready = map[int64]*BatchReady{}
	perRank := (r.cfg.plan.GlobalBatch + ranks - 1) / ranks
	labels := perRank * labelsPerSample(r.cfg.set)
	if len(r.slots) > 0 && len(r.slots[0].labels) >= labels {
		return
	}
	r.slots = make([]batchSlot, r.cfg.prefetch+1)
	for i := range r.slots {
		r.slots[i] = batchSlot{x: make([]float32, perRank*r.cfg.set.SampleSize()), labels: make([]int32, labels)}
	}
}

// Receive handles BatchRequest and prefetchStep. A restarted incarnation first answers the
// request its predecessor died on.
func (r *shardReader) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		if r.cursor.pending != nil {
			r.serve(ctx)
		}
	case *BatchRequest:
		r.cursor.pending, r.cursor.replyTo = msg, ctx.Sender()
		r.serve(ctx)
	case prefetchStep:
		if msg.step > r.served && msg.step <= r.served+int64(r.cfg.prefetch) && r.ready[msg.step] == nil {
			r.ready[msg.step] = r.build(Stamp{Step: msg.step})
		}
	}
}

func (r *shardReader) serve(ctx actor.Context) {
	req := r.cursor.pending
	if req.Ranks > 0 && (req.Rank != r.cfg.rank || req.Ranks != r.cfg.ranks) {
		r.reshape(req.Rank, req.Ranks)
	}
	b := r.ready[req.Step]
	if b == nil {
		b = r.build(req.Stamp)
	}
	b.Generation = req.Generation
	delete(r.ready, req.Step)
	r.served = req.Step
	ctx.Send(r.cursor.replyTo, b)
	r.cursor.pending = nil
	for s := req.Step + 1; s <= req.Step+int64(r.cfg.prefetch); s++ {
		if r.ready[s] == nil {
			ctx.Send(ctx.Self(), prefetchStep{step: s})
		}
	}
}

// build gathers this rank's samples of the step's global batch into the step's slot.
func (r *shardReader) build(stamp Stamp) *BatchReady {
	if r.cfg.fault != nil && r.cfg.fault(stamp.Step) {
		panic(fmt.Sprintf("injected fault while reading step %d", stamp.Step))
	}
	epoch, _ := r.cfg.plan.EpochOf(stamp.Step)
	order := r.order(epoch)
	idx := sched.RankSlice(r.cfg.plan.BatchIndices(order, stamp.Step), r.cfg.ranks, r.cfg.rank)
	slot := r.slots[int(stamp.Step%int64(len(r.slots)))]
	n := len(idx)
	x, labels := slot.x[:n*r.cfg.set.SampleSize()], slot.labels[:n*labelsPerSample(r.cfg.set)]
	if err := r.cfg.set.Gather(idx, x, labels); err != nil {
		// The plan only names indices inside the data set; an error here is a bug, not bad input.
		panic(fmt.Sprintf("gather step %d: %v", stamp.Step, err))
	}
	return &BatchReady{Stamp: stamp, Epoch: epoch, Indices: idx, Batch: compute.Batch{X: x, N: n, Labels: labels}}
}

func (r *shardReader) order(epoch int) []int32 {
	if o := r.orders[epoch]; o != nil {
		return *o
	}
	for e := range r.orders {
		if e < epoch-1 {
			delete(r.orders, e)
		}
	}
	o := r.cfg.plan.Order(epoch)
	r.orders[epoch] = &o
	return o
}
