package prune

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestSchedule(t *testing.T) {
	c := Config{Target: 0.9, StartStep: 100, EndStep: 500, Every: 100}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		step  int64
		want  float64
		prune bool
	}{
		{0, 0, false}, {99, 0, false}, {100, 0, true}, {150, 0, false},
		{200, 0.9 * (1 - 0.75*0.75*0.75), true}, {299, 0.9 * (1 - 0.75*0.75*0.75), false},
		{400, 0.9 * (1 - 0.25*0.25*0.25), true}, {500, 0.9, true}, {501, 0.9, false}, {10000, 0.9, false},
	} {
		if got := c.SparsityAt(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("SparsityAt(%d) = %v, want %v", tc.step, got, tc.want)
		}
		if got := c.IsPruningStep(tc.step); got != tc.prune {
			t.Errorf("IsPruningStep(%d) = %v, want %v", tc.step, got, tc.prune)
		}
	}
}

func TestValidateRejects(t *testing.T) {
	for _, c := range []Config{
		{Target: 1, EndStep: 1}, {Target: -0.1}, {Target: math.NaN()}, {Target: 0.5, Scope: "tensor"},
		{Target: 0.5, StartStep: -1}, {Target: 0.5, StartStep: 10, EndStep: 5}, {Target: 0.5, Every: -2},
	} {
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%+v: error %v, want ErrConfig", c, err)
		}
	}
}

func TestKthSmallestMatchesSorting(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for n := 1; n < 300; n += 7 {
		xs := make([]float32, n)
		for i := range xs {
			xs[i] = float32(rng.IntN(20)) // many ties
		}
		sorted := slices.Clone(xs)
		slices.Sort(sorted)
		for _, k := range []int{0, n / 3, n / 2, n - 1} {
			if got := kthSmallest(slices.Clone(xs), k); got != sorted[k] {
				t.Fatalf("n=%d k=%d: %v, want %v", n, k, got, sorted[k])
			}
		}
	}
}

// model is two weight tensors and a bias between them: 0..99, 100..109 (bias), 110..159.
func model(rng *rand.Rand) ([]float32, []Tensor) {
	params := make([]float32, 160)
	for i := range params {
		params[i] = float32(rng.NormFloat64())
	}
	for i := 110; i < 160; i++ {
		params[i] *= 10 // the second tensor's weights are larger
	}
	return params, []Tensor{{"a", 0, 100}, {"b", 110, 50}}
}

func zeros(s []float32) int {
	n := 0
	for _, v := range s {
		if v == 0 {
			n++
		}
	}
	return n
}

func TestPruneGlobalAndPerLayer(t *testing.T) {
	for _, scope := range []string{ScopeGlobal, ScopeLayer} {
		rng := rand.New(rand.NewPCG(2, 2))
		params, tensors := model(rng)
		orig := slices.Clone(params)
		p, err := New(Config{Target: 0.6, Scope: scope, StartStep: 0, EndStep: 0}, len(params), tensors)
		if err != nil {
			t.Fatal(err)
		}
		if !p.Prune(0, params) {
			t.Fatal("step 0 is the pruning step")
		}
		za, zb := zeros(params[:100]), zeros(params[110:])
		if za+zb != 90 {
			t.Fatalf("%s: %d zeros, want 60%% of 150 = 90", scope, za+zb)
		}
		if zeros(params[100:110]) != 0 {
			t.Fatalf("%s: the bias was pruned", scope)
		}
		if scope == ScopeLayer && (za != 60 || zb != 30) {
			t.Fatalf("per layer: %d and %d zeros, want 60 and 30", za, zb)
		}
		if scope == ScopeGlobal && za <= 60 {
			t.Fatalf("global: the small-weight tensor lost %d of 100, want more than its share", za)
		}
		// Every pruned weight is no larger than every kept one of its group.
		maxPruned, minKept := float32(0), float32(math.Inf(1))
		for i, v := range params {
			if i >= 100 && i < 110 || (scope == ScopeLayer && i >= 110) {
				continue
			}
			m := float32(math.Abs(float64(orig[i])))
			if v == 0 {
				maxPruned = max(maxPruned, m)
			} else {
				minKept = min(minKept, m)
			}
		}
		if maxPruned > minKept {
			t.Fatalf("%s: pruned a weight of magnitude %v and kept one of %v", scope, maxPruned, minKept)
		}
	}
}

// TestMasksHoldThroughTraining runs the schedule with random updates in between: the zeros
// only grow, masked gradients and parameters stay zero, the target is met at the end, and
// Restore finds the same masks in the parameters.
func TestMasksHoldThroughTraining(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	params, tensors := model(rng)
	p, err := New(Config{Target: 0.8, StartStep: 10, EndStep: 40, Every: 10}, len(params), tensors)
	if err != nil {
		t.Fatal(err)
	}
	grads := make([]float32, len(params))
	last := 0
	for step := int64(0); step < 60; step++ {
		p.Prune(step, params)
		for i := range grads {
			grads[i] = float32(rng.NormFloat64())
		}
		p.MaskGrads(grads, 0, 80)
		p.MaskGrads(grads, 80, len(grads))
		for i, g := range grads {
			if p.keep[i] == 0 && g != 0 {
				t.Fatalf("step %d: pruned value %d has gradient %v", step, i, g)
			}
			params[i] -= 0.01 * g
		}
		p.MaskParams(params)
		z := zeros(params)
		if z < last {
			t.Fatalf("step %d: %d zeros after %d", step, z, last)
		}
		last = z
	}
	if last != 120 {
		t.Fatalf("%d zeros at the end, want 80%% of 150", last)
	}
	layers, overall := Report(params, tensors)
	if overall != 0.8 || layers[0].Zeros+layers[1].Zeros != 120 {
		t.Fatalf("report %+v, overall %v", layers, overall)
	}
	q, _ := New(p.Config(), len(params), tensors)
	q.Restore(60, params)
	if !slices.Equal(q.keep, p.keep) {
		t.Fatal("Restore found other masks")
	}
}
