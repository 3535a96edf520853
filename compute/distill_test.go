package compute

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestDistillationGradientIsTheLossDerivative checks distillRow's gradient against central
// differences of its loss, at several temperatures and mixes, and its two ends: Alpha 0 is the
// cross-entropy, and a teacher equal to the student leaves only the hard term.
func TestDistillationGradientIsTheLossDerivative(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for _, d := range []Distillation{{Temperature: 1, Alpha: 0.5}, {Temperature: 4, Alpha: 0.9}, {Temperature: 10, Alpha: 1}, {Temperature: 2, Alpha: 0}} {
		z, teacher := make([]float32, 10), make([]float32, 10)
		for j := range z {
			z[j], teacher[j] = float32(3*rng.NormFloat64()), float32(3*rng.NormFloat64())
		}
		label := rng.IntN(10)
		g := make([]float32, 10)
		distillRow(z, teacher, label, d, 1, g)
		scratch := make([]float32, 10)
		for j := range z {
			const h = 1e-2
			keep := z[j]
			z[j] = keep + h
			up := distillRow(z, teacher, label, d, 1, scratch)
			z[j] = keep - h
			down := distillRow(z, teacher, label, d, 1, scratch)
			z[j] = keep
			num := (up - down) / (2 * h)
			if math.Abs(num-float64(g[j])) > 2e-3*max(1, math.Abs(num)) {
				t.Fatalf("%+v: d loss/d z[%d] = %v numerically, the gradient says %v", d, j, num, g[j])
			}
		}
		if d.Alpha == 0 {
			ce := make([]float32, 10)
			want := softmaxCrossEntropyRow(z, label, 1, ce)
			got := distillRow(z, teacher, label, d, 1, g)
			if math.Abs(got-want) > 1e-5 {
				t.Fatalf("alpha 0: loss %v, cross-entropy %v", got, want)
			}
		}
	}
	z := []float32{1, -2, 0.5}
	g := make([]float32, 3)
	if loss := distillRow(z, z, 0, Distillation{Temperature: 3, Alpha: 1}, 1, g); math.Abs(loss) > 1e-12 || math.Abs(float64(g[0])) > 1e-7 {
		t.Fatalf("a teacher equal to the student: loss %v, gradient %v, want 0", loss, g)
	}
}

func TestSetDistillationRefusesBadSettings(t *testing.T) {
	m := mustModel(t, MLP(4, []int{3}, 2), 1)
	for _, d := range []Distillation{{Temperature: 0, Alpha: 0.5}, {Temperature: 2, Alpha: 1.5}, {Temperature: math.NaN(), Alpha: 0.5}} {
		if err := m.SetDistillation(&d); err == nil {
			t.Errorf("%+v accepted", d)
		}
	}
	spec := MLP(4, []int{3}, 2)
	spec.Loss = LossMSE
	if err := mustModel(t, spec, 1).SetDistillation(&Distillation{Temperature: 2, Alpha: 0.5}); err == nil {
		t.Error("distillation accepted with the MSE loss")
	}
}
