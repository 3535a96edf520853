package actors

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
	"github.com/troupe-ml/troupe/compute/prune"
	"github.com/troupe-ml/troupe/data/tabular"
)

// Job is everything a training run needs to know, as a job file holds it. It is plain data so
// that a peer can later hand it to a joiner as it is.
type Job struct {
	Name       string            `yaml:"name" json:"name"`
	Seed       uint64            `yaml:"seed" json:"seed"`
	Data       DataSpec          `yaml:"data" json:"data"`
	Model      compute.ModelSpec `yaml:"model" json:"model"`
	Optimizer  optim.Config      `yaml:"optimizer" json:"optimizer"`
	Train      TrainSpec         `yaml:"train" json:"train"`
	Checkpoint CheckpointSpec    `yaml:"checkpoint" json:"checkpoint"`
	// Prune, when set, prunes the weights by magnitude while training (biases are kept).
	Prune *prune.Config `yaml:"prune,omitempty" json:"prune,omitempty"`
	// Privacy, when set, trains with DP-SGD.
	Privacy *PrivacySpec `yaml:"privacy,omitempty" json:"privacy,omitempty"`
	// Distill, when set, trains the model as the student of a teacher model.
	Distill *DistillSpec `yaml:"distill,omitempty" json:"distill,omitempty"`
}

// PrivacySpec is DP-SGD: every sample's gradient clipped to ClipNorm, Gaussian noise of
// standard deviation NoiseMultiplier·ClipNorm added once to the sum of each global step, and
// the privacy spent accounted as (epsilon, Delta) with a Rényi-DP accountant that takes each
// step as the Poisson-subsampled Gaussian mechanism at rate batch_size / training samples.
type PrivacySpec struct {
	NoiseMultiplier float64 `yaml:"noise_multiplier" json:"noise_multiplier"`
	ClipNorm        float64 `yaml:"clip_norm" json:"clip_norm"`
	Delta           float64 `yaml:"delta" json:"delta"`
}

func (p *PrivacySpec) validate() error {
	switch {
	case !(p.NoiseMultiplier > 0) || math.IsInf(p.NoiseMultiplier, 0):
		return fmt.Errorf("noise_multiplier must be > 0, got %v", p.NoiseMultiplier)
	case !(p.ClipNorm > 0) || math.IsInf(p.ClipNorm, 0):
		return fmt.Errorf("clip_norm must be > 0, got %v", p.ClipNorm)
	case !(p.Delta > 0 && p.Delta < 1):
		return fmt.Errorf("delta must be in (0, 1), got %v", p.Delta)
	}
	return nil
}

// DataSpec says where the samples come from and how they are prepared.
type DataSpec struct {
	// Dataset names the data set: mnist (the default), mnist-synthetic, titanic, one of the
	// generated sets synthetic-images and synthetic-tabular, or text (for a gpt model).
	Dataset string `yaml:"dataset" json:"dataset"`
	// Dir holds the MNIST IDX files, or for titanic names its CSV file, or for text the corpus
	// (a file or a directory); empty means find them (TROUPE_MNIST_DIR or TROUPE_TITANIC_CSV,
	// then the Go module cache; for text the Go standard library's source).
	Dir string `yaml:"dir,omitempty" json:"dir,omitempty"`
	// TrainLimit keeps only the first N training samples (0 = all): for quick runs and tests.
	TrainLimit int `yaml:"train_limit,omitempty" json:"train_limit,omitempty"`
	// TestLimit keeps only the first N test samples (0 = all).
	TestLimit int `yaml:"test_limit,omitempty" json:"test_limit,omitempty"`
	// Validation holds out the last N training samples for early stopping (0 = none).
	Validation int `yaml:"validation,omitempty" json:"validation,omitempty"`
	// Mean and Std normalize pixels after scaling them to [0,1]; Std 0 leaves them in [0,1].
	Mean float32 `yaml:"mean,omitempty" json:"mean,omitempty"`
	Std  float32 `yaml:"std,omitempty" json:"std,omitempty"`
	// Prefetch is how many batches the shard reader prepares ahead of the worker.
	Prefetch int `yaml:"prefetch,omitempty" json:"prefetch,omitempty"`
	// Anonymize (titanic only) transforms the table's columns before any row becomes a
	// feature vector, and sets the k-anonymity target.
	Anonymize *tabular.Config `yaml:"anonymize,omitempty" json:"anonymize,omitempty"`
	// Synthetic shapes the model mnist-synthetic fits to the training images, and seeds the
	// generated sets.
	Synthetic *SyntheticSpec `yaml:"synthetic,omitempty" json:"synthetic,omitempty"`
	// Tokenizer (text only) is byte (the default) or bpe, trained on the training split to
	// model.gpt.vocab tokens.
	Tokenizer string `yaml:"tokenizer,omitempty" json:"tokenizer,omitempty"`
	// CorpusDigest (text only), when set, is the digest the training tokens must have (the
	// run refuses any other corpus). A peer sets it in the job it hands joiners, so that a
	// node whose toolchain carries another standard library cannot train on other text.
	CorpusDigest string `yaml:"corpus_digest,omitempty" json:"corpus_digest,omitempty"`
}

// SyntheticSpec is, for mnist-synthetic, the per-class Gaussian model its training samples are
// drawn from: Rank principal directions per Gaussian (default 30) and Components Gaussians per
// class (default 1). For synthetic-images and synthetic-tabular, Seed picks the generator (its
// classes' prototypes or mixtures; default: the job's seed).
type SyntheticSpec struct {
	Rank       int    `yaml:"rank,omitempty" json:"rank,omitempty"`
	Components int    `yaml:"components,omitempty" json:"components,omitempty"`
	Seed       uint64 `yaml:"seed,omitempty" json:"seed,omitempty"`
}

func (s *SyntheticSpec) rank() int {
	if s == nil || s.Rank == 0 {
		return 30
	}
	return s.Rank
}

func (s *SyntheticSpec) components() int {
	if s == nil || s.Components == 0 {
		return 1
	}
	return s.Components
}

// TrainSpec sets the length and the shape of the run.
type TrainSpec struct {
	Epochs int `yaml:"epochs" json:"epochs"`
	// BatchSize is the global batch: samples per step, fixed whatever the world size.
	BatchSize int `yaml:"batch_size" json:"batch_size"`
	// MaxSteps stops the run early at this step (0 = run all epochs).
	MaxSteps int64 `yaml:"max_steps,omitempty" json:"max_steps,omitempty"`
	// EvalBatch is the chunk size for evaluation passes.
	EvalBatch int `yaml:"eval_batch,omitempty" json:"eval_batch,omitempty"`
	// EarlyStopping, when set, watches a validation metric (needs data.validation > 0).
	EarlyStopping *optim.EarlyStopping `yaml:"early_stopping,omitempty" json:"early_stopping,omitempty"`
	// BucketKiB is the smallest bucket of trailing layers' gradients that a world of several
	// nodes starts reducing while the backward pass goes on (0: 1024 KiB; -1: none, the whole
	// gradient is reduced after the backward pass).
	BucketKiB int `yaml:"bucket_kib,omitempty" json:"bucket_kib,omitempty"`
	// Device is where the model trains: cpu (the default), or cuda / cuda:N for a GPU in a
	// binary built with the cuda tag. Each node may choose its own (troupe node --device):
	// checkpoints and state transfers carry host copies, so devices mix in one world.
	Device string `yaml:"device,omitempty" json:"device,omitempty"`
	// MicroBatch, when > 0, splits each rank's share of the global batch into micro-batches
	// of at most this many samples whose gradients are summed before the reduction: memory
	// falls with the micro-batch while the global batch, and so the training, stays the same.
	MicroBatch int `yaml:"micro_batch,omitempty" json:"micro_batch,omitempty"`
	// Recompute (gpt only) keeps only each transformer block's input and output between the
	// forward and the backward pass and computes the rest again: less memory, more compute.
	Recompute bool `yaml:"recompute,omitempty" json:"recompute,omitempty"`
	// ShardOptimizer (ZeRO stage 1) keeps on each rank of a world only its 1/R slice of the
	// optimizer state: gradients are reduce-scattered, each rank updates its slice of the
	// parameters, and the parameters are all-gathered. Memory for the optimizer state falls
	// as ranks are added; the updates are those of the unsharded run up to the float rounding
	// of the clipping norm.
	ShardOptimizer bool `yaml:"shard_optimizer,omitempty" json:"shard_optimizer,omitempty"`
}

// onDevice reports whether the job trains through a compute.Backend other than the CPU's.
func (t TrainSpec) onDevice() bool { return t.Device != "" && t.Device != "cpu" }

// bucketValues is the smallest bucket in gradient values, -1 for none.
func (t TrainSpec) bucketValues() int {
	switch {
	case t.BucketKiB < 0:
		return -1
	case t.BucketKiB == 0:
		return defaultBucketValues
	}
	return t.BucketKiB * 1024 / 4
}

// CheckpointSpec sets where and how often snapshots are written.
type CheckpointSpec struct {
	// Dir is where checkpoints go: a directory, file:///path, or s3://bucket/prefix?endpoint=URL
	// for S3-compatible object storage (see OpenStore). Empty disables checkpoints.
	Dir string `yaml:"dir,omitempty" json:"dir,omitempty"`
	// EverySteps writes a snapshot every N steps (and always at the end of the run).
	EverySteps int `yaml:"every_steps,omitempty" json:"every_steps,omitempty"`
	// Keep is how many committed checkpoints stay on disk.
	Keep int `yaml:"keep,omitempty" json:"keep,omitempty"`
	// KeepEvery spares, besides the newest Keep, every checkpoint whose step is a multiple of
	// it (0: none): a sparse history to go back to.
	KeepEvery int `yaml:"keep_every,omitempty" json:"keep_every,omitempty"`
	// Resume continues from the newest valid checkpoint in Dir when there is one.
	Resume bool `yaml:"resume,omitempty" json:"resume,omitempty"`
	// Overwrite lets a fresh run replace the checkpoints of an unfinished earlier run in Dir.
	// Without it such a run is refused, so that forgetting --resume never destroys work; the
	// checkpoints of a finished run are replaced either way.
	Overwrite bool `yaml:"overwrite,omitempty" json:"overwrite,omitempty"`
}

// DefaultJob is the embedded default: the MNIST MLP 784-512-512-10 (ReLU) trained with Adam.
func DefaultJob() Job {
	return Job{
		Name:  "mnist-mlp",
		Seed:  1,
		Data:  DataSpec{Dataset: "mnist"},
		Model: compute.MLP(784, []int{512, 512}, 10),
		Optimizer: optim.Config{
			Name:     "adam",
			LR:       1e-3,
			Schedule: optim.Schedule{Kind: "cosine", MinLR: 1e-5},
		},
		Train:      TrainSpec{Epochs: 8, BatchSize: 128},
		Checkpoint: CheckpointSpec{Dir: "checkpoints/mnist-mlp", EverySteps: 200, Keep: 3},
	}
}

// LoadJob reads a YAML job file. Fields the file leaves out keep the defaults of DefaultJob,
// except the model and the optimizer, which a file that has them gives in full (half of the
// default Adam's settings under a file's SGD would be nonsense). Unknown fields are errors, so a
// typo never trains silently with a default.
func LoadJob(path string) (Job, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Job{}, fmt.Errorf("job file: %w", err)
	}
	job, err := ParseJob(raw)
	if err != nil {
		return Job{}, fmt.Errorf("job file %s: %w", path, err)
	}
	return job, nil
}

// ParseJob decodes a YAML job over the defaults and validates it.
func ParseJob(raw []byte) (Job, error) {
	job := DefaultJob()
	def := job
	job.Model, job.Optimizer = compute.ModelSpec{}, optim.Config{}
	// A file without checkpoint.dir checkpoints under its own name, not the default job's:
	// two jobs sharing a directory would resume from each other's state.
	const unsetDir = "\x00unset"
	job.Checkpoint.Dir = unsetDir
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&job); err != nil {
		return Job{}, fmt.Errorf("%w: %w", ErrBadJob, err)
	}
	if job.Checkpoint.Dir == unsetDir {
		job.Checkpoint.Dir = defaultCheckpointDir(job.Name)
	}
	if len(job.Model.Layers) == 0 && len(job.Model.Input) == 0 && job.Model.GPT == nil {
		job.Model = def.Model
	}
	if job.Optimizer.Name == "" && job.Optimizer.LR == 0 {
		job.Optimizer = def.Optimizer
	}
	if err := job.Validate(); err != nil {
		return Job{}, err
	}
	return job, nil
}

// defaultCheckpointDir is where a job that names no checkpoint directory keeps its
// checkpoints: checkpoints/NAME, or checkpoints/job when the name is empty or not a plain
// file name.
func defaultCheckpointDir(name string) string {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, `/\`+"\x00") {
		name = "job"
	}
	return "checkpoints/" + name
}

// ErrBadJob marks every error about a job's content.
var ErrBadJob = errors.New("actors: bad job")

// Validate fills the defaults a job may leave out and rejects what cannot run, naming the field.
func (j *Job) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadJob, fmt.Sprintf(format, args...))
	}
	if j.Name == "" {
		j.Name = "job"
	}
	if j.Data.Dataset == "" {
		j.Data.Dataset = DatasetMNIST
	}
	switch j.Data.Dataset {
	case DatasetMNIST, DatasetMNISTSynthetic:
		if j.Data.Anonymize != nil {
			return bad("data.anonymize is for tabular data (titanic), not %s", j.Data.Dataset)
		}
	case DatasetSyntheticImages, DatasetSyntheticTabular:
		if j.Data.Anonymize != nil {
			return bad("data.anonymize is for tabular data read from a file (titanic), not %s", j.Data.Dataset)
		}
	case DatasetTitanic:
		if j.Data.TrainLimit != 0 || j.Data.TestLimit != 0 || j.Data.Validation != 0 {
			return bad("data.train_limit, test_limit and validation are for image sets; titanic holds out a fifth of its rows for testing")
		}
		if a := j.Data.Anonymize; a != nil {
			if err := a.Validate(); err != nil {
				return bad("data.anonymize: %v", err)
			}
		}
	case DatasetText:
		if err := j.validateText(); err != nil {
			return bad("%v", err)
		}
	default:
		return bad("data.dataset: unknown dataset %q (known: %s)", j.Data.Dataset, strings.Join(datasets, ", "))
	}
	if j.Model.GPT != nil && j.Data.Dataset != DatasetText {
		return bad("model.gpt is a language model: it trains on data.dataset %s, not %s", DatasetText, j.Data.Dataset)
	}
	if j.Data.Tokenizer != "" && j.Data.Dataset != DatasetText {
		return bad("data.tokenizer is for data.dataset %s, not %s", DatasetText, j.Data.Dataset)
	}
	if s := j.Data.Synthetic; s != nil {
		switch {
		case j.Data.Dataset == DatasetMNIST || j.Data.Dataset == DatasetTitanic:
			return bad("data.synthetic is for the synthetic data sets, not %s", j.Data.Dataset)
		case j.Data.Dataset != DatasetMNISTSynthetic && (s.Rank != 0 || s.Components != 0):
			return bad("data.synthetic.rank and components shape %s's fitted model, not %s", DatasetMNISTSynthetic, j.Data.Dataset)
		case j.Data.Dataset == DatasetMNISTSynthetic && s.Seed != 0:
			return bad("data.synthetic.seed is for the generated sets; %s draws by the job's seed", DatasetMNISTSynthetic)
		}
	}
	if s := j.Data.Synthetic; s != nil && (s.Rank < 0 || s.Components < 0) {
		return bad("data.synthetic: rank and components must be >= 0, got %d and %d", s.Rank, s.Components)
	}
	for name, v := range map[string]int{"data.train_limit": j.Data.TrainLimit, "data.test_limit": j.Data.TestLimit,
		"data.validation": j.Data.Validation, "data.prefetch": j.Data.Prefetch, "train.eval_batch": j.Train.EvalBatch,
		"checkpoint.every_steps": j.Checkpoint.EverySteps, "checkpoint.keep": j.Checkpoint.Keep,
		"checkpoint.keep_every": j.Checkpoint.KeepEvery, "train.micro_batch": j.Train.MicroBatch} {
		if v < 0 {
			return bad("%s must be >= 0, got %d", name, v)
		}
	}
	if j.Data.Std < 0 {
		return bad("data.std must be >= 0, got %v", j.Data.Std)
	}
	if j.Data.Prefetch == 0 {
		j.Data.Prefetch = 2 // one batch in the worker's hands, two ready: enough to hide gathering
	}
	if j.Train.Epochs <= 0 {
		return bad("train.epochs must be > 0, got %d", j.Train.Epochs)
	}
	if j.Train.BatchSize <= 0 {
		return bad("train.batch_size must be > 0, got %d", j.Train.BatchSize)
	}
	if j.Train.MaxSteps < 0 {
		return bad("train.max_steps must be >= 0, got %d", j.Train.MaxSteps)
	}
	if j.Train.EvalBatch == 0 {
		j.Train.EvalBatch = 1000
		if j.Model.GPT != nil {
			j.Train.EvalBatch = 32 // windows: a window's activations are block_size rows
		}
	}
	if j.Train.MicroBatch > 0 && (j.Privacy != nil || j.Distill != nil) {
		return bad("train.micro_batch does not combine with privacy or distill, whose losses need the whole batch")
	}
	if j.Train.ShardOptimizer && (j.Train.onDevice() || j.Prune != nil || j.Privacy != nil) {
		return bad("train.shard_optimizer runs on the CPU without pruning or privacy, which need the whole gradient or optimizer state on every rank")
	}
	if j.Train.Recompute && j.Model.GPT == nil {
		return bad("train.recompute is for gpt models, whose blocks it recomputes")
	}
	if j.Train.BucketKiB < -1 {
		return bad("train.bucket_kib must be >= -1 (-1: no buckets sent ahead), got %d", j.Train.BucketKiB)
	}
	if es := j.Train.EarlyStopping; es != nil {
		if j.Data.Validation == 0 {
			return bad("train.early_stopping needs data.validation > 0")
		}
		if err := es.Validate(); err != nil {
			return bad("train.early_stopping: %v", err)
		}
	}
	if err := j.Model.Validate(); err != nil {
		return bad("model: %v", err)
	}
	if err := j.Optimizer.Validate(); err != nil {
		return bad("optimizer: %v", err)
	}
	if j.Train.onDevice() {
		if !slices.Contains(compute.Devices(), compute.DeviceKind(j.Train.Device)) {
			return bad("train.device %q: this binary knows %s (a GPU needs the build with -tags cuda)", j.Train.Device, strings.Join(compute.Devices(), ", "))
		}
		for _, o := range []struct {
			name string
			on   bool
		}{{"prune", j.Prune != nil}, {"distill", j.Distill != nil}, {"privacy", j.Privacy != nil}} {
			if o.on {
				return bad("train.device %s: %s runs on the CPU backend only (train.device: cpu)", j.Train.Device, o.name)
			}
		}
	}
	if j.Prune != nil {
		if err := j.Prune.Validate(); err != nil {
			return bad("prune: %v", err)
		}
	}
	if j.Distill != nil {
		if err := j.Distill.validate(); err != nil {
			return bad("distill: %v", err)
		}
	}
	if j.Privacy != nil {
		if err := j.Privacy.validate(); err != nil {
			return bad("privacy: %v", err)
		}
	}
	if j.Checkpoint.Keep == 0 {
		j.Checkpoint.Keep = 3
	}
	if j.Checkpoint.Resume && j.Checkpoint.Dir == "" {
		return bad("checkpoint.resume needs checkpoint.dir")
	}
	return nil
}

// validateText checks what a text job needs: a gpt model, a known tokenizer, and none of the
// image and table sets' settings.
func (j *Job) validateText() error {
	switch {
	case j.Model.GPT == nil:
		return fmt.Errorf("data.dataset %s needs a gpt model (model.gpt)", DatasetText)
	case j.Data.Mean != 0 || j.Data.Std != 0:
		return fmt.Errorf("data.mean and std normalize pixels, not tokens")
	case j.Data.CorpusDigest != "" && len(j.Data.CorpusDigest) != 64:
		return fmt.Errorf("data.corpus_digest must be 64 hex digits (a SHA-256), got %q", j.Data.CorpusDigest)
	case j.Data.Anonymize != nil || j.Data.Synthetic != nil:
		return fmt.Errorf("data.anonymize and synthetic are not for %s", DatasetText)
	case j.Prune != nil || j.Privacy != nil || j.Distill != nil:
		return fmt.Errorf("prune, privacy and distill are for the classifiers, not for a gpt model")
	}
	switch j.Data.Tokenizer {
	case "", TokenizerByte:
		if j.Model.GPT.Vocab != 256 {
			return fmt.Errorf("the byte tokenizer has 256 tokens, model.gpt.vocab is %d (data.tokenizer: %s for another vocabulary)", j.Model.GPT.Vocab, TokenizerBPE)
		}
	case TokenizerBPE:
		if j.Model.GPT.Vocab < 256 || j.Model.GPT.Vocab > 1<<16 {
			return fmt.Errorf("a bpe vocabulary holds 256 to 65536 tokens, model.gpt.vocab is %d", j.Model.GPT.Vocab)
		}
	default:
		return fmt.Errorf("data.tokenizer %q is not one of %s, %s", j.Data.Tokenizer, TokenizerByte, TokenizerBPE)
	}
	return nil
}

// Fingerprint identifies what a checkpoint's tensors mean: the model and optimizer shape and
// the data order. A checkpoint with another fingerprint cannot be resumed by this job. Defaults
// spelled out and left out hash alike (init: he on a dense layer, the softmax cross-entropy
// loss), so the default job and examples/mnist-mlp.yaml, which writes it out, are one job.
func (j *Job) Fingerprint() string { return j.fingerprint(true) }

// WroteCheckpoint reports whether a checkpoint's fingerprint is this job's: Fingerprint, or the
// fingerprint of releases before it spelled defaults the canonical way, so that their
// checkpoints still resume.
func (j *Job) WroteCheckpoint(fp string) bool {
	return fp == j.fingerprint(true) || fp == j.fingerprint(false)
}

func (j *Job) fingerprint(canonical bool) string {
	model := j.Model
	if len(model.Input) == 0 && len(model.Layers) == 0 {
		// A gpt's: absent or empty (as a job read back from YAML has them) mean the same.
		model.Input, model.Layers = nil, nil
	} else if canonical {
		model.Layers = slices.Clone(model.Layers)
		for i, l := range model.Layers {
			if (l.Type == compute.LayerDense || l.Type == compute.LayerConv2D) && l.Init == "" {
				model.Layers[i].Init = compute.InitHe
			}
		}
		if model.Loss == "" {
			model.Loss = compute.LossSoftmaxCrossEntropy
		}
	}
	key := struct {
		Model     compute.ModelSpec
		Optimizer string
		Seed      uint64
		Batch     int
		Train     int
		Val       int
		Tokenizer string `json:",omitempty"` // what a text model's embedding rows mean
	}{model, j.Optimizer.Name, j.Seed, j.Train.BatchSize, j.Data.TrainLimit, j.Data.Validation, j.Data.Tokenizer}
	raw, _ := json.Marshal(key) // plain structs of numbers and strings always marshal
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}
