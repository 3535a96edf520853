package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/checkpoint/safetensors"
	"github.com/troupe-ml/troupe/compute/privacy"
)

// joinTwoMore has node B join A (which started the job and waits for a second node), then,
// after A logged progress lines more in their world of two, node C join B. It returns the
// three nodes' summaries, by name, once they all exited 0, and the step C's world began at.
func joinTwoMore(t *testing.T, bin string, a *nodeProc, progressLines int) (map[string]nodeSummary, int) {
	t.Helper()
	b := startNode(t, bin, "B", "--bind", "127.0.0.1:0", "--join", a.gossipAddr(t))
	w := a.awaitWorld(t, 1, 0)
	at := a.awaitSteps(t, progressLines, w.next)
	c := startNode(t, bin, "C", "--bind", "127.0.0.1:0", "--join", b.gossipAddr(t))
	if w = a.awaitWorld(t, 2, at); w.members != 3 {
		t.Fatalf("the world after the join has %d members, want 3", w.members)
	}
	joined := a.awaitFirstStep(t, 2, w.next).step
	sums := map[string]nodeSummary{}
	for _, p := range []*nodeProc{a, b, c} {
		sums[p.name] = p.finish(t)
	}
	return sums, joined
}

// prunedJob prunes a small MLP to 80% of its weights over its second and third epochs.
const prunedJob = `name: pruned
seed: 3
data:
  train_limit: 3000
  test_limit: 500
model:
  input: [784]
  layers:
    - {type: dense, units: 64, init: he}
    - {type: relu}
    - {type: dense, units: 10, init: xavier}
  loss: softmax_cross_entropy
optimizer: {name: adam, lr: 0.002}
train:
  epochs: 4
  batch_size: 100
prune: {target: 0.8, start_step: 30, end_step: 90, every: 10}
`

// TestPrunedRunReportsAndExportsItsSparsity trains a pruned job: --json carries the sparsity of
// the weights (the target, over both weight tensors), per layer too; the exported safetensors
// file holds the dense tensors with exactly those zeros, and export says so per tensor.
func TestPrunedRunReportsAndExportsItsSparsity(t *testing.T) {
	mnistDir(t)
	dir := t.TempDir()
	job := writeJob(t, dir, "pruned.yaml", prunedJob)
	ckpt := filepath.Join(dir, "ckpt")
	s := trainJSON(t, job, "--checkpoint", ckpt)
	if s.Sparsity == nil || math.Abs(*s.Sparsity-0.8) > 1e-4 || len(s.SparsityPerLayer) != 2 {
		t.Fatalf("sparsity %v per layer %+v, want 0.8 over 2 weight tensors", s.Sparsity, s.SparsityPerLayer)
	}
	if s.TestAccuracy < 0.8 {
		t.Fatalf("test accuracy %v after pruning", s.TestAccuracy)
	}
	out := filepath.Join(dir, "pruned.safetensors")
	stdout, _ := mustRun(t, "export", "--checkpoint", ckpt, "--job", job, "--format", "safetensors", out)
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	tensors, _, err := safetensors.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, l := range s.SparsityPerLayer {
		want += l.Zeros
	}
	got := 0
	for _, tn := range tensors {
		z := 0
		for _, v := range tn.Data {
			if v == 0 {
				z++
			}
		}
		if strings.HasSuffix(tn.Name, ".weight") {
			got += z
			if line := fmt.Sprintf("%s: %d of %d zero", tn.Name, z, len(tn.Data)); !strings.Contains(stdout, line) {
				t.Errorf("export does not report %q:\n%s", line, stdout)
			}
		} else if z == len(tn.Data) && z > 8 {
			t.Errorf("%s: all %d values zero: a bias was pruned", tn.Name, z)
		}
	}
	if got != want {
		t.Fatalf("%d zero weights in the exported file, the run reported %d", got, want)
	}
}

// privatePrunedJob is the peer job with DP-SGD and pruning to 80% between steps 100 and 600
// (of 1,200): a node that joins in between must find the masks and the privacy spent again.
var privatePrunedJob = strings.Replace(peerJob, "name: peers", "name: private-pruned", 1) +
	"prune: {target: 0.8, start_step: 100, end_step: 600, every: 50}\n" +
	"privacy: {noise_multiplier: 1.0, clip_norm: 1.0, delta: 0.00001}\n"

// TestPeersPruneAndTrainPrivatelyAcrossAJoin runs that job on two node processes and has a
// third join inside the pruning window. The joiner rebuilds the masks from the parameters it is
// sent and its accountant from the step it starts at, so all three end with the same
// parameters, 80% of the weights zero, and an epsilon no smaller than 1,200 steps spend (and
// no larger than those plus the steps a world change threw away).
func TestPeersPruneAndTrainPrivatelyAcrossAJoin(t *testing.T) {
	if testing.Short() {
		t.Skip("runs three node processes")
	}
	bin := buildTroupe(t)
	job := writeJob(t, t.TempDir(), "job.yaml", privatePrunedJob)
	a := startNode(t, bin, "A", "--bind", "127.0.0.1:0", "--job", job, "--min-nodes", "2", "--no-checkpoint")
	// Progress lines come every 10 steps: C joins past step 150. Any step after 100 will do:
	// masks found again after step 600 must hold through the fine-tuning too, or the sparsity
	// falls.
	sums, joined := joinTwoMore(t, bin, a, 15)
	acct := func(steps int) float64 {
		ac, err := privacy.NewAccountant()
		if err != nil {
			t.Fatal(err)
		}
		if err := ac.Step(60.0/12000, 1.0, steps); err != nil {
			t.Fatal(err)
		}
		eps, _, err := ac.Epsilon(1e-5)
		if err != nil {
			t.Fatal(err)
		}
		return eps
	}
	floor := acct(1200)
	for name, s := range sums {
		if s.ParamsSHA256 != sums["A"].ParamsSHA256 || s.Steps != 1200 {
			t.Errorf("%s: %d steps, params %s; A's %s", name, s.Steps, s.ParamsSHA256, sums["A"].ParamsSHA256)
		}
		if s.Sparsity == nil || math.Abs(*s.Sparsity-0.8) > 1e-4 {
			t.Errorf("%s: sparsity %v, want 0.8", name, s.Sparsity)
		}
		if s.Epsilon == nil || *s.Epsilon < floor-1e-9 || *s.Epsilon > acct(1200+int(s.StepsRedone))+1e-9 {
			t.Errorf("%s: epsilon %v, want %v for 1,200 steps (more only for the %d steps redone)", name, s.Epsilon, floor, s.StepsRedone)
		}
	}
	if joined <= 100 {
		t.Fatalf("C joined at step %d, before pruning began", joined)
	}
	if acc := sums["A"].TestAccuracy; acc < 0.4 { // chance is 0.1; DP noise on 12,000 samples leaves about 0.65
		t.Errorf("test accuracy %v", acc)
	}
	t.Logf("A: accuracy %.4f, sparsity %.4f, epsilon %.3f (1,200 steps alone: %.3f); C joined at step %d",
		sums["A"].TestAccuracy, *sums["A"].Sparsity, *sums["A"].Epsilon, floor, joined)
}
