package optim

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"unsafe"
)

// TestAdamCoeffsLayout pins the field offsets adam_amd64.s reads.
func TestAdamCoeffsLayout(t *testing.T) {
	var c adamCoeffs
	for _, f := range []struct {
		name      string
		got, want uintptr
	}{
		{"beta1", unsafe.Offsetof(c.beta1), 0},
		{"oneMinusBeta1", unsafe.Offsetof(c.oneMinusBeta1), 4},
		{"beta2", unsafe.Offsetof(c.beta2), 8},
		{"oneMinusBeta2", unsafe.Offsetof(c.oneMinusBeta2), 12},
		{"stepSize", unsafe.Offsetof(c.stepSize), 16},
		{"invSqrtCorrection2", unsafe.Offsetof(c.invSqrtCorrection2), 20},
		{"epsilon", unsafe.Offsetof(c.epsilon), 24},
		{"decay", unsafe.Offsetof(c.decay), 28},
		{"l2", unsafe.Offsetof(c.l2), 32},
	} {
		if f.got != f.want {
			t.Errorf("adamCoeffs.%s at offset %d, the assembly reads it at %d", f.name, f.got, f.want)
		}
	}
}

// adamInputs are params, grads and both moments of length n: random
// values of several magnitudes, with zeros, subnormals and a huge gradient
// among them.
func adamInputs(rng *rand.Rand, n int) [4][]float32 {
	var in [4][]float32
	for b := range in {
		in[b] = make([]float32, n)
		for i := range in[b] {
			x := float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(9)-6)))
			switch rng.IntN(40) {
			case 0:
				x = 0
			case 1:
				x = math.SmallestNonzeroFloat32 * float32(rng.IntN(1000))
			case 2:
				x = 3e37
			}
			if b == 3 { // the second moment is never negative
				x = float32(math.Abs(float64(x)))
			}
			in[b][i] = x
		}
	}
	return in
}

// TestAdamVectorMatchesTheGoLoop runs adamUpdate with and without the
// vector loop on the same inputs, lengths around the vector width
// included, and wants every output bit equal: parameters, both moments,
// and the gradient as written back when it is scaled.
func TestAdamVectorMatchesTheGoLoop(t *testing.T) {
	if !hasAVX2 {
		t.Skip("no vector loop on this CPU or build")
	}
	rng := rand.New(rand.NewPCG(12, 12))
	coeffs := []adamCoeffs{
		{beta1: 0.9, oneMinusBeta1: 0.1, beta2: 0.999, oneMinusBeta2: 0.001, stepSize: 1e-3, invSqrtCorrection2: 31.6, epsilon: 1e-8, decay: 1},
		{beta1: 0.8, oneMinusBeta1: 0.2, beta2: 0.99, oneMinusBeta2: 0.01, stepSize: 0.05, invSqrtCorrection2: 1.2, epsilon: 1e-6, decay: 1, l2: 0.01},
		{beta1: 0.9, oneMinusBeta1: 0.1, beta2: 0.999, oneMinusBeta2: 0.001, stepSize: 3e-4, invSqrtCorrection2: 2, epsilon: 1e-8, decay: 0.9999},
	}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 63, 64, 65, 1000, 4099} {
		for ci, c := range coeffs {
			for _, scale := range []float32{1, 0.37} {
				in := adamInputs(rng, n)
				run := func(vector bool) [4][]float32 {
					defer func(was bool) { hasAVX2 = was }(hasAVX2)
					hasAVX2 = vector
					var out [4][]float32
					for b := range in {
						out[b] = slices.Clone(in[b])
					}
					adamUpdate(out[0], out[1], out[2], out[3], scale, c)
					return out
				}
				want, got := run(false), run(true)
				for b, name := range []string{"params", "grads", "m", "v"} {
					for i := range want[b] {
						if math.Float32bits(got[b][i]) != math.Float32bits(want[b][i]) {
							t.Fatalf("n=%d coeffs %d scale %v: %s[%d] = %v (%#x), the Go loop gives %v (%#x)",
								n, ci, scale, name, i, got[b][i], math.Float32bits(got[b][i]), want[b][i], math.Float32bits(want[b][i]))
						}
					}
				}
			}
		}
	}
}
