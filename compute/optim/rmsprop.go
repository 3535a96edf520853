package optim

// rmsprop is RMSprop with optional momentum and L2 weight decay:
//
//	g = grad + wd*p
//	s = alpha*s + (1-alpha)*g*g
//	u = g / (sqrt(s) + eps)
//	u = mu*buf + u; buf = u   (with momentum)
//	p = p - lr*u
type rmsprop struct {
	core
	alpha, epsilon, momentum, weightDecay float64
	coeffs                                rmspropCoeffs // the step's
}

func newRMSprop(cfg Config, n int) *rmsprop {
	numBuffers := 1
	if cfg.Momentum > 0 {
		numBuffers = 2
	}
	o := &rmsprop{
		core:  newCore(cfg, n, numBuffers),
		alpha: cfg.Alpha, epsilon: cfg.Epsilon, momentum: cfg.Momentum, weightDecay: cfg.WeightDecay,
	}
	o.spans.init(o.span)
	return o
}

func (o *rmsprop) span(lo, hi int, decay bool) {
	var velocity []float32
	if len(o.buffers) == 2 {
		velocity = o.buffers[1][lo:hi]
	}
	c := o.coeffs
	if !decay {
		c.weightDecay = 0
	}
	rmspropUpdate(o.params[lo:hi], o.grads[lo:hi], o.buffers[0][lo:hi], velocity, o.gradScale, c)
}

func (o *rmsprop) Step(params, grads []float32, lr float64) {
	o.begin(params, grads)
	o.coeffs = rmspropCoeffs{
		lr: float32(lr), weightDecay: float32(o.weightDecay),
		alpha: float32(o.alpha), oneMinusAlpha: float32(1 - o.alpha),
		epsilon: float32(o.epsilon), momentum: float32(o.momentum),
	}
	o.spans.run(len(grads))
}
