package optim

import "math"

// reference is a float64 re-statement of each update rule, written as
// directly as the published pseudo-code, to check the float32 loops against.
type reference struct {
	cfg     Config // validated
	t       int
	m, v, b []float64
}

func newReference(cfg Config, n int) *reference {
	return &reference{cfg: cfg, m: make([]float64, n), v: make([]float64, n), b: make([]float64, n)}
}

func (r *reference) step(p, grad []float64, lr float64) {
	c := r.cfg
	r.t++
	g := append([]float64(nil), grad...)
	if c.ClipNorm > 0 {
		var sum float64
		for _, x := range g {
			sum += x * x
		}
		if norm := math.Sqrt(sum); norm > c.ClipNorm {
			for i := range g {
				g[i] *= c.ClipNorm / norm
			}
		}
	}
	for i := range p {
		if c.Name != AdamW {
			g[i] += c.WeightDecay * p[i]
		}
		switch c.Name {
		case SGD:
			if c.Momentum > 0 {
				r.b[i] = c.Momentum*r.b[i] + g[i]
				if c.Nesterov {
					g[i] += c.Momentum * r.b[i]
				} else {
					g[i] = r.b[i]
				}
			}
			p[i] -= lr * g[i]
		case Adam, AdamW:
			if c.Name == AdamW {
				p[i] *= 1 - lr*c.WeightDecay
			}
			r.m[i] = c.Beta1*r.m[i] + (1-c.Beta1)*g[i]
			r.v[i] = c.Beta2*r.v[i] + (1-c.Beta2)*g[i]*g[i]
			mHat := r.m[i] / (1 - math.Pow(c.Beta1, float64(r.t)))
			vHat := r.v[i] / (1 - math.Pow(c.Beta2, float64(r.t)))
			p[i] -= lr * mHat / (math.Sqrt(vHat) + c.Epsilon)
		case RMSprop:
			r.v[i] = c.Alpha*r.v[i] + (1-c.Alpha)*g[i]*g[i]
			u := g[i] / (math.Sqrt(r.v[i]) + c.Epsilon)
			if c.Momentum > 0 {
				r.b[i] = c.Momentum*r.b[i] + u
				u = r.b[i]
			}
			p[i] -= lr * u
		}
	}
}
