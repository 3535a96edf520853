package compute

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/compute/optim"
)

func tinyGPT(dropout float64) ModelSpec {
	return ModelSpec{GPT: &GPTSpec{Layers: 2, Heads: 2, Embedding: 8, BlockSize: 5, Vocab: 7, Dropout: dropout}}
}

// tokenBatch is n windows of random token ids with random next-token labels.
func tokenBatch(rng *rand.Rand, m *Model, n int) Batch {
	g := m.plan.spec.GPT
	b := Batch{X: make([]float32, n*g.BlockSize), N: n, Labels: make([]int32, n*g.BlockSize)}
	for i := range b.X {
		b.X[i] = float32(rng.IntN(g.Vocab))
		b.Labels[i] = int32(rng.IntN(g.Vocab))
	}
	return b
}

// scrambleParams replaces GPT-2's small initial weights by larger random ones, so that every
// gradient is large against the finite differences' float32 noise and the attention and
// GELU are far from linear.
func scrambleParams(m *Model, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	for i := range m.Params() {
		m.Params()[i] = float32(rng.NormFloat64() * 0.4)
	}
}

func TestGPTGradients(t *testing.T) {
	for _, tc := range []struct {
		name    string
		dropout float64
	}{{"plain", 0}, {"dropout", 0.2}} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewModel(tinyGPT(tc.dropout), 3)
			if err != nil {
				t.Fatal(err)
			}
			scrambleParams(m, 3)
			b := tokenBatch(rand.New(rand.NewPCG(4, 5)), m, 2)
			worst, _ := checkParamGradients(t, m, &b, 11)
			t.Logf("%d parameters, max relative error %.2e (tolerance %.0e)", m.NumParams(), worst, gradTol)
		})
	}
}

// TestGPTBlockInputGradient checks a block's input gradient on its own: Σ y·w against finite
// differences in x, the path every deeper layer's gradient flows through.
func TestGPTBlockInputGradient(t *testing.T) {
	g := *tinyGPT(0).GPT
	m, err := NewModel(ModelSpec{GPT: &g}, 1)
	if err != nil {
		t.Fatal(err)
	}
	scrambleParams(m, 8)
	b := m.blocks[0]
	rng := rand.New(rand.NewPCG(6, 7))
	const n = 2
	x, w := make([]float32, n*g.BlockSize*g.Embedding), make([]float32, n*g.BlockSize*g.Embedding)
	for i := range x {
		x[i], w[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	b.forward(x, n, true)
	dx := slices.Clone(b.backward(w, n, true))
	loss := func() float64 {
		var s float64
		for i, v := range b.forward(x, n, false) {
			s += float64(v) * float64(w[i])
		}
		return s
	}
	var worst float64
	for i := range x {
		orig := x[i]
		x[i] = orig + gradEps
		plus := loss()
		x[i] = orig - gradEps
		minus := loss()
		x[i] = orig
		numeric := (plus - minus) / (2 * gradEps)
		e := gradError(float64(dx[i]), numeric)
		if e > gradTol {
			t.Errorf("x[%d]: analytic %v, numeric %v", i, dx[i], numeric)
		}
		worst = max(worst, e)
	}
	t.Logf("block input gradient: max relative error %.2e over %d values", worst, len(x))
}

// TestGPTCausal checks that a position's logits do not depend on later tokens.
func TestGPTCausal(t *testing.T) {
	m, err := NewModel(tinyGPT(0), 2)
	if err != nil {
		t.Fatal(err)
	}
	b := tokenBatch(rand.New(rand.NewPCG(1, 2)), m, 1)
	before := m.Predict(b.X, 1).Data
	x := slices.Clone(b.X)
	x[3] = float32((int(x[3]) + 1) % 7)
	after := m.Predict(x, 1).Data
	v := m.OutputSize()
	for pos := range 5 {
		same := slices.Equal(before[pos*v:(pos+1)*v], after[pos*v:(pos+1)*v])
		if pos < 3 && !same {
			t.Errorf("position %d changed when token 3 did", pos)
		}
		if pos >= 3 && same {
			t.Errorf("position %d did not change when token 3 did", pos)
		}
	}
}

func TestGPTSpecValidation(t *testing.T) {
	good := *tinyGPT(0).GPT
	for _, tc := range []struct {
		name string
		edit func(s *ModelSpec)
	}{
		{"heads do not divide", func(s *ModelSpec) { s.GPT.Heads = 3 }},
		{"no layers", func(s *ModelSpec) { s.GPT.Layers = 0 }},
		{"vocab 1", func(s *ModelSpec) { s.GPT.Vocab = 1 }},
		{"dropout 1", func(s *ModelSpec) { s.GPT.Dropout = 1 }},
		{"input set too", func(s *ModelSpec) { s.Input = []int{5} }},
		{"mse", func(s *ModelSpec) { s.Loss = LossMSE }},
		{"too large", func(s *ModelSpec) { s.GPT.Embedding, s.GPT.Heads, s.GPT.Layers = 1<<14, 1, 1<<10 }},
	} {
		g := good
		s := ModelSpec{GPT: &g}
		tc.edit(&s)
		if err := s.Validate(); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("%s: Validate = %v, want ErrInvalidSpec", tc.name, err)
		}
	}
	n, err := ModelSpec{GPT: &GPTSpec{Layers: 6, Heads: 6, Embedding: 384, BlockSize: 256, Vocab: 256}}.NumParams()
	if err != nil {
		t.Fatal(err)
	}
	// nanoGPT's count for the same shape, lm_head tied: 256·384 + 256·384 + 6·(12·384² + 13·384) + 2·384.
	if want := 256*384 + 256*384 + 6*(12*384*384+13*384) + 2*384; n != want {
		t.Errorf("NumParams = %d, want %d", n, want)
	}
}

func TestGPTRejectsBadTokens(t *testing.T) {
	m, err := NewModel(tinyGPT(0), 1)
	if err != nil {
		t.Fatal(err)
	}
	b := tokenBatch(rand.New(rand.NewPCG(1, 1)), m, 2)
	for _, bad := range []float32{7, -1, 2.5, float32(math.NaN())} {
		x := slices.Clone(b.X)
		x[4] = bad
		if err := m.CheckBatch(Batch{X: x, N: 2, Labels: b.Labels}); !errors.Is(err, ErrBadBatch) {
			t.Errorf("token %v: CheckBatch = %v, want ErrBadBatch", bad, err)
		}
	}
	if err := m.CheckBatch(Batch{X: b.X, N: 2, Labels: b.Labels[:2]}); !errors.Is(err, ErrBadBatch) {
		t.Errorf("one label per sample: CheckBatch = %v, want ErrBadBatch", err)
	}
}

// TestGPTRecomputeSameBits checks that recomputing activations changes no bit of the
// gradients, with dropout on so that the masks must be drawn again identically.
func TestGPTRecomputeSameBits(t *testing.T) {
	spec := tinyGPT(0.1)
	plain, err := NewModel(spec, 5)
	if err != nil {
		t.Fatal(err)
	}
	re, _ := NewModel(spec, 5)
	re.SetRecompute(true)
	rng := rand.New(rand.NewPCG(2, 3))
	for step := range 3 {
		b := tokenBatch(rng, plain, 3)
		l1, c1 := plain.TrainBatch(b, 1.0/3, uint64(step))
		l2, c2 := re.TrainBatch(b, 1.0/3, uint64(step))
		if l1 != l2 || c1 != c2 || !slices.Equal(plain.Grads(), re.Grads()) {
			t.Fatalf("step %d: loss %v/%v, correct %d/%d, gradients equal %v", step, l1, l2, c1, c2, slices.Equal(plain.Grads(), re.Grads()))
		}
	}
}

func TestGPTTensorNames(t *testing.T) {
	m, err := NewModel(tinyGPT(0), 1)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, v := range m.ParamViews() {
		names = append(names, v.Name)
	}
	want := []string{"transformer.wte.weight", "transformer.wpe.weight", "transformer.h.0.ln_1.weight"}
	if !slices.Equal(names[:3], want) || names[len(names)-1] != "transformer.ln_f.bias" {
		t.Errorf("tensor names %v", names)
	}
	if len(names) != 2+2*12+2 {
		t.Errorf("%d tensors, want %d", len(names), 2+2*12+2)
	}
}

// TestGPTNoDecay checks that weight decay spares exactly the biases, gains and embeddings:
// one AdamW step on a zero gradient leaves those values alone and shrinks the matrices.
func TestGPTNoDecay(t *testing.T) {
	m, err := NewModel(tinyGPT(0), 1)
	if err != nil {
		t.Fatal(err)
	}
	opt, err := optim.New(optim.Config{Name: optim.AdamW, LR: 0.1, WeightDecay: 0.5}, m.NumParams(), m.NoDecay()...)
	if err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(m.Params())
	clear(m.Grads())
	opt.Step(m.Params(), m.Grads(), 0.1)
	for _, v := range m.ParamViews() {
		matrix := len(v.Shape) == 2 && !strings.Contains(v.Name, "wte") && !strings.Contains(v.Name, "wpe")
		for i := v.Offset; i < v.Offset+product(v.Shape); i++ {
			changed := m.Params()[i] != before[i]
			if changed != (matrix && before[i] != 0) {
				t.Fatalf("%s: value %d went %v -> %v (a matrix: %v)", v.Name, i-v.Offset, before[i], m.Params()[i], matrix)
			}
		}
	}
}
