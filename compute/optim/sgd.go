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
}

func newSGD(cfg Config, n int) *sgd {
	numBuffers := 0
	if cfg.Momentum > 0 {
		numBuffers = 1
	}
	return &sgd{core: newCore(cfg, n, numBuffers), momentum: cfg.Momentum, nesterov: cfg.Nesterov, weightDecay: cfg.WeightDecay}
}

func (o *sgd) Step(params, grads []float32, lr float64) {
	_, gradScale := o.begin(params, grads)
	var velocity []float32
	if len(o.buffers) == 1 {
		velocity = o.buffers[0]
	}
	sgdUpdate(params, grads, velocity, gradScale, sgdCoeffs{
		lr: float32(lr), weightDecay: float32(o.weightDecay), momentum: float32(o.momentum), nesterov: o.nesterov,
	})
}
