package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/checkpoint/safetensors"
)

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
