package optim

import (
	"math"
	"testing"
)

func TestScheduleLR(t *testing.T) {
	tests := []struct {
		name        string
		s           Schedule
		step, total int
		want        float64
	}{
		{"constant first", Schedule{Kind: Constant}, 0, 100, 1},
		{"constant past end", Schedule{Kind: Constant}, 1000, 100, 1},
		{"unset kind is constant", Schedule{}, 5, 0, 1},
		{"warmup first step", Schedule{Warmup: 4}, 0, 100, 0.25},
		{"warmup middle", Schedule{Warmup: 4}, 1, 100, 0.5},
		{"warmup last step", Schedule{Warmup: 4}, 3, 100, 1},
		{"after warmup", Schedule{Warmup: 4}, 4, 100, 1},
		{"step before first drop", Schedule{Kind: StepDecay, StepSize: 10, Gamma: 0.5}, 9, 100, 1},
		{"step first drop", Schedule{Kind: StepDecay, StepSize: 10, Gamma: 0.5}, 10, 100, 0.5},
		{"step third stage", Schedule{Kind: StepDecay, StepSize: 10, Gamma: 0.5}, 25, 100, 0.25},
		{"step counts from warmup end", Schedule{Kind: StepDecay, Warmup: 5, StepSize: 10, Gamma: 0.5}, 14, 100, 1},
		{"step drop after warmup", Schedule{Kind: StepDecay, Warmup: 5, StepSize: 10, Gamma: 0.5}, 15, 100, 0.5},
		{"step warmup", Schedule{Kind: StepDecay, Warmup: 5, StepSize: 10, Gamma: 0.5}, 0, 100, 0.2},
		{"cosine warmup", Schedule{Kind: Cosine, Warmup: 10, MinLR: 0.1}, 0, 110, 0.1},
		{"cosine start", Schedule{Kind: Cosine, Warmup: 10, MinLR: 0.1}, 10, 110, 1},
		{"cosine half way", Schedule{Kind: Cosine, Warmup: 10, MinLR: 0.1}, 60, 110, 0.55},
		{"cosine end", Schedule{Kind: Cosine, Warmup: 10, MinLR: 0.1}, 110, 110, 0.1},
		{"cosine past end", Schedule{Kind: Cosine, Warmup: 10, MinLR: 0.1}, 500, 110, 0.1},
		{"cosine quarter no warmup", Schedule{Kind: Cosine}, 25, 100, 0.5 * (1 + math.Sqrt2/2)},
		{"cosine no span", Schedule{Kind: Cosine, Warmup: 10, MinLR: 0.1}, 10, 10, 0.1},
		{"cosine no total", Schedule{Kind: Cosine, MinLR: 0.1}, 0, 0, 0.1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.s.LR(1, tc.step, tc.total); math.Abs(got-tc.want) > 1e-12 {
				t.Fatalf("LR(1, %d, %d) = %v, want %v", tc.step, tc.total, got, tc.want)
			}
		})
	}
}

// TestScheduleShape checks, over whole runs, that warmup climbs to the base
// rate and every decay then never rises and stays within [floor, base].
func TestScheduleShape(t *testing.T) {
	const base, total = 0.3, 200
	for _, s := range []Schedule{
		{Kind: Constant, Warmup: 7},
		{Kind: StepDecay, Warmup: 7, StepSize: 13, Gamma: 0.7},
		{Kind: Cosine, Warmup: 7, MinLR: 0.01},
		{Kind: Cosine},
	} {
		prev := 0.0
		for step := range total + 20 {
			lr := s.LR(base, step, total)
			rising := step < s.Warmup
			if rising && !(lr > prev) || !rising && step > s.Warmup && lr > prev {
				t.Fatalf("%+v: step %d lr %v after %v", s, step, lr, prev)
			}
			if !(lr >= s.MinLR && lr <= base) {
				t.Fatalf("%+v: step %d lr %v outside [%v, %v]", s, step, lr, s.MinLR, base)
			}
			prev = lr
		}
	}
}

func TestScheduleLRPanicsOnNegativeStep(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Fatal("LR(-1) did not panic")
		}
	}()
	Schedule{}.LR(1, -1, 10)
}
