package optim

import (
	"math"
	"math/rand/v2"
	"testing"
)

// The update loops against the two-pass form they replace: a clipping
// pass that scales grads in place, then the update rule written as
// directly as possible. Same float32 operations in the same order, so the
// results must be the same bits.

const (
	updateGuard      = 4
	updateGuardValue = float32(-13.375)
)

// guardedSlice returns n values from gen inside guard values, and a check
// that the guards are intact.
func guardedSlice(n int, gen func() float32) ([]float32, func() bool) {
	full := make([]float32, n+2*updateGuard)
	for i := range full {
		full[i] = updateGuardValue
	}
	s := full[updateGuard : updateGuard+n]
	for i := range s {
		s[i] = gen()
	}
	return s, func() bool {
		for i := range updateGuard {
			if full[i] != updateGuardValue || full[len(full)-1-i] != updateGuardValue {
				return false
			}
		}
		return true
	}
}

func bitsEqual(a, b []float32) bool {
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

// updateCase is one call of an update loop on fresh buffers.
type updateCase struct {
	n         int
	gradScale float32
}

var updateCases = []updateCase{{0, 1}, {1, 1}, {3, 0.5}, {7, 1}, {64, 0.25}, {257, 1}, {1001, 0.125}}

// updateBuffers are params, grads and two state buffers, each guarded.
type updateBuffers struct {
	p, g, a, b []float32
	ok         []func() bool
}

func newUpdateBuffers(rng *rand.Rand, n int) updateBuffers {
	var u updateBuffers
	normal := func() float32 { return float32(rng.NormFloat64()) }
	positive := func() float32 { return float32(rng.Float64()) }
	for _, s := range []struct {
		dst *[]float32
		gen func() float32
	}{{&u.p, normal}, {&u.g, normal}, {&u.a, normal}, {&u.b, positive}} {
		var ok func() bool
		*s.dst, ok = guardedSlice(n, s.gen)
		u.ok = append(u.ok, ok)
	}
	return u
}

func (u updateBuffers) clone() updateBuffers {
	c := func(s []float32) []float32 { return append([]float32(nil), s...) }
	return updateBuffers{p: c(u.p), g: c(u.g), a: c(u.a), b: c(u.b)}
}

func (u updateBuffers) guardsOK() bool {
	for _, ok := range u.ok {
		if !ok() {
			return false
		}
	}
	return true
}

func (u updateBuffers) same(w updateBuffers) bool {
	return bitsEqual(u.p, w.p) && bitsEqual(u.g, w.g) && bitsEqual(u.a, w.a) && bitsEqual(u.b, w.b)
}

func scaleInPlace(g []float32, s float32) {
	if s != 1 {
		for i := range g {
			g[i] *= s
		}
	}
}

func TestAdamUpdateIsClipThenAdam(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, uc := range updateCases {
		for _, decoupled := range []bool{false, true} {
			c := adamCoeffs{beta1: 0.9, oneMinusBeta1: 0.1, beta2: 0.999, oneMinusBeta2: 0.001,
				stepSize: 0.0123, invSqrtCorrection2: 7.5, epsilon: 1e-8, decay: 1, l2: 0.01}
			if decoupled {
				c.decay, c.l2 = 0.9995, 0
			}
			got := newUpdateBuffers(rng, uc.n)
			want := got.clone()
			scaleInPlace(want.g, uc.gradScale)
			for i, g := range want.g {
				p := want.p[i]
				g += c.l2 * p
				want.a[i] = c.beta1*want.a[i] + c.oneMinusBeta1*g
				want.b[i] = c.beta2*want.b[i] + c.oneMinusBeta2*g*g
				denom := float32(math.Sqrt(float64(want.b[i])))*c.invSqrtCorrection2 + c.epsilon
				want.p[i] = p*c.decay - c.stepSize*want.a[i]/denom
			}
			adamUpdate(got.p, got.g, got.a, got.b, uc.gradScale, c)
			if !got.same(want) || !got.guardsOK() {
				t.Errorf("%+v decoupled=%v: fused update differs from clip-then-update (guards intact: %v)", uc, decoupled, got.guardsOK())
			}
		}
	}
}

func TestSGDUpdateIsClipThenSGD(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, uc := range updateCases {
		for _, c := range []sgdCoeffs{
			{lr: 0.1},
			{lr: 0.1, weightDecay: 0.01},
			{lr: 0.05, weightDecay: 0.01, momentum: 0.9},
			{lr: 0.05, weightDecay: 0.01, momentum: 0.9, nesterov: true},
		} {
			got := newUpdateBuffers(rng, uc.n)
			want := got.clone()
			scaleInPlace(want.g, uc.gradScale)
			hasMomentum := c.momentum > 0
			for i, g := range want.g {
				p := want.p[i]
				g += c.weightDecay * p
				if hasMomentum {
					v := c.momentum*want.a[i] + g
					want.a[i] = v
					if c.nesterov {
						g += c.momentum * v
					} else {
						g = v
					}
				}
				want.p[i] = p - c.lr*g
			}
			var velocity []float32
			if hasMomentum {
				velocity = got.a
			}
			sgdUpdate(got.p, got.g, velocity, uc.gradScale, c)
			if !got.same(want) || !got.guardsOK() {
				t.Errorf("%+v %+v: fused update differs from clip-then-update (guards intact: %v)", uc, c, got.guardsOK())
			}
		}
	}
}

func TestRMSpropUpdateIsClipThenRMSprop(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, uc := range updateCases {
		for _, c := range []rmspropCoeffs{
			{lr: 0.01, alpha: 0.99, oneMinusAlpha: 0.01, epsilon: 1e-8},
			{lr: 0.01, weightDecay: 0.01, alpha: 0.9, oneMinusAlpha: 0.1, epsilon: 1e-6, momentum: 0.9},
		} {
			got := newUpdateBuffers(rng, uc.n)
			want := got.clone()
			scaleInPlace(want.g, uc.gradScale)
			hasMomentum := c.momentum > 0
			for i, g := range want.g {
				p := want.p[i]
				g += c.weightDecay * p
				s := c.alpha*want.b[i] + c.oneMinusAlpha*g*g
				want.b[i] = s
				u := g / (float32(math.Sqrt(float64(s))) + c.epsilon)
				if hasMomentum {
					u += c.momentum * want.a[i]
					want.a[i] = u
				}
				want.p[i] = p - c.lr*u
			}
			var velocity []float32
			if hasMomentum {
				velocity = got.a
			}
			rmspropUpdate(got.p, got.g, got.b, velocity, uc.gradScale, c)
			if !got.same(want) || !got.guardsOK() {
				t.Errorf("%+v %+v: fused update differs from clip-then-update (guards intact: %v)", uc, c, got.guardsOK())
			}
		}
	}
}

func TestSumSquares(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, n := range []int{0, 1, 3, 4, 5, 7, 1000, 1003} {
		x, _ := guardedSlice(n, func() float32 { return float32(rng.NormFloat64()) })
		var want float64
		for _, v := range x {
			want += float64(v) * float64(v)
		}
		// Exact float64 products summed in another order: a few ulps of
		// the total per thousand terms.
		if got := sumSquares(x); math.Abs(got-want) > 1e-15*float64(n+1)*want {
			t.Errorf("n=%d: %v, want %v", n, got, want)
		}
	}
}
