package compute

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTrainBatchClippedIsTheSumOfClippedSampleGradients forms every sample's gradient alone
// (TrainBatch on a batch of one), clips it and sums, and compares with TrainBatchClipped on the
// whole batch, for a clip bound that clips some samples and not others; with a bound no
// sample reaches, the result is TrainBatch's bit for bit.
func TestTrainBatchClippedIsTheSumOfClippedSampleGradients(t *testing.T) {
	mlp := MLP(20, []int{16, 8}, 5)
	mlp.Layers = append(mlp.Layers, LayerSpec{Type: LayerTanh}, LayerSpec{Type: LayerDense, Units: 5})
	for name, spec := range map[string]ModelSpec{"mlp": mlp, "cnn": smallCNN()} {
		t.Run(name, func(t *testing.T) { checkClippedSum(t, spec) })
	}
}

func checkClippedSum(t *testing.T, spec ModelSpec) {
	m := mustModel(t, spec, 11)
	const n = 12
	b := randomBatch(rand.New(rand.NewPCG(5, 5)), m, n, false)
	const scale = 1.0 / 50 // a rank's share of a global batch of 50

	norms := make([]float64, n)
	per := make([][]float32, n)
	for i := range n {
		one := Batch{X: b.X[i*m.InputSize() : (i+1)*m.InputSize()], N: 1, Labels: b.Labels[i : i+1]}
		m.TrainBatch(one, 1, 0)
		per[i] = slices.Clone(m.Grads())
		var sq float64
		for _, g := range per[i] {
			sq += float64(g) * float64(g)
		}
		norms[i] = math.Sqrt(sq)
	}
	sorted := slices.Clone(norms)
	slices.Sort(sorted)
	clip := (sorted[n/2-1] + sorted[n/2]) / 2 // half the samples are clipped, none near the bound
	want := make([]float64, m.NumParams())
	wantClipped := 0
	for i := range n {
		f := 1.0
		if norms[i] > clip {
			f = clip / norms[i]
			wantClipped++
		}
		for j, g := range per[i] {
			want[j] += scale * f * float64(g)
		}
	}
	_, _, clipped := m.TrainBatchClipped(b, scale, 0, clip, nil)
	if clipped != wantClipped {
		t.Fatalf("%d samples clipped, want %d", clipped, wantClipped)
	}
	for j, g := range m.Grads() {
		if d := math.Abs(float64(g) - want[j]); d > 1e-6+1e-4*math.Abs(want[j]) {
			t.Fatalf("gradient %d = %v, the sum of clipped sample gradients is %v", j, g, want[j])
		}
	}

	m.TrainBatch(b, scale, 0)
	plain := slices.Clone(m.Grads())
	if _, _, clipped := m.TrainBatchClipped(b, scale, 0, 10*sorted[n-1], nil); clipped != 0 || !slices.Equal(m.Grads(), plain) {
		t.Fatalf("with no sample above the bound (%d clipped) the gradient differs from TrainBatch's", clipped)
	}
}

func TestCanClipPerSampleTakesEveryLayer(t *testing.T) {
	for _, spec := range []ModelSpec{smallCNN(), smallNet(), MLP(10, []int{4}, 3)} {
		if err := mustModel(t, spec, 1).CanClipPerSample(); err != nil {
			t.Fatal(err)
		}
	}
}
