// Package backendtest holds the conformance tests every compute.Backend passes: the CPU
// backend in the ordinary test run, the CUDA one on a machine with a GPU. Each test holds the
// backend under test to a CPU Model and optimizer built independently of it, so a backend that
// computes its own way (other summation orders, other kernels) is measured against the same
// reference within a stated tolerance.
package backendtest

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
)

// Tolerance is the largest deviation from the CPU reference a conforming backend may show,
// relative to the largest magnitude of the reference vector compared. Float32 products of a
// few hundred terms summed in another order differ by about 1e-6 of their scale; 1e-4 leaves
// room for a few steps of an optimizer without hiding a wrong formula (those miss by O(1)).
const Tolerance = 1e-4

// mlp is the model every backend must run: troupe's default MLP at a test's size.
func mlp(in, hidden, out int) compute.ModelSpec { return compute.MLP(in, []int{hidden, hidden}, out) }

// Optimizers are the optimizer settings the tests run, each by the name it is reported under.
func Optimizers() map[string]optim.Config {
	return map[string]optim.Config{
		"sgd":              {Name: optim.SGD, LR: 0.05},
		"sgd-nesterov-wd":  {Name: optim.SGD, LR: 0.05, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-3},
		"adam":             {Name: optim.Adam, LR: 1e-3},
		"adam-clip":        {Name: optim.Adam, LR: 1e-3, ClipNorm: 0.05},
		"adamw":            {Name: optim.AdamW, LR: 1e-3, WeightDecay: 0.01},
		"rmsprop-momentum": {Name: optim.RMSprop, LR: 1e-3, Momentum: 0.9, WeightDecay: 1e-4},
	}
}

// Run runs every conformance test against the backend that open builds on device.
func Run(t *testing.T, device string, open compute.BackendOpener) {
	t.Run("TrainAndStepFollowTheCPU", func(t *testing.T) { trainAndStep(t, device, open) })
	t.Run("EmptyBatch", func(t *testing.T) { emptyBatch(t, device, open) })
	t.Run("ParamsRoundTrip", func(t *testing.T) { paramsRoundTrip(t, device, open) })
	t.Run("OptimizerStateCarriesOver", func(t *testing.T) { optimizerState(t, device, open) })
	t.Run("BadInputsAreErrors", func(t *testing.T) { badInputs(t, device, open) })
}

// fixture is a reference model and optimizer and a backend started from the same parameters.
type fixture struct {
	spec    compute.ModelSpec
	ref     *compute.Model
	refOpt  optim.Optimizer
	backend compute.Backend
}

func newFixture(t *testing.T, device string, open compute.BackendOpener, spec compute.ModelSpec, cfg optim.Config, seed uint64) *fixture {
	t.Helper()
	ref, err := compute.NewModel(spec, seed)
	if err != nil {
		t.Fatal(err)
	}
	refOpt, err := optim.New(cfg, ref.NumParams())
	if err != nil {
		t.Fatal(err)
	}
	b, err := open(device, spec, ref.Params(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", device, err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	if b.NumParams() != ref.NumParams() {
		t.Fatalf("NumParams = %d, the model has %d", b.NumParams(), ref.NumParams())
	}
	return &fixture{spec: spec, ref: ref, refOpt: refOpt, backend: b}
}

// RandomBatch draws n samples: inputs in [-1, 1) and labels in [0, classes).
func RandomBatch(rng *rand.Rand, n, in, classes int) compute.Batch {
	x := make([]float32, n*in)
	for i := range x {
		x[i] = float32(rng.Float64()*2 - 1)
	}
	labels := make([]int32, n)
	for i := range labels {
		labels[i] = int32(rng.IntN(classes))
	}
	return compute.Batch{X: x, N: n, Labels: labels}
}

// Deviation is max|got-want| / max(max|want|, 1e-30): the measure Tolerance bounds.
func Deviation(got, want []float32) float64 {
	var diff, scale float64
	for i := range want {
		diff = max(diff, math.Abs(float64(got[i])-float64(want[i])))
		scale = max(scale, math.Abs(float64(want[i])))
	}
	if math.IsNaN(diff) {
		return math.Inf(1)
	}
	return diff / max(scale, 1e-30)
}

func within(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	if d := Deviation(got, want); !(d <= Tolerance) {
		t.Fatalf("%s deviates from the CPU reference by %.3g of its scale (tolerance %g)", what, d, Tolerance)
	}
}

func (f *fixture) params(t *testing.T) []float32 {
	t.Helper()
	p := make([]float32, f.backend.NumParams())
	if err := f.backend.ReadParams(p); err != nil {
		t.Fatalf("ReadParams: %v", err)
	}
	return p
}

// trainAndStep runs a few steps of every optimizer on the backend and on the reference, each
// step's gradient compared first, then the parameters after both applied the reference's
// gradient (so that the optimizer is compared on identical inputs).
func trainAndStep(t *testing.T, device string, open compute.BackendOpener) {
	const in, hidden, classes, n, steps = 40, 64, 10, 48, 4
	for name, cfg := range Optimizers() {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, device, open, mlp(in, hidden, classes), cfg, 7)
			rng := rand.New(rand.NewPCG(7, 1))
			grads := make([]float32, f.backend.NumParams())
			var worst float64
			for step := range steps {
				b := RandomBatch(rng, n, in, classes)
				scale := float32(1) / n
				wantLoss, wantCorrect := f.ref.TrainBatch(b, scale, 0)
				loss, correct, err := f.backend.TrainBatch(b, scale, 0, grads)
				if err != nil {
					t.Fatalf("step %d: TrainBatch: %v", step, err)
				}
				if math.Abs(loss-wantLoss) > Tolerance*math.Abs(wantLoss) {
					t.Fatalf("step %d: loss %v, the CPU %v", step, loss, wantLoss)
				}
				// A logit tie broken the other way may move one sample.
				if d := correct - wantCorrect; d < -1 || d > 1 {
					t.Fatalf("step %d: %d correct, the CPU %d", step, correct, wantCorrect)
				}
				within(t, fmt.Sprintf("step %d gradient", step), grads, f.ref.Grads())
				worst = max(worst, Deviation(grads, f.ref.Grads()))
				lr := cfg.LR * (1 + 0.5*float64(step)) // a schedule's changing rate
				step := slices.Clone(f.ref.Grads())
				f.refOpt.Step(f.ref.Params(), slices.Clone(step), lr)
				if err := f.backend.Step(step, lr); err != nil {
					t.Fatalf("Step: %v", err)
				}
				got := f.params(t)
				within(t, "parameters", got, f.ref.Params())
				worst = max(worst, Deviation(got, f.ref.Params()))
			}
			t.Logf("%s on %s: largest deviation from the CPU %.3g of scale", name, device, worst)
		})
	}
}

func emptyBatch(t *testing.T, device string, open compute.BackendOpener) {
	f := newFixture(t, device, open, mlp(12, 16, 3), optim.Config{Name: optim.SGD, LR: 0.1}, 3)
	grads := make([]float32, f.backend.NumParams())
	for i := range grads {
		grads[i] = 1
	}
	loss, correct, err := f.backend.TrainBatch(compute.Batch{X: []float32{}, N: 0, Labels: []int32{}}, 1, 0, grads)
	if err != nil {
		t.Fatal(err)
	}
	if loss != 0 || correct != 0 || slices.ContainsFunc(grads, func(v float32) bool { return v != 0 }) {
		t.Fatalf("an empty batch gave loss %v, %d correct and a nonzero gradient", loss, correct)
	}
}

func paramsRoundTrip(t *testing.T, device string, open compute.BackendOpener) {
	f := newFixture(t, device, open, mlp(12, 16, 3), optim.Config{Name: optim.Adam, LR: 0.1}, 3)
	if got := f.params(t); !slices.Equal(got, f.ref.Params()) {
		t.Fatal("the opened backend does not hold the parameters it was given")
	}
	p := make([]float32, f.backend.NumParams())
	for i := range p {
		p[i] = float32(i%97) - 48.5
	}
	if err := f.backend.WriteParams(p); err != nil {
		t.Fatal(err)
	}
	if got := f.params(t); !slices.Equal(got, p) {
		t.Fatal("ReadParams after WriteParams differs")
	}
}

// optimizerState checks that a second backend given the first's parameters and optimizer state
// takes the same next step: what a restore from a checkpoint, or a joiner's state transfer, does.
func optimizerState(t *testing.T, device string, open compute.BackendOpener) {
	for _, name := range []string{"adam", "rmsprop-momentum", "sgd-nesterov-wd"} {
		t.Run(name, func(t *testing.T) {
			cfg := Optimizers()[name]
			spec := mlp(20, 24, 5)
			a := newFixture(t, device, open, spec, cfg, 11)
			rng := rand.New(rand.NewPCG(11, 2))
			grads := make([]float32, a.backend.NumParams())
			for range 3 {
				if _, _, err := a.backend.TrainBatch(RandomBatch(rng, 16, 20, 5), 1.0/16, 0, grads); err != nil {
					t.Fatal(err)
				}
				if err := a.backend.Step(grads, cfg.LR); err != nil {
					t.Fatal(err)
				}
			}
			st, err := a.backend.OptimizerState()
			if err != nil {
				t.Fatal(err)
			}
			if st.Name != cfg.Name || st.Step != 3 {
				t.Fatalf("state is %s at step %d, want %s at 3", st.Name, st.Step, cfg.Name)
			}
			b := newFixture(t, device, open, spec, cfg, 99)
			if err := b.backend.WriteParams(a.params(t)); err != nil {
				t.Fatal(err)
			}
			if err := b.backend.SetOptimizerState(st); err != nil {
				t.Fatal(err)
			}
			for i := range grads {
				grads[i] = float32(rng.NormFloat64() * 0.01)
			}
			for _, x := range []compute.Backend{a.backend, b.backend} {
				if err := x.Step(slices.Clone(grads), cfg.LR); err != nil {
					t.Fatal(err)
				}
			}
			if !slices.Equal(a.params(t), b.params(t)) {
				t.Fatal("a backend restored from another's parameters and optimizer state took a different step")
			}
			bad := optim.State{Name: st.Name, Step: st.Step, Buffers: [][]float32{{1, 2}}}
			if err := b.backend.SetOptimizerState(bad); !errors.Is(err, optim.ErrStateMismatch) {
				t.Fatalf("a state of the wrong size: %v, want ErrStateMismatch", err)
			}
		})
	}
}

func badInputs(t *testing.T, device string, open compute.BackendOpener) {
	f := newFixture(t, device, open, mlp(12, 16, 3), optim.Config{Name: optim.SGD, LR: 0.1}, 5)
	before := f.params(t)
	n := f.backend.NumParams()
	rng := rand.New(rand.NewPCG(5, 5))
	good := RandomBatch(rng, 4, 12, 3)
	badLabel := RandomBatch(rng, 4, 12, 3)
	badLabel.Labels[2] = 3
	cases := map[string]error{}
	_, _, cases["short gradient buffer"] = f.backend.TrainBatch(good, 1, 0, make([]float32, n-1))
	_, _, cases["inputs of the wrong size"] = f.backend.TrainBatch(compute.Batch{X: good.X[:40], N: 4, Labels: good.Labels}, 1, 0, make([]float32, n))
	_, _, cases["label out of range"] = f.backend.TrainBatch(badLabel, 1, 0, make([]float32, n))
	cases["long gradient to Step"] = f.backend.Step(make([]float32, n+1), 0.1)
	cases["short parameters to WriteParams"] = f.backend.WriteParams(make([]float32, n-1))
	cases["short buffer to ReadParams"] = f.backend.ReadParams(make([]float32, 1))
	for what, err := range cases {
		if !errors.Is(err, compute.ErrBadBatch) {
			t.Errorf("%s: %v, want an error wrapping ErrBadBatch", what, err)
		}
	}
	if !slices.Equal(f.params(t), before) {
		t.Fatal("a refused call changed the parameters")
	}
}
