package optim

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// optimizerCases covers every optimizer and each of its options.
var optimizerCases = []struct {
	name string
	cfg  Config
}{
	{"sgd", Config{Name: SGD, LR: 0.1}},
	{"sgd/momentum", Config{Name: SGD, LR: 0.1, Momentum: 0.9}},
	{"sgd/nesterov+l2", Config{Name: SGD, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-2}},
	{"sgd/clip", Config{Name: SGD, LR: 0.1, Momentum: 0.5, ClipNorm: 1}},
	{"adam", Config{Name: Adam, LR: 0.01}},
	{"adam/l2", Config{Name: Adam, LR: 0.01, WeightDecay: 0.1, Beta1: 0.8, Beta2: 0.99}},
	{"adamw", Config{Name: AdamW, LR: 0.01}},
	{"adamw/clip", Config{Name: AdamW, LR: 0.01, WeightDecay: 0.1, ClipNorm: 0.5}},
	{"rmsprop", Config{Name: RMSprop, LR: 0.01}},
	{"rmsprop/momentum+l2", Config{Name: RMSprop, LR: 0.01, Momentum: 0.9, WeightDecay: 1e-2, Alpha: 0.9}},
}

func mustNew(t testing.TB, cfg Config, n int) Optimizer {
	t.Helper()
	opt, err := New(cfg, n)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return opt
}

func randomSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func toFloat64(s []float32) []float64 {
	out := make([]float64, len(s))
	for i, x := range s {
		out[i] = float64(x)
	}
	return out
}

// TestStepMatchesReference runs each optimizer and its float64 reference
// side by side on random data with a learning rate that changes every step.
func TestStepMatchesReference(t *testing.T) {
	const n, steps = 257, 6
	// Relative to max(1, |reference|): a few float32 roundings per step,
	// times the steps, with room for the 1/sqrt(v) amplification.
	const tol = 2e-6
	for _, tc := range optimizerCases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 1))
			cfg := tc.cfg
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
			opt := mustNew(t, cfg, n)
			ref := newReference(cfg, n)
			params := randomSlice(rng, n)
			want := toFloat64(params)
			var maxDiff float64
			for s := range steps {
				grads := randomSlice(rng, n)
				lr := cfg.LR * float64(s+1) / steps
				ref.step(want, toFloat64(grads), lr)
				opt.Step(params, grads, lr)
				for i := range params {
					d := math.Abs(float64(params[i])-want[i]) / math.Max(1, math.Abs(want[i]))
					maxDiff = math.Max(maxDiff, d)
				}
			}
			t.Logf("max relative difference after %d steps: %.3g", steps, maxDiff)
			if !(maxDiff <= tol) {
				t.Fatalf("max relative difference %.3g exceeds %.g", maxDiff, tol)
			}
			if got := opt.State().Step; got != steps {
				t.Fatalf("State().Step = %d, want %d", got, steps)
			}
		})
	}
}

// TestStepLeavesGradsAlone checks that weight decay never writes grads and
// that only clipping, when the norm exceeds the bound, scales them.
func TestStepLeavesGradsAlone(t *testing.T) {
	for _, tc := range optimizerCases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(2, 2))
			opt := mustNew(t, tc.cfg, 64)
			params, grads := randomSlice(rng, 64), randomSlice(rng, 64)
			before := slices.Clone(grads)
			norm := ClipGlobalNorm(slices.Clone(grads), 0)
			opt.Step(params, grads, tc.cfg.LR)
			clipped := tc.cfg.ClipNorm > 0 && norm > tc.cfg.ClipNorm
			if changed := !slices.Equal(grads, before); changed != clipped {
				t.Fatalf("grads changed = %v, want %v (norm %.3g, clip_norm %v)", changed, clipped, norm, tc.cfg.ClipNorm)
			}
		})
	}
}

// TestConvergesOnQuadratic minimises 0.5*sum a_i (x_i - c_i)^2 with a
// cosine schedule and checks the loss falls by three orders of magnitude.
func TestConvergesOnQuadratic(t *testing.T) {
	const n, steps = 16, 600
	rng := rand.New(rand.NewPCG(3, 3))
	curvature, center := make([]float64, n), make([]float64, n)
	for i := range n {
		curvature[i] = 0.5 + 1.5*rng.Float64()
		center[i] = 2*rng.Float64() - 1
	}
	loss := func(x []float32) float64 {
		var f float64
		for i, xi := range x {
			d := float64(xi) - center[i]
			f += 0.5 * curvature[i] * d * d
		}
		return f
	}
	for _, tc := range optimizerCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := tc.cfg
			if cfg.WeightDecay != 0 || cfg.Name == AdamW {
				cfg.WeightDecay = 1e-5 // decay moves the minimum; keep it negligible
			}
			cfg.Schedule = Schedule{Kind: Cosine, Warmup: 10}
			opt := mustNew(t, cfg, n)
			x := make([]float32, n)
			grads := make([]float32, n)
			initial := loss(x)
			for s := range steps {
				for i, xi := range x {
					grads[i] = float32(curvature[i] * (float64(xi) - center[i]))
				}
				opt.Step(x, grads, cfg.Schedule.LR(cfg.LR, s, steps))
			}
			final := loss(x)
			t.Logf("loss %.3g -> %.3g", initial, final)
			if !(final < 1e-3*initial) {
				t.Fatalf("loss %.3g -> %.3g: did not fall below 1e-3 of the start", initial, final)
			}
		})
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	for _, tc := range optimizerCases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(4, 4))
			opt := mustNew(t, tc.cfg, 1024)
			params, grads := randomSlice(rng, 1024), randomSlice(rng, 1024)
			if allocs := testing.AllocsPerRun(20, func() { opt.Step(params, grads, 1e-3) }); allocs != 0 {
				t.Fatalf("Step allocates %v times per call", allocs)
			}
		})
	}
}

func cloneState(s State) State {
	c := State{Name: s.Name, Step: s.Step}
	for _, b := range s.Buffers {
		c.Buffers = append(c.Buffers, slices.Clone(b))
	}
	return c
}

// TestStateRoundTrip checks that an optimizer restored from a checkpointed
// State continues bit for bit the trajectory of the one it was taken from.
func TestStateRoundTrip(t *testing.T) {
	const n = 100
	for _, tc := range optimizerCases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(5, 5))
			original := mustNew(t, tc.cfg, n)
			params := randomSlice(rng, n)
			for range 3 {
				original.Step(params, randomSlice(rng, n), tc.cfg.LR)
			}
			saved := cloneState(original.State())
			restored := mustNew(t, tc.cfg, n)
			if err := restored.SetState(saved); err != nil {
				t.Fatal(err)
			}
			for _, b := range saved.Buffers { // SetState must have copied
				clear(b)
			}
			restoredParams := slices.Clone(params)
			for s := range 4 {
				grads := randomSlice(rng, n)
				lr := tc.cfg.LR / float64(s+1)
				original.Step(params, slices.Clone(grads), lr)
				restored.Step(restoredParams, grads, lr)
			}
			if !slices.Equal(params, restoredParams) {
				t.Fatal("restored optimizer's params diverge from the original's")
			}
			a, b := original.State(), restored.State()
			if a.Name != b.Name || a.Step != b.Step || len(a.Buffers) != len(b.Buffers) {
				t.Fatalf("states differ: %s/%d/%d vs %s/%d/%d", a.Name, a.Step, len(a.Buffers), b.Name, b.Step, len(b.Buffers))
			}
			for i := range a.Buffers {
				if !slices.Equal(a.Buffers[i], b.Buffers[i]) {
					t.Fatalf("buffer %d differs", i)
				}
			}
		})
	}
}

func TestSetStateRejectsMismatch(t *testing.T) {
	const n = 10
	full := func(k int) [][]float32 {
		bufs := make([][]float32, k)
		for i := range bufs {
			bufs[i] = make([]float32, n)
		}
		return bufs
	}
	tests := []struct {
		name  string
		cfg   Config
		state State
		want  string
	}{
		{"name", Config{Name: Adam, LR: 1}, State{Name: AdamW, Buffers: full(2)}, `state is for "adamw"`},
		{"buffer count", Config{Name: Adam, LR: 1}, State{Name: Adam, Buffers: full(1)}, "has 2 buffers, state has 1"},
		{"momentum buffer missing", Config{Name: SGD, LR: 1, Momentum: 0.9}, State{Name: SGD}, "has 1 buffers, state has 0"},
		{"size", Config{Name: RMSprop, LR: 1}, State{Name: RMSprop, Buffers: [][]float32{make([]float32, n+1)}}, "buffer 0 has 11 values, want 10"},
		{"negative step", Config{Name: SGD, LR: 1}, State{Name: SGD, Step: -1}, "negative step"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opt := mustNew(t, tc.cfg, n)
			opt.Step(make([]float32, n), slices.Repeat([]float32{1}, n), 0.1)
			before := cloneState(opt.State())
			err := opt.SetState(tc.state)
			if !errors.Is(err, ErrStateMismatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("SetState error = %v, want ErrStateMismatch containing %q", err, tc.want)
			}
			after := opt.State()
			if after.Step != before.Step {
				t.Fatalf("failed SetState changed the step from %d to %d", before.Step, after.Step)
			}
			for i := range after.Buffers {
				if !slices.Equal(after.Buffers[i], before.Buffers[i]) {
					t.Fatalf("failed SetState changed buffer %d", i)
				}
			}
		})
	}
}

func TestStepPanicsOnLengthMismatch(t *testing.T) {
	opt := mustNew(t, Config{Name: SGD, LR: 1}, 4)
	for _, lens := range [][2]int{{3, 4}, {4, 3}, {5, 5}} {
		func() {
			defer func() {
				r := recover()
				if msg, _ := r.(string); !strings.Contains(msg, "built for 4 parameters") {
					t.Fatalf("lengths %v: panic %v, want one naming the sizes", lens, r)
				}
			}()
			opt.Step(make([]float32, lens[0]), make([]float32, lens[1]), 1)
		}()
	}
}

func TestClipGlobalNorm(t *testing.T) {
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	tests := []struct {
		name     string
		grads    []float32
		maxNorm  float64
		wantNorm float64
		want     []float32 // nil: expect grads unchanged
	}{
		{"below bound", []float32{3, 4}, 10, 5, nil},
		{"at bound", []float32{3, 4}, 5, 5, nil},
		{"above bound", []float32{3, 4}, 1, 5, []float32{0.6, 0.8}},
		{"off", []float32{3, 4}, 0, 5, nil},
		{"negative bound is off", []float32{3, 4}, -1, 5, nil},
		{"empty", nil, 1, 0, nil},
		{"squares overflow float32", []float32{3e30, 4e30}, 1, 5e30, // 3e30 and 4e30 round in float32: hence the relative tolerance
			[]float32{0.6, 0.8}},
		{"inf left alone", []float32{inf, 1}, 1, math.Inf(1), nil},
		{"nan left alone", []float32{nan, 1}, 1, math.NaN(), nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grads := slices.Clone(tc.grads)
			norm := ClipGlobalNorm(grads, tc.maxNorm)
			if math.IsNaN(tc.wantNorm) != math.IsNaN(norm) || (!math.IsNaN(norm) && math.Abs(norm-tc.wantNorm) > 1e-7*math.Max(1, tc.wantNorm)) {
				t.Fatalf("norm = %v, want %v", norm, tc.wantNorm)
			}
			want := tc.want
			if want == nil {
				want = tc.grads
			}
			for i := range want {
				same := grads[i] == want[i] || (math.IsNaN(float64(grads[i])) && math.IsNaN(float64(want[i])))
				if !same && math.Abs(float64(grads[i]-want[i])) > 1e-6 {
					t.Fatalf("grads = %v, want %v", grads, want)
				}
			}
		})
	}
}

func BenchmarkStep(b *testing.B) {
	const n = 1 << 20
	rng := rand.New(rand.NewPCG(6, 6))
	params, grads := randomSlice(rng, n), randomSlice(rng, n)
	for _, tc := range optimizerCases {
		b.Run(tc.name, func(b *testing.B) {
			opt := mustNew(b, tc.cfg, n)
			b.SetBytes(4 * n)
			for b.Loop() {
				opt.Step(params, grads, 1e-6)
			}
		})
	}
}
