package actors

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/compute"
)

func TestParseJobRejectsBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, wantInErr string
	}{
		{"unknown field", "train:\n  epocs: 3\n", "epocs"},
		{"negative epochs", "train:\n  epochs: -1\n", "train.epochs"},
		{"zero batch", "train:\n  batch_size: 0\n", "train.batch_size"},
		{"unknown dataset", "data:\n  dataset: cifar\n", "data.dataset"},
		{"bad optimizer", "optimizer:\n  name: adagrad\n  lr: 0.1\n", "optimizer"},
		{"negative lr", "optimizer:\n  name: sgd\n  lr: -0.1\n", "lr"},
		{"bad layer", "model:\n  input: [784]\n  layers:\n    - {type: dense, units: 0}\n", "model"},
		{"early stopping without validation", "train:\n  early_stopping: {metric: val_loss, patience: 2}\n", "data.validation"},
		{"anonymize on images", "data:\n  anonymize: {k: 5}\n", "data.anonymize"},
		{"synthetic on titanic", "data:\n  dataset: titanic\n  synthetic: {rank: 5}\n", "data.synthetic"},
		{"train_limit on titanic", "data:\n  dataset: titanic\n  train_limit: 100\n", "titanic"},
		{"bad anonymize", "data:\n  dataset: titanic\n  anonymize:\n    transforms: [{column: Age, op: shred}]\n", "data.anonymize"},
		{"bucket below -1", "train:\n  bucket_kib: -2\n", "train.bucket_kib"},
		{"resume without dir", "checkpoint:\n  dir: \"\"\n  resume: true\n", "checkpoint.resume"},
		{"not yaml", "train: [unclosed\n", "bad job"},
		{"wrong type", "train:\n  epochs: many\n", "bad job"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseJob([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted %q", tc.yaml)
			}
			if !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), tc.wantInErr) {
				t.Fatalf("error %q: want ErrBadJob mentioning %q", err, tc.wantInErr)
			}
		})
	}
}

func TestParseJobKeepsDefaultsItDoesNotName(t *testing.T) {
	job, err := ParseJob([]byte("train:\n  epochs: 2\n"))
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultJob()
	if job.Train.Epochs != 2 || job.Train.BatchSize != def.Train.BatchSize || job.Optimizer.Name != def.Optimizer.Name {
		t.Fatalf("job %+v", job.Train)
	}
	if job.Fingerprint() != def.Fingerprint() {
		t.Fatal("the epoch count changed the fingerprint: a longer run could not resume a shorter one")
	}
}

// A job file that names no checkpoint directory checkpoints under its own name: sharing the
// default job's directory, it would resume from (or refuse to overwrite) another job's state.
func TestJobCheckpointsUnderItsOwnName(t *testing.T) {
	for _, c := range []struct{ yaml, dir string }{
		{"train: {epochs: 2}\n", "checkpoints/mnist-mlp"}, // the default job's name, so its directory
		{"name: gpt-test\n", "checkpoints/gpt-test"},
		{"name: gpt-test\ncheckpoint: {every_steps: 50}\n", "checkpoints/gpt-test"},
		{"name: gpt-test\ncheckpoint: {dir: elsewhere}\n", "elsewhere"},
		{"name: gpt-test\ncheckpoint: {dir: ''}\n", ""}, // no checkpoints
		{"name: ../up\n", "checkpoints/job"},
	} {
		job, err := ParseJob([]byte(c.yaml))
		if err != nil {
			t.Fatalf("%q: %v", c.yaml, err)
		}
		if job.Checkpoint.Dir != c.dir {
			t.Errorf("%q: checkpoint.dir %q, want %q", c.yaml, job.Checkpoint.Dir, c.dir)
		}
	}
}

// examples/mnist-mlp.yaml is the default job written out: one fingerprint, so that either
// resumes the other's checkpoints in checkpoints/mnist-mlp. Spelling a default out does not
// change a fingerprint; changing what it means does. Checkpoints fingerprinted before
// defaults were spelled canonically still count as the job's.
func TestDefaultsSpelledOutAreTheSameJob(t *testing.T) {
	file, err := LoadJob("../examples/mnist-mlp.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := DefaultJob()
	if file.Fingerprint() != def.Fingerprint() {
		t.Fatalf("examples/mnist-mlp.yaml %s, the default job %s: want one job", file.Fingerprint(), def.Fingerprint())
	}
	xavier := DefaultJob()
	xavier.Model.Layers = slices.Clone(xavier.Model.Layers)
	xavier.Model.Layers[len(xavier.Model.Layers)-1].Init = compute.InitXavier
	if xavier.Fingerprint() == def.Fingerprint() {
		t.Error("another initialization of the output layer, the same fingerprint")
	}
	noLoss := DefaultJob()
	noLoss.Model.Loss = ""
	if noLoss.Fingerprint() != def.Fingerprint() {
		t.Error("the loss left out and spelled as its default fingerprint differently")
	}
	legacy := def.fingerprint(false)
	if legacy == def.Fingerprint() {
		t.Fatal("the default job's legacy fingerprint equals the canonical one: the fallback below tests nothing")
	}
	if !def.WroteCheckpoint(legacy) || !def.WroteCheckpoint(def.Fingerprint()) || def.WroteCheckpoint(xavier.Fingerprint()) {
		t.Error("WroteCheckpoint: want the canonical and the legacy fingerprint accepted, another job's refused")
	}
}

func TestExampleJobsParse(t *testing.T) {
	files, _ := filepath.Glob("../examples/*.yaml")
	if len(files) < 2 {
		t.Fatalf("want at least 2 example jobs, found %v", files)
	}
	for _, f := range files {
		if _, err := LoadJob(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestLoadJobNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "job.yaml")
	if err := os.WriteFile(path, []byte("train: {epochs: 0}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadJob(path); err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error %v does not name %s", err, path)
	}
	if _, err := LoadJob(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file loaded")
	}
}
