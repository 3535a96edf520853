package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/data/text"
)

// tinyGPTJob writes the job of a small GPT trained on trainLimit windows of the standard
// library's encoding packages, checkpointed in dir/ckpt.
func tinyGPTJob(t *testing.T, dir, name string, trainLimit int) string {
	t.Helper()
	src, err := text.GoSourceDir()
	if err != nil {
		t.Skipf("no Go source tree: %v", err)
	}
	return writeJob(t, dir, name+".yaml", fmt.Sprintf(`
name: %s
seed: 2
data: {dataset: text, dir: %s, train_limit: %d, validation: 16, test_limit: 16}
model:
  gpt: {n_layer: 1, n_head: 2, n_embd: 32, block_size: 64, vocab: 256}
optimizer: {name: adamw, lr: 0.003, weight_decay: 0.1, schedule: {kind: cosine, warmup_steps: 5}}
train: {epochs: 1, batch_size: 16}
checkpoint: {dir: %s}
`, name, filepath.Join(src, "encoding"), trainLimit, filepath.Join(dir, "ckpt")))
}

// TestGenerateFromTrainedGPT trains a small GPT on Go source for a few seconds and samples from
// its checkpoint: the text continues the prompt, the same seed gives the same text, another
// seed other text, and temperature 0 the most likely tokens every time. The job and the
// tokenizer come from the checkpoint alone.
func TestGenerateFromTrainedGPT(t *testing.T) {
	dir := t.TempDir()
	job := tinyGPTJob(t, dir, "tiny-gpt", 960)
	s := trainJSON(t, job)
	if s.Text == nil || s.Text.ValBitsPerByte == nil {
		t.Fatalf("the summary has no text report: %+v", s)
	}
	gen := func(args ...string) string {
		out, _ := mustRun(t, append([]string{"generate", "--checkpoint", filepath.Join(dir, "ckpt"), "--prompt", "func (d *decodeState) ", "--tokens", "60"}, args...)...)
		if !strings.HasPrefix(out, "func (d *decodeState) ") {
			t.Fatalf("generated text does not continue the prompt: %q", out)
		}
		return out
	}
	a, b, c := gen("--seed", "1"), gen("--seed", "1"), gen("--seed", "2")
	if a != b {
		t.Errorf("one seed, two texts:\n%q\n%q", a, b)
	}
	if a == c {
		t.Errorf("seeds 1 and 2 gave the same text %q", a)
	}
	if got := len(a) - len("func (d *decodeState) ") - 1; got != 60 {
		t.Errorf("%d bytes generated, want 60 (one per token)", got)
	}
	greedy1, greedy2 := gen("--temperature", "0", "--seed", "1"), gen("--temperature", "0", "--seed", "9")
	if greedy1 != greedy2 {
		t.Errorf("temperature 0 depends on the seed:\n%q\n%q", greedy1, greedy2)
	}
	t.Logf("sample: %q", a)
	code, _, stderr := runCLI(t, "generate", "--checkpoint", filepath.Join(dir, "nothing-here"))
	if code == 0 || !strings.Contains(stderr, "checkpoint") {
		t.Errorf("generate from an empty directory: exit %d, %q", code, stderr)
	}
}
