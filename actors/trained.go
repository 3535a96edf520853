package actors

import (
	"context"
	"errors"
	"fmt"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/compute"
)

// Trained is a job's model restored from the newest valid checkpoint of its store.
type Trained struct {
	Model      *compute.Model
	Checkpoint string // the checkpoint's name
	Step       int64  // the steps it had applied
	Final      bool   // written by a run that finished, not by one interrupted
	// Fingerprint is the job fingerprint the checkpoint carries.
	Fingerprint string
	Skipped     []checkpoint.SkipReport // broken checkpoints passed over
	// Meta is the checkpoint's metadata: a text job's carries its tokenizer (TokenizerOf).
	Meta map[string]string
}

// CheckpointJob returns the job that wrote the newest valid checkpoint at loc, as the
// checkpoint carries it (without its data.dir and checkpoint settings, as joiners get it).
func CheckpointJob(ctx context.Context, loc string) (Job, error) {
	snap, _, _, err := newestSnapshot(ctx, loc)
	if err != nil {
		return Job{}, err
	}
	spec := snap.Meta["job_spec"]
	if spec == "" {
		return Job{}, fmt.Errorf("%w: the checkpoint in %s does not carry its job: give the job file (--job)", ErrBadJob, loc)
	}
	job, err := parseSharedJob([]byte(spec))
	if err != nil {
		return Job{}, fmt.Errorf("the job in the checkpoint in %s: %w", loc, err)
	}
	return job, nil
}

// newestSnapshot loads the newest valid checkpoint at loc.
func newestSnapshot(ctx context.Context, loc string) (*checkpoint.Snapshot, string, []checkpoint.SkipReport, error) {
	store, err := OpenStore(ctx, loc)
	if err != nil {
		return nil, "", nil, err
	}
	snap, name, skipped, err := checkpoint.NewManager(store, 0).LoadLatest()
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return nil, "", skipped, fmt.Errorf("%w in %s", ErrNotTrained, loc)
	}
	return snap, name, skipped, err
}

// ErrNotTrained is wrapped by LoadTrained's error when the store holds no valid checkpoint.
var ErrNotTrained = errors.New("no valid checkpoint")

// LoadTrained restores job's model from the newest valid checkpoint at loc (any location
// OpenStore takes). It refuses a checkpoint another job wrote: the fingerprint covers the
// model, the optimizer, the seed and the data order.
func LoadTrained(ctx context.Context, job Job, loc string) (*Trained, error) {
	snap, name, skipped, err := newestSnapshot(ctx, loc)
	if err != nil {
		return nil, err
	}
	t := &Trained{Checkpoint: name, Step: snap.Step, Final: snap.Meta[metaFinal] == "true", Fingerprint: snap.Meta["fingerprint"], Skipped: skipped,
		Meta: snap.Meta}
	if want := job.Fingerprint(); !job.WroteCheckpoint(t.Fingerprint) {
		return t, fmt.Errorf("%w: %s in %s was written by another job (fingerprint %q, job %q has %q): give the job file it was trained with, "+
			"with the model, optimizer, seed, batch_size, train_limit and validation of that run (flags given to train included)",
			ErrBadJob, name, loc, t.Fingerprint, job.Name, want)
	}
	if t.Model, err = compute.NewModel(job.Model, job.Seed); err != nil {
		return t, err
	}
	if len(snap.Params) != t.Model.NumParams() {
		return t, fmt.Errorf("%w: %s holds %d parameters, the job's model has %d", ErrBadJob, name, len(snap.Params), t.Model.NumParams())
	}
	copy(t.Model.Params(), snap.Params)
	return t, nil
}
