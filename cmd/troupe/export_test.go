package main

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/checkpoint/safetensors"
	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/data"
)

func mustRun(t *testing.T, args ...string) (stdout, stderr string) {
	t.Helper()
	code, stdout, stderr := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("troupe %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout, stderr
}

func writeJob(t *testing.T, dir, name, yaml string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// trainJSON trains a job in this process and returns its --json summary.
func trainJSON(t *testing.T, args ...string) summary {
	t.Helper()
	stdout, _ := mustRun(t, append(append([]string{"train"}, args...), "--json", "--progress", "none")...)
	var s summary
	if err := json.Unmarshal([]byte(stdout), &s); err != nil {
		t.Fatalf("train --json: %v\n%s", err, stdout)
	}
	return s
}

func mnistDir(t *testing.T) string {
	t.Helper()
	dir, err := data.FindMNIST("")
	if err != nil {
		if os.Getenv("TROUPE_REQUIRE_MNIST") == "" {
			t.Skipf("MNIST not available (set TROUPE_REQUIRE_MNIST=1 to make this fail): %v", err)
		}
		t.Fatal(err)
	}
	return dir
}

// torchPython returns an interpreter that imports torch and numpy: $TROUPE_PYTHON, else the
// system's python3. Without one the test is skipped, unless $TROUPE_REQUIRE_TORCH is set.
func torchPython(t *testing.T) string {
	t.Helper()
	py := os.Getenv("TROUPE_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if out, err := exec.Command(py, "-c", "import torch, numpy").CombinedOutput(); err != nil {
		if os.Getenv("TROUPE_REQUIRE_TORCH") != "" {
			t.Fatalf("%s cannot import torch and numpy: %v\n%s", py, err, out)
		}
		t.Skipf("no Python with torch (%s: %v); set TROUPE_PYTHON, or TROUPE_REQUIRE_TORCH to make this fail", py, err)
	}
	return py
}

// readExport decodes an exported file into a model of job.
func readExport(t *testing.T, path string, job actors.Job) (*compute.Model, map[string]string) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	tensors, meta, err := safetensors.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	model, err := compute.NewModel(job.Model, job.Seed+1)
	if err != nil {
		t.Fatal(err)
	}
	named := make([]compute.NamedTensor, len(tensors))
	for i, x := range tensors {
		named[i] = compute.NamedTensor{Name: x.Name, Shape: x.Shape, Data: x.Data}
	}
	if err := model.SetTensors(named); err != nil {
		t.Fatal(err)
	}
	return model, meta
}

// goPredictions classifies the first n MNIST test images with model, normalized as job says,
// in chunks of the job's eval batch as troupe's evaluation does.
func goPredictions(t *testing.T, model *compute.Model, job actors.Job, dir string, n int) (preds []int, labels []int32, x []float32) {
	t.Helper()
	_, test, err := data.LoadMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	test = test.Subset(n)
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	x, labels = make([]float32, n*test.SampleSize()), make([]int32, n)
	if err := test.Gather(idx, x, labels, data.Normalize{Mean: job.Data.Mean, Std: job.Data.Std}); err != nil {
		t.Fatal(err)
	}
	size := model.InputSize()
	for first := 0; first < n; first += job.Train.EvalBatch {
		m := min(job.Train.EvalBatch, n-first)
		logits := model.Predict(x[first*size:(first+m)*size], m)
		for i := range m {
			preds = append(preds, compute.Argmax(logits.Row(i)))
		}
	}
	return preds, labels, x
}

type torchResult struct {
	N           int         `json:"n"`
	Correct     int         `json:"correct"`
	Accuracy    float64     `json:"accuracy"`
	Predictions []int       `json:"predictions"`
	Logits      [][]float64 `json:"logits"`
	Torch       string      `json:"torch"`
	Params      int         `json:"params"`
}

// compareWithTorch evaluates an exported file in PyTorch and checks it against troupe's own
// figures: the number correct within one sample of the n (argmax of logits that tie to
// float32 rounding may go either way; none has been seen to), and the first logits within
// 1e-4 relative. It returns troupe's and torch's number correct.
func compareWithTorch(t *testing.T, py, path, mnist string, job actors.Job, s summary, n int) (troupeCorrect, torchCorrect int) {
	t.Helper()
	const k = 20
	cmd := exec.Command(py, "testdata/eval_safetensors.py", path, mnist, strconv.Itoa(n), strconv.Itoa(k))
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("eval_safetensors.py: %v", err)
	}
	var tr torchResult
	if err := json.Unmarshal(out, &tr); err != nil {
		t.Fatalf("eval_safetensors.py printed %v: %s", err, out)
	}
	troupeCorrect = int(math.Round(s.TestAccuracy * float64(n)))

	model, _ := readExport(t, path, job)
	if tr.N != n || tr.Params != model.NumParams() {
		t.Fatalf("torch evaluated %d samples with %d parameters, want %d and %d", tr.N, tr.Params, n, model.NumParams())
	}
	preds, labels, x := goPredictions(t, model, job, mnist, n)
	goCorrect, disagree := 0, 0
	for i, p := range preds {
		if p == int(labels[i]) {
			goCorrect++
		}
		if p != tr.Predictions[i] {
			disagree++
			t.Logf("sample %d: troupe predicts %d, torch %d (label %d)", i, p, tr.Predictions[i], labels[i])
		}
	}
	// The file holds exactly the weights troupe evaluated at the end of the run.
	if goCorrect != troupeCorrect {
		t.Fatalf("the exported weights classify %d of %d correctly in Go, the run reported %d", goCorrect, n, troupeCorrect)
	}
	if d := tr.Correct - troupeCorrect; d < -1 || d > 1 || disagree > 1 {
		t.Fatalf("torch: %d of %d correct, troupe %d; %d predictions differ", tr.Correct, n, troupeCorrect, disagree)
	}
	logits := model.Predict(x[:k*model.InputSize()], k)
	worst := 0.0
	for i, row := range tr.Logits {
		for j, v := range row {
			worst = max(worst, math.Abs(float64(logits.Row(i)[j])-v)/(1+math.Abs(v)))
		}
	}
	if len(tr.Logits) != k || worst > 1e-4 {
		t.Fatalf("%d rows of torch logits, largest relative difference from troupe's %.3g", len(tr.Logits), worst)
	}
	t.Logf("troupe: %d/%d correct (%.4f); torch %s: %d/%d (%.4f); %d predictions differ; logits of %d samples within %.2g (relative)",
		troupeCorrect, n, s.TestAccuracy, tr.Torch, tr.Correct, n, tr.Accuracy, disagree, k, worst)
	return troupeCorrect, tr.Correct
}

const mlpJob = `name: mlp-export
data:
  train_limit: 6000
  test_limit: 2000
train:
  epochs: 2
  batch_size: 128
`

// TestExportMLPToTorchAndBack trains a small MLP, exports it, checks that PyTorch computes
// the same test accuracy from the file, then imports the file to fine-tune another job.
func TestExportMLPToTorchAndBack(t *testing.T) {
	mnist := mnistDir(t)
	dir := t.TempDir()
	jobPath := writeJob(t, dir, "mlp.yaml", mlpJob)
	job, err := actors.LoadJob(jobPath)
	if err != nil {
		t.Fatal(err)
	}
	ckpts := filepath.Join(dir, "ckpt")
	s := trainJSON(t, jobPath, "--checkpoint-dir", ckpts, "--checkpoint-every", "40")
	if s.Steps != 94 {
		t.Fatalf("ran %d steps, want 2 epochs of 47", s.Steps)
	}
	out := filepath.Join(dir, "mlp.safetensors")
	stdout, stderr := mustRun(t, "export", "--checkpoint", ckpts, "--job", jobPath, "--format", "safetensors", out)
	if !strings.Contains(stdout, "ckpt-000000000094 (step 94)") || stderr != "" {
		t.Errorf("export printed %q, stderr %q", stdout, stderr)
	}
	_, meta := readExport(t, out, job)
	for k, want := range map[string]string{safetensors.MetaFormat: "pt", safetensors.MetaJob: "mlp-export", safetensors.MetaStep: "94", safetensors.MetaFinished: "true",
		safetensors.MetaFingerprint: job.Fingerprint(), safetensors.MetaDataMean: "0", safetensors.MetaDataStd: "0", safetensors.MetaCheckpoint: "ckpt-000000000094"} {
		if meta[k] != want {
			t.Errorf("metadata %s = %q, want %q", k, meta[k], want)
		}
	}
	var spec compute.ModelSpec
	if err := json.Unmarshal([]byte(meta[safetensors.MetaModel]), &spec); err != nil || len(spec.Layers) != 5 || spec.Layers[2].Units != 512 {
		t.Errorf("metadata %s = %s (%v)", safetensors.MetaModel, meta[safetensors.MetaModel], err)
	}

	t.Run("torch", func(t *testing.T) {
		py := torchPython(t)
		compareWithTorch(t, py, out, mnist, job, s, 2000)
	})

	t.Run("refusals", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"export", "--checkpoint", ckpts, filepath.Join(dir, "x")}, "written by another job"},
			{[]string{"export", "--checkpoint", filepath.Join(dir, "nope"), "--job", jobPath, filepath.Join(dir, "x")}, "no such file"},
			{[]string{"export", "--checkpoint", "gs://bucket/ckpt", "--job", jobPath, filepath.Join(dir, "x")}, `unsupported scheme "gs"`},
			{[]string{"export", "--checkpoint", ckpts, "--job", jobPath, "--format", "onnx", filepath.Join(dir, "x")}, "--format"},
			{[]string{"export", "--checkpoint", ckpts, "--job", jobPath}, "arg"},
			{[]string{"export", "--checkpoint", t.TempDir(), "--job", jobPath, filepath.Join(dir, "x")}, "no valid checkpoint"},
		} {
			code, _, stderr := runCLI(t, tc.args...)
			if code == 0 || !strings.Contains(stderr, tc.want) {
				t.Errorf("%v: exit %d, stderr %q; want failure mentioning %q", tc.args, code, stderr, tc.want)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "x")); !os.IsNotExist(err) {
			t.Errorf("a refused export left a file: %v", err)
		}
		if _, err := os.Stat(filepath.Join(dir, "nope")); !os.IsNotExist(err) {
			t.Errorf("export created the missing checkpoint directory: %v", err)
		}
	})

	t.Run("skips a broken checkpoint", func(t *testing.T) {
		broken := filepath.Join(dir, "broken")
		if err := os.CopyFS(broken, os.DirFS(ckpts)); err != nil {
			t.Fatal(err)
		}
		params := filepath.Join(broken, "ckpt-000000000094", "params.bin")
		raw, err := os.ReadFile(params)
		if err != nil {
			t.Fatal(err)
		}
		raw[len(raw)-1] ^= 1
		if err := os.WriteFile(params, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		out2 := filepath.Join(dir, "older.safetensors")
		_, stderr := mustRun(t, "export", "--checkpoint", "file://"+broken, "--job", jobPath, out2)
		if !strings.Contains(stderr, "skipped broken checkpoint ckpt-000000000094: params.bin: sha256 mismatch") {
			t.Errorf("stderr %q does not report the broken checkpoint", stderr)
		}
		if _, meta := readExport(t, out2, job); meta[safetensors.MetaStep] != "80" || meta[safetensors.MetaFinished] != "false" {
			t.Errorf("exported step %s (finished %s), want the checkpoint of step 80", meta[safetensors.MetaStep], meta[safetensors.MetaFinished])
		}
	})

	t.Run("import and fine-tune", func(t *testing.T) {
		tuneDir := t.TempDir()
		tunePath := writeJob(t, tuneDir, "tune.yaml", "name: mlp-tune\ndata:\n  train_limit: 600\n  test_limit: 2000\ntrain:\n  epochs: 1\n  batch_size: 128\n")
		tune, err := actors.LoadJob(tunePath)
		if err != nil {
			t.Fatal(err)
		}
		into := filepath.Join(tuneDir, "ckpt")
		stdout, stderr := mustRun(t, "import", "--job", tunePath, "--checkpoint", into, out)
		if !strings.Contains(stdout, "ckpt-000000000000") || !strings.Contains(stdout, "--resume") || stderr != "" {
			t.Errorf("import printed %q, stderr %q", stdout, stderr)
		}
		store, err := checkpoint.NewDirStore(into)
		if err != nil {
			t.Fatal(err)
		}
		snap, name, _, err := checkpoint.NewManager(store, 0).LoadLatest()
		if err != nil {
			t.Fatal(err)
		}
		exported, _ := readExport(t, out, job)
		if name != "ckpt-000000000000" || snap.Step != 0 || snap.Meta["fingerprint"] != tune.Fingerprint() || snap.Meta["job"] != "mlp-tune" {
			t.Errorf("import wrote %s, step %d, meta %v; want step 0 of mlp-tune, fingerprint %s", name, snap.Step, snap.Meta, tune.Fingerprint())
		}
		if !slices.Equal(snap.Params, exported.Params()) {
			t.Error("the imported checkpoint does not hold the exported weights")
		}
		if snap.Optimizer.Name != "adam" || snap.Optimizer.Step != 0 || len(snap.Optimizer.Buffers) != 2 {
			t.Errorf("optimizer state %s step %d with %d buffers, want fresh adam", snap.Optimizer.Name, snap.Optimizer.Step, len(snap.Optimizer.Buffers))
		}
		for _, b := range snap.Optimizer.Buffers {
			if slices.ContainsFunc(b, func(v float32) bool { return v != 0 }) {
				t.Error("optimizer buffers are not fresh (zero)")
			}
		}

		resumed := trainJSON(t, tunePath, "--checkpoint-dir", into, "--resume")
		fresh := trainJSON(t, tunePath, "--checkpoint-dir", filepath.Join(tuneDir, "fresh"))
		t.Logf("exported model %.4f; fine-tuned on 600 samples from it %.4f; trained on them from scratch %.4f",
			s.TestAccuracy, resumed.TestAccuracy, fresh.TestAccuracy)
		if resumed.ResumedFrom != "ckpt-000000000000" || resumed.StartStep != 0 || resumed.Steps != 5 {
			t.Errorf("resumed from %q at step %d, ran %d steps; want the imported checkpoint, step 0, 5 steps", resumed.ResumedFrom, resumed.StartStep, resumed.Steps)
		}
		if resumed.TestAccuracy < s.TestAccuracy-0.03 || resumed.TestAccuracy < fresh.TestAccuracy+0.05 {
			t.Errorf("fine-tuned accuracy %.4f: not near the exported model's %.4f, or not above a fresh run's %.4f",
				resumed.TestAccuracy, s.TestAccuracy, fresh.TestAccuracy)
		}

		code, _, stderr := runCLI(t, "import", "--job", tunePath, "--checkpoint", into, out)
		if code == 0 || !strings.Contains(stderr, "already holds checkpoints") {
			t.Errorf("import over checkpoints: exit %d, %q", code, stderr)
		}
		mustRun(t, "import", "--job", tunePath, "--checkpoint", "file://"+into, "--overwrite", out)
		if infos, err := checkpoint.NewManager(store, 0).List(); err != nil || len(infos) != 1 || infos[0].Step != 0 {
			t.Errorf("after --overwrite the directory holds %v (%v), want the step-0 checkpoint alone", infos, err)
		}

		small := writeJob(t, tuneDir, "small.yaml", "name: small\nmodel:\n  input: [784]\n  layers:\n    - {type: dense, units: 256}\n    - {type: relu}\n    - {type: dense, units: 10}\n")
		code, _, stderr = runCLI(t, "import", "--job", small, "--checkpoint", filepath.Join(tuneDir, "small"), out)
		if code == 0 || !strings.Contains(stderr, `tensor "0.weight" has shape [512 784], the model needs [256 784]`) {
			t.Errorf("import into another model: exit %d, %q", code, stderr)
		}
		code, _, stderr = runCLI(t, "import", "--checkpoint", filepath.Join(tuneDir, "x"), out)
		if code == 0 || !strings.Contains(stderr, "job") {
			t.Errorf("import without --job: exit %d, %q", code, stderr)
		}
	})
}

// cnnJob is a small convolutional net that uses every layer type, normalized inputs, and
// unequal channel counts, so a wrong conv layout could not go unnoticed.
const cnnJob = `name: cnn-export
data:
  train_limit: 2000
  test_limit: 1000
  mean: 0.1307
  std: 0.3081
model:
  input: [1, 28, 28]
  layers:
    - {type: conv2d, filters: 6, kernel: 5, padding: 2}
    - {type: relu}
    - {type: maxpool2d, size: 2}
    - {type: conv2d, filters: 8, kernel: 3, stride: 1}
    - {type: tanh}
    - {type: maxpool2d, size: 2}
    - {type: flatten}
    - {type: dropout, rate: 0.1}
    - {type: dense, units: 32}
    - {type: gelu}
    - {type: dense, units: 10}
train:
  epochs: 2
  batch_size: 32
  eval_batch: 250
`

// TestExportCNNToTorch proves the conv2d layout: PyTorch classifies the test images as troupe
// does with the exported weights of a small convolutional net.
func TestExportCNNToTorch(t *testing.T) {
	mnist := mnistDir(t)
	py := torchPython(t)
	dir := t.TempDir()
	jobPath := writeJob(t, dir, "cnn.yaml", cnnJob)
	job, err := actors.LoadJob(jobPath)
	if err != nil {
		t.Fatal(err)
	}
	ckpts := filepath.Join(dir, "ckpt")
	s := trainJSON(t, jobPath, "--checkpoint-dir", ckpts)
	out := filepath.Join(dir, "cnn.safetensors")
	mustRun(t, "export", "--checkpoint", ckpts, "--job", jobPath, out)
	_, meta := readExport(t, out, job)
	if meta[safetensors.MetaDataMean] != "0.1307" || meta[safetensors.MetaDataStd] != "0.3081" {
		t.Errorf("normalization metadata %q / %q", meta[safetensors.MetaDataMean], meta[safetensors.MetaDataStd])
	}
	compareWithTorch(t, py, out, mnist, job, s, 1000)
}
