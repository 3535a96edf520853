package actors

import (
	"context"
	"math"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/compute/prune"
)

// pruneJob is smallJob pruned to 75% of its weights between steps 10 and 40 of 72.
func pruneJob(t *testing.T) Job {
	job := smallJob(t)
	job.Prune = &prune.Config{Target: 0.75, StartStep: 10, EndStep: 40, Every: 10}
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	return job
}

// TestPruningReachesItsTargetAndResumes trains with pruning, checks the final sparsity of every
// weight tensor (global scope: over all of them), then stops the same job inside the pruning
// window and resumes it: the masks come back from
// the checkpoint's zeros, and the resumed run follows the uninterrupted one bit for bit.
func TestPruningReachesItsTargetAndResumes(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := pruneJob(t)
	full := mustRun(t, context.Background(), job, Options{})
	zeros, total := 0, 0
	for _, l := range full.SparsityPerLayer {
		zeros += l.Zeros
		total += l.Total
	}
	if want := int(math.Round(0.75 * float64(total))); zeros != want || full.Sparsity != float64(zeros)/float64(total) {
		t.Fatalf("%d of %d weights are zero (sparsity %v), want %d", zeros, total, full.Sparsity, want)
	}
	if full.TestAccuracy < 0.6 {
		t.Fatalf("test accuracy %v after pruning: the pruned model learnt nothing", full.TestAccuracy)
	}

	// Stop at step 25, inside the pruning window, then resume the whole run from there.
	job.Checkpoint.Dir = t.TempDir()
	job.Train.MaxSteps = 25
	first := mustRun(t, context.Background(), job, Options{})
	if first.Steps != 25 || first.Sparsity == 0 || first.Sparsity >= 0.75 {
		t.Fatalf("first part: %d steps, sparsity %v: want 25 steps into the pruning window", first.Steps, first.Sparsity)
	}
	job.Train.MaxSteps = 0
	job.Checkpoint.Resume = true
	second := mustRun(t, context.Background(), job, Options{})
	if second.StartStep != first.Steps || !sameBits(second.Losses, full.Losses[second.StartStep:]) {
		t.Fatalf("resumed at %d: losses differ from the uninterrupted run's", second.StartStep)
	}
	if second.ParamsSHA256 != full.ParamsSHA256 {
		t.Fatal("resumed run ends with other parameters")
	}
}

// TestPrunedRanksAgree trains the pruned job on two ranks with every layer's gradient sent
// ahead in a bucket: masked gradients go through the buckets, both ranks end with the same
// parameters and the target sparsity.
func TestPrunedRanksAgree(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := pruneJob(t)
	job.Model.Layers = append(job.Model.Layers[:2], job.Model.Layers[3:]...) // no dropout: ranks would draw their own masks
	job.Checkpoint.Dir = ""
	res := runWorld(t, job, 2, Options{bucketValues: 1})
	if res[0].ParamsSHA256 != res[1].ParamsSHA256 {
		t.Fatal("the ranks end with different parameters")
	}
	if math.Abs(res[0].Sparsity-0.75) > 1e-4 {
		t.Fatalf("sparsity %v, want 0.75", res[0].Sparsity)
	}
}
