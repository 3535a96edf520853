package optim

// sgd is stochastic gradient descent with optional momentum, Nesterov
// momentum and L2 weight decay:
//
//	g = grad + wd*p
//	v = mu*v + g              (with momentum)
//	g = g + mu*v (Nesterov) or g = v
//	p = p - lr*g
type sgd struct {
	core
	momentum    float64
	nesterov    bool
	weightDecay float64
	coeffs      sgdCoeffs // the step's
}

func newSGD(cfg Config, n int) *sgd {
	numBuffers := 0
	if cfg.Momentum > 0 {
		numBuffers = 1
	}
	o := &sgd{core: newCore(cfg, n, numBuffers), momentum: cfg.Momentum, nesterov: cfg.Nesterov, weightDecay: cfg.WeightDecay}
	o.spans.init(o.span)
	return o
}

func (o *sgd) span(lo, hi int, decay bool) {
	var velocity []float32
	if len(o.buffers) == 1 {
		velocity = o.buffers[0][lo:hi]
	}
	c := o.coeffs
	if !decay {
		c.weightDecay = 0
	}
	sgdUpdate(o.params[lo:hi], o.grads[lo:hi], velocity, o.gradScale, c)
}

func (o *sgd) Step(params, grads []float32, lr float64) {
	o.begin(params, grads)
	o.coeffs = sgdCoeffs{
		lr: float32(lr), weightDecay: float32(o.weightDecay), momentum: float32(o.momentum), nesterov: o.nesterov,
	}
	o.spans.run(len(grads))
}
