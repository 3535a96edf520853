package actors

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
	"github.com/troupe-ml/troupe/data"
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

	model   *compute.Model
	opt     optim.Optimizer
	stopper *optim.Tracker // nil without early stopping

	step  int64 // the next step to run: the data cursor
	epoch epochStats

	trainSet  *data.Dataset
	val, test compute.Batch // held-out sets, gathered once
	running   bool
	stopAsked bool
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
	st := r.opt.State()
	bufs := make([][]float32, len(st.Buffers))
	for i, b := range st.Buffers {
		bufs[i] = append([]float32(nil), b...)
	}
	extra, _ := json.Marshal(r.epoch) // a struct of numbers always marshals
	epoch, _ := r.plan.EpochOf(r.step)
	return &checkpoint.Snapshot{
		Step:      r.step,
		Epoch:     epoch,
		Seed:      r.job.Seed,
		Meta:      map[string]string{"job": r.job.Name, "fingerprint": r.job.Fingerprint()},
		Params:    append([]float32(nil), r.model.Params()...),
		Optimizer: checkpoint.OptimizerState{Name: st.Name, Step: st.Step, Buffers: bufs},
		Extra:     extra,
	}
}

// metaFinal marks the snapshot a run writes when it has finished (not when interrupted).
const metaFinal = "final"

// restore loads a checkpoint into the replica after checking that it belongs to this job.
func (r *replica) restore(s *checkpoint.Snapshot) error {
	if fp := s.Meta["fingerprint"]; fp != r.job.Fingerprint() {
		return fmt.Errorf("%w: checkpoint of another job (fingerprint %q, this job %q): change checkpoint.dir or drop --resume", ErrBadJob, fp, r.job.Fingerprint())
	}
	if len(s.Params) != len(r.model.Params()) {
		return fmt.Errorf("%w: checkpoint holds %d parameters, the model has %d", ErrBadJob, len(s.Params), len(r.model.Params()))
	}
	if err := r.opt.SetState(optim.State{Name: s.Optimizer.Name, Step: s.Optimizer.Step, Buffers: s.Optimizer.Buffers}); err != nil {
		return fmt.Errorf("checkpoint optimizer state: %w", err)
	}
	var stats epochStats
	if len(s.Extra) > 0 {
		if err := json.Unmarshal(s.Extra, &stats); err != nil {
			return fmt.Errorf("checkpoint epoch statistics: %w", err)
		}
	}
	copy(r.model.Params(), s.Params)
	r.step, r.epoch = s.Step, stats
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
	case *BatchReady:
		if msg.Step != w.r.step || msg.Step != w.waiting {
			return // an answer to a request of a previous incarnation
		}
		if w.fault != nil && w.fault(msg.Step) {
			panic(fmt.Sprintf("injected fault in step %d", msg.Step))
		}
		if w.onBatch != nil {
			w.onBatch(msg)
		}
		// Forward and backward: the gradient of this rank's share of the global mean loss.
		scale := 1 / float32(w.r.globalBatchLen(msg.Step))
		lossSum, correct := w.r.model.TrainBatch(msg.Batch, scale, w.r.dropoutSeed(msg.Step))
		ctx.Request(w.aggregator, &AllReduce{Stamp: msg.Stamp, Grads: w.r.model.Grads(), LossSum: lossSum, Correct: correct, Samples: msg.Batch.N})
	case *ReduceFailed:
		if msg.Step == w.waiting {
			w.waiting = -1
			ctx.Send(ctx.Parent(), msg) // a static world cannot go on without a rank
		}
	case *Reduced:
		if msg.Step != w.r.step || msg.Step != w.waiting {
			return
		}
		w.apply(ctx, msg)
		w.afterStep(ctx, msg)
	}
}

// next asks for the batch of the cursor's step, or ends the run.
func (w *worker) next(ctx actor.Context) {
	if w.r.stopAsked {
		w.finish(ctx, true, false)
		return
	}
	if w.r.step >= w.r.totalSteps {
		w.finish(ctx, false, false)
		return
	}
	w.waiting = w.r.step
	ctx.Request(w.reader, &BatchRequest{Stamp: Stamp{Generation: w.r.generation, Step: w.r.step}})
}

// apply is one optimizer step with the world's gradient: schedule, then the update (which
// clips by global norm first when the job asks for it).
func (w *worker) apply(ctx actor.Context, msg *Reduced) {
	cfg := w.r.job.Optimizer
	lr := cfg.Schedule.LR(cfg.LR, int(msg.Step), int(w.r.spanSteps))
	w.r.opt.Step(w.r.model.Params(), msg.Grads, lr)
	w.r.step++
	w.r.epoch.LossSum += msg.LossSum
	w.r.epoch.Correct += msg.Correct
	w.r.epoch.Samples += msg.Samples
	ctx.Send(ctx.Parent(), &StepDone{
		Stamp: msg.Stamp, Epoch: w.epochOf(msg.Step), LR: lr, Samples: msg.Samples,
		Loss: msg.LossSum / float64(msg.Samples), Accuracy: float64(msg.Correct) / float64(msg.Samples),
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
		TrainLoss: st.LossSum / float64(max(st.Samples, 1)), TrainAccuracy: float64(st.Correct) / float64(max(st.Samples, 1))}
	w.r.epoch = epochStats{}
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
			_, done.Stop = w.r.stopper.Observe(done.Epoch, metric, w.r.model.Params())
		}
	}
	ctx.Send(ctx.Parent(), done)
	return done.Stop
}

func (w *worker) evaluate(b compute.Batch) (loss, accuracy float64) {
	lossSum, correct := w.r.model.Evaluate(b, w.r.job.Train.EvalBatch)
	return lossSum / float64(b.N), float64(correct) / float64(b.N)
}

func (w *worker) save(ctx actor.Context) {
	if w.ckpter != nil {
		ctx.Send(w.ckpter, &SaveSnapshot{Stamp: Stamp{Step: w.r.step}, Snapshot: w.r.snapshot()})
	}
}

// finish checkpoints the final state, restores the best weights when early stopping kept
// some, evaluates the test set and reports the end of the run.
func (w *worker) finish(ctx actor.Context, interrupted, stoppedEarly bool) {
	w.r.running = false
	if w.ckpter != nil {
		snap := w.r.snapshot()
		if !interrupted {
			snap.Meta[metaFinal] = "true"
		}
		ctx.Send(w.ckpter, &SaveSnapshot{Stamp: Stamp{Step: w.r.step}, Snapshot: snap})
	}
	done := &TrainingDone{Stamp: Stamp{Step: w.r.step}, Interrupted: interrupted, StoppedEarly: stoppedEarly}
	if w.r.stopper != nil && !interrupted {
		if epoch, _, best, ok := w.r.stopper.Best(); ok {
			copy(w.r.model.Params(), best)
			done.BestEpoch = epoch
		}
	}
	t := time.Now()
	done.TestLoss, done.TestAccuracy = w.evaluate(w.r.test)
	done.EvalSeconds = time.Since(t).Seconds()
	ctx.Send(ctx.Parent(), done)
}
