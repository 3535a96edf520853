package compute

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// Gradient checks compare TrainBatch's analytic gradients with central
// finite differences of the loss, (L(θ+ε) - L(θ-ε)) / 2ε. The forward pass
// runs in float32 and the loss is summed in float64; with ε = 1e-2 the
// finite difference is good to about 1e-4 of the gradient scale, so an
// element passes when |analytic - numeric| <= gradTol · max(|analytic|,
// |numeric|, gradFloor).
const (
	gradEps   = 1e-2
	gradTol   = 1e-2
	gradFloor = 1e-2
)

func randomBatch(rng *rand.Rand, m *Model, n int, withTargets bool) Batch {
	b := Batch{X: make([]float32, n*m.InputSize()), N: n, Labels: make([]int32, n)}
	for i := range b.X {
		b.X[i] = float32(rng.NormFloat64())
	}
	for i := range b.Labels {
		b.Labels[i] = int32(rng.IntN(m.OutputSize()))
	}
	if withTargets {
		b.Targets = make([]float32, n*m.OutputSize())
		for i := range b.Targets {
			b.Targets[i] = float32(rng.NormFloat64())
		}
	}
	return b
}

// gradError is the relative error the test judges by.
func gradError(analytic, numeric float64) float64 {
	return math.Abs(analytic-numeric) / max(math.Abs(analytic), math.Abs(numeric), gradFloor)
}

// checkGradients checks every parameter gradient and every input gradient
// of m on b and returns the largest relative error of each.
func checkGradients(t *testing.T, m *Model, b Batch, seed uint64) (maxParamErr, maxInputErr float64) {
	t.Helper()
	const scale = 1
	m.keepInputGrad = true
	maxParamErr, numeric := checkParamGradients(t, m, &b, seed)
	analyticX := append([]float32(nil), m.inputGrad...)
	if len(analyticX) != len(b.X) {
		t.Fatalf("input gradient has %d values, want %d", len(analyticX), len(b.X))
	}
	x := append([]float32(nil), b.X...)
	b.X = x
	for i := range x {
		e := gradError(float64(analyticX[i]), numeric(&x[i]))
		if e > gradTol {
			t.Errorf("input %d: analytic %v, numeric %v", i, analyticX[i], numeric(&x[i]))
		}
		maxInputErr = max(maxInputErr, e)
	}
	return maxParamErr, maxInputErr
}

// checkParamGradients checks every parameter gradient of m on b and returns the largest
// relative error, and the finite difference of the loss in one value, for more checks.
// m.inputGrad is left holding a copy of the analytic input gradient, when the model keeps it.
func checkParamGradients(t *testing.T, m *Model, b *Batch, seed uint64) (maxErr float64, numeric func(v *float32) float64) {
	t.Helper()
	const scale = 1
	m.TrainBatch(*b, scale, seed)
	analytic := append([]float32(nil), m.Grads()...)
	inputGrad := append([]float32(nil), m.inputGrad...)
	loss := func() float64 {
		l, _ := m.TrainBatch(*b, scale, seed)
		return l
	}
	numeric = func(v *float32) float64 {
		orig := *v
		*v = orig + gradEps
		plus := loss()
		*v = orig - gradEps
		minus := loss()
		*v = orig
		return (plus - minus) / (2 * gradEps)
	}
	params := m.Params()
	for i := range params {
		e := gradError(float64(analytic[i]), numeric(&params[i]))
		if e > gradTol {
			t.Errorf("param %d: analytic %v, numeric %v", i, analytic[i], numeric(&params[i]))
		}
		maxErr = max(maxErr, e)
	}
	m.inputGrad = inputGrad
	return maxErr, numeric
}

func TestGradients(t *testing.T) {
	flat := []int{6}
	image := []int{2, 6, 6}
	dense := func(units int) LayerSpec { return LayerSpec{Type: LayerDense, Units: units} }
	cases := []struct {
		name    string
		input   []int
		layers  []LayerSpec
		loss    string
		targets bool
	}{
		// Each layer comes first so that its own input gradient is the
		// one checked, and again inside a chain.
		{"dense", flat, []LayerSpec{dense(5), {Type: LayerTanh}, dense(3)}, "", false},
		{"dense-xavier", flat, []LayerSpec{{Type: LayerDense, Units: 4, Init: InitXavier}}, "", false},
		{"relu", flat, []LayerSpec{{Type: LayerReLU}, dense(5), {Type: LayerReLU}, dense(3)}, "", false},
		{"gelu", flat, []LayerSpec{{Type: LayerGELU}, dense(5), {Type: LayerGELU}, dense(3)}, "", false},
		{"tanh", flat, []LayerSpec{{Type: LayerTanh}, dense(3)}, "", false},
		{"dropout", flat, []LayerSpec{{Type: LayerDropout, Rate: 0.5}, dense(8), {Type: LayerDropout, Rate: 0.3}, dense(3)}, "", false},
		{"conv-stride2-pad1", image, []LayerSpec{{Type: LayerConv2D, Filters: 3, Kernel: 3, Stride: 2, Padding: 1}, {Type: LayerFlatten}, dense(3)}, "", false},
		{"conv-chain", image, []LayerSpec{{Type: LayerConv2D, Filters: 3, Kernel: 2}, {Type: LayerTanh}, {Type: LayerConv2D, Filters: 2, Kernel: 3, Padding: 1, Init: InitXavier}, {Type: LayerFlatten}, dense(3)}, "", false},
		{"maxpool", image, []LayerSpec{{Type: LayerMaxPool2D, Size: 2}, {Type: LayerFlatten}, dense(3)}, "", false},
		{"maxpool-overlapping", image, []LayerSpec{{Type: LayerConv2D, Filters: 2, Kernel: 3, Padding: 1}, {Type: LayerMaxPool2D, Size: 3, Stride: 2}, {Type: LayerFlatten}, dense(3)}, "", false},
		{"flatten", image, []LayerSpec{{Type: LayerFlatten}, dense(3)}, "", false},
		{"mse-targets", flat, []LayerSpec{dense(5), {Type: LayerTanh}, dense(3)}, LossMSE, true},
		{"mse-onehot", flat, []LayerSpec{dense(4)}, LossMSE, false},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := NewModel(ModelSpec{Input: tc.input, Layers: tc.layers, Loss: tc.loss}, uint64(i+1))
			if err != nil {
				t.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(uint64(i+1), 7))
			b := randomBatch(rng, m, 3, tc.targets)
			pe, ie := checkGradients(t, m, b, 42)
			t.Logf("max relative error: params %.2e, inputs %.2e (tolerance %.0e)", pe, ie, gradTol)
		})
	}
}

// TestDropoutMaskFollowsSeed checks that the mask is a function of the
// seed: the same seed gives the same loss, another seed another loss.
func TestDropoutMaskFollowsSeed(t *testing.T) {
	m, err := NewModel(ModelSpec{Input: []int{6}, Layers: []LayerSpec{{Type: LayerDropout, Rate: 0.5}, {Type: LayerDense, Units: 3}}}, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(1, 1)), m, 4, false)
	l1, _ := m.TrainBatch(b, 1, 5)
	l2, _ := m.TrainBatch(b, 1, 5)
	l3, _ := m.TrainBatch(b, 1, 6)
	if l1 != l2 {
		t.Errorf("same seed, losses %v and %v", l1, l2)
	}
	if l1 == l3 {
		t.Errorf("seeds 5 and 6 gave the same loss %v", l1)
	}
	eval, _ := m.Evaluate(b, 0)
	if eval == l1 && eval == l3 {
		t.Errorf("evaluation loss equals the training loss: dropout is not off in inference")
	}
}

// TestDropoutKeepsExpectedFraction checks the drop rate and the
// inverted scaling on a large input.
func TestDropoutKeepsExpectedFraction(t *testing.T) {
	for _, rate := range []float64{0.1, 0.5, 0.9} {
		d := &dropout{k: nil, rate: rate}
		d.k = defaultKernels()
		d.seed(3, 0)
		x := make([]float32, 100000)
		for i := range x {
			x[i] = 1
		}
		y := d.forward(x, 1, true)
		var kept int
		var sum float64
		for _, v := range y {
			if v != 0 {
				kept++
			}
			sum += float64(v)
		}
		frac := float64(kept) / float64(len(x))
		if math.Abs(frac-(1-rate)) > 0.01 {
			t.Errorf("rate %v: kept %.4f of the values", rate, frac)
		}
		if mean := sum / float64(len(x)); math.Abs(mean-1) > 0.03 {
			t.Errorf("rate %v: mean after dropout %.4f, want about 1", rate, mean)
		}
	}
}

func ExampleArgmax() {
	fmt.Println(Argmax([]float32{0.1, 2, -3, 2}))
	// Output: 1
}
