package main

import (
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/data/text"
)

// torchGPT is bench/gpt_torch.py, the PyTorch definition of the same GPT in nanoGPT's layout.
const torchGPT = "../../bench/gpt_torch.py"

// TestExportGPTToTorchAndBack trains a small GPT, exports it, has PyTorch's own GPT load the
// file (strict: every tensor name and shape of nanoGPT's layout, lm_head included) and compute
// the logits of four windows of Go source, which must agree with troupe's within 1e-4
// (relative). Then PyTorch fine-tunes the exported model and writes it back; troupe imports
// that file and trains on from it, starting at the loss PyTorch left it at rather than at
// a fresh model's.
func TestExportGPTToTorchAndBack(t *testing.T) {
	py := torchPython(t)
	dir := t.TempDir()
	jobPath := tinyGPTJob(t, dir, "gpt-export", 960)
	job, err := actors.LoadJob(jobPath)
	if err != nil {
		t.Fatal(err)
	}
	exported := trainJSON(t, jobPath)
	out := filepath.Join(dir, "gpt.safetensors")
	mustRun(t, "export", "--job", jobPath, out)
	model, _ := readExport(t, out, job)

	src, _ := text.GoSourceDir()
	raw, err := os.ReadFile(filepath.Join(src, "encoding", "json", "decode.go"))
	if err != nil {
		t.Fatal(err)
	}
	const windows = 4
	block, vocab := job.Model.GPT.BlockSize, job.Model.GPT.Vocab
	ids := make([]byte, 4*windows*block)
	x := make([]float32, windows*block)
	for i := range x {
		x[i] = float32(raw[1000+i])
		binary.LittleEndian.PutUint32(ids[4*i:], uint32(raw[1000+i]))
	}
	idsPath := filepath.Join(dir, "windows.i32")
	if err := os.WriteFile(idsPath, ids, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, torchGPT, "logits", out, idsPath, "4")
	cmd.Stderr = os.Stderr
	stdout, err := cmd.Output()
	if err != nil {
		t.Fatalf("gpt_torch.py logits: %v", err)
	}
	var got struct {
		Torch  string        `json:"torch"`
		Logits [][][]float64 `json:"logits"`
	}
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("gpt_torch.py printed %v", err)
	}
	want := model.Predict(x, windows).Data
	if len(got.Logits) != windows || len(got.Logits[0]) != block || len(got.Logits[0][0]) != vocab {
		t.Fatalf("torch gave logits of shape %d×%d×%d, want %d×%d×%d", len(got.Logits), len(got.Logits[0]), len(got.Logits[0][0]), windows, block, vocab)
	}
	worst := 0.0
	for w, rows := range got.Logits {
		for p, row := range rows {
			for v, l := range row {
				worst = max(worst, math.Abs(float64(want[(w*block+p)*vocab+v])-l)/(1+math.Abs(l)))
			}
		}
	}
	t.Logf("torch %s: logits of %d windows × %d positions × %d tokens within %.2g (relative) of troupe's", got.Torch, windows, block, vocab, worst)
	if worst > 1e-4 {
		t.Fatalf("logits differ by %.3g relative, want <= 1e-4", worst)
	}

	// Back: PyTorch trains the exported model further, troupe imports it and goes on.
	tuned := filepath.Join(dir, "tuned.safetensors")
	cmd = exec.Command(py, torchGPT, "save", out, tuned, "30", "--src", filepath.Join(src, "encoding"), "--batch", "16",
		"--train-limit", "960", "--lr", "0.003", "--min-lr", "0.003", "--warmup", "1")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("gpt_torch.py save: %v", err)
	}
	tuneDir := t.TempDir()
	tunePath := tinyGPTJob(t, tuneDir, "gpt-tune", 160)
	mustRun(t, "import", "--job", tunePath, "--checkpoint", filepath.Join(tuneDir, "ckpt"), tuned)
	resumed := trainJSON(t, tunePath, "--resume")
	fresh := trainJSON(t, tunePath, "--checkpoint-dir", filepath.Join(tuneDir, "fresh"))
	if resumed.ResumedFrom != "ckpt-000000000000" || len(resumed.Text.CorpusDigest) == 0 {
		t.Fatalf("the fine-tune did not start from the imported checkpoint: %+v", resumed)
	}
	t.Logf("validation loss: exported %.3f; PyTorch-tuned and fine-tuned in troupe %.3f; trained from scratch on the same windows %.3f",
		*exported.ValLoss, *resumed.ValLoss, *fresh.ValLoss)
	if !(*resumed.ValLoss < *fresh.ValLoss-0.3) {
		t.Errorf("fine-tuned from the imported model: validation loss %.3f, from scratch %.3f: the import did not carry the training", *resumed.ValLoss, *fresh.ValLoss)
	}
}
