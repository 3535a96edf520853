package compute

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// unfuse undoes fuseActivations: every layer computes its own part again.
func unfuse(m *Model) (folded int) {
	for _, l := range m.layers {
		switch l := l.(type) {
		case *dense:
			l.relu = false
		case *conv2D:
			l.relu = false
		case *relu:
			if l.fused {
				folded++
			}
			l.fused = false
		}
	}
	return folded
}

// TestFusedReluMatchesUnfused runs the same model with its ReLUs folded
// into the layers before them and unfolded: outputs, losses, input
// gradients and weight gradients must be the same bits, conv2d bias
// gradients equal up to the order of a float64 sum.
func TestFusedReluMatchesUnfused(t *testing.T) {
	spec := ModelSpec{Input: []int{2, 8, 8}, Layers: []LayerSpec{
		{Type: LayerConv2D, Filters: 4, Kernel: 3, Padding: 1}, {Type: LayerReLU}, {Type: LayerMaxPool2D, Size: 2},
		{Type: LayerFlatten}, {Type: LayerDense, Units: 16}, {Type: LayerReLU}, {Type: LayerReLU},
		{Type: LayerDense, Units: 5},
	}}
	fused, plain := mustModel(t, spec, 4), mustModel(t, spec, 4)
	if folded := unfuse(plain); folded != 2 {
		t.Fatalf("%d ReLUs were folded, want 2 (the second of two in a row stays a layer)", folded)
	}
	fused.keepInputGrad, plain.keepInputGrad = true, true
	rng := rand.New(rand.NewPCG(12, 12))
	// Non-zero biases, so that the fused bias add is exercised too.
	for _, m := range []*Model{fused, plain} {
		for _, v := range m.views {
			if strings.HasSuffix(v.Name, ".bias") {
				for i := range v.Shape[0] {
					m.params[v.Offset+i] = 0.1 * float32(i%3-1)
				}
			}
		}
	}
	for step := range 3 {
		b := randomBatch(rng, fused, 6, false)
		lf, cf := fused.TrainBatch(b, 1.0/6, uint64(step))
		lp, cp := plain.TrainBatch(b, 1.0/6, uint64(step))
		if math.Float64bits(lf) != math.Float64bits(lp) || cf != cp {
			t.Fatalf("step %d: loss %v/%v, correct %d/%d", step, lf, lp, cf, cp)
		}
		if !sameBits(fused.inputGrad, plain.inputGrad) {
			t.Fatalf("step %d: input gradients differ", step)
		}
		for _, v := range fused.views {
			n := product(v.Shape)
			gf, gp := fused.grads[v.Offset:][:n], plain.grads[v.Offset:][:n]
			if v.Name == "layers.0.bias" {
				for i := range gf {
					if d := math.Abs(float64(gf[i] - gp[i])); d > 1e-6*math.Max(1, math.Abs(float64(gp[i]))) {
						t.Fatalf("step %d: %s[%d] = %v, unfused %v", step, v.Name, i, gf[i], gp[i])
					}
				}
				continue
			}
			if !sameBits(gf, gp) {
				t.Fatalf("step %d: gradients of %s differ", step, v.Name)
			}
		}
		if !sameBits(fused.Predict(b.X, b.N).Data, plain.Predict(b.X, b.N).Data) {
			t.Fatalf("step %d: predictions differ", step)
		}
		sgd(fused, 0.1)
		copy(plain.params, fused.params)
	}
}
