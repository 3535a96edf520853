package actors

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/cluster/collective"
	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
)

// Under train.shard_optimizer (ZeRO stage 1) each rank keeps only the slice of the optimizer
// state that the ring's reduce-scatter leaves it the summed gradient of: collective.Shard of the
// flat parameter vector. A step reduce-scatters the gradient, updates the rank's slice of the
// parameters and of the optimizer state, and all-gathers the parameters. The parameters
// themselves stay whole on every rank.
//
// When the owners change (a world starts, a member leaves gracefully, rank 0 gathers a
// checkpoint), the slices are re-cut: every rank says what it holds, and each held range that
// some new owner needs is broadcast over the ring from one holder. Which range comes from whom
// is a pure function of what the ranks hold (planRecut), computed alike on every rank.

// holding is what a rank holds of the optimizer state: the values [lo, hi) of every buffer, as
// they stand before step cursor (they hold the updates of the steps before it). A cursor < 0
// holds nothing.
type holding struct {
	lo, hi int
	cursor int64
}

// holdingWords is the size of a holding on the wire: three 64-bit values in two float32 words
// each, and two spare words that round it to a whole vector.
const holdingWords = 8

func (h holding) put(dst []float32) {
	for i, v := range [3]uint64{uint64(h.lo), uint64(h.hi), uint64(h.cursor)} {
		dst[2*i], dst[2*i+1] = math.Float32frombits(uint32(v)), math.Float32frombits(uint32(v>>32))
	}
}

func holdingFrom(src []float32) holding {
	var v [3]int64
	for i := range v {
		v[i] = int64(uint64(math.Float32bits(src[2*i])) | uint64(math.Float32bits(src[2*i+1]))<<32)
	}
	return holding{lo: int(v[0]), hi: int(v[1]), cursor: v[2]}
}

// piece is a range of the optimizer state that rank from sends to whoever owns it next.
type piece struct {
	from   int
	lo, hi int
}

// recutPlan says where every value of the new slices comes from.
type recutPlan struct {
	pieces []piece
	// lost are the ranges no rank holds at the start cursor (or one step past it): a killed
	// member's slice. They are filled (see fill).
	lost []optim.Range
	// ahead counts the values taken from a rank whose slice is one step past the start: its
	// update of that step was applied, and the step's all-gather broke before anyone finished
	// it, so the step is run again on top of it.
	ahead int
}

// planRecut decides, for a world that starts at step start over n values, which rank sends
// which range: first the holders whose slices are exactly at start, in rank order, then those
// one step past it; a value goes once, from the first that holds it.
func planRecut(holds []holding, start int64, n int) recutPlan {
	var p recutPlan
	covered := []optim.Range{}
	for pass := int64(0); pass < 2; pass++ {
		for k, h := range holds {
			if h.cursor != start+pass || h.hi <= h.lo {
				continue
			}
			for _, u := range subtract(optim.Range{Lo: max(h.lo, 0), Hi: min(h.hi, n)}, covered) {
				p.pieces = append(p.pieces, piece{from: k, lo: u.Lo, hi: u.Hi})
				if pass == 1 {
					p.ahead += u.Hi - u.Lo
				}
				covered = addRange(covered, u)
			}
		}
	}
	p.lost = subtract(optim.Range{Lo: 0, Hi: n}, covered)
	return p
}

// subtract returns the parts of r outside the sorted, disjoint ranges cut.
func subtract(r optim.Range, cut []optim.Range) []optim.Range {
	var out []optim.Range
	at := r.Lo
	for _, c := range cut {
		if c.Hi <= at || c.Lo >= r.Hi {
			continue
		}
		if c.Lo > at {
			out = append(out, optim.Range{Lo: at, Hi: c.Lo})
		}
		at = max(at, c.Hi)
	}
	if at < r.Hi {
		out = append(out, optim.Range{Lo: at, Hi: r.Hi})
	}
	return out
}

// addRange inserts r, disjoint from them, into the sorted ranges rs, merging neighbours.
func addRange(rs []optim.Range, r optim.Range) []optim.Range {
	i, _ := slices.BinarySearchFunc(rs, r.Lo, func(x optim.Range, lo int) int { return x.Lo - lo })
	rs = slices.Insert(rs, i, r)
	out := rs[:1]
	for _, x := range rs[1:] {
		if last := &out[len(out)-1]; last.Hi == x.Lo {
			last.Hi = x.Hi
		} else {
			out = append(out, x)
		}
	}
	return out
}

func overlap(a, b optim.Range) (optim.Range, bool) {
	r := optim.Range{Lo: max(a.Lo, b.Lo), Hi: min(a.Hi, b.Hi)}
	return r, r.Lo < r.Hi
}

// recutPieceValues bounds one broadcast of a re-cut (per buffer), so that a rank's scratch stays
// small whatever the model's size.
const recutPieceValues = 1 << 20

// shardSpec is what a re-cut needs to know of the job.
type shardSpec struct {
	n       int // parameters
	buffers int // the optimizer's state buffers
	// squares are the buffers that hold running averages of squared gradients, groups the
	// model's tensors: a lost value of a square buffer is filled with the mean of the values
	// of its tensor that survived.
	squares []int
	groups  []optim.Range
}

// recut is one re-cut of the optimizer state over a ring (nil: a world of one).
type recut struct {
	ring  *collective.Ring
	stamp collective.Stamp
	*shardSpec
}

// recutResult is a rank's new slice and what it took to make it.
type recutResult struct {
	buffers [][]float32 // the new slice of every buffer
	plan    recutPlan
	// fresh: nothing of the state survived anywhere; the buffers are zero and the optimizer
	// starts again from its first step.
	fresh bool
	// received counts the values this rank took from the broadcasts for its slice.
	received int
}

// run re-cuts: mine is what this rank holds (bufs, each hi-lo values), targets[k] the slice
// rank k owns afterwards, start the step the state must stand before. Every rank of the ring
// calls it with the same targets and start.
func (c recut) run(mine holding, bufs [][]float32, targets []optim.Range, start int64) (recutResult, error) {
	size, me, nbuf := 1, 0, c.buffers
	if c.ring != nil {
		size, me = c.ring.Size, c.ring.Rank
	}
	if len(targets) != size {
		return recutResult{}, fmt.Errorf("re-cut: %d targets for a ring of %d", len(targets), size)
	}
	holds := make([]holding, size)
	if size == 1 {
		holds[0] = mine
	} else {
		words := make([]float32, holdingWords*size)
		lo, _ := collective.Shard(len(words), size, me)
		mine.put(words[lo:])
		if err := c.ring.AllGather(c.stamp, words); err != nil {
			return recutResult{}, err
		}
		for k := range holds {
			lo, _ := collective.Shard(len(words), size, k)
			holds[k] = holdingFrom(words[lo:])
		}
	}
	for k, h := range holds {
		if h.cursor >= 0 && (h.lo < 0 || h.hi < h.lo || h.hi > c.n) {
			return recutResult{}, fmt.Errorf("re-cut: rank %d holds [%d, %d) of %d values", k, h.lo, h.hi, c.n)
		}
	}
	res := recutResult{plan: planRecut(holds, start, c.n), buffers: make([][]float32, nbuf)}
	target := targets[me]
	for b := range res.buffers {
		res.buffers[b] = make([]float32, target.Hi-target.Lo)
	}
	// Where something is lost, every rank sees every surviving value, to fill the lost ones
	// from the same means.
	mean := newMeans(c.groups, len(c.squares))
	everyone := len(res.plan.lost) > 0
	var scratch []float32
	for _, p := range res.plan.pieces {
		for lo := p.lo; lo < p.hi; lo += recutPieceValues {
			part := optim.Range{Lo: lo, Hi: min(lo+recutPieceValues, p.hi)}
			width := part.Hi - part.Lo
			needed := everyone
			for k, t := range targets {
				if _, ok := overlap(t, part); ok && k != p.from {
					needed = true
				}
			}
			if me != p.from && !needed {
				continue
			}
			scratch = slices.Grow(scratch[:0], width*nbuf)[:width*nbuf]
			if me == p.from {
				if len(bufs) != nbuf {
					return recutResult{}, fmt.Errorf("re-cut: this rank holds %d buffers, the optimizer has %d", len(bufs), nbuf)
				}
				for b, buf := range bufs {
					copy(scratch[b*width:(b+1)*width], buf[part.Lo-mine.lo:part.Hi-mine.lo])
				}
			}
			if needed && size > 1 {
				if err := c.ring.Broadcast(c.stamp, scratch, p.from); err != nil {
					return recutResult{}, err
				}
			}
			if o, ok := overlap(target, part); ok {
				for b := range res.buffers {
					copy(res.buffers[b][o.Lo-target.Lo:o.Hi-target.Lo], scratch[b*width+o.Lo-part.Lo:b*width+o.Hi-part.Lo])
				}
				if me != p.from {
					res.received += o.Hi - o.Lo
				}
			}
			if everyone {
				for i, b := range c.squares {
					mean.add(i, part, scratch[b*width:(b+1)*width])
				}
			}
		}
	}
	res.fresh = len(res.plan.pieces) == 0
	for _, l := range res.plan.lost {
		o, ok := overlap(target, l)
		if !ok {
			continue
		}
		for b := range res.buffers {
			clear(res.buffers[b][o.Lo-target.Lo : o.Hi-target.Lo])
		}
		for i, b := range c.squares {
			mean.fill(i, o, res.buffers[b][o.Lo-target.Lo:o.Hi-target.Lo])
		}
	}
	return res, nil
}

// means accumulates, per tensor and per square buffer, the sum and count of surviving values.
type means struct {
	groups []optim.Range
	sum    [][]float64 // [buffer][group]
	count  [][]int
	all    []float64 // [buffer]: over every group
	allN   []int
}

func newMeans(groups []optim.Range, buffers int) *means {
	m := &means{groups: groups, sum: make([][]float64, buffers), count: make([][]int, buffers),
		all: make([]float64, buffers), allN: make([]int, buffers)}
	for i := range m.sum {
		m.sum[i], m.count[i] = make([]float64, len(groups)), make([]int, len(groups))
	}
	return m
}

// add takes in the values v of range r of square buffer i.
func (m *means) add(i int, r optim.Range, v []float32) {
	m.each(r, func(g int, o optim.Range) {
		s := 0.0
		for _, x := range v[o.Lo-r.Lo : o.Hi-r.Lo] {
			s += float64(x)
		}
		if g >= 0 {
			m.sum[i][g] += s
			m.count[i][g] += o.Hi - o.Lo
		}
		m.all[i] += s
		m.allN[i] += o.Hi - o.Lo
	})
}

// fill writes into dst, range r of square buffer i, the mean of its tensor's surviving values,
// or of all surviving values where none of its tensor survived (zero where nothing did).
func (m *means) fill(i int, r optim.Range, dst []float32) {
	m.each(r, func(g int, o optim.Range) {
		v := 0.0
		switch {
		case g >= 0 && m.count[i][g] > 0:
			v = m.sum[i][g] / float64(m.count[i][g])
		case m.allN[i] > 0:
			v = m.all[i] / float64(m.allN[i])
		}
		for j := o.Lo; j < o.Hi; j++ {
			dst[j-r.Lo] = float32(v)
		}
	})
}

// each calls f with the parts of r inside each group (g its index), and once with g = -1 for
// every part outside them.
func (m *means) each(r optim.Range, f func(g int, o optim.Range)) {
	rest := []optim.Range{r}
	for g, gr := range m.groups {
		if o, ok := overlap(gr, r); ok {
			f(g, o)
			var next []optim.Range
			for _, x := range rest {
				next = append(next, subtract(x, []optim.Range{o})...)
			}
			rest = next
		}
	}
	for _, o := range rest {
		f(-1, o)
	}
}

// shardsOf lays out the slices of a world of size ranks over n values: rank k owns collective.Shard.
func shardsOf(n, size int) []optim.Range {
	out := make([]optim.Range, size)
	for k := range out {
		lo, hi := collective.Shard(n, size, k)
		out[k] = optim.Range{Lo: lo, Hi: hi}
	}
	return out
}

// newShardSpec describes the re-cuts of a job's optimizer state, or returns nil when the job
// does not shard it.
func newShardSpec(job Job, model *compute.Model) (*shardSpec, error) {
	if !job.Train.ShardOptimizer {
		return nil, nil
	}
	empty, err := optim.New(job.Optimizer, 0)
	if err != nil {
		return nil, err
	}
	sp := &shardSpec{n: len(model.Params()), buffers: len(empty.State().Buffers), squares: optim.RunningSquares(job.Optimizer.Name)}
	for _, v := range model.ParamViews() {
		n := 1
		for _, d := range v.Shape {
			n *= d
		}
		sp.groups = append(sp.groups, optim.Range{Lo: v.Offset, Hi: v.Offset + n})
	}
	return sp, nil
}

// ownShard makes the replica's optimizer the one of slice h, with state st (copied).
func (r *replica) ownShard(h holding, st optim.State) error {
	cfg := r.job.Optimizer
	cfg.ClipNorm = 0 // the world's gradient norm clips, before the slice's update
	o, err := optim.New(cfg, h.hi-h.lo, optim.Within(r.model.NoDecay(), h.lo, h.hi)...)
	if err != nil {
		return err
	}
	if err := o.SetState(st); err != nil {
		return err
	}
	r.opt, r.shard = o, h
	r.shardGrad = make([]float32, h.hi-h.lo)
	return nil
}

// settleShard gives a rank of a static world (or a run alone) its slice: all ranks start from
// the same state, fresh or resumed, so each cuts its own without a transfer.
func (r *replica) settleShard() error {
	if r.sharded == nil || r.elastic {
		return nil
	}
	lo, hi := collective.Shard(r.sharded.n, r.ranks, r.rank)
	st := r.optState()
	if r.opt == nil { // fresh: zero state
		st.Buffers = make([][]float32, r.sharded.buffers)
		for i := range st.Buffers {
			st.Buffers[i] = make([]float32, hi-lo)
		}
	} else {
		for i, b := range st.Buffers {
			st.Buffers[i] = b[lo:hi]
		}
	}
	return r.ownShard(holding{lo: lo, hi: hi, cursor: r.step}, st)
}

// installShard takes the slice a world's re-cut left this rank. A state of which nothing
// survived starts the optimizer again from its first step.
func (r *replica) installShard(res recutResult, owns holding, optStep int64) error {
	if res.fresh {
		optStep = 0
	}
	return r.ownShard(owns, optim.State{Name: r.job.Optimizer.Name, Step: optStep, Buffers: res.buffers})
}

// wholeOptState is the optimizer state a snapshot holds: whole even when sharded. Rank 0 has
// it from the gather its last step made; a rank that holds only a slice otherwise (the last of
// its world, the others gone) fills the rest as a re-cut fills a lost slice.
func (r *replica) wholeOptState() optim.State {
	st := r.optState()
	if r.sharded == nil {
		return st
	}
	if g := r.gathered; g != nil {
		r.gathered = nil
		st.Buffers = g
		return st
	}
	if r.shard.lo == 0 && r.shard.hi == r.sharded.n {
		return st
	}
	res, _ := recut{shardSpec: r.sharded}.run(r.shard, st.Buffers, []optim.Range{{Hi: r.sharded.n}}, r.shard.cursor) // alone: no ring to fail
	st.Buffers = res.buffers
	return st
}

// optimizerBytes is the size of the optimizer state this rank holds.
func (r *replica) optimizerBytes() int64 {
	var n int64
	for _, b := range r.optState().Buffers {
		n += 4 * int64(len(b))
	}
	return n
}

// savesAfter says whether rank 0 writes a snapshot once the cursor reaches next: a sharded world
// gathers the optimizer state in that step. It errs towards gathering: an epoch's end under
// early stopping may stop the run, and the final snapshot follows.
func (w *worker) savesAfter(next int64) bool {
	if w.r.sharded == nil || !w.writesCheckpoints() {
		return false
	}
	every := int64(w.r.job.Checkpoint.EverySteps)
	_, inEpoch := w.r.plan.EpochOf(next)
	return next >= w.r.totalSteps || (every > 0 && next%every == 0) || (inEpoch == 0 && w.r.stopper != nil)
}

// handsOver says whether a stopped rank of a sharded world runs one more step, in which it hands
// its slice of the optimizer state to the ranks that stay.
func (w *worker) handsOver() bool {
	r := w.r
	return r.sharded != nil && r.ranks > 1 && !r.handedOver && !r.paused && r.step < r.totalSteps && r.opt != nil
}

// updateShard applies a sharded step to this rank's slice: the summed gradient there, clipped by
// the world's norm, updates the slice of the parameters into the gradient buffer, which the
// all-gather then fills with the other ranks' slices. The parameters change only once that is
// done, so a world that breaks in between leaves them at the step before; the slice's optimizer
// state is one step ahead then (see planRecut).
func (w *worker) updateShard(ctx actor.Context, msg *Reduced) {
	r := w.r
	cfg := r.job.Optimizer
	w.lr = cfg.Schedule.LR(cfg.LR, int(msg.Step), int(r.spanSteps))
	sh := r.shard
	scale := optim.ClipScale(math.Sqrt(msg.SumSquares), cfg.ClipNorm)
	for i, g := range msg.Grads[sh.lo:sh.hi] {
		r.shardGrad[i] = float32(g * scale) // as the unsharded update rounds it
	}
	slice := msg.Grads[sh.lo:sh.hi]
	copy(slice, r.model.Params()[sh.lo:sh.hi])
	r.opt.Step(slice, r.shardGrad, w.lr)
	r.shard.cursor = msg.Step + 1
	w.reduced = msg
	ctx.Request(w.aggregator, &GatherParams{Stamp: msg.Stamp, Params: msg.Grads, Leavers: msg.Leavers, Save: msg.Save,
		Holding: r.shard, Buffers: r.opt.State().Buffers, Spec: r.sharded})
}

// gathered ends a sharded step: the new parameters are in, rank 0 keeps the gathered state for
// its snapshot, and a handover leaves this rank the slice it owns among the ranks that stay.
func (w *worker) gathered(ctx actor.Context, msg *ParamsGathered) {
	r, red := w.r, w.reduced
	w.reduced = nil
	copy(r.model.Params(), msg.Params)
	r.gathered = msg.State
	if h := msg.Handover; h != nil {
		if err := r.installShard(*h, msg.Owns, r.opt.State().Step); err != nil {
			panic(err)
		}
	}
	if len(red.Leavers) > 0 && slices.Contains(red.Leavers, r.rank) {
		r.handedOver = true // given away, or lost with the world that broke while it went
	}
	if msg.Err != nil {
		// The step is applied; the broken ring fails the next one, and the world goes on
		// without the rank that broke it.
		ctx.Send(ctx.Parent(), shardTrouble{step: msg.Step, err: msg.Err})
	}
	red.ReduceSeconds += msg.Seconds
	w.applied(ctx, red, w.lr)
	w.afterStep(ctx, red)
}

// shardTrouble: Worker -> Node. What a sharded step does after its all-gather (a checkpoint's
// gather, a handover) failed; the step itself is applied.
type shardTrouble struct {
	step int64
	err  error
}

// logRecut says how a world's start re-cut this node's slice of the optimizer state.
func (n *node) logRecut(gen uint64, sh *worldShard) {
	lost := 0
	for _, l := range sh.plan.lost {
		lost += l.Hi - l.Lo
	}
	attrs := []any{"generation", gen, "slice", fmt.Sprintf("[%d, %d)", sh.owns.lo, sh.owns.hi), "received", sh.received}
	level := slog.LevelInfo
	switch {
	case sh.owns.cursor == 0: // a fresh start: the state is zero, nothing to lose
	case sh.fresh:
		level, attrs = slog.LevelWarn, append(attrs, "lost", lost, "restart", "no slice survived: the optimizer starts again from its first step")
	case lost > 0:
		level, attrs = slog.LevelWarn, append(attrs, "lost", lost, "fill", "momenta zero, squared-gradient averages the mean of what survived of each tensor")
	}
	if sh.plan.ahead > 0 {
		attrs = append(attrs, "one_step_ahead", sh.plan.ahead)
	}
	n.log.Log(context.Background(), level, "optimizer state re-cut for the world", attrs...)
}
