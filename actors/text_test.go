package actors

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/data/text"
)

// textJob is a small GPT on the source of the standard library's encoding packages: 240 steps
// of 16 windows of 64 bytes, a few seconds on 2 cores.
func textJob(t *testing.T) Job {
	t.Helper()
	src, err := text.GoSourceDir()
	if err != nil {
		t.Skipf("no Go source tree: %v", err)
	}
	job := DefaultJob()
	job.Name = "text"
	job.Seed = 3
	job.Data = DataSpec{Dataset: DatasetText, Dir: filepath.Join(src, "encoding"), TrainLimit: 3840, Validation: 32, TestLimit: 32}
	job.Model = compute.ModelSpec{GPT: &compute.GPTSpec{Layers: 2, Heads: 2, Embedding: 32, BlockSize: 64, Vocab: 256}}
	job.Optimizer = DefaultJob().Optimizer
	job.Optimizer.Name, job.Optimizer.LR, job.Optimizer.WeightDecay, job.Optimizer.ClipNorm = "adamw", 3e-3, 0.1, 1
	job.Optimizer.Schedule.Warmup = 5
	job.Train.Epochs, job.Train.BatchSize = 1, 16
	job.Checkpoint = CheckpointSpec{}
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	return job
}

// TestTextJobLearns trains the GPT on real Go source and checks that it learns the text: the
// validation loss ends far below a uniform guess over bytes (ln 256 = 5.55 nats) and below
// the loss of the first step, and the report counts bits per byte.
func TestTextJobLearns(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := textJob(t)
	res := mustRun(t, context.Background(), job, Options{})
	if res.Steps != 240 {
		t.Fatalf("trained %d steps, want 240", res.Steps)
	}
	first := res.Losses[0]
	if math.Abs(first-math.Log(256)) > 0.3 {
		t.Errorf("first step's loss %.3f, want about ln 256 = %.3f from the small initial weights", first, math.Log(256))
	}
	if !(res.ValLoss < 3.2) {
		t.Errorf("validation loss %.3f after 240 steps, want < 3.2 nats (the entropy of single bytes of this text is 3.72: the model must use the context)", res.ValLoss)
	}
	tr := res.Text
	if tr == nil || tr.ValBitsPerByte == nil || tr.TestBitsPerByte == nil {
		t.Fatalf("text report %+v lacks the bits per byte", tr)
	}
	if want := res.ValLoss / math.Ln2; math.Abs(*tr.ValBitsPerByte-want) > 1e-9 {
		t.Errorf("validation bits per byte %v, want loss/ln 2 = %v for one byte per token", *tr.ValBitsPerByte, want)
	}
	if tr.Tokenizer != TokenizerByte || tr.TokensPerSecond <= 0 || len(tr.CorpusDigest) != 64 {
		t.Errorf("text report %+v", tr)
	}
	t.Logf("first loss %.3f, validation %.3f nats (%.3f bits/byte), test %.3f bits/byte, %.0f tokens/s",
		first, res.ValLoss, *tr.ValBitsPerByte, *tr.TestBitsPerByte, tr.TokensPerSecond)
}

// TestMicroBatchesKeepTheLosses checks gradient accumulation: with train.micro_batch the step
// losses agree with those of whole batches to float32 rounding, though the gradients are
// computed in four parts and summed.
func TestMicroBatchesKeepTheLosses(t *testing.T) {
	job := textJob(t)
	job.Data.TrainLimit, job.Data.Validation = 160, 0 // 10 steps
	whole := mustRun(t, context.Background(), job, Options{})
	job.Train.MicroBatch = 4
	parts := mustRun(t, context.Background(), job, Options{})
	if len(whole.Losses) != 10 || len(parts.Losses) != 10 {
		t.Fatalf("%d and %d steps, want 10", len(whole.Losses), len(parts.Losses))
	}
	var worst float64
	for i := range whole.Losses {
		worst = max(worst, math.Abs(whole.Losses[i]-parts.Losses[i])/whole.Losses[i])
	}
	if worst > 1e-5 {
		t.Errorf("losses differ by up to %.2e relative: %v against %v", worst, parts.Losses, whole.Losses)
	}
	if whole.ParamsSHA256 == parts.ParamsSHA256 {
		t.Logf("the parameters are the same bits too")
	}
	t.Logf("largest relative difference of a step's loss: %.2e", worst)
}

// TestRecomputeSameParameters checks train.recompute: the parameters after the run are the
// same bits as without it.
func TestRecomputeSameParameters(t *testing.T) {
	job := textJob(t)
	job.Data.TrainLimit, job.Data.Validation = 160, 0
	job.Model.GPT.Dropout = 0.1 // the recomputed masks must be the same
	plain := mustRun(t, context.Background(), job, Options{})
	job.Train.Recompute = true
	re := mustRun(t, context.Background(), job, Options{})
	if plain.ParamsSHA256 != re.ParamsSHA256 || !sameBits(plain.Losses, re.Losses) {
		t.Errorf("with recomputation: parameters %s, losses %v; without: %s, %v", re.ParamsSHA256, re.Losses, plain.ParamsSHA256, plain.Losses)
	}
}

func TestTextJobValidation(t *testing.T) {
	good := textJob(t)
	for _, tc := range []struct {
		name string
		edit func(j *Job)
	}{
		{"gpt on mnist", func(j *Job) { j.Data.Dataset = DatasetMNIST }},
		{"text without gpt", func(j *Job) { j.Model = compute.MLP(64, nil, 256) }},
		{"byte tokenizer, other vocab", func(j *Job) { j.Model.GPT.Vocab = 300 }},
		{"unknown tokenizer", func(j *Job) { j.Data.Tokenizer = "words" }},
		{"tokenizer on mnist", func(j *Job) { j.Data.Dataset, j.Model = DatasetMNIST, DefaultJob().Model; j.Data.Tokenizer = "bpe" }},
		{"normalizing tokens", func(j *Job) { j.Data.Std = 1 }},
		{"recompute an MLP", func(j *Job) {
			j.Data.Dataset, j.Model, j.Data.Dir = DatasetMNIST, DefaultJob().Model, ""
			j.Train.Recompute = true
		}},
		{"negative micro batch", func(j *Job) { j.Train.MicroBatch = -1 }},
	} {
		j := good
		g := *good.Model.GPT
		j.Model.GPT = &g
		tc.edit(&j)
		if err := j.Validate(); !errors.Is(err, ErrBadJob) {
			t.Errorf("%s: Validate = %v, want ErrBadJob", tc.name, err)
		}
	}
}

// TestTextJobWithBPE trains on byte pairs learned from the training split: the tokens cover
// more than a byte each, the bits per byte account for it, and the checkpoint carries the
// tokenizer that TokenizerOf reads back.
func TestTextJobWithBPE(t *testing.T) {
	job := textJob(t)
	job.Data.Tokenizer, job.Model.GPT.Vocab = TokenizerBPE, 512
	job.Data.TrainLimit = 320
	job.Checkpoint = CheckpointSpec{Dir: t.TempDir()}
	res := mustRun(t, context.Background(), job, Options{})
	tr := res.Text
	if tr.Tokenizer != TokenizerBPE || tr.Vocab != 512 || !(tr.ValBytesPerToken > 1.5) {
		t.Fatalf("text report %+v: want bpe, 512 tokens, more than 1.5 bytes per token", tr)
	}
	if want := res.ValLoss / math.Ln2 / tr.ValBytesPerToken; math.Abs(*tr.ValBitsPerByte-want) > 1e-9 {
		t.Errorf("validation bits per byte %v, want %v", *tr.ValBitsPerByte, want)
	}
	trained, err := LoadTrained(context.Background(), job, job.Checkpoint.Dir)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := TokenizerOf(trained.Meta)
	if err != nil {
		t.Fatal(err)
	}
	src := []byte("func (d *decodeState) value(v reflect.Value) error {")
	ids := tok.Encode(nil, src)
	back, err := tok.Decode(nil, ids)
	if err != nil || string(back) != string(src) || tok.VocabSize() != 512 || len(ids) >= len(src) {
		t.Errorf("the checkpoint's tokenizer: %d tokens for %d bytes, decoded %q (%v)", len(ids), len(src), back, err)
	}
	t.Logf("%.2f bytes per token; validation %.3f nats per token, %.3f bits per byte", tr.ValBytesPerToken, res.ValLoss, *tr.ValBitsPerByte)
}

// TestValidationAtMaxSteps: a run that train.max_steps stops between epochs still reports the
// validation loss, evaluated at its last step.
func TestValidationAtMaxSteps(t *testing.T) {
	job := textJob(t)
	job.Train.MaxSteps = 5
	res := mustRun(t, context.Background(), job, Options{})
	if res.Steps != 5 || res.Epochs != 0 || math.IsNaN(res.ValLoss) || res.Text.ValBitsPerByte == nil {
		t.Fatalf("%d steps, %d epochs, validation loss %v: want 5 steps into the first epoch and a validation loss", res.Steps, res.Epochs, res.ValLoss)
	}
}
