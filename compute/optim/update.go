package optim

import "math"

// The update loops: each optimizer's whole step as one pass over its flat
// buffers. Each reads every gradient once, multiplied by gradScale, the
// clipping factor: when it is not 1 the scaled gradient is also written
// back, leaving grads as a separate scaling pass would, one pass fewer.
// Coefficients are float32 values rounded once per step from float64.
// They live here rather than in kernels: this package imports nothing of
// troupe (see the layer table in docs/architecture.md).

// SumSquares is the sum of the squares of x, accumulated in float64: the
// squared L2 norm that clipping measures, for a caller that holds only part
// of the vector (a sharded optimizer's slice) and sums the parts itself.
func SumSquares(x []float32) float64 { return sumSquares(x) }

// sumSquares returns Σ x[i]² accumulated in float64, with four running
// sums so that the loop is not bound by the latency of one addition.
func sumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		x4 := x[i : i+4 : i+4]
		a, b, c, d := float64(x4[0]), float64(x4[1]), float64(x4[2]), float64(x4[3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// ClipScale returns the factor that brings a gradient of norm norm down to
// maxNorm, or 1 when it needs none: clipping off (maxNorm <= 0), norm
// within bound, or norm not finite (scaling would spread the NaN or Inf to
// every value).
func ClipScale(norm, maxNorm float64) float32 {
	if maxNorm <= 0 || !(norm > maxNorm) || math.IsInf(norm, 0) {
		return 1
	}
	return float32(maxNorm / norm)
}

// eachGrad calls update(i, g) with g = gradScale·grads[i] for every i,
// writing g back into grads when gradScale is not 1. It and update are
// inlined, so that each of its two loops is straight-line code with no
// test of gradScale per value.
func eachGrad(grads []float32, gradScale float32, update func(i int, g float32)) {
	if gradScale != 1 {
		for i, g := range grads {
			g = float32(g * gradScale) // rounded here: never fused into what update adds
			grads[i] = g
			update(i, g)
		}
		return
	}
	for i, g := range grads {
		update(i, g)
	}
}

// adamCoeffs are the constants of one Adam or AdamW step.
type adamCoeffs struct {
	beta1, oneMinusBeta1 float32 // β₁, 1-β₁
	beta2, oneMinusBeta2 float32 // β₂, 1-β₂
	stepSize             float32 // lr / (1-β₁ᵗ)
	invSqrtCorrection2   float32 // 1 / √(1-β₂ᵗ)
	epsilon              float32
	decay                float32 // parameter factor: 1 - lr·wd for AdamW, 1 for Adam
	l2                   float32 // wd for Adam's L2 penalty (g += wd·p), 0 for AdamW
}

// adamUpdate is, per element,
//
//	g = gradScale·grads[i] + l2·p
//	m = β₁m + (1-β₁)g;  v = β₂v + (1-β₂)g²
//	p = decay·p - stepSize·m / (√v·invSqrtCorrection2 + ε)
func adamUpdate(params, grads, m, v []float32, gradScale float32, c adamCoeffs) {
	params, m, v = params[:len(grads)], m[:len(grads)], v[:len(grads)]
	// The vector loop where the CPU has one, this loop for the rest.
	done := adamVector(params, grads, m, v, gradScale, &c)
	params, grads, m, v = params[done:], grads[done:], m[done:], v[done:]
	// Locals, not fields, so that the constants stay in registers.
	b1, c1, b2, c2 := c.beta1, c.oneMinusBeta1, c.beta2, c.oneMinusBeta2
	stepSize, inv2, eps, decay, l2 := c.stepSize, c.invSqrtCorrection2, c.epsilon, c.decay, c.l2
	// Each product is converted to float32 on its own, which keeps a compiler
	// from fusing it into the following addition (GOAMD64=v3 would), so this
	// loop and the vector one agree bit for bit.
	eachGrad(grads, gradScale, func(i int, g float32) {
		p := params[i]
		g += float32(l2 * p)
		mi := float32(b1*m[i]) + float32(c1*g)
		vi := float32(b2*v[i]) + float32(float32(c2*g)*g)
		m[i], v[i] = mi, vi
		denom := float32(float32(math.Sqrt(float64(vi)))*inv2) + eps
		params[i] = float32(p*decay) - float32(stepSize*mi)/denom
	})
}

// sgdCoeffs are the constants of one SGD step.
type sgdCoeffs struct {
	lr, weightDecay, momentum float32
	nesterov                  bool
}

// sgdUpdate is, per element,
//
//	g = gradScale·grads[i] + wd·p
//	vel = μ·vel + g, then g = vel, or g += μ·vel with Nesterov  (velocity != nil)
//	p = p - lr·g
//
// with one loop per variant, so that none tests the options per element.
func sgdUpdate(params, grads, velocity []float32, gradScale float32, c sgdCoeffs) {
	params = params[:len(grads)]
	rate, wd, mu := c.lr, c.weightDecay, c.momentum
	switch {
	case velocity == nil:
		eachGrad(grads, gradScale, func(i int, g float32) {
			p := params[i]
			g += wd * p
			params[i] = p - rate*g
		})
	case c.nesterov:
		velocity = velocity[:len(grads)]
		eachGrad(grads, gradScale, func(i int, g float32) {
			p := params[i]
			g += wd * p
			v := mu*velocity[i] + g
			velocity[i] = v
			g += mu * v
			params[i] = p - rate*g
		})
	default:
		velocity = velocity[:len(grads)]
		eachGrad(grads, gradScale, func(i int, g float32) {
			p := params[i]
			g += wd * p
			v := mu*velocity[i] + g
			velocity[i] = v
			params[i] = p - rate*v
		})
	}
}

// rmspropCoeffs are the constants of one RMSprop step.
type rmspropCoeffs struct {
	lr, weightDecay      float32
	alpha, oneMinusAlpha float32 // α, 1-α
	epsilon, momentum    float32
}

// rmspropUpdate is, per element,
//
//	g = gradScale·grads[i] + wd·p
//	s = αs + (1-α)g²
//	u = g / (√s + ε);  u += μ·vel, vel = u  (velocity != nil)
//	p = p - lr·u
func rmspropUpdate(params, grads, square, velocity []float32, gradScale float32, c rmspropCoeffs) {
	params, square = params[:len(grads)], square[:len(grads)]
	rate, wd, eps := c.lr, c.weightDecay, c.epsilon
	a, ca, mu := c.alpha, c.oneMinusAlpha, c.momentum
	if velocity == nil {
		eachGrad(grads, gradScale, func(i int, g float32) {
			p := params[i]
			g += wd * p
			s := a*square[i] + ca*g*g
			square[i] = s
			u := g / (float32(math.Sqrt(float64(s))) + eps)
			params[i] = p - rate*u
		})
		return
	}
	velocity = velocity[:len(grads)]
	eachGrad(grads, gradScale, func(i int, g float32) {
		p := params[i]
		g += wd * p
		s := a*square[i] + ca*g*g
		square[i] = s
		u := g / (float32(math.Sqrt(float64(s))) + eps)
		u += mu * velocity[i]
		velocity[i] = u
		params[i] = p - rate*u
	})
}
