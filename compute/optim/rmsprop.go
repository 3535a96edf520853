package optim

import "math"

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
	o.begin(params, grads)
	rate, wd, eps := float32(lr), float32(o.weightDecay), float32(o.epsilon)
	a, ca := float32(o.alpha), float32(1-o.alpha)
	mu := float32(o.momentum)
	hasMomentum := len(o.buffers) == 2
	square := o.buffers[0][:len(grads)]
	var velocity []float32
	if hasMomentum {
		velocity = o.buffers[1][:len(grads)]
	}
	params = params[:len(grads)]
	for i, g := range grads {
		p := params[i]
		g += wd * p
		s := a*square[i] + ca*g*g
		square[i] = s
		u := g / (float32(math.Sqrt(float64(s))) + eps)
		if hasMomentum {
			u += mu * velocity[i]
			velocity[i] = u
		}
		params[i] = p - rate*u
	}
}
