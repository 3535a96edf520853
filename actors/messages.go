package actors

import (
	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/compute"
)

// This file defines every message the actors of a node exchange. Each names its sender and
// receiver, and each data-plane message carries a Stamp: a receiver drops what belongs to another
// generation or to a step it is not working on.
//
// Ordering: protoactor delivers the messages of one sender to one receiver in send order. The
// Worker is the only one that starts work: it asks for a batch, then for a reduction, and waits
// for each answer before it moves on, so at most one step is in flight per node.
//
// Ownership: a slice in a message belongs to the sender until the receiver answers. A BatchReady's
// buffers stay valid until the Worker's next BatchRequest; an AllReduce's Grads until the Reduced
// answer; a SaveSnapshot's Snapshot is handed over for good (the Worker sends a copy).

// Stamp places a message in time: the world generation and the training step it belongs to.
type Stamp struct {
	Generation uint64
	Step       int64
}

// BatchRequest: Worker -> ShardReader. Asks for rank Rank's part (of Ranks) of the global
// batch of Step.
type BatchRequest struct {
	Stamp
	Rank, Ranks int
}

// BatchReady: ShardReader -> Worker. The samples of the requested step.
type BatchReady struct {
	Stamp
	Epoch   int
	Indices []int32 // the sample indices in the epoch's order, for audits and tests
	Batch   compute.Batch
}

// AllReduce: Worker -> Aggregator. This rank's gradient (already scaled by 1/global batch) and
// loss statistics of Step; the Aggregator answers with their sums over the world. The last
// SentAhead values of Grads went ahead in ReduceBucket messages of the same step, while the
// backward pass was still computing the rest.
type AllReduce struct {
	Stamp
	Grads     []float32
	SentAhead int
	LossSum   float64
	Correct   int
	Samples   int
	// Sharded (train.shard_optimizer): reduce-scatter Grads instead, so that only this rank's
	// slice holds the sum, and sum the slices' squared norms for the clipping. Leaving says that
	// this rank stops after the step (its slice is handed to the ranks that stay), Save that
	// rank 0 writes a checkpoint after it (every rank helps gather the optimizer state).
	Sharded, Leaving, Save bool
}

// ReduceBucket: Worker -> Aggregator. A trailing part of Step's gradient that the backward
// pass has finished: the Aggregator sums it over the world at once, in place, and answers
// nothing; the step's AllReduce, which follows, gets the answer for the whole gradient. Every
// rank of a world sends the same buckets in the same order (they depend only on the model).
type ReduceBucket struct {
	Stamp
	Grads []float32
}

// Reduced: Aggregator -> Worker. The world's summed gradient and statistics for Step.
type Reduced struct {
	Stamp
	Grads   []float32
	LossSum float64
	Correct int
	Samples int
	// ReduceSeconds is how long the ring all-reduces of the step took together, buckets sent
	// ahead included, among Ranks ranks (0 and 1 in a world of one, which reduces nothing).
	ReduceSeconds float64
	Ranks         int
	Buckets       int // the reductions the gradient went in: the buckets sent ahead and the rest
	// Sharded: the squared norm of the whole summed gradient, the ranks that leave after the
	// step and whether rank 0 saves after it (see AllReduce).
	SumSquares float64
	Leavers    []int
	Save       bool
}

// GatherParams: Worker -> Aggregator (train.shard_optimizer). Params holds, in this rank's
// slice, the parameters the slice's update computed for Step: all-gather them. Then, as the
// step's Reduced said, gather the optimizer state on rank 0 for a checkpoint and hand the
// leavers' slices to the ranks that stay. Holding and Buffers are this rank's slice of the
// optimizer state, read only.
type GatherParams struct {
	Stamp
	Params  []float32
	Leavers []int
	Save    bool
	Holding holding
	Buffers [][]float32
	Spec    *shardSpec
}

// ParamsGathered: Aggregator -> Worker. Params holds the step's new parameters, whole. State is,
// on rank 0 when the step saves, the whole optimizer state; Handover the slice this rank owns
// once the leavers are gone. The all-gather's failure is a ReduceFailed instead; a failure of
// what follows it is an Err here, the step being applied.
type ParamsGathered struct {
	Stamp
	Params   []float32
	State    [][]float32
	Handover *recutResult
	Owns     holding // with Handover: the slice it is
	Seconds  float64
	Err      error
}

// ReduceFailed: Aggregator -> Worker -> Node. The world's reduction of Step broke (a rank's
// stream failed); the step's update was not applied anywhere it failed.
type ReduceFailed struct {
	Stamp
	Err error
}

// SaveSnapshot: Worker -> Checkpointer. A copy of the state after Step-1 was applied.
type SaveSnapshot struct {
	Stamp
	Snapshot *checkpoint.Snapshot
}

// SnapshotSaved: Checkpointer -> Node. The outcome of a SaveSnapshot: written as Name, failed
// with Err, or Skipped because a newer snapshot superseded it while the store was busy.
type SnapshotSaved struct {
	Stamp
	Name    string
	Err     error
	Skipped bool
}

// StepDone: Worker -> Node. Step was applied; its world-wide loss and accuracy.
type StepDone struct {
	Stamp
	Epoch    int
	LR       float64
	Loss     float64 // mean loss of the step's global batch
	Accuracy float64 // share of the global batch predicted right before the update
	Samples  int
	// The step's all-reduce: its duration, the bytes of the reduced vector and the ranks it
	// ran among (1: a world of one, nothing reduced). Bus bandwidth, as NCCL and gloo report
	// it, is ReduceBytes * 2(Ranks-1)/Ranks / ReduceSeconds.
	ReduceSeconds float64
	ReduceBytes   int64
	Ranks         int
	// Buckets counts the all-reduces the gradient went in: those started during the backward
	// pass, as each bucket of trailing layers was finished, and the last one after it.
	Buckets int
}

// EpochDone: Worker -> Node. An epoch ended; validation figures when the job holds some back.
type EpochDone struct {
	Stamp
	Epoch         int
	TrainLoss     float64
	TrainAccuracy float64
	ValLoss       float64
	ValAccuracy   float64
	HasVal        bool
	Stop          bool    // early stopping says the run is over
	EvalSeconds   float64 // time spent evaluating, left out of the training throughput
	Epsilon       float64 // with DP-SGD: the privacy spent so far, at the job's delta
}

// TrainingDone: Worker -> Node. The run ended (finished, stopped early or interrupted); the
// test figures are those of the final weights.
type TrainingDone struct {
	Stamp
	TestLoss     float64
	TestAccuracy float64
	Interrupted  bool
	StoppedEarly bool
	BestEpoch    int
	EvalSeconds  float64
	// ValLoss and ValAccuracy, when HasVal, are the validation figures of a run that stopped
	// between epochs (train.max_steps or an interruption), evaluated at its last step.
	ValLoss, ValAccuracy float64
	HasVal               bool
}

// drained: Worker -> Node. A stopped run's last step is applied (or abandoned): nothing of
// this node is needed for the world's next step any more.
type drained struct{ step int64 }

// stopTraining: Run -> Node -> Worker. The context was cancelled: finish the step in flight,
// checkpoint, report TrainingDone.
type stopTraining struct{}

// startTraining: Node -> Worker. Sent once, after every child is up.
type startTraining struct{}
