package compute

import (
	"errors"
	"math"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/kernels"
)

func smallCNN() ModelSpec {
	return ModelSpec{
		Input: []int{1, 28, 28},
		Layers: []LayerSpec{
			{Type: LayerConv2D, Filters: 32, Kernel: 5, Padding: 2}, {Type: LayerReLU}, {Type: LayerMaxPool2D, Size: 2},
			{Type: LayerConv2D, Filters: 64, Kernel: 5, Padding: 2}, {Type: LayerReLU}, {Type: LayerMaxPool2D, Size: 2},
			{Type: LayerFlatten}, {Type: LayerDense, Units: 128}, {Type: LayerReLU}, {Type: LayerDense, Units: 10},
		},
	}
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func mustModel(t testing.TB, spec ModelSpec, seed uint64) *Model {
	t.Helper()
	m, err := NewModel(spec, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func sgd(m *Model, lr float32) {
	p, g := m.Params(), m.Grads()
	for i := range p {
		p[i] -= lr * g[i]
	}
}

// smallNet has every layer type, so determinism covers them all.
func smallNet() ModelSpec {
	return ModelSpec{Input: []int{1, 8, 8}, Layers: []LayerSpec{
		{Type: LayerConv2D, Filters: 4, Kernel: 3, Padding: 1}, {Type: LayerReLU}, {Type: LayerMaxPool2D, Size: 2},
		{Type: LayerFlatten}, {Type: LayerDense, Units: 16}, {Type: LayerGELU}, {Type: LayerDropout, Rate: 0.25},
		{Type: LayerDense, Units: 16, Init: InitXavier}, {Type: LayerTanh}, {Type: LayerDense, Units: 4},
	}}
}

func TestSameSeedSameBits(t *testing.T) {
	a, b := mustModel(t, smallNet(), 9), mustModel(t, smallNet(), 9)
	if !sameBits(a.Params(), b.Params()) {
		t.Fatal("initial parameters differ")
	}
	if other := mustModel(t, smallNet(), 10); sameBits(a.Params(), other.Params()) {
		t.Fatal("seeds 9 and 10 gave the same parameters")
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for step := range 5 {
		batch := randomBatch(rng, a, 16, false)
		la, ca := a.TrainBatch(batch, 1.0/16, uint64(step))
		lb, cb := b.TrainBatch(batch, 1.0/16, uint64(step))
		if math.Float64bits(la) != math.Float64bits(lb) || ca != cb {
			t.Fatalf("step %d: losses %v/%v, correct %d/%d", step, la, lb, ca, cb)
		}
		if !sameBits(a.Grads(), b.Grads()) {
			t.Fatalf("step %d: gradients differ", step)
		}
		sgd(a, 0.1)
		sgd(b, 0.1)
	}
	if !sameBits(a.Params(), b.Params()) {
		t.Fatal("parameters differ after 5 steps")
	}
}

// TestSplitBatchSumsToWhole checks the data-parallel contract: gradients
// of sub-batches with lossScale 1/N sum to the gradient of the whole batch.
func TestSplitBatchSumsToWhole(t *testing.T) {
	m := mustModel(t, smallNet(), 3)
	const n = 12
	whole := randomBatch(rand.New(rand.NewPCG(4, 4)), m, n, false)
	// Dropout draws its mask per call, so a rank's mask differs from the
	// whole batch's: compare with dropout off.
	wantLoss, wantCorrect := m.trainWithoutDropout(whole, 1.0/n)
	want := append([]float32(nil), m.Grads()...)

	sum := make([]float32, len(want))
	var loss float64
	var correct int
	in := m.InputSize()
	for _, part := range [][2]int{{0, 5}, {5, 12}} {
		sub := Batch{X: whole.X[part[0]*in : part[1]*in], N: part[1] - part[0], Labels: whole.Labels[part[0]:part[1]]}
		l, c := m.trainWithoutDropout(sub, 1.0/n)
		loss += l
		correct += c
		for i, g := range m.Grads() {
			sum[i] += g
		}
	}
	if math.Abs(loss-wantLoss) > 1e-9*math.Abs(wantLoss) || correct != wantCorrect {
		t.Errorf("loss %v correct %d, whole batch %v %d", loss, correct, wantLoss, wantCorrect)
	}
	var maxErr float64
	for i := range want {
		maxErr = max(maxErr, math.Abs(float64(sum[i]-want[i])))
	}
	t.Logf("max |Σ sub-batch grads - whole-batch grad| = %.2e", maxErr)
	if maxErr > 1e-6 {
		t.Errorf("split gradients differ from the whole batch by %v", maxErr)
	}
}

// trainWithoutDropout runs TrainBatch with every dropout layer switched
// off for the call.
func (m *Model) trainWithoutDropout(b Batch, scale float32) (float64, int) {
	rates := make([]float64, len(m.dropouts))
	for i, d := range m.dropouts {
		rates[i], d.rate = d.rate, 0
	}
	defer func() {
		for i, d := range m.dropouts {
			d.rate = rates[i]
		}
	}()
	return m.TrainBatch(b, scale, 0)
}

func TestTrainBatchOverwritesGradsAndScales(t *testing.T) {
	m := mustModel(t, MLP(6, []int{5}, 3), 1)
	b := randomBatch(rand.New(rand.NewPCG(5, 5)), m, 4, false)
	m.TrainBatch(b, 1, 0)
	once := append([]float32(nil), m.Grads()...)
	m.TrainBatch(b, 1, 0)
	if !sameBits(once, m.Grads()) {
		t.Error("a second identical call changed the gradients: they accumulate")
	}
	m.TrainBatch(b, 0.25, 0)
	for i, g := range m.Grads() {
		if math.Abs(float64(g-once[i]*0.25)) > 1e-6 {
			t.Fatalf("grad %d with scale 0.25 is %v, want %v", i, g, once[i]*0.25)
		}
	}
	m.TrainBatch(Batch{}, 1, 0)
	for _, g := range m.Grads() {
		if g != 0 {
			t.Fatal("an empty batch left gradients behind")
		}
	}
}

func TestEvaluateMatchesPredictAndChunks(t *testing.T) {
	m := mustModel(t, smallNet(), 2)
	b := randomBatch(rand.New(rand.NewPCG(6, 6)), m, 10, false)
	whole, wholeCorrect := m.Evaluate(b, 0)
	for _, chunk := range []int{1, 3, 10, 64} {
		l, c := m.Evaluate(b, chunk)
		if math.Abs(l-whole) > 1e-9*math.Abs(whole) || c != wholeCorrect {
			t.Errorf("chunk %d: loss %v correct %d, whole %v %d", chunk, l, c, whole, wholeCorrect)
		}
	}
	logits := m.Predict(b.X, b.N)
	if len(logits.Shape) != 2 || logits.Shape[0] != 10 || logits.Shape[1] != 4 {
		t.Fatalf("Predict shape %v", logits.Shape)
	}
	var loss float64
	var correct int
	for i := range b.N {
		row := logits.Row(i)
		loss += softmaxCrossEntropyRow(row, int(b.Labels[i]), 0, nil)
		if Argmax(row) == int(b.Labels[i]) {
			correct++
		}
	}
	if math.Abs(loss-whole) > 1e-9*math.Abs(whole) || correct != wholeCorrect {
		t.Errorf("from Predict: loss %v correct %d, Evaluate %v %d", loss, correct, whole, wholeCorrect)
	}
}

func TestSoftmaxCrossEntropyIsStable(t *testing.T) {
	g := make([]float32, 3)
	loss := softmaxCrossEntropyRow([]float32{1000, 0, -1000}, 1, 1, g)
	if math.Abs(loss-1000) > 1e-9 || math.IsNaN(float64(g[0])) {
		t.Errorf("loss %v grad %v", loss, g)
	}
	if g[0] != 1 || g[1] != -1 || g[2] != 0 {
		t.Errorf("grad %v, want [1 -1 0]", g)
	}
	if l := softmaxCrossEntropyRow([]float32{2, 2}, 0, 0, nil); math.Abs(l-math.Ln2) > 1e-12 {
		t.Errorf("two equal logits: loss %v, want ln 2", l)
	}
}

func TestCheckBatch(t *testing.T) {
	ce := mustModel(t, MLP(3, nil, 2), 1)
	mse := mustModel(t, ModelSpec{Input: []int{3}, Layers: []LayerSpec{{Type: "dense", Units: 2}}, Loss: LossMSE}, 1)
	x := make([]float32, 6)
	cases := []struct {
		name string
		m    *Model
		b    Batch
		want string
	}{
		{"ok", ce, Batch{X: x, N: 2, Labels: []int32{0, 1}}, ""},
		{"empty", ce, Batch{}, ""},
		{"mse targets", mse, Batch{X: x, N: 2, Targets: make([]float32, 4)}, ""},
		{"mse labels", mse, Batch{X: x, N: 2, Labels: []int32{1, 1}}, ""},
		{"negative n", ce, Batch{N: -1}, "negative"},
		{"short x", ce, Batch{X: x[:5], N: 2, Labels: []int32{0, 1}}, "X holds 5 values"},
		{"label count", ce, Batch{X: x, N: 2, Labels: []int32{0}}, "1 labels for 2 samples"},
		{"label range", ce, Batch{X: x, N: 2, Labels: []int32{0, 2}}, "label 2 of sample 1"},
		{"negative label", ce, Batch{X: x, N: 2, Labels: []int32{-1, 0}}, "label -1 of sample 0"},
		{"no labels", ce, Batch{X: x, N: 2}, "no labels"},
		{"targets with ce", ce, Batch{X: x, N: 2, Labels: []int32{0, 1}, Targets: make([]float32, 4)}, "loss is softmax_cross_entropy"},
		{"target size", mse, Batch{X: x, N: 2, Targets: make([]float32, 3)}, "targets hold 3"},
		{"mse nothing", mse, Batch{X: x, N: 2}, "neither labels nor targets"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.CheckBatch(tc.b)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrBadBatch) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want ErrBadBatch containing %q", err, tc.want)
			}
			defer func() {
				r := recover()
				if e, ok := r.(error); !ok || !errors.Is(e, ErrBadBatch) {
					t.Fatalf("TrainBatch recovered %v, want an ErrBadBatch panic", r)
				}
			}()
			tc.m.TrainBatch(tc.b, 1, 0)
		})
	}
}

// TestSteadyStateAllocations checks that, once warmed up at a batch size,
// TrainBatch reuses its scratch, for that size and any smaller one.
//
// compute's own code must allocate nothing: that is checked on the
// Reference kernels. gonum's Gemm, behind the default kernels, starts
// worker goroutines for large products and allocates a few small objects
// for them per call (about 460 objects, ~30 KiB per MLP step at batch 128
// when measured); the second check bounds those bytes far below the
// scratch a step uses (~2 MiB), so a buffer reallocated per step fails it.
func TestSteadyStateAllocations(t *testing.T) {
	step := func(m *Model, n int) func() {
		b := randomBatch(rand.New(rand.NewPCG(8, 8)), m, n, false)
		half := Batch{X: b.X[:n/2*m.InputSize()], N: n / 2, Labels: b.Labels[:n/2]}
		m.TrainBatch(b, 1/float32(n), 0)
		return func() {
			m.TrainBatch(b, 1/float32(n), 1)
			m.TrainBatch(half, 1/float32(n), 2)
		}
	}
	ref, err := newModel(smallNet(), 1, kernels.Reference{})
	if err != nil {
		t.Fatal(err)
	}
	if allocs := testing.AllocsPerRun(3, step(ref, 8)); allocs != 0 {
		t.Errorf("compute allocates %.0f objects per two steps in steady state", allocs)
	}

	run := step(mustModel(t, MLP(784, []int{512, 512}, 10), 1), 128)
	const runs = 4
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range runs {
		run()
	}
	runtime.ReadMemStats(&after)
	perStep := float64(after.TotalAlloc-before.TotalAlloc) / (2 * runs)
	t.Logf("default kernels, MLP at batch 128: %.1f KiB allocated per step", perStep/1024)
	if perStep > 256<<10 {
		t.Errorf("%.0f bytes allocated per step, bound 256 KiB", perStep)
	}
}

// TestLearnsSeparableTask trains a small MLP on a linearly separable
// problem and expects it to fit.
func TestLearnsSeparableTask(t *testing.T) {
	m := mustModel(t, ModelSpec{Input: []int{4}, Layers: []LayerSpec{
		{Type: LayerDense, Units: 16}, {Type: LayerReLU}, {Type: LayerDense, Units: 2},
	}}, 1)
	rng := rand.New(rand.NewPCG(11, 11))
	const n = 64
	make := func() Batch {
		b := randomBatch(rng, m, n, false)
		for i := range n {
			x := b.X[i*4 : i*4+4]
			if x[0]+x[1]-x[2] > 0 {
				b.Labels[i] = 1
			} else {
				b.Labels[i] = 0
			}
		}
		return b
	}
	test := make()
	before, _ := m.Evaluate(test, 0)
	for step := range 300 {
		m.TrainBatch(make(), 1.0/n, uint64(step))
		sgd(m, 0.2)
	}
	after, correct := m.Evaluate(test, 0)
	t.Logf("loss per sample %.3f -> %.3f, accuracy %d/%d", before/n, after/n, correct, n)
	if correct < n*9/10 || after > before/4 {
		t.Errorf("did not learn: loss %.3f -> %.3f, %d/%d correct", before/n, after/n, correct, n)
	}
}
