package optim

import (
	"errors"
	"fmt"
	"math"
)

// ErrStateMismatch is wrapped by SetState's errors: the checkpointed state
// belongs to another optimizer or another model size.
var ErrStateMismatch = errors.New("optim: state mismatch")

// Optimizer updates one flat parameter slice from one flat gradient slice.
type Optimizer interface {
	// Step applies one update with learning rate lr (from the Schedule).
	// It writes params; it reads grads, and scales grads in place only
	// when Config.ClipNorm is set and the gradient's norm exceeds it.
	// It panics unless len(params) == len(grads) == the size given to New.
	Step(params, grads []float32, lr float64)
	// State returns the step count and the optimizer's buffers for a
	// checkpoint. The buffers are views owned by the optimizer, valid
	// until the next Step or SetState: a caller that keeps them copies.
	State() State
	// SetState restores a checkpointed state, copying its buffers. It
	// returns an error wrapping ErrStateMismatch, and changes nothing,
	// when the name, the number of buffers or their sizes do not match.
	SetState(State) error
}

// State is an optimizer's checkpointable state.
type State struct {
	// Name is the optimizer's Config.Name.
	Name string
	// Step counts the updates applied so far.
	Step int64
	// Buffers are the per-parameter buffers in a fixed order: sgd
	// [momentum] (none without momentum), adam and adamw [m, v], rmsprop
	// [square_avg] or [square_avg, momentum] with momentum.
	Buffers [][]float32
}

// New validates cfg (filling its defaults into a copy) and returns an
// optimizer for numParams parameters with zeroed state. Weight decay applies
// to every value unless noDecay lists ranges it spares (a transformer's biases,
// gains and embeddings); they must be sorted, disjoint and inside [0, numParams).
func New(cfg Config, numParams int, noDecay ...Range) (Optimizer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if numParams < 0 {
		return nil, invalidf("number of parameters must be >= 0, got %d", numParams)
	}
	end := 0
	for _, r := range noDecay {
		if r.Lo < end || r.Hi < r.Lo || r.Hi > numParams {
			return nil, invalidf("ranges without weight decay must be sorted, disjoint and inside the %d parameters, got %v", numParams, noDecay)
		}
		end = r.Hi
	}
	var o interface {
		Optimizer
		spared(noDecay []Range)
	}
	switch cfg.Name {
	case SGD:
		o = newSGD(cfg, numParams)
	case Adam, AdamW:
		o = newAdam(cfg, numParams)
	default: // RMSprop; Validate rejected anything else.
		o = newRMSprop(cfg, numParams)
	}
	o.spared(append([]Range(nil), noDecay...))
	return o, nil
}

// ClipGlobalNorm scales grads in place so that its L2 norm is at most
// maxNorm, and returns the norm before clipping. The norm is accumulated in
// float64. A maxNorm <= 0 only measures. A non-finite norm is returned
// without touching grads: scaling would spread the NaN or Inf to every
// value, and the caller should skip the step instead.
func ClipGlobalNorm(grads []float32, maxNorm float64) (norm float64) {
	norm = math.Sqrt(sumSquares(grads))
	if scale := ClipScale(norm, maxNorm); scale != 1 {
		for i := range grads {
			grads[i] *= scale
		}
	}
	return norm
}

// core is what every optimizer shares: its name, size, step count, state
// buffers and gradient clipping.
type core struct {
	name     string
	n        int
	step     int64
	clipNorm float64
	buffers  [][]float32

	// The step being applied, for the update loop's spans.
	params, grads []float32
	gradScale     float32
	spans
}

func (c *core) spared(noDecay []Range) { c.noDecay = noDecay }

func newCore(cfg Config, n, numBuffers int) core {
	c := core{name: cfg.Name, n: n, clipNorm: cfg.ClipNorm, buffers: make([][]float32, numBuffers)}
	for i := range c.buffers {
		c.buffers[i] = make([]float32, n)
	}
	return c
}

// begin checks the lengths and counts the step. It returns the 1-based
// number of the step being applied and the factor that clips the gradient
// (1 when it needs none), which the update loop applies and writes back
// as it reads grads.
func (c *core) begin(params, grads []float32) (step int64, gradScale float32) {
	if len(params) != c.n || len(grads) != c.n {
		panic(fmt.Sprintf("optim: %s built for %d parameters, got params length %d, grads length %d",
			c.name, c.n, len(params), len(grads)))
	}
	gradScale = 1
	if c.clipNorm > 0 {
		gradScale = ClipScale(math.Sqrt(sumSquares(grads)), c.clipNorm)
	}
	c.step++
	c.params, c.grads, c.gradScale = params, grads, gradScale
	return c.step, gradScale
}

func (c *core) State() State {
	return State{Name: c.name, Step: c.step, Buffers: c.buffers}
}

func (c *core) SetState(s State) error {
	if s.Name != c.name {
		return fmt.Errorf("%w: state is for %q, optimizer is %q", ErrStateMismatch, s.Name, c.name)
	}
	if s.Step < 0 {
		return fmt.Errorf("%w: negative step %d", ErrStateMismatch, s.Step)
	}
	if len(s.Buffers) != len(c.buffers) {
		return fmt.Errorf("%w: %s has %d buffers, state has %d", ErrStateMismatch, c.name, len(c.buffers), len(s.Buffers))
	}
	for i, b := range s.Buffers {
		if len(b) != c.n {
			return fmt.Errorf("%w: buffer %d has %d values, want %d", ErrStateMismatch, i, len(b), c.n)
		}
	}
	for i, b := range s.Buffers {
		copy(c.buffers[i], b)
	}
	c.step = s.Step
	return nil
}

// RunningSquares lists the indexes of the State buffers of the optimizer called name that hold
// running averages of squared gradients (Adam's v, RMSprop's square_avg): a value of them that
// is lost cannot restart at zero without making its next updates many times too large, so a
// caller restoring part of a state fills it from the values it has instead.
func RunningSquares(name string) []int {
	switch name {
	case Adam, AdamW:
		return []int{1}
	case RMSprop:
		return []int{0}
	}
	return nil
}
