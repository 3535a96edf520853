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
}

// ErrNotTrained is wrapped by LoadTrained's error when the store holds no valid checkpoint.
var ErrNotTrained = errors.New("no valid checkpoint")

// LoadTrained restores job's model from the newest valid checkpoint at loc (any location
// OpenStore takes). It refuses a checkpoint another job wrote: the fingerprint covers the
// model, the optimizer, the seed and the data order.
func LoadTrained(ctx context.Context, job Job, loc string) (*Trained, error) {
	store, err := OpenStore(ctx, loc)
	if err != nil {
		return nil, err
	}
	snap, name, skipped, err := checkpoint.NewManager(store, 0).LoadLatest()
	if errors.Is(err, checkpoint.ErrNoCheckpoint) {
		return nil, fmt.Errorf("%w in %s", ErrNotTrained, loc)
	}
	if err != nil {
		return nil, err
	}
	t := &Trained{Checkpoint: name, Step: snap.Step, Final: snap.Meta[metaFinal] == "true", Fingerprint: snap.Meta["fingerprint"], Skipped: skipped}
	if want := job.Fingerprint(); t.Fingerprint != want {
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
