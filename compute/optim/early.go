package optim

import (
	"fmt"
	"math"
)

// Metrics EarlyStopping can watch.
const (
	ValLoss     = "val_loss"     // lower is better
	ValAccuracy = "val_accuracy" // higher is better
)

// EarlyStopping is the early-stopping section of a job file.
type EarlyStopping struct {
	// Metric is val_loss (the default; lower is better) or val_accuracy
	// (higher is better).
	Metric string `yaml:"metric" json:"metric"`
	// Patience >= 1 is how many evaluations in a row without improvement
	// stop the run.
	Patience int `yaml:"patience" json:"patience"`
	// MinDelta >= 0 is how much better than the best so far a value must be
	// to count as an improvement, so that noise does not reset patience.
	MinDelta float64 `yaml:"min_delta,omitempty" json:"min_delta,omitempty"`
}

// Validate fills in the default metric and rejects nonsense, naming the field.
func (e *EarlyStopping) Validate() error {
	if e.Metric == "" {
		e.Metric = ValLoss
	}
	if e.Metric != ValLoss && e.Metric != ValAccuracy {
		return invalidf("early_stopping.metric must be val_loss or val_accuracy, got %q", e.Metric)
	}
	if e.Patience < 1 {
		return invalidf("early_stopping.patience must be >= 1, got %d", e.Patience)
	}
	if !(e.MinDelta >= 0) || math.IsInf(e.MinDelta, 0) {
		return invalidf("early_stopping.min_delta must be >= 0 and finite, got %v", e.MinDelta)
	}
	return nil
}

// Tracker follows a metric across evaluations, keeping the best value, the
// epoch it came from and a copy of the parameters at that point, so that a
// run that stops early can restore its best model.
type Tracker struct {
	cfg        EarlyStopping
	maximize   bool
	seen       bool
	bestEpoch  int
	bestValue  float64
	bestParams []float32
	stale      int // evaluations since the last improvement
}

// NewTracker returns a tracker for e, which must have passed Validate; an
// unknown metric panics.
func NewTracker(e EarlyStopping) *Tracker {
	switch e.Metric {
	case ValLoss, ValAccuracy:
	default:
		panic(fmt.Sprintf("optim: early stopping on unknown metric %q", e.Metric))
	}
	return &Tracker{cfg: e, maximize: e.Metric == ValAccuracy}
}

// Observe records the metric's value after epoch. When the value improves on
// the best by more than MinDelta (the first finite value always does), it
// copies params into the tracker's own buffer, reused across calls. stop
// reports that Patience evaluations in a row brought no improvement. A NaN
// value never improves.
func (t *Tracker) Observe(epoch int, value float64, params []float32) (improved, stop bool) {
	improved = !math.IsNaN(value) && (!t.seen || t.beats(value))
	if improved {
		t.seen = true
		t.bestEpoch, t.bestValue = epoch, value
		t.bestParams = append(t.bestParams[:0], params...)
		t.stale = 0
	} else {
		t.stale++
	}
	return improved, t.stale >= t.cfg.Patience
}

func (t *Tracker) beats(value float64) bool {
	if t.maximize {
		return value > t.bestValue+t.cfg.MinDelta
	}
	return value < t.bestValue-t.cfg.MinDelta
}

// Best returns the best epoch, value and parameters so far; ok is false
// before any improvement was observed. params is owned by the tracker and
// overwritten by the next improvement: copy it to keep it.
func (t *Tracker) Best() (epoch int, value float64, params []float32, ok bool) {
	if !t.seen {
		return 0, 0, nil, false
	}
	return t.bestEpoch, t.bestValue, t.bestParams, true
}
