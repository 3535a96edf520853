package actors

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/compute"
)

// smallJob trains a small MLP on the first 1,200 MNIST samples: enough steps to cross epoch
// boundaries and checkpoints in well under a second of compute.
func smallJob(t *testing.T) Job {
	t.Helper()
	job := DefaultJob()
	job.Name = "small"
	job.Seed = 7
	job.Model = compute.MLP(784, []int{32}, 10)
	job.Model.Layers = append(job.Model.Layers[:2], append([]compute.LayerSpec{{Type: "dropout", Rate: 0.1}}, job.Model.Layers[2:]...)...)
	job.Data.TrainLimit = 1200
	job.Data.TestLimit = 500
	job.Train.Epochs = 3
	job.Train.BatchSize = 50
	job.Checkpoint = CheckpointSpec{Dir: t.TempDir(), EverySteps: 10, Keep: 3}
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	return job
}

// batchLog records, step by step, the sample indices the Worker trained on.
type batchLog struct {
	mu    sync.Mutex
	steps map[int64][]int32
}

func (l *batchLog) record(b *BatchReady) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.steps == nil {
		l.steps = map[int64][]int32{}
	}
	l.steps[b.Step] = slices.Clone(b.Indices)
}

func mustRun(t *testing.T, ctx context.Context, job Job, opts Options) *Result {
	t.Helper()
	res, err := Run(ctx, job, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return res
}

func sameBits(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float64bits(a[i]) != math.Float64bits(b[i]) {
			return false
		}
	}
	return true
}

// DESIGN: "a panic in a ShardReader restarts that reader from its cursor". The Worker must
// see exactly the sample sequence of a run without the fault.
func TestShardReaderPanicKeepsSampleSequence(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Checkpoint.Dir = ""

	var clean batchLog
	want := mustRun(t, context.Background(), job, Options{onBatch: clean.record})

	// Panic twice: once mid-epoch on the first request of step 7, once in the second epoch;
	// each fires on the first attempt only, whether the batch was being prefetched or served.
	var faulty batchLog
	var fired sync.Map
	var faults atomic.Int32
	fault := func(step int64) bool {
		if step != 7 && step != 30 {
			return false
		}
		if _, done := fired.LoadOrStore(step, true); done {
			return false
		}
		faults.Add(1)
		return true
	}
	got := mustRun(t, context.Background(), job, Options{onBatch: faulty.record, readerFault: fault})

	if faults.Load() != 2 || got.Restarts["reader"] != 2 {
		t.Fatalf("faults injected %d, reader restarts %d; want 2 and 2", faults.Load(), got.Restarts["reader"])
	}
	if len(faulty.steps) != len(clean.steps) || int64(len(clean.steps)) != want.Steps {
		t.Fatalf("steps seen: faulty %d, clean %d, run %d", len(faulty.steps), len(clean.steps), want.Steps)
	}
	for s, idx := range clean.steps {
		if !slices.Equal(faulty.steps[s], idx) {
			t.Fatalf("step %d: samples differ after the fault:\n got %v\nwant %v", s, faulty.steps[s], idx)
		}
	}
	if !sameBits(got.Losses, want.Losses) {
		t.Fatalf("losses differ after the fault")
	}
	if got.TestAccuracy != want.TestAccuracy {
		t.Fatalf("test accuracy %v, want %v", got.TestAccuracy, want.TestAccuracy)
	}
}

// Within an epoch every training sample is seen exactly once, the short last batch included.
func TestEpochCoversEverySampleOnce(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	job.Data.TrainLimit = 1234 // 25 steps of 50, the last one 34 samples
	job.Train.Epochs = 1
	var log batchLog
	res := mustRun(t, context.Background(), job, Options{onBatch: log.record})
	if res.Steps != 25 {
		t.Fatalf("steps %d, want 25", res.Steps)
	}
	seen := make([]int, 1234)
	for _, idx := range log.steps {
		for _, i := range idx {
			seen[i]++
		}
	}
	for i, n := range seen {
		if n != 1 {
			t.Fatalf("sample %d seen %d times", i, n)
		}
	}
}

func TestSameSeedGivesBitIdenticalLosses(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	a := mustRun(t, context.Background(), job, Options{})
	b := mustRun(t, context.Background(), job, Options{})
	if len(a.Losses) == 0 || !sameBits(a.Losses, b.Losses) {
		t.Fatalf("losses differ between two runs of one seed")
	}
	job.Seed++
	c := mustRun(t, context.Background(), job, Options{})
	if sameBits(a.Losses, c.Losses) {
		t.Fatalf("another seed gave the same losses")
	}
}

// An interrupted run checkpoints at its step boundary; resuming it replays exactly the steps an
// uninterrupted run would have taken.
func TestInterruptAndResumeMatchUninterrupted(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	// Steps of this model take a fraction of a millisecond and a cancellation travels through
	// two mailboxes: 20 epochs (480 steps) leave it hundreds of steps to land in before the
	// end, where 3 epochs left 35 and it sometimes arrived after the last.
	job.Train.Epochs = 20
	full := mustRun(t, context.Background(), job, Options{})
	if full.Checkpoints == 0 {
		t.Fatal("no checkpoint written")
	}

	job.Checkpoint.Dir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := mustRun(t, ctx, job, Options{OnStep: func(s *StepDone) {
		if s.Step == 37 {
			cancel()
		}
	}})
	if !first.Interrupted || first.Steps < 38 || first.Steps >= full.Steps {
		t.Fatalf("interrupted run: interrupted=%v steps=%d (full run %d)", first.Interrupted, first.Steps, full.Steps)
	}

	job.Checkpoint.Resume = true
	second := mustRun(t, context.Background(), job, Options{})
	if second.StartStep != first.Steps || second.ResumedFrom == "" {
		t.Fatalf("resumed at step %d from %q, want step %d", second.StartStep, second.ResumedFrom, first.Steps)
	}
	if second.Steps != full.Steps {
		t.Fatalf("resumed run ended at step %d, want %d", second.Steps, full.Steps)
	}
	if !sameBits(second.Losses, full.Losses[second.StartStep:]) {
		t.Fatalf("resumed losses differ from the uninterrupted run's")
	}
	if second.TestAccuracy != full.TestAccuracy {
		t.Fatalf("test accuracy %v after resume, %v without interruption", second.TestAccuracy, full.TestAccuracy)
	}
}

// DESIGN: "a torn or corrupted checkpoint is detected and the previous one is used".
func TestResumeSkipsCorruptNewestCheckpoint(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Train.MaxSteps = 40
	mustRun(t, context.Background(), job, Options{})

	infos, err := checkpoint.NewManager(mustStore(t, job.Checkpoint.Dir), job.Checkpoint.Keep).List()
	if err != nil || len(infos) < 2 {
		t.Fatalf("checkpoints: %v, %v", infos, err)
	}
	newest := infos[len(infos)-1]
	part := filepath.Join(job.Checkpoint.Dir, newest.Name, "params.bin")
	raw, err := os.ReadFile(part)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(part, raw, 0o644); err != nil {
		t.Fatal(err)
	}

	job.Checkpoint.Resume = true
	job.Train.MaxSteps = 0
	res := mustRun(t, context.Background(), job, Options{})
	if len(res.Skipped) != 1 || res.Skipped[0].Name != newest.Name {
		t.Fatalf("skipped %v, want the corrupted %s", res.Skipped, newest.Name)
	}
	if res.ResumedFrom != infos[len(infos)-2].Name {
		t.Fatalf("resumed from %q, want %q", res.ResumedFrom, infos[len(infos)-2].Name)
	}
}

func TestResumeRejectsAnotherJobsCheckpoint(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Train.MaxSteps = 10
	mustRun(t, context.Background(), job, Options{})
	job.Model = compute.MLP(784, []int{16}, 10)
	job.Checkpoint.Resume = true
	if _, err := Run(context.Background(), job, Options{}); err == nil {
		t.Fatal("resumed another model's checkpoint")
	}
}

func mustStore(t *testing.T, dir string) checkpoint.Store {
	t.Helper()
	s, err := checkpoint.NewDirStore(dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// DESIGN: "a Worker failure restarts it from the last in-memory state". The restarted Worker
// replays the step it failed in, and the run is the run without the fault.
func TestWorkerPanicRestartsFromReplica(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	want := mustRun(t, context.Background(), job, Options{})
	var once sync.Once
	got := mustRun(t, context.Background(), job, Options{workerFault: func(step int64) bool {
		fire := false
		if step == 11 {
			once.Do(func() { fire = true })
		}
		return fire
	}})
	if got.Restarts["worker"] != 1 {
		t.Fatalf("worker restarts %d, want 1", got.Restarts["worker"])
	}
	if !sameBits(got.Losses, want.Losses) || got.TestAccuracy != want.TestAccuracy {
		t.Fatal("the run after a worker restart differs from the run without it")
	}
}

// A Worker that fails on every attempt exhausts its policy and ends the run with an error
// naming it, instead of spinning or hanging.
func TestWorkerThatKeepsFailingEndsTheRun(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	res, err := Run(context.Background(), job, Options{workerFault: func(step int64) bool { return step == 3 }})
	if !errors.Is(err, ErrActorFailed) || !strings.Contains(err.Error(), "worker") {
		t.Fatalf("err %v, want ErrActorFailed naming the worker", err)
	}
	if res == nil || res.Restarts["worker"] != policies["worker"].maxRestarts || res.Steps != 3 {
		t.Fatalf("result %+v: want %d worker restarts and 3 steps applied", res, policies["worker"].maxRestarts)
	}
}

// A fresh run replaces a finished run's checkpoints, so --resume can never pick up the earlier
// run's later steps; it refuses to replace an unfinished run's unless told to overwrite.
func TestFreshRunOverEarlierCheckpoints(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	newest := func() int64 {
		infos, err := checkpoint.NewManager(mustStore(t, job.Checkpoint.Dir), 0).List()
		if err != nil || len(infos) == 0 {
			t.Fatalf("checkpoints: %v %v", infos, err)
		}
		return infos[len(infos)-1].Step
	}
	job.Train.MaxSteps = 30
	mustRun(t, context.Background(), job, Options{})
	job.Train.MaxSteps = 15
	mustRun(t, context.Background(), job, Options{})
	if got := newest(); got != 15 {
		t.Fatalf("newest checkpoint at step %d after a finished run was replaced by one of 15 steps", got)
	}

	job.Train.MaxSteps = 0
	job.Train.Epochs = 20 // room for the cancellation to land before the end (see TestInterruptAndResumeMatchUninterrupted)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mustRun(t, ctx, job, Options{OnStep: func(s *StepDone) {
		if s.Step == 4 {
			cancel()
		}
	}})
	interruptedAt := newest()
	if _, err := Run(context.Background(), job, Options{}); !errors.Is(err, ErrUnfinishedRun) {
		t.Fatalf("fresh run over an unfinished one: err %v, want ErrUnfinishedRun", err)
	}
	if newest() != interruptedAt {
		t.Fatal("the refused run touched the unfinished run's checkpoints")
	}
	job.Checkpoint.Overwrite = true
	job.Train.MaxSteps = 3
	mustRun(t, context.Background(), job, Options{})
	if got := newest(); got != 3 {
		t.Fatalf("newest checkpoint at step %d after overwriting, want 3", got)
	}
}
