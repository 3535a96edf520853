package actors

import (
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
	"github.com/troupe-ml/troupe/compute/prune"
	"github.com/troupe-ml/troupe/sched"
)

// replica is the training state of one node: the model, its optimizer and the data cursor. It
// outlives Worker incarnations (the Node owns it), so a Worker restarted after a panic goes on
// from the last applied step. Parameters change only in apply, after the step's reduction came
// back, so a failure anywhere before that leaves them as they were after the previous step.
type replica struct {
	job        Job
	plan       sched.SamplePlan
	totalSteps int64  // the run stops here: every epoch, or train.max_steps
	spanSteps  int64  // the learning-rate schedule spans every epoch, whatever max_steps says
	generation uint64 // the world this replica trains in: every request carries it
	rank       int    // this process's place in the world
	ranks      int    // the world's size

	// model holds the parameters on the host. With a device backend (train.device) it is the
	// host copy: the backend trains and steps, and the copy is refreshed from the device only
	// when something reads it (evaluation, snapshots, state transfers).
	model   *compute.Model
	opt     optim.Optimizer // nil with a device backend, which keeps its own
	backend compute.Backend // nil on the CPU
	stale   bool            // the device's parameters moved since model's were read
	stopper *optim.Tracker  // nil without early stopping
	pruner  *prune.Pruner   // nil without pruning
	dp      *dpState        // nil without DP-SGD
	teacher *compute.Model  // nil without distillation
	// teacherCache holds the teacher's logits for every training sample (see teacherCache),
	// teacherBatch a batch's rows of it.
	teacherCache, teacherBatch []float32

	step  int64 // the next step to run: the data cursor
	epoch epochStats

	trainSet  samples
	val, test compute.Batch // held-out sets, gathered once
	corpus    *corpus       // a text job's tokenizer and figures
	// accum sums the micro-batches' gradients of a step (train.micro_batch).
	accum []float32
	// Under train.shard_optimizer (see shard.go) opt updates only this rank's slice of the
	// optimizer state: shard says which, and before which step it stands. shardGrad holds the
	// slice's clipped gradient during an update; gathered, on rank 0, the whole state gathered
	// for the next snapshot; handedOver says that a leaving rank gave its slice away.
	sharded    *shardSpec
	shard      holding
	shardGrad  []float32
	gathered   [][]float32
	handedOver bool

	running   bool
	stopAsked bool

	// On a peer: the Worker trains only inside a world whose state it installed, and not
	// after the node promised its vote on the next world.
	elastic   bool
	members   []string // the world's, in rank order, for snapshots
	jobSpec   string   // the job as a joiner gets it, kept in every snapshot
	paused    bool
	pausedGen uint64 // the newest world the Coordinator paused
	redone    int64  // steps computed or applied and then thrown away by a world change
	departing bool   // stopped; waiting to learn whether it saves the final state
	// spare holds snapshots the Checkpointer wrote, whose buffers the next copy reuses;
	// snapshotCopy is the time the Worker spent copying state for snapshots.
	spare        chan *checkpoint.Snapshot
	snapshotCopy time.Duration
	// lastStanding reports, on a peer, whether every other member of its world has gone or
	// is leaving.
	lastStanding func() bool
}

// epochStats accumulates the current epoch's training figures; it is checkpointed (as JSON in
// the snapshot's Extra) so a resumed run reports the same epoch figures.
type epochStats struct {
	LossSum float64 `json:"loss_sum"`
	Correct int     `json:"correct"`
	Samples int     `json:"samples"`
}

// snapshot copies the replica's state for the Checkpointer, which writes it while training goes on.
func (r *replica) snapshot() *checkpoint.Snapshot {
	began := time.Now()
	defer func() { r.snapshotCopy += time.Since(began) }()
	var s *checkpoint.Snapshot
	select {
	case s = <-r.spare: // written already: its buffers are free
	default:
		s = &checkpoint.Snapshot{}
	}
	st := r.wholeOptState()
	bufs := s.Optimizer.Buffers[:0]
	for i, b := range st.Buffers {
		var into []float32
		if i < len(s.Optimizer.Buffers) {
			into = s.Optimizer.Buffers[i]
		}
		bufs = append(bufs, copyInto(into, b))
	}
	extra, _ := json.Marshal(r.epoch) // a struct of numbers always marshals
	epoch, _ := r.plan.EpochOf(r.step)
	*s = checkpoint.Snapshot{
		Step:       r.step,
		Epoch:      epoch,
		Seed:       r.job.Seed,
		Generation: r.generation,
		World:      r.members,
		Meta:       map[string]string{"job": r.job.Name, "fingerprint": r.job.Fingerprint(), "job_spec": r.jobSpec},
		Params:     copyInto(s.Params, r.params()),
		Optimizer:  checkpoint.OptimizerState{Name: st.Name, Step: st.Step, Buffers: bufs},
		Extra:      extra,
	}
	if c := r.corpus; c != nil {
		s.Meta[metaTokenizer], s.Meta[metaCorpus] = c.tokenizerMeta, c.digest
	}
	return s
}

// beforeReduce readies grads[lo:hi], this rank's gradient scaled by scale, for the
// all-reduce: pruned weights' gradients are zeroed, and with DP-SGD rank 0 adds the step's
// noise, so that the world's sum holds it exactly once.
func (r *replica) beforeReduce(grads []float32, lo, hi int, scale float32) {
	if r.pruner != nil {
		r.pruner.MaskGrads(grads, lo, hi)
	}
	if r.dp != nil && r.rank == 0 {
		r.dp.addNoise(grads[lo:hi], float64(scale))
	}
}

// restoreDerived rebuilds what restored state implies: pruning masks from the parameters'
// zeros, the privacy accountant from the steps taken.
func (r *replica) restoreDerived() {
	if r.pruner != nil {
		r.pruner.Restore(r.step, r.model.Params())
	}
	if r.dp != nil {
		r.dp.accountUpTo(r, r.step)
	}
}

// params returns the host parameters, read from the device first when a device step moved them.
func (r *replica) params() []float32 {
	if r.stale {
		if err := r.backend.ReadParams(r.model.Params()); err != nil {
			panic(fmt.Errorf("reading the parameters from %s: %w", r.backend.Device(), err)) // a broken device
		}
		r.stale = false
	}
	return r.model.Params()
}

// grads is where a step's gradient goes: the model's gradient on the CPU, the backend's own
// host buffer where it has one.
func (r *replica) grads() []float32 {
	if h, ok := r.backend.(compute.HostGradients); ok {
		return h.GradientBuffer()
	}
	return r.model.Grads()
}

// setParams replaces the parameters, on the device too.
func (r *replica) setParams(src []float32) error {
	copy(r.model.Params(), src)
	r.stale = false
	if r.backend != nil {
		return r.backend.WriteParams(r.model.Params())
	}
	return nil
}

// optState is the optimizer's state: views of the CPU optimizer's buffers, or a copy of the
// device's.
func (r *replica) optState() optim.State {
	if r.sharded != nil && r.opt == nil {
		return optim.State{Name: r.job.Optimizer.Name} // a joiner holds no slice yet
	}
	if r.backend == nil {
		return r.opt.State()
	}
	st, err := r.backend.OptimizerState()
	if err != nil {
		panic(fmt.Errorf("reading the optimizer state from %s: %w", r.backend.Device(), err))
	}
	return st
}

func (r *replica) setOptState(st optim.State) error {
	if r.sharded != nil { // a whole state: the slice [0, n), until a world re-cuts it
		return r.ownShard(holding{hi: len(r.model.Params()), cursor: r.step}, st)
	}
	if r.backend == nil {
		return r.opt.SetState(st)
	}
	return r.backend.SetOptimizerState(st)
}

// copyInto copies src into dst when dst has its length, or into a new slice.
func copyInto(dst, src []float32) []float32 {
	if len(dst) != len(src) {
		dst = make([]float32, len(src))
	}
	copy(dst, src)
	return dst
}

// metaFinal marks the snapshot a run writes when it has finished (not when interrupted).
const metaFinal = "final"

// restore loads a checkpoint into the replica after checking that it belongs to this job.
func (r *replica) restore(s *checkpoint.Snapshot) error {
	if fp := s.Meta["fingerprint"]; !r.job.WroteCheckpoint(fp) {
		return fmt.Errorf("%w: checkpoint of another job (fingerprint %q, this job %q): change checkpoint.dir or drop --resume", ErrBadJob, fp, r.job.Fingerprint())
	}
	if len(s.Params) != len(r.model.Params()) {
		return fmt.Errorf("%w: checkpoint holds %d parameters, the model has %d", ErrBadJob, len(s.Params), len(r.model.Params()))
	}
	if err := r.setOptState(optim.State{Name: s.Optimizer.Name, Step: s.Optimizer.Step, Buffers: s.Optimizer.Buffers}); err != nil {
		return fmt.Errorf("checkpoint optimizer state: %w", err)
	}
	var stats epochStats
	if len(s.Extra) > 0 {
		if err := json.Unmarshal(s.Extra, &stats); err != nil {
			return fmt.Errorf("checkpoint epoch statistics: %w", err)
		}
	}
	if err := r.setParams(s.Params); err != nil {
		return err
	}
	r.step, r.epoch = s.Step, stats
	r.shard.cursor = max(r.shard.cursor, r.step) // a sharded replica holds the whole state at the cursor
	r.restoreDerived()
	return nil
}

// globalBatchLen is the size of the step's global batch: the last step of an epoch is short.
func (r *replica) globalBatchLen(step int64) int {
	_, inEpoch := r.plan.EpochOf(step)
	return min(r.plan.GlobalBatch, r.plan.NumSamples-inEpoch*r.plan.GlobalBatch)
}

// dropoutSeed derives the dropout masks of a step from the job seed, so a replayed step (after
// a restart or a resume) draws the same masks.
func (r *replica) dropoutSeed(step int64) uint64 {
	return splitmix(r.job.Seed ^ splitmix(uint64(step)<<16|uint64(r.rank)))
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// worker runs the training loop as messages: ask for a batch, compute the gradient, have it
// reduced, apply it, report, repeat. It holds no state of its own beyond the replica and the
// PIDs it talks to.
type worker struct {
	r                          *replica
	reader, aggregator, ckpter *actor.PID // ckpter is nil without checkpoints
	waiting                    int64      // the step whose answer is awaited; -1 when idle
	onBatch                    func(*BatchReady)
	fault                      func(step int64) bool // panics the worker when it says so (tests)
	bucket                     int                   // the fewest values sent ahead; < 0: none
	// reduced and lr are, under train.shard_optimizer, the step whose parameters are being
	// gathered and its learning rate.
	reduced *Reduced
	lr      float64
}

// Receive: startTraining, BatchReady, Reduced, stopTraining. A restarted incarnation asks
// again for the batch of the replica's cursor.
func (w *worker) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		w.waiting = -1
		if w.r.running {
			w.next(ctx)
		}
	case startTraining:
		w.r.running = true
		w.next(ctx)
	case stopTraining:
		w.r.stopAsked = true
		if w.r.running && w.waiting < 0 {
			w.next(ctx) // idle between worlds: stop now
		}
	case enterWorld:
		w.enter(ctx, msg)
	case *worldJoined:
		w.joined(ctx, msg)
	case pauseTraining:
		w.r.pausedGen = max(w.r.pausedGen, msg.gen)
		w.r.paused = w.r.paused || msg.gen == w.r.generation
	case *BatchReady:
		if msg.Step != w.r.step || msg.Step != w.waiting || msg.Generation != w.r.generation {
			return // an answer to a request of a previous incarnation
		}
		if w.fault != nil && w.fault(msg.Step) {
			panic(fmt.Sprintf("injected fault in step %d", msg.Step))
		}
		if w.onBatch != nil {
			w.onBatch(msg)
		}
		w.compute(ctx, msg)
	case *ReduceFailed:
		if msg.Step == w.waiting && msg.Generation == w.r.generation {
			w.waiting, w.reduced = -1, nil
			if w.r.elastic {
				// A member is gone or frozen: the Coordinator will commit a world
				// without it, and this step is run again there.
				w.r.redone++
				w.r.paused = true
				if w.r.stopAsked {
					w.next(ctx) // leaving: this was the last step it would have run
				}
				return
			}
			ctx.Send(ctx.Parent(), msg) // a static world cannot go on without a rank
		}
	case *Reduced:
		if msg.Step != w.r.step || msg.Step != w.waiting || msg.Generation != w.r.generation {
			return
		}
		if w.r.sharded != nil {
			w.updateShard(ctx, msg)
			return
		}
		w.apply(ctx, msg)
		w.afterStep(ctx, msg)
	case *ParamsGathered:
		if r := w.reduced; r == nil || msg.Stamp != r.Stamp || msg.Step != w.waiting || msg.Generation != w.r.generation {
			return
		}
		w.gathered(ctx, msg)
	case departed:
		if w.r.departing {
			w.r.departing = false
			w.conclude(ctx, true, false, msg)
		}
	}
}

// defaultBucketValues is the fewest gradient values a bucket sent ahead holds unless the job
// says otherwise (1 MiB): fewer and larger buckets waste less on per-reduction latency, more
// and smaller ones start sooner.
const defaultBucketValues = 1 << 18

// compute runs forward and backward: the gradient of this rank's share of the global mean
// loss. In a world of several ranks, the gradients of the last layers go to the Aggregator in
// buckets as soon as the backward pass has finished them, so that their reduction overlaps
// the backward pass of the layers before them; the AllReduce that follows carries the rest.
func (w *worker) compute(ctx actor.Context, msg *BatchReady) {
	scale := 1 / float32(w.r.globalBatchLen(msg.Step))
	grads := w.r.grads()
	if w.r.teacher != nil {
		// The teacher's logits for the same samples are the student's soft targets.
		msg.Batch.Teacher = w.r.teacherLogits(msg)
	}
	sent := len(grads) // grads[sent:] went ahead
	var ready func(from int)
	if w.r.ranks > 1 && w.bucket >= 0 && w.r.backend == nil && w.r.sharded == nil {
		ready = func(from int) {
			if from > 0 && sent-from >= w.bucket {
				w.r.beforeReduce(grads, from, sent, scale)
				ctx.Send(w.aggregator, &ReduceBucket{Stamp: msg.Stamp, Grads: grads[from:sent]})
				sent = from
			}
		}
	}
	var lossSum float64
	var correct int
	if micro := w.r.job.Train.MicroBatch; micro > 0 && msg.Batch.N > micro {
		lossSum, correct = w.r.trainMicroBatches(msg, scale, micro, grads)
	} else if b := w.r.backend; b != nil {
		var err error
		if lossSum, correct, err = b.TrainBatch(msg.Batch, scale, w.r.dropoutSeed(msg.Step), grads); err != nil {
			panic(fmt.Errorf("step %d on %s: %w", msg.Step, b.Device(), err))
		}
	} else if dp := w.r.dp; dp != nil {
		var clipped int
		lossSum, correct, clipped = w.r.model.TrainBatchClipped(msg.Batch, scale, w.r.dropoutSeed(msg.Step), dp.spec.ClipNorm, ready)
		dp.clipped += int64(clipped)
	} else {
		lossSum, correct = w.r.model.TrainBatchStreaming(msg.Batch, scale, w.r.dropoutSeed(msg.Step), ready)
	}
	w.r.beforeReduce(grads, 0, sent, scale)
	ctx.Request(w.aggregator, &AllReduce{Stamp: msg.Stamp, Grads: grads, SentAhead: len(grads) - sent,
		LossSum: lossSum, Correct: correct, Samples: msg.Batch.N,
		Sharded: w.r.sharded != nil, Leaving: w.r.stopAsked, Save: w.savesAfter(msg.Step + 1)})
}

// trainMicroBatches computes the gradient of the step's batch in micro-batches of at most micro
// samples and leaves their sum in grads. Each micro-batch's gradient carries the same scale (one
// over the global batch), so the sum is the gradient of the whole batch up to float32 rounding
// in the order of the additions. Dropout masks are drawn per micro-batch.
func (r *replica) trainMicroBatches(msg *BatchReady, scale float32, micro int, grads []float32) (lossSum float64, correct int) {
	b := msg.Batch
	in, rows := r.model.InputSize(), r.model.RowsPerSample()
	if len(r.accum) != len(grads) {
		r.accum = make([]float32, len(grads))
	}
	for first, k := 0, 0; first < b.N; first, k = first+micro, k+1 {
		n := min(micro, b.N-first)
		part := compute.Batch{X: b.X[first*in : (first+n)*in], N: n, Labels: b.Labels[first*rows : (first+n)*rows]}
		seed := r.dropoutSeed(msg.Step) ^ splitmix(uint64(k))
		var l float64
		var c int
		if be := r.backend; be != nil {
			var err error
			if l, c, err = be.TrainBatch(part, scale, seed, grads); err != nil {
				panic(fmt.Errorf("step %d on %s: %w", msg.Step, be.Device(), err))
			}
		} else {
			l, c = r.model.TrainBatch(part, scale, seed)
		}
		lossSum, correct = lossSum+l, correct+c
		if k == 0 {
			copy(r.accum, grads)
			continue
		}
		for i, g := range grads {
			r.accum[i] += g
		}
	}
	copy(grads, r.accum)
	return lossSum, correct
}

// accuracy is the share of predictions that were right: one per sample, or per position of a
// text window.
func (r *replica) accuracy(correct, samples int) float64 {
	return float64(correct) / float64(max(samples*r.model.RowsPerSample(), 1))
}

// next asks for the batch of the cursor's step, or ends the run.
func (w *worker) next(ctx actor.Context) {
	if w.r.stopAsked && !w.handsOver() {
		w.finish(ctx, true, false)
		return
	}
	if w.r.step >= w.r.totalSteps {
		w.finish(ctx, false, false)
		return
	}
	if w.r.paused {
		return // until the next world
	}
	w.waiting = w.r.step
	ctx.Request(w.reader, &BatchRequest{Stamp: Stamp{Generation: w.r.generation, Step: w.r.step}, Rank: w.r.rank, Ranks: w.r.ranks})
}

// enter starts the move to a new world: whatever step was in flight is abandoned, and the
// Aggregator connects the world's ring and broadcasts the state every member starts from.
func (w *worker) enter(ctx actor.Context, msg enterWorld) {
	if w.waiting >= 0 {
		w.r.redone++
		w.waiting, w.reduced = -1, nil
	}
	w.r.generation, w.r.rank, w.r.ranks = msg.world.Generation, msg.rank, len(msg.addrs)
	w.r.members = make([]string, len(msg.world.Members))
	for i, m := range msg.world.Members {
		w.r.members[i] = string(m)
	}
	w.r.paused = true
	// A fresh buffer each time: the Aggregator may still be writing into the previous one
	// while it notices that its world is gone.
	join := &joinWorld{gen: msg.world.Generation, start: msg.world.StartStep, rank: msg.rank,
		addrs: msg.addrs, root: msg.root, state: w.r.encodeState()}
	if sp := w.r.sharded; sp != nil {
		join.shard = &shardJoin{spec: sp, holds: w.r.shard, buffers: w.r.optState().Buffers}
	}
	ctx.Request(w.aggregator, join)
}

// joined installs the world's starting state and goes on training.
func (w *worker) joined(ctx actor.Context, msg *worldJoined) {
	if msg.gen != w.r.generation {
		return // superseded while it was being joined
	}
	if msg.err != nil {
		// The world broke while starting (a member died or froze): the Coordinator
		// commits the next one.
		return
	}
	before := w.r.step
	if err := w.r.installState(msg.state); err != nil {
		panic(err) // same job, same layout: a mismatch is a bug the supervisor should see
	}
	var recut *worldShard
	if sh := msg.shard; sh != nil {
		_, optStep := stateCursor(msg.state)
		if err := w.r.installShard(sh.recutResult, sh.owns, optStep); err != nil {
			panic(err)
		}
		recut = sh
	}
	w.r.redone += max(before-w.r.step, 0)
	ctx.Send(ctx.Parent(), stateInstalled{gen: msg.gen, step: w.r.step, shard: recut})
	w.r.paused = w.r.pausedGen >= msg.gen
	if w.r.running {
		w.next(ctx)
	}
}

// apply is one optimizer step with the world's gradient: schedule, then the update (which
// clips by global norm first when the job asks for it).
func (w *worker) apply(ctx actor.Context, msg *Reduced) {
	cfg := w.r.job.Optimizer
	lr := cfg.Schedule.LR(cfg.LR, int(msg.Step), int(w.r.spanSteps))
	if b := w.r.backend; b != nil {
		if err := b.Step(msg.Grads, lr); err != nil {
			panic(fmt.Errorf("step %d on %s: %w", msg.Step, b.Device(), err))
		}
		w.r.stale = true
	} else {
		w.r.opt.Step(w.r.model.Params(), msg.Grads, lr)
	}
	w.applied(ctx, msg, lr)
}

// applied counts a step whose update is in the parameters and reports it.
func (w *worker) applied(ctx actor.Context, msg *Reduced, lr float64) {
	w.r.step++
	if w.r.dp != nil {
		w.r.dp.accountUpTo(w.r, w.r.step)
	}
	if p := w.r.pruner; p != nil {
		p.MaskParams(w.r.model.Params()) // momentum moves pruned weights too
		p.Prune(w.r.step, w.r.model.Params())
	}
	w.r.epoch.LossSum += msg.LossSum
	w.r.epoch.Correct += msg.Correct
	w.r.epoch.Samples += msg.Samples
	ctx.Send(ctx.Parent(), &StepDone{
		Stamp: msg.Stamp, Epoch: w.epochOf(msg.Step), LR: lr, Samples: msg.Samples,
		ReduceSeconds: msg.ReduceSeconds, ReduceBytes: 4 * int64(len(msg.Grads)), Ranks: max(msg.Ranks, 1), Buckets: msg.Buckets,
		Loss: msg.LossSum / float64(msg.Samples), Accuracy: w.r.accuracy(msg.Correct, msg.Samples),
	})
}

func (w *worker) epochOf(step int64) int {
	e, _ := w.r.plan.EpochOf(step)
	return e
}

// afterStep closes an epoch when the step was its last, checkpoints on cadence, and moves on.
func (w *worker) afterStep(ctx actor.Context, msg *Reduced) {
	w.waiting = -1
	stop := false
	if _, inEpoch := w.r.plan.EpochOf(w.r.step); inEpoch == 0 {
		stop = w.endEpoch(ctx, msg.Stamp)
	}
	every := int64(w.r.job.Checkpoint.EverySteps)
	if every > 0 && w.r.step%every == 0 && w.r.step < w.r.totalSteps && !stop {
		w.save(ctx)
	}
	if stop {
		w.finish(ctx, false, true)
		return
	}
	w.next(ctx)
}

// endEpoch reports the epoch's figures, evaluates the validation set and asks early stopping.
func (w *worker) endEpoch(ctx actor.Context, stamp Stamp) (stop bool) {
	st := w.r.epoch
	done := &EpochDone{Stamp: stamp, Epoch: w.epochOf(stamp.Step),
		TrainLoss: st.LossSum / float64(max(st.Samples, 1)), TrainAccuracy: w.r.accuracy(st.Correct, st.Samples)}
	w.r.epoch = epochStats{}
	if w.r.dp != nil {
		done.Epsilon = w.r.dp.epsilon()
	}
	if w.r.val.N > 0 {
		t := time.Now()
		done.ValLoss, done.ValAccuracy = w.evaluate(w.r.val)
		done.EvalSeconds = time.Since(t).Seconds()
		done.HasVal = true
		if w.r.stopper != nil {
			metric := done.ValLoss
			if w.r.job.Train.EarlyStopping.Metric == "val_accuracy" {
				metric = done.ValAccuracy
			}
			_, done.Stop = w.r.stopper.Observe(done.Epoch, metric, w.r.params())
		}
	}
	ctx.Send(ctx.Parent(), done)
	return done.Stop
}

func (w *worker) evaluate(b compute.Batch) (loss, accuracy float64) {
	w.r.params() // the host copy evaluates
	lossSum, correct := w.r.model.Evaluate(b, w.r.job.Train.EvalBatch)
	return lossSum / float64(b.N), w.r.accuracy(correct, b.N)
}

// writesCheckpoints: in a world of several members only rank 0 writes.
func (w *worker) writesCheckpoints() bool { return w.ckpter != nil && w.r.rank == 0 }

// writesFinal says whether the snapshot at the end of this node's run is written. A run that
// trained the whole job, or one in a single process, always writes it (rank 0 in a cluster).
// A peer that leaves early writes it when its departure ended the job (it held the newest
// state and nobody stayed), or, when no departure could be decided, when gossip shows no other
// member of its world still there; so a fleet whose nodes all go keeps the step the last one
// reached, written once.
func (w *worker) writesFinal(interrupted bool, d departed) bool {
	switch {
	case w.ckpter == nil:
		return false
	case !w.r.elastic || !interrupted:
		return w.writesCheckpoints()
	case d.decided:
		return d.final
	}
	return w.r.lastStanding == nil || w.r.lastStanding()
}

func (w *worker) save(ctx actor.Context) {
	if w.writesCheckpoints() {
		ctx.Send(w.ckpter, &SaveSnapshot{Stamp: Stamp{Step: w.r.step}, Snapshot: w.r.snapshot()})
	}
}

// finish ends the run: at once, or for a peer that was stopped, once its departure from the
// world is decided.
func (w *worker) finish(ctx actor.Context, interrupted, stoppedEarly bool) {
	w.r.running = false
	if interrupted {
		ctx.Send(ctx.Parent(), drained{step: w.r.step}) // the last step is in: a peer may go
		if w.r.elastic {
			w.r.departing = true // its world decides whether it saves the final state
			return
		}
	}
	w.conclude(ctx, interrupted, stoppedEarly, departed{})
}

// conclude writes the final snapshot if this node should, restores the best weights when
// early stopping kept some, evaluates the test set and reports the end of the run.
func (w *worker) conclude(ctx actor.Context, interrupted, stoppedEarly bool, d departed) {
	if w.writesFinal(interrupted, d) {
		snap := w.r.snapshot()
		if !interrupted {
			snap.Meta[metaFinal] = "true"
		}
		ctx.Send(w.ckpter, &SaveSnapshot{Stamp: Stamp{Step: w.r.step}, Snapshot: snap})
	}
	done := &TrainingDone{Stamp: Stamp{Step: w.r.step}, Interrupted: interrupted, StoppedEarly: stoppedEarly}
	if w.r.stopper != nil && !interrupted {
		if epoch, _, best, ok := w.r.stopper.Best(); ok {
			if err := w.r.setParams(best); err != nil {
				panic(err)
			}
			done.BestEpoch = epoch
		}
	}
	t := time.Now()
	if _, inEpoch := w.r.plan.EpochOf(w.r.step); inEpoch != 0 && w.r.val.N > 0 {
		done.ValLoss, done.ValAccuracy = w.evaluate(w.r.val)
		done.HasVal = true
	}
	done.TestLoss, done.TestAccuracy = w.evaluate(w.r.test)
	done.EvalSeconds = time.Since(t).Seconds()
	ctx.Send(ctx.Parent(), done)
}

// stateCursor reads the cursor and the optimizer's step count from an encoded state's header.
func stateCursor(s []float32) (cursor, optStep int64) {
	if len(s) < stateHeader {
		return -1, -1
	}
	word := func(i int) int64 {
		return int64(uint64(math.Float32bits(s[2*i])) | uint64(math.Float32bits(s[2*i+1]))<<32)
	}
	return word(0), word(1)
}

// stateHeader is the number of float32 words in front of an encoded state: the cursor, the
// optimizer's step count and the epoch's running figures, each a 64-bit value in two words.
const stateHeader = 10

// encodeState lays the replica's whole training state out as one vector, so that a world's
// first broadcast can carry it: a header of 64-bit values split into float32 words (the
// broadcast copies bits, so they arrive intact), the parameters, then every optimizer buffer.
func (r *replica) encodeState() []float32 {
	st := r.optState()
	if r.sharded != nil {
		st.Buffers = nil // the slices are re-cut after the broadcast
	}
	params := r.params()
	n := stateHeader + len(params)
	for _, b := range st.Buffers {
		n += len(b)
	}
	out := make([]float32, n)
	for i, v := range [stateHeader / 2]uint64{uint64(r.step), uint64(st.Step), math.Float64bits(r.epoch.LossSum),
		uint64(r.epoch.Correct), uint64(r.epoch.Samples)} {
		out[2*i], out[2*i+1] = math.Float32frombits(uint32(v)), math.Float32frombits(uint32(v>>32))
	}
	off := stateHeader + copy(out[stateHeader:], params)
	for _, b := range st.Buffers {
		off += copy(out[off:], b)
	}
	return out
}

// installState replaces the replica's state with an encoded one (see encodeState), which a
// replica of the same job produced.
func (r *replica) installState(s []float32) error {
	st := r.optState()
	if r.sharded != nil {
		st.Buffers = nil
	}
	params := r.params()
	want := stateHeader + len(params)
	for _, b := range st.Buffers {
		want += len(b)
	}
	if len(s) != want {
		return fmt.Errorf("state transfer: %d values, this job's state has %d", len(s), want)
	}
	var h [stateHeader / 2]uint64
	for i := range h {
		h[i] = uint64(math.Float32bits(s[2*i])) | uint64(math.Float32bits(s[2*i+1]))<<32
	}
	if int64(h[0]) < 0 || int64(h[0]) > r.totalSteps || int64(h[1]) < 0 {
		return fmt.Errorf("state transfer: cursor %d, optimizer step %d out of range", int64(h[0]), int64(h[1]))
	}
	bufs := make([][]float32, len(st.Buffers))
	off := stateHeader + len(params)
	for i, b := range st.Buffers {
		bufs[i] = s[off : off+len(b)]
		off += len(b)
	}
	if r.sharded == nil {
		if err := r.setOptState(optim.State{Name: st.Name, Step: int64(h[1]), Buffers: bufs}); err != nil {
			return fmt.Errorf("state transfer: %w", err)
		}
	}
	if err := r.setParams(s[stateHeader : stateHeader+len(params)]); err != nil {
		return fmt.Errorf("state transfer: %w", err)
	}
	r.step = int64(h[0])
	r.epoch = epochStats{LossSum: math.Float64frombits(h[2]), Correct: int(h[3]), Samples: int(h[4])}
	r.restoreDerived()
	return nil
}
