package main

import (
	"log/slog"
	"sync"
	"time"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/tensorboard"
)

// tbLog writes a run's curves into a TensorBoard event file (--tensorboard DIR): every step's
// loss, accuracy and learning rate, every epoch's training and validation figures, and each
// world's size and generation at its first step. Writing never stops training: a failure is
// logged once and the file is left as it is.
type tbLog struct {
	mu        sync.Mutex
	w         *tensorboard.Writer
	log       *slog.Logger
	lastFlush time.Time
	failed    bool
}

// tbFlushEvery bounds how stale the file is while steps come: TensorBoard re-reads it every
// few seconds anyway.
const tbFlushEvery = time.Second

// openTensorBoard opens an event file in dir; nil (which hooks nothing) when dir is empty.
func openTensorBoard(dir string, log *slog.Logger) (*tbLog, error) {
	if dir == "" {
		return nil, nil
	}
	w, err := tensorboard.Create(dir)
	if err != nil {
		return nil, err
	}
	log.Info("writing TensorBoard scalars", "file", w.Path())
	return &tbLog{w: w, log: log, lastFlush: time.Now()}, nil
}

// hook chains the log's writes after opts' callbacks.
func (t *tbLog) hook(opts *actors.Options) {
	if t == nil {
		return
	}
	onStep, onEpoch, onWorld := opts.OnStep, opts.OnEpoch, opts.OnWorld
	opts.OnStep = func(s *actors.StepDone) {
		if onStep != nil {
			onStep(s)
		}
		t.add(s.Step, false, tensorboard.Scalar{Tag: "train/loss", Value: s.Loss},
			tensorboard.Scalar{Tag: "train/accuracy", Value: s.Accuracy}, tensorboard.Scalar{Tag: "train/lr", Value: s.LR})
	}
	opts.OnEpoch = func(e *actors.EpochDone) {
		if onEpoch != nil {
			onEpoch(e)
		}
		sc := []tensorboard.Scalar{{Tag: "epoch/train_loss", Value: e.TrainLoss}, {Tag: "epoch/train_accuracy", Value: e.TrainAccuracy}}
		if e.HasVal {
			sc = append(sc, tensorboard.Scalar{Tag: "epoch/val_loss", Value: e.ValLoss}, tensorboard.Scalar{Tag: "epoch/val_accuracy", Value: e.ValAccuracy})
		}
		t.add(e.Step, true, sc...)
	}
	opts.OnWorld = func(w actors.WorldInfo) {
		if onWorld != nil {
			onWorld(w)
		}
		t.add(w.StartStep, true, tensorboard.Scalar{Tag: "world/members", Value: float64(len(w.Members))},
			tensorboard.Scalar{Tag: "world/generation", Value: float64(w.Generation)})
	}
}

// add writes one event, and flushes when asked or when the last flush is a while ago.
func (t *tbLog) add(step int64, flush bool, sc ...tensorboard.Scalar) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.failed {
		return
	}
	now := time.Now()
	err := t.w.Add(step, now, sc...)
	if err == nil && (flush || now.Sub(t.lastFlush) >= tbFlushEvery) {
		err, t.lastFlush = t.w.Flush(), now
	}
	if err != nil {
		t.failed = true
		t.log.Warn("TensorBoard scalars stop here", "file", t.w.Path(), "err", err)
	}
}

// close flushes and closes the file.
func (t *tbLog) close() error {
	if t == nil {
		return nil
	}
	return t.w.Close()
}
