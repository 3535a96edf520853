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
}

func newRMSprop(cfg Config, n int) *rmsprop {
	numBuffers := 1
	if cfg.Momentum > 0 {
		numBuffers = 2
	}
	return &rmsprop{
		core:  newCore(cfg, n, numBuffers),
		alpha: cfg.Alpha, epsilon: cfg.Epsilon, momentum: cfg.Momentum, weightDecay: cfg.WeightDecay,
	}
}

func (o *rmsprop) Step(params, grads []float32, lr float64) {
	_, gradScale := o.begin(params, grads)
	var velocity []float32
	if len(o.buffers) == 2 {
		velocity = o.buffers[1]
	}
	rmspropUpdate(params, grads, o.buffers[0], velocity, gradScale, rmspropCoeffs{
		lr: float32(lr), weightDecay: float32(o.weightDecay),
		alpha: float32(o.alpha), oneMinusAlpha: float32(1 - o.alpha),
		epsilon: float32(o.epsilon), momentum: float32(o.momentum),
	})
}
