package optim

import (
	"errors"
	"math"
	"slices"
	"testing"
)

func TestEarlyStoppingValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      EarlyStopping
		want    string // error text; empty for valid
		wantCfg EarlyStopping
	}{
		{"default metric", EarlyStopping{Patience: 3}, "", EarlyStopping{Metric: ValLoss, Patience: 3}},
		{"accuracy", EarlyStopping{Metric: ValAccuracy, Patience: 1, MinDelta: 0.01}, "", EarlyStopping{Metric: ValAccuracy, Patience: 1, MinDelta: 0.01}},
		{"unknown metric", EarlyStopping{Metric: "train_loss", Patience: 3}, `optim: early_stopping.metric must be val_loss or val_accuracy, got "train_loss"`, EarlyStopping{}},
		{"zero patience", EarlyStopping{Metric: ValLoss}, "optim: early_stopping.patience must be >= 1, got 0", EarlyStopping{}},
		{"negative delta", EarlyStopping{Patience: 2, MinDelta: -1}, "optim: early_stopping.min_delta must be >= 0 and finite, got -1", EarlyStopping{}},
		{"nan delta", EarlyStopping{Patience: 2, MinDelta: math.NaN()}, "optim: early_stopping.min_delta must be >= 0 and finite, got NaN", EarlyStopping{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.in
			err := e.Validate()
			if tc.want == "" {
				if err != nil || e != tc.wantCfg {
					t.Fatalf("Validate() = %v, %+v; want nil, %+v", err, e, tc.wantCfg)
				}
				return
			}
			if err == nil || err.Error() != tc.want || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want %q wrapping ErrInvalidConfig", err, tc.want)
			}
		})
	}
}

func TestTracker(t *testing.T) {
	type obs struct {
		value          float64
		improved, stop bool
	}
	tests := []struct {
		name      string
		cfg       EarlyStopping
		seq       []obs
		bestEpoch int
		bestValue float64
	}{
		{"loss improves then stalls", EarlyStopping{Metric: ValLoss, Patience: 2}, []obs{
			{1.0, true, false}, {0.8, true, false}, {0.9, false, false}, {0.85, false, true},
		}, 1, 0.8},
		{"improvement resets patience", EarlyStopping{Metric: ValLoss, Patience: 2}, []obs{
			{1.0, true, false}, {1.1, false, false}, {0.9, true, false}, {0.95, false, false}, {0.92, false, true},
		}, 2, 0.9},
		{"accuracy maximised", EarlyStopping{Metric: ValAccuracy, Patience: 1}, []obs{
			{0.5, true, false}, {0.7, true, false}, {0.6, false, true},
		}, 1, 0.7},
		{"min delta ignores small gains", EarlyStopping{Metric: ValLoss, Patience: 2, MinDelta: 0.1}, []obs{
			{1.0, true, false}, {0.95, false, false}, {0.85, true, false}, {0.8, false, false}, {0.76, false, true},
		}, 2, 0.85},
		{"equal is not better", EarlyStopping{Metric: ValAccuracy, Patience: 1}, []obs{
			{0.5, true, false}, {0.5, false, true},
		}, 0, 0.5},
		{"nan never improves", EarlyStopping{Metric: ValLoss, Patience: 3}, []obs{
			{math.NaN(), false, false}, {2, true, false}, {math.NaN(), false, false},
		}, 1, 2},
		{"patience one stops at first stall", EarlyStopping{Metric: ValLoss, Patience: 1}, []obs{
			{1, true, false}, {2, false, true}, {3, false, true},
		}, 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTracker(tc.cfg)
			if _, _, _, ok := tr.Best(); ok {
				t.Fatal("Best() ok before any observation")
			}
			for epoch, o := range tc.seq {
				params := []float32{float32(epoch), float32(o.value)}
				improved, stop := tr.Observe(epoch, o.value, params)
				if improved != o.improved || stop != o.stop {
					t.Fatalf("epoch %d value %v: improved, stop = %v, %v; want %v, %v", epoch, o.value, improved, stop, o.improved, o.stop)
				}
				params[0] = -1 // the tracker must hold its own copy
			}
			epoch, value, params, ok := tr.Best()
			if !ok || epoch != tc.bestEpoch || value != tc.bestValue {
				t.Fatalf("Best() = %d, %v, ok %v; want %d, %v", epoch, value, ok, tc.bestEpoch, tc.bestValue)
			}
			if want := []float32{float32(tc.bestEpoch), float32(tc.bestValue)}; !slices.Equal(params, want) {
				t.Fatalf("best params %v, want %v", params, want)
			}
		})
	}
}

func TestTrackerReusesBuffer(t *testing.T) {
	tr := NewTracker(EarlyStopping{Metric: ValLoss, Patience: 1})
	params := make([]float32, 1000)
	tr.Observe(0, 100, params)
	value := 100.0
	allocs := testing.AllocsPerRun(10, func() {
		value--
		tr.Observe(0, value, params)
	})
	if allocs != 0 {
		t.Fatalf("Observe allocates %v times per improvement", allocs)
	}
}

func TestNewTrackerPanicsOnUnknownMetric(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("NewTracker accepted an unknown metric")
		}
	}()
	NewTracker(EarlyStopping{Metric: "loss", Patience: 1})
}
