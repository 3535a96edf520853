package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/cluster"
	"github.com/troupe-ml/troupe/cluster/collective"
	"github.com/troupe-ml/troupe/cluster/wire"
	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
	"github.com/troupe-ml/troupe/compute/prune"
	"github.com/troupe-ml/troupe/data/tabular"
	"github.com/troupe-ml/troupe/sched"
)

// Options are the caller's hooks into a run. Hooks are called from the Node's goroutine, one at
// a time and in order; a slow hook slows training, so hand heavy work to another goroutine.
type Options struct {
	Logger       *slog.Logger         // nil: discard
	OnStep       func(*StepDone)      // after every applied step
	OnEpoch      func(*EpochDone)     // after every epoch
	OnCheckpoint func(*SnapshotSaved) // after every checkpoint write, failed or not
	OnStart      func(Start)          // once, when training is about to begin

	// World, when set, makes this process one rank of a fixed multi-process world.
	World *StaticWorld

	// Peer, when set, makes this process a member of an elastic cluster: it trains in the
	// worlds the cluster's members agree on, as they come and go. Genesis marks the node
	// started with the job, which waits for MinNodes ready nodes (itself included) before
	// step 0; the others join the world it creates. A run that the world leaves out returns
	// ErrLeftOut: close the Peer and run again with a new one.
	Peer     *Peer
	Genesis  bool
	MinNodes int
	// OnWorld is called whenever this node enters a world.
	OnWorld func(WorldInfo)
	// OnRestart is called whenever the supervisor restarts a role.
	OnRestart func(role string)
	// OnDrained is called once a stopped run is off its world: its last step was applied or
	// abandoned and, on a peer, a world without it was decided (or waiting for one timed
	// out). A peer leaves the cluster then: earlier, its departure would count as a failure
	// against the quorum that decides the world without it.
	OnDrained func(step int64)
	// StopGrace bounds how long a cancelled run waits for the step in flight before it breaks
	// off the world's reduction (default 10 s); `troupe node` sets it from --drain-timeout.
	StopGrace time.Duration

	// readerFault, workerFault and onBatch are test hooks: faults injected into the
	// ShardReader and the Worker, and a look at every batch the Worker accepts. bucketValues
	// replaces the job's smallest gradient bucket sent ahead, in values (< 0: none).
	readerFault  func(step int64) bool
	workerFault  func(step int64) bool
	onBatch      func(*BatchReady)
	bucketValues int
}

// Start describes a run as it begins.
type Start struct {
	Job           Job
	Params        int
	TrainSamples  int
	StepsPerEpoch int
	StartStep     int64 // > 0 when resumed
	TotalSteps    int64
	ResumedFrom   string
	Skipped       []checkpoint.SkipReport
}

// Result is what a finished run reports.
type Result struct {
	Job          string
	StartStep    int64     // the step the run began at (> 0 when resumed)
	Steps        int64     // the final cursor: steps applied since the job began
	Epochs       int       // epochs completed since the job began
	Samples      int64     // samples trained by this run
	Losses       []float64 // the mean loss of every step this run applied, from StartStep on
	TestLoss     float64
	TestAccuracy float64
	// ValLoss and ValAccuracy are the validation figures at the end of the last epoch, or at
	// the last step when the run stopped between epochs (NaN without data.validation).
	ValLoss, ValAccuracy float64
	// Text, for a text job, reports the tokenizer and the losses in bits per byte.
	Text             *TextResult
	TrainSeconds     float64 // the training loop of this run, evaluation excluded
	SamplesPerSecond float64
	WallSeconds      float64 // the whole run, data loading included
	ResumedFrom      string
	Skipped          []checkpoint.SkipReport
	Checkpoints      int
	CheckpointErrors int
	// CheckpointsSkipped counts snapshots superseded by a newer one before the store could
	// take them; SnapshotCopySeconds is what taking every snapshot stalled training.
	CheckpointsSkipped  int
	SnapshotCopySeconds float64
	Restarts            map[string]int // supervised restarts by role
	Interrupted         bool
	StoppedEarly        bool
	BestEpoch           int
	ParamsSHA256        string // digest of the final parameters (ParamsDigest)
	// With pruning: the share of zeros among the final weights, over all and per tensor.
	Sparsity         float64
	SparsityPerLayer []prune.LayerSparsity
	// For tabular data: the k-anonymity and l-diversity of the table trained on (after the
	// job's anonymization, when it has one).
	Anonymity *tabular.PrivacyReport
	// With DP-SGD: the privacy spent by every step up to the final one, as (Epsilon, Delta),
	// and the samples of this run whose gradient clipping scaled down.
	Epsilon, Delta float64
	SamplesClipped int64
	// With distill.train_teacher: the teacher's test accuracy when this run trained it first
	// (NaN when its checkpoints held a finished run already).
	TeacherTestAccuracy float64

	// On a peer: the worlds this node trained in, the members that joined and left them
	// after the first, and the steps whose work a world change threw away.
	Generations int
	Joins       int
	Departures  int
	StepsRedone int64
	Generation  uint64 // the last world's
	WorldSize   int    // the last world's

	// OptimizerStateBytes is the optimizer state this rank held at the end: all of it, or
	// under train.shard_optimizer its slice.
	OptimizerStateBytes int64
}

// WorldInfo describes a world this node entered.
type WorldInfo struct {
	Generation        uint64
	Members           []string
	Rank              int
	StartStep         int64
	Joins, Departures int
}

// stopGrace is how long a cancelled run waits for the step in flight before it breaks off the
// world's reduction.
const stopGrace = 10 * time.Second

// ErrActorFailed reports a role that kept failing after the restarts its policy allows.
var ErrActorFailed = errors.New("actors: actor failed")

// Run trains job inside this process: a Node with its ShardReader, Worker, Aggregator and
// Checkpointer, a world of one. It returns when training ends; cancelling ctx stops training at
// the next step boundary, writes a checkpoint and returns the result with Interrupted set.
func Run(ctx context.Context, job Job, opts Options) (*Result, error) {
	began := time.Now()
	if err := job.Validate(); err != nil {
		return nil, err
	}
	if err := opts.World.validate(); err != nil {
		return nil, err
	}
	if opts.Peer != nil && opts.World != nil {
		return nil, fmt.Errorf("%w: a run is either a static world or a peer", ErrBadJob)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	teacherAccuracy := math.NaN()
	if d := job.Distill; d != nil && d.TrainTeacher {
		var err error
		if teacherAccuracy, err = trainTeacher(ctx, d, log); err != nil {
			return nil, err
		}
	}
	sets, err := loadData(job)
	if err != nil {
		return nil, err
	}
	rep, err := newReplica(job, sets)
	if err != nil {
		return nil, err
	}
	defer rep.close()
	rep.rank, rep.ranks = opts.World.rank(), opts.World.size()
	if opts.World != nil {
		rep.generation = opts.World.Generation
	}
	// The job as a joiner gets it, and as generate and export find it in a checkpoint; a
	// text job's names the tokens it trains on, so a node whose corpus differs refuses to join.
	shared := job
	if sets.corpus != nil {
		shared.Data.CorpusDigest = sets.corpus.digest
	}
	spec, err := sharedJob(shared)
	if err != nil {
		return nil, err
	}
	rep.jobSpec = string(spec)
	if opts.Peer != nil && sets.corpus != nil {
		if err := opts.Peer.ServeJob(shared); err != nil {
			return nil, err
		}
	}
	var plane *dataPlane
	var sn *sched.Node
	if opts.Peer != nil {
		rep.elastic, rep.paused = true, true
		rep.lastStanding = opts.Peer.lastStanding(rep)
		plane = &dataPlane{endpoint: opts.Peer.endpoint, log: log}
		defer plane.close()
	}
	var link *collective.Link
	if rep.ranks > 1 {
		w := opts.World
		if link, err = w.Endpoint.Connect(ctx, w.Generation, w.Rank, w.Addrs); err != nil {
			return nil, fmt.Errorf("join the world: %w", err)
		}
		defer link.Close()
	}
	start := Start{Job: job, Params: len(rep.model.Params()), TrainSamples: sets.train.Len(),
		StepsPerEpoch: rep.plan.StepsPerEpoch(), TotalSteps: rep.totalSteps}

	manager, err := openCheckpoints(ctx, job, opts, rep, &start, log)
	if err != nil {
		return nil, err
	}
	if err := rep.settleShard(); err != nil {
		return nil, err
	}
	if opts.Peer != nil {
		opts.Peer.board.update(func(s *wire.Status) {
			*s = wire.Status{Job: job.Name, TotalSteps: rep.totalSteps, Header: wire.Header{Step: rep.step}}
		})
		sn, err = sched.NewNode(sched.Config{ID: opts.Peer.ID(), Genesis: opts.Genesis, MinNodes: opts.MinNodes, StartStep: rep.step,
			ProposeTimeoutTicks: proposeTimeoutTicks, JoinRetryTicks: joinRetryTicks, JoinStallTicks: joinStallTicks})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadJob, err)
		}
	}
	system := actor.NewActorSystem(
		actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
			return slog.New(cluster.Quiet(log.Handler(), slog.LevelWarn)) // protoactor is chatty at info
		}),
		// Each dead letter (a message to an actor already stopped, as happens while a failed
		// run winds down) starts a goroutine that lives one throttle interval. A short
		// interval lets Run return with nothing of its own left running for long.
		actor.WithDeadLetterThrottleInterval(50*time.Millisecond),
	)
	defer system.Shutdown()
	outcome := make(chan *Result, 1)
	n := &node{job: job, opts: opts, log: log, rep: rep, manager: manager, link: link, plane: plane, sn: sn, cursor: &readerCursor{}, outcome: outcome,
		res: &Result{Job: job.Name, StartStep: rep.step, ResumedFrom: start.ResumedFrom, Skipped: start.Skipped, Restarts: map[string]int{},
			TeacherTestAccuracy: teacherAccuracy, ValLoss: math.NaN(), ValAccuracy: math.NaN()}}
	if opts.OnStart != nil {
		opts.OnStart(start)
	}
	pid, err := system.Root.SpawnNamed(actor.PropsFromProducer(func() actor.Actor { return n }), "node")
	if err != nil {
		return nil, fmt.Errorf("spawn node: %w", err)
	}
	var res *Result
	grace := stopGrace
	if opts.StopGrace > 0 {
		grace = opts.StopGrace
	}
	select {
	case res = <-outcome:
	case <-ctx.Done():
		system.Root.Send(pid, stopTraining{})
		select {
		case res = <-outcome:
		case <-time.After(grace):
			// A reduction still waits for ranks that are not coming: break it off.
			if link != nil {
				link.Close()
			}
			if plane != nil {
				plane.close()
			}
			res = <-outcome
		}
	}
	_ = system.Root.StopFuture(pid).Wait()
	res.WallSeconds = time.Since(began).Seconds()
	res.ParamsSHA256 = ParamsDigest(rep.params())
	res.Anonymity = sets.anonymity
	if rep.pruner != nil {
		res.SparsityPerLayer, res.Sparsity = prune.Report(rep.model.Params(), prunedTensors(rep.model))
	}
	if rep.dp != nil {
		res.Epsilon, res.Delta, res.SamplesClipped = rep.dp.epsilon(), rep.dp.spec.Delta, rep.dp.clipped
	}
	res.StepsRedone = rep.redone
	res.OptimizerStateBytes = rep.optimizerBytes()
	res.SnapshotCopySeconds = rep.snapshotCopy.Seconds()
	if res.TrainSeconds > 0 {
		res.SamplesPerSecond = float64(res.Samples) / res.TrainSeconds
	}
	if c := sets.corpus; c != nil {
		res.Text = c.result(job, res)
	}
	if n.failure != nil {
		return res, n.failure
	}
	return res, nil
}

// openCheckpoints opens the job's checkpoint store and, for a run that starts the job, resumes
// from it or clears an earlier run's checkpoints as the job says. A node joining a cluster only
// writes: the world hands it its state. Without checkpoint.dir it returns nil.
func openCheckpoints(ctx context.Context, job Job, opts Options, rep *replica, start *Start, log *slog.Logger) (*checkpoint.Manager, error) {
	if job.Checkpoint.Dir == "" {
		return nil, nil
	}
	store, err := OpenStore(ctx, job.Checkpoint.Dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	manager := checkpoint.NewManager(store, job.Checkpoint.Keep).KeepEvery(int64(job.Checkpoint.KeepEvery))
	switch {
	case opts.Peer != nil && !opts.Genesis:
		return manager, nil
	case !job.Checkpoint.Resume:
		return manager, clearEarlierRun(manager, job, log)
	}
	snap, name, skipped, err := manager.LoadLatest()
	start.Skipped = skipped
	for _, s := range skipped {
		log.Warn("skipping a broken checkpoint", "checkpoint", s.Name, "reason", s.Reason)
	}
	switch {
	case errors.Is(err, checkpoint.ErrNoCheckpoint):
		log.Info("no checkpoint to resume from: starting afresh", "store", job.Checkpoint.Dir)
	case err != nil:
		return nil, fmt.Errorf("resume: %w", err)
	default:
		if err := rep.restore(snap); err != nil {
			return nil, fmt.Errorf("resume from %s: %w", name, err)
		}
		start.ResumedFrom, start.StartStep = name, rep.step
		log.Info("resuming", "checkpoint", name, "step", rep.step, "generation", snap.Generation, "world", len(snap.World))
	}
	return manager, nil
}

// ErrUnfinishedRun refuses to start afresh over the checkpoints of a run that did not finish.
var ErrUnfinishedRun = errors.New("actors: the checkpoint directory holds an unfinished run")

// clearEarlierRun empties the checkpoint directory for a fresh run. The checkpoints of a finished
// run go; those of an unfinished one stay unless the job says to overwrite them.
func clearEarlierRun(m *checkpoint.Manager, job Job, log *slog.Logger) error {
	snap, name, _, err := m.LoadLatest()
	switch {
	case errors.Is(err, checkpoint.ErrNoCheckpoint):
	case err != nil:
		return fmt.Errorf("checkpoint dir: %w", err)
	case snap.Meta[metaFinal] != "true" && !job.Checkpoint.Overwrite:
		return fmt.Errorf("%w: %s is at step %d of job %q in %s; --resume continues it, --overwrite starts afresh and deletes it, --checkpoint-dir picks another directory",
			ErrUnfinishedRun, name, snap.Step, snap.Meta["job"], job.Checkpoint.Dir)
	default:
		log.Info("starting afresh: replacing the checkpoints of an earlier run", "dir", job.Checkpoint.Dir, "newest", name)
	}
	if err := m.Clear(); err != nil {
		return fmt.Errorf("checkpoint dir: %w", err)
	}
	return nil
}

// loadData finds and reads the job's data set and cuts it as the job says.
func jobInputSize(job Job) int {
	if g := job.Model.GPT; g != nil {
		return g.BlockSize
	}
	n := 1
	for _, d := range job.Model.Input {
		n *= d
	}
	return n
}

// prunedTensors are the tensors pruning acts on: the weights of a model, not its biases.
func prunedTensors(m *compute.Model) []prune.Tensor {
	var ts []prune.Tensor
	for _, v := range m.ParamViews() {
		if strings.HasSuffix(v.Name, ".weight") {
			n := 1
			for _, d := range v.Shape {
				n *= d
			}
			ts = append(ts, prune.Tensor{Name: v.Name, Offset: v.Offset, Len: n})
		}
	}
	return ts
}

// newReplica builds the model, optimizer and plan of a job, and gathers its held-out sets.
func newReplica(job Job, sets dataSets) (*replica, error) {
	train := sets.train
	model, err := compute.NewModel(job.Model, job.Seed)
	if err != nil {
		return nil, fmt.Errorf("%w: model: %w", ErrBadJob, err)
	}
	model.SetRecompute(job.Train.Recompute)
	sharded, err := newShardSpec(job, model)
	if err != nil {
		return nil, fmt.Errorf("%w: optimizer: %w", ErrBadJob, err)
	}
	var opt optim.Optimizer
	if sharded == nil { // a sharded replica gets its slice's optimizer once it knows the slice
		if opt, err = optim.New(job.Optimizer, len(model.Params()), model.NoDecay()...); err != nil {
			return nil, fmt.Errorf("%w: optimizer: %w", ErrBadJob, err)
		}
	}
	plan := sched.SamplePlan{Seed: job.Seed, NumSamples: train.Len(), GlobalBatch: job.Train.BatchSize}
	if err := plan.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	span := int64(job.Train.Epochs) * int64(plan.StepsPerEpoch())
	total := span
	if job.Train.MaxSteps > 0 && job.Train.MaxSteps < total {
		total = job.Train.MaxSteps
	}
	r := &replica{job: job, plan: plan, totalSteps: total, spanSteps: span, model: model, opt: opt, trainSet: train,
		spare: make(chan *checkpoint.Snapshot, 1), corpus: sets.corpus, sharded: sharded, shard: holding{cursor: -1}}
	if job.Train.EarlyStopping != nil {
		r.stopper = optim.NewTracker(*job.Train.EarlyStopping)
	}
	if job.Distill != nil {
		if r.teacher, err = loadTeacher(job, model); err != nil {
			return nil, err
		}
		if r.teacherCache, err = teacherCache(r.teacher, train); err != nil {
			return nil, err
		}
	}
	if job.Privacy != nil {
		if r.dp, err = newDPState(*job.Privacy, model); err != nil {
			return nil, err
		}
	}
	if job.Prune != nil {
		if r.pruner, err = prune.New(*job.Prune, len(model.Params()), prunedTensors(model)); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadJob, err)
		}
	}
	if r.test, err = gatherAll(sets.test); err != nil {
		return nil, err
	}
	if sets.val != nil {
		if r.val, err = gatherAll(sets.val); err != nil {
			return nil, err
		}
	}
	if job.Train.onDevice() { // last: nothing after it can fail and leave it open
		if r.backend, err = compute.OpenBackend(job.Train.Device, job.Model, model.Params(), job.Optimizer); err != nil {
			return nil, fmt.Errorf("%w: train.device %s: %w", ErrBadJob, job.Train.Device, err)
		}
		r.opt = nil
	}
	return r, nil
}

// close releases the device backend's memory.
func (r *replica) close() {
	if r.backend != nil {
		_ = r.backend.Close()
	}
}

// gatherAll turns a whole data set into one batch, for evaluation.
func gatherAll(set samples) (compute.Batch, error) {
	idx := make([]int32, set.Len())
	for i := range idx {
		idx[i] = int32(i)
	}
	b := compute.Batch{X: make([]float32, set.Len()*set.SampleSize()), N: set.Len(), Labels: make([]int32, set.Len()*labelsPerSample(set))}
	err := set.Gather(idx, b.X, b.Labels)
	return b, err
}

// Supervision policies, one per role (see docs/architecture.md). Restarts counted within the
// window beyond the limit stop the role and end the run with ErrActorFailed.
type policy struct {
	maxRestarts int
	within      time.Duration
}

var policies = map[string]policy{
	// A reader's batches depend only on the step, so restarting it loses nothing: be generous.
	"reader": {maxRestarts: 5, within: time.Minute},
	// A worker restarts from the replica's last applied step; failing again and again means the
	// state itself is bad, and going on would poison the world: give up quickly.
	"worker": {maxRestarts: 2, within: time.Minute},
	// The aggregator holds no state between steps.
	"aggregator": {maxRestarts: 3, within: time.Minute},
	// The coordinator's protocol state lives in the Node (sched.Node), so a restart only
	// loses the world the Worker was last sent; the protocol's retries repair that.
	"coordinator": {maxRestarts: 3, within: time.Minute},
	// A failed write is superseded by the next one; a checkpointer that keeps crashing is a
	// storage problem the run should not hide.
	"checkpointer": {maxRestarts: 3, within: time.Minute},
}

// node is the root supervisor of one process: it spawns the roles, applies each role's
// supervision policy, relays progress to the caller's hooks and assembles the Result.
type node struct {
	job     Job
	opts    Options
	log     *slog.Logger
	rep     *replica
	manager *checkpoint.Manager
	link    *collective.Link // nil in a world of one
	plane   *dataPlane       // on a peer
	sn      *sched.Node      // on a peer: the world protocol, driven by the Coordinator
	cursor  *readerCursor
	outcome chan<- *Result

	roles          map[string]string // child PID id -> role
	reader, worker *actor.PID
	ckpter         *actor.PID
	coord          *actor.PID    // on a peer
	finished       *TrainingDone // on a peer: training ended, waiting for the others
	res            *Result
	startedAt      time.Time
	evalSeconds    float64
	done           bool
	stopping       bool
	// A stopped peer's last step, and whether it left its world (OnDrained was called).
	drainedStep int64
	departed    bool
	// On a peer: when the last step was applied, and when this node entered its world, for
	// the stall a world change cost.
	lastStepAt, worldAt time.Time
	worldGen            uint64
	failure             error
}

var _ actor.SupervisorStrategy = (*node)(nil)

func (n *node) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		n.spawn(ctx)
	case stopTraining:
		n.stopping = true
		if n.finished != nil {
			n.trainingDone(ctx, n.finished) // lingering after the end: nothing to stop
			return
		}
		if n.worker != nil {
			ctx.Send(n.worker, msg)
		}
	case *StepDone:
		n.res.Losses = append(n.res.Losses, msg.Loss)
		n.res.Samples += int64(msg.Samples)
		n.res.Steps = msg.Step + 1
		if n.coord != nil {
			ctx.Send(n.coord, msg)
			n.firstStepInWorld(msg)
			n.opts.Peer.board.step(msg)
		}
		if n.opts.OnStep != nil {
			n.opts.OnStep(msg)
		}
	case *EpochDone:
		n.res.Epochs = msg.Epoch + 1
		if msg.HasVal {
			n.res.ValLoss, n.res.ValAccuracy = msg.ValLoss, msg.ValAccuracy
		}
		n.evalSeconds += msg.EvalSeconds
		if n.opts.OnEpoch != nil {
			n.opts.OnEpoch(msg)
		}
	case *SnapshotSaved:
		switch {
		case msg.Skipped:
			n.res.CheckpointsSkipped++
			n.log.Warn("checkpoint skipped: the store is slower than the checkpoint interval, a newer snapshot superseded it", "step", msg.Step)
		case msg.Err != nil:
			n.res.CheckpointErrors++
			n.log.Error("checkpoint failed", "step", msg.Step, "err", msg.Err)
		default:
			n.res.Checkpoints++
		}
		if n.opts.OnCheckpoint != nil {
			n.opts.OnCheckpoint(msg)
		}
	case *TrainingDone:
		if n.coord != nil && msg.Interrupted && !n.departed {
			n.finished = msg // until the departure's linger is over: see lingerOver
			return
		}
		if n.coord != nil && !msg.Interrupted {
			// Stay until every member has trained the whole job too: one that
			// is behind may still need this node's state.
			n.finished = msg
			n.opts.Peer.board.update(func(s *wire.Status) { s.Training, s.Finished = false, true })
			ctx.Send(n.coord, trainingFinished{step: msg.Step})
			return
		}
		n.trainingDone(ctx, msg)
	case drained:
		n.drainedStep = msg.step
		if n.coord != nil {
			ctx.Send(n.coord, depart{}) // OnDrained once the world went on without it
			return
		}
		n.leftWorld()
	case departed:
		if n.worker != nil {
			ctx.Send(n.worker, msg)
		}
	case lingerOver:
		if n.stopping {
			n.leftWorld()
		}
		if n.finished != nil {
			n.trainingDone(ctx, n.finished)
		}
	case stateInstalled:
		n.res.Steps = msg.step
		if sh := msg.shard; sh != nil {
			n.logRecut(msg.gen, sh)
		}
		n.opts.Peer.board.update(func(s *wire.Status) { s.Step = msg.step })
		if n.coord != nil {
			ctx.Send(n.coord, msg)
		}
	case worldChanged:
		n.worldAt, n.worldGen = time.Now(), msg.world.Generation
		n.opts.Peer.board.update(func(s *wire.Status) { s.World, s.Training = worldToWire(msg.world), true })
		n.res.Generations++
		n.res.Joins += msg.joins
		n.res.Departures += msg.departures
		n.res.Generation, n.res.WorldSize = msg.world.Generation, len(msg.world.Members)
		if n.opts.OnWorld != nil {
			members := make([]string, len(msg.world.Members))
			for i, m := range msg.world.Members {
				members[i] = string(m)
			}
			n.opts.OnWorld(WorldInfo{Generation: msg.world.Generation, Members: members, Rank: msg.world.Rank(n.opts.Peer.ID()),
				StartStep: msg.world.StartStep, Joins: msg.joins, Departures: msg.departures})
		}
	case leftOut:
		if n.stopping {
			return // leaving anyway: the world went on as it should
		}
		if msg.world.Size() == 0 {
			n.fail(ctx, ErrJobStopped)
			return
		}
		n.log.Warn("the world went on without this node", "generation", msg.world.Generation)
		n.fail(ctx, fmt.Errorf("%w (generation %d)", ErrLeftOut, msg.world.Generation))
	case *ReduceFailed:
		n.fail(ctx, fmt.Errorf("step %d: %w", msg.Step, msg.Err))
	case shardTrouble:
		n.log.Warn("after the step's all-gather, gathering or handing over the optimizer state failed", "step", msg.step, "err", msg.err)
	case *actor.Terminated:
		n.terminated(ctx, msg)
	}
}

// firstStepInWorld logs the first step applied in a new world with what the change cost:
// the stall since the last step applied in the previous world, and the time since this node
// entered the new one (ring, state broadcast, first step).
func (n *node) firstStepInWorld(msg *StepDone) {
	now := time.Now()
	if msg.Generation == n.worldGen && !n.worldAt.IsZero() {
		args := []any{"generation", msg.Generation, "step", msg.Step, "since_entry_ms", now.Sub(n.worldAt).Milliseconds()}
		if !n.lastStepAt.IsZero() {
			args = append(args, "stall_ms", now.Sub(n.lastStepAt).Milliseconds())
		}
		n.log.Info("first step in a new world", args...)
		n.worldAt = time.Time{}
	}
	n.lastStepAt = now
}

// spawn starts the roles in dependency order and sets the Worker going.
func (n *node) spawn(ctx actor.Context) {
	n.roles = map[string]string{}
	// Each incarnation of a role is a fresh instance; what must outlive a restart (the reader's
	// cursor, the worker's replica) lives in the Node and is handed to every incarnation.
	if n.manager != nil {
		n.ckpter = n.spawnRole(ctx, "checkpointer", func() actor.Actor { return &checkpointer{manager: n.manager, now: time.Now, spare: n.rep.spare} })
	}
	agg := n.spawnRole(ctx, "aggregator", func() actor.Actor { return &aggregator{link: n.link, plane: n.plane, generation: n.rep.generation} })
	rc := readerConfig{set: n.rep.trainSet, plan: n.rep.plan, ranks: n.rep.ranks, rank: n.rep.rank, prefetch: n.job.Data.Prefetch,
		fault: n.opts.readerFault}
	n.reader = n.spawnRole(ctx, "reader", func() actor.Actor { return newShardReader(rc, n.cursor) })
	n.worker = n.spawnRole(ctx, "worker", func() actor.Actor {
		w := &worker{r: n.rep, reader: n.reader, aggregator: agg, ckpter: n.ckpter, onBatch: n.opts.onBatch, fault: n.opts.workerFault,
			bucket: n.rep.job.Train.bucketValues()}
		if n.opts.bucketValues != 0 {
			w.bucket = n.opts.bucketValues
		}
		return w
	})
	if n.sn != nil {
		n.coord = n.spawnRole(ctx, "coordinator", func() actor.Actor {
			return newCoordinator(n.opts.Peer, n.plane, n.sn, n.worker, n.log)
		})
	}
	n.startedAt = time.Now()
	ctx.Send(n.worker, startTraining{})
}

func (n *node) spawnRole(ctx actor.Context, role string, produce actor.Producer) *actor.PID {
	pid, err := ctx.SpawnNamed(actor.PropsFromProducer(produce), role)
	if err != nil {
		panic(fmt.Sprintf("spawn %s: %v", role, err)) // names are fixed and unique: cannot happen
	}
	n.roles[pid.Id] = role
	return pid
}

func (n *node) trainingDone(ctx actor.Context, msg *TrainingDone) {
	n.res.TrainSeconds = time.Since(n.startedAt).Seconds() - n.evalSeconds - msg.EvalSeconds
	n.res.Steps = msg.Step
	n.res.TestLoss, n.res.TestAccuracy = msg.TestLoss, msg.TestAccuracy
	if msg.HasVal {
		n.res.ValLoss, n.res.ValAccuracy = msg.ValLoss, msg.ValAccuracy
	}
	n.res.Interrupted, n.res.StoppedEarly, n.res.BestEpoch = msg.Interrupted, msg.StoppedEarly, msg.BestEpoch
	n.done = true
	if n.ckpter != nil {
		ctx.Poison(n.ckpter) // lets the queued writes, the final one among them, finish first
		return
	}
	n.finish()
}

func (n *node) terminated(ctx actor.Context, msg *actor.Terminated) {
	role := n.roles[msg.Who.Id]
	if role == "checkpointer" && n.done {
		n.finish()
		return
	}
	if !n.done && n.failure == nil {
		n.fail(ctx, fmt.Errorf("%w: %s stopped unexpectedly", ErrActorFailed, role))
	}
}

// HandleFailure applies the failing child's role policy: restart it, or stop the run.
func (n *node) HandleFailure(system *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, rs *actor.RestartStatistics, reason, message any) {
	role := n.roles[child.Id]
	p := policies[role]
	rs.Fail()
	if rs.NumberOfFailures(p.within) > p.maxRestarts {
		n.log.Error("actor keeps failing: stopping the run", "role", role, "reason", fmt.Sprint(reason))
		system.EventStream.Publish(&actor.SupervisorEvent{Child: child, Reason: reason, Directive: actor.StopDirective})
		n.failure = fmt.Errorf("%w: %s failed %d times within %s, last: %v", ErrActorFailed, role, rs.FailureCount(), p.within, reason)
		sup.StopChildren(sup.Children()...)
		n.finish()
		return
	}
	n.res.Restarts[role]++
	if n.opts.OnRestart != nil {
		n.opts.OnRestart(role)
	}
	n.log.Warn("restarting actor", "role", role, "reason", fmt.Sprint(reason), "restarts", n.res.Restarts[role])
	system.EventStream.Publish(&actor.SupervisorEvent{Child: child, Reason: reason, Directive: actor.RestartDirective})
	sup.RestartChildren(child)
}

func (n *node) fail(ctx actor.Context, err error) {
	n.failure = err
	for _, c := range ctx.Children() {
		ctx.Stop(c)
	}
	n.finish()
}

// leftWorld reports, once, that a stopped run is off its world.
func (n *node) leftWorld() {
	if n.departed {
		return
	}
	n.departed = true
	if n.opts.OnDrained != nil {
		n.opts.OnDrained(n.drainedStep)
	}
}

// finish hands the Result to Run, once.
func (n *node) finish() {
	if n.outcome == nil {
		return
	}
	n.outcome <- n.res
	n.outcome = nil
}
