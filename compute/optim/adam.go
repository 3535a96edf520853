package optim

import "math"

// adam is Adam with bias correction, and AdamW when decoupled is set:
//
//	p = p*(1 - lr*wd)          (adamw only)
//	g = grad + wd*p            (adam only: L2)
//	m = b1*m + (1-b1)*g
//	v = b2*v + (1-b2)*g*g
//	p = p - lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
type adam struct {
	core
	beta1, beta2, epsilon float64
	weightDecay           float64
	decoupled             bool
	coeffs                adamCoeffs // the step's
}

func newAdam(cfg Config, n int) *adam {
	o := &adam{
		core:  newCore(cfg, n, 2),
		beta1: cfg.Beta1, beta2: cfg.Beta2, epsilon: cfg.Epsilon,
		weightDecay: cfg.WeightDecay,
		decoupled:   cfg.Name == AdamW,
	}
	o.spans.init(o.span)
	return o
}

func (o *adam) span(lo, hi int, decay bool) {
	c := o.coeffs
	if !decay {
		c.decay, c.l2 = 1, 0
	}
	adamUpdate(o.params[lo:hi], o.grads[lo:hi], o.buffers[0][lo:hi], o.buffers[1][lo:hi], o.gradScale, c)
}

func (o *adam) Step(params, grads []float32, lr float64) {
	step, _ := o.begin(params, grads)
	t := float64(step)
	// One of the two decays is the identity: decay = 1 for adam, l2 = 0 for adamw.
	c := adamCoeffs{
		beta1: float32(o.beta1), oneMinusBeta1: float32(1 - o.beta1),
		beta2: float32(o.beta2), oneMinusBeta2: float32(1 - o.beta2),
		stepSize:           float32(lr / (1 - math.Pow(o.beta1, t))),
		invSqrtCorrection2: float32(1 / math.Sqrt(1-math.Pow(o.beta2, t))),
		epsilon:            float32(o.epsilon),
		decay:              1,
		l2:                 float32(o.weightDecay),
	}
	if o.decoupled {
		c.decay, c.l2 = float32(1-lr*o.weightDecay), 0
	}
	o.coeffs = c
	o.spans.run(len(grads))
}
