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
	o.begin(params, grads)
	rate, wd, mu := float32(lr), float32(o.weightDecay), float32(o.momentum)
	hasMomentum, nesterov := len(o.buffers) == 1, o.nesterov
	var velocity []float32
	if hasMomentum {
		velocity = o.buffers[0][:len(grads)]
	}
	params = params[:len(grads)]
	for i, g := range grads {
		p := params[i]
		g += wd * p
		if hasMomentum {
			v := mu*velocity[i] + g
			velocity[i] = v
			if nesterov {
				g += mu * v
			} else {
				g = v
			}
		}
		params[i] = p - rate*g
	}
}
