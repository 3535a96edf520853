// Package prune removes the smallest weights of a model while it trains: magnitude pruning to
// a target sparsity, reached gradually over a window of steps, with masks over the model's flat
// parameter vector that the optimizer and the all-reduce respect.
//
// The schedule is the cubic one of Zhu and Gupta ("To prune, or not to prune", 2017): sparsity
// rises from 0 at StartStep to Target at EndStep, quickly at first and slowly near the end, when
// fewer weights are left to take; masks are recomputed every Every steps in between, and the
// steps after EndStep fine-tune the weights that are left. The masks depend only on the
// parameters, so every rank of a world, holding the same parameters, computes the same masks,
// and a resumed or joining replica finds them again from the zeros in the parameters.
package prune

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// Scopes of the magnitude threshold.
const (
	ScopeGlobal = "global" // one threshold over every pruned tensor: layers keep what they need
	ScopeLayer  = "layer"  // each tensor pruned to the target on its own
)

// ErrConfig is wrapped by Validate's errors.
var ErrConfig = errors.New("prune: bad config")

// Config is the job file's prune section.
type Config struct {
	// Target is the share of each pruned tensor's weights (ScopeLayer) or of all of them
	// (ScopeGlobal) that is zero from EndStep on, in [0, 1).
	Target float64 `yaml:"target" json:"target"`
	// Scope is ScopeGlobal (the default) or ScopeLayer.
	Scope string `yaml:"scope,omitempty" json:"scope,omitempty"`
	// StartStep is the first pruning step; EndStep the step the target is reached at.
	StartStep int64 `yaml:"start_step" json:"start_step"`
	EndStep   int64 `yaml:"end_step" json:"end_step"`
	// Every is the number of steps between two pruning steps (default 50).
	Every int64 `yaml:"every,omitempty" json:"every,omitempty"`
}

// Validate checks the config and fills in defaults.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if c.Scope == "" {
		c.Scope = ScopeGlobal
	}
	if c.Every == 0 {
		c.Every = 50
	}
	switch {
	case !(c.Target >= 0 && c.Target < 1):
		return bad("target must be in [0, 1), got %v", c.Target)
	case c.Scope != ScopeGlobal && c.Scope != ScopeLayer:
		return bad("scope must be %q or %q, got %q", ScopeGlobal, ScopeLayer, c.Scope)
	case c.StartStep < 0:
		return bad("start_step must be >= 0, got %d", c.StartStep)
	case c.EndStep < c.StartStep:
		return bad("end_step (%d) must be >= start_step (%d)", c.EndStep, c.StartStep)
	case c.Every < 1:
		return bad("every must be >= 1, got %d", c.Every)
	}
	return nil
}

// SparsityAt is the schedule's sparsity once step has been pruned: 0 before StartStep, Target
// from EndStep on, s = Target·(1 - (1 - f)³) in between, f the share of the window gone by at
// the latest pruning step (StartStep + k·Every) not after step.
func (c Config) SparsityAt(step int64) float64 {
	if step < c.StartStep {
		return 0
	}
	if step >= c.EndStep {
		return c.Target
	}
	last := c.StartStep + (step-c.StartStep)/c.Every*c.Every
	f := float64(last-c.StartStep) / float64(c.EndStep-c.StartStep)
	return c.Target * (1 - math.Pow(1-f, 3))
}

// IsPruningStep says whether masks are recomputed before step trains.
func (c Config) IsPruningStep(step int64) bool {
	if step < c.StartStep || step > c.EndStep {
		return false
	}
	return step == c.EndStep || (step-c.StartStep)%c.Every == 0
}

// Tensor is one pruned tensor: params[Offset : Offset+Len]. Biases are usually left out.
type Tensor struct {
	Name        string
	Offset, Len int
}

// Pruner holds the masks of one model. Not safe for concurrent use.
type Pruner struct {
	cfg     Config
	tensors []Tensor
	// keep is 1 for a kept value and 0 for a pruned one, over the whole parameter vector
	// (values outside the tensors are always kept), so masking is one multiplication pass.
	keep    []float32
	scratch []float32
	active  bool // some value is pruned
}

// New builds the pruner of a model with n parameters; every value is kept until the first
// pruning step. cfg must be valid.
func New(cfg Config, n int, tensors []Tensor) (*Pruner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for _, t := range tensors {
		if t.Offset < 0 || t.Len < 0 || t.Offset+t.Len > n {
			return nil, fmt.Errorf("%w: tensor %s [%d, %d) outside the %d parameters", ErrConfig, t.Name, t.Offset, t.Offset+t.Len, n)
		}
	}
	keep := make([]float32, n)
	for i := range keep {
		keep[i] = 1
	}
	return &Pruner{cfg: cfg, tensors: slices.Clone(tensors), keep: keep}, nil
}

// Config returns the pruner's config, defaults filled in.
func (p *Pruner) Config() Config { return p.cfg }

// Prune recomputes the masks for step when it is a pruning step and zeroes the newly pruned
// parameters; it reports whether it did. The weights of smallest magnitude go first (ties
// broken by position, so the masks are a function of the parameters alone).
func (p *Pruner) Prune(step int64, params []float32) bool {
	if !p.cfg.IsPruningStep(step) {
		return false
	}
	s := p.cfg.SparsityAt(step)
	if p.cfg.Scope == ScopeLayer {
		for _, t := range p.tensors {
			p.pruneGroup([]Tensor{t}, s, params)
		}
	} else {
		p.pruneGroup(p.tensors, s, params)
	}
	p.MaskParams(params)
	return true
}

// pruneGroup masks the round(s·total) values of smallest magnitude among the group's tensors.
func (p *Pruner) pruneGroup(group []Tensor, s float64, params []float32) {
	total := 0
	for _, t := range group {
		total += t.Len
	}
	k := int(math.Round(s * float64(total)))
	if k == 0 {
		return
	}
	p.active = true
	p.scratch = p.scratch[:0]
	for _, t := range group {
		for _, v := range params[t.Offset : t.Offset+t.Len] {
			p.scratch = append(p.scratch, float32(math.Abs(float64(v))))
		}
	}
	threshold := kthSmallest(p.scratch, k-1) // the largest magnitude pruned
	// Values strictly below the threshold go; of those equal to it, the first ones in order,
	// until k are gone.
	below := 0
	for _, m := range p.scratch {
		if m < threshold {
			below++
		}
	}
	atThreshold := k - below
	for _, t := range group {
		for i := t.Offset; i < t.Offset+t.Len; i++ {
			m := float32(math.Abs(float64(params[i])))
			switch {
			case m < threshold:
				p.keep[i] = 0
			case m == threshold && atThreshold > 0:
				p.keep[i] = 0
				atThreshold--
			default:
				p.keep[i] = 1
			}
		}
	}
}

// kthSmallest returns the k-th smallest value (0-based) of xs, reordering xs (quickselect with
// the median of three as pivot; NaN-free input).
func kthSmallest(xs []float32, k int) float32 {
	lo, hi := 0, len(xs)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		// Median of three into xs[mid].
		if xs[mid] < xs[lo] {
			xs[mid], xs[lo] = xs[lo], xs[mid]
		}
		if xs[hi] < xs[lo] {
			xs[hi], xs[lo] = xs[lo], xs[hi]
		}
		if xs[hi] < xs[mid] {
			xs[hi], xs[mid] = xs[mid], xs[hi]
		}
		pivot := xs[mid]
		i, j := lo, hi
		for i <= j {
			for xs[i] < pivot {
				i++
			}
			for xs[j] > pivot {
				j--
			}
			if i <= j {
				xs[i], xs[j] = xs[j], xs[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return xs[k]
		}
	}
	return xs[k]
}

// MaskGrads zeroes the gradient of every pruned value in grads[lo:hi], a part of the flat
// gradient vector: pruned weights send nothing but zeros to the all-reduce and get no update.
func (p *Pruner) MaskGrads(grads []float32, lo, hi int) {
	if p.active {
		mulInto(grads[lo:hi], p.keep[lo:hi])
	}
}

// MaskParams zeroes every pruned parameter: after an optimizer step, whose momentum would
// otherwise move a weight pruned a few steps ago.
func (p *Pruner) MaskParams(params []float32) {
	if p.active {
		mulInto(params, p.keep)
	}
}

func mulInto(dst, keep []float32) {
	keep = keep[:len(dst)]
	for i := range dst {
		dst[i] *= keep[i]
	}
}

// Restore finds the masks again in parameters that were pruned up to step (a checkpoint, or a
// world's state broadcast): a pruned weight is exactly zero, and a kept one, in practice, never
// is.
func (p *Pruner) Restore(step int64, params []float32) {
	p.active = false
	for i := range p.keep {
		p.keep[i] = 1
	}
	if step < p.cfg.StartStep {
		return
	}
	for _, t := range p.tensors {
		for i := t.Offset; i < t.Offset+t.Len; i++ {
			if params[i] == 0 {
				p.keep[i] = 0
				p.active = true
			}
		}
	}
}

// LayerSparsity is one tensor's share of zeros.
type LayerSparsity struct {
	Name     string  `json:"name"`
	Zeros    int     `json:"zeros"`
	Total    int     `json:"total"`
	Sparsity float64 `json:"sparsity"`
}

// Report counts the zeros of every tensor in params and over all of them.
func Report(params []float32, tensors []Tensor) (layers []LayerSparsity, overall float64) {
	zeros, total := 0, 0
	for _, t := range tensors {
		z := 0
		for _, v := range params[t.Offset : t.Offset+t.Len] {
			if v == 0 {
				z++
			}
		}
		layers = append(layers, LayerSparsity{Name: t.Name, Zeros: z, Total: t.Len, Sparsity: float64(z) / float64(max(t.Len, 1))})
		zeros += z
		total += t.Len
	}
	return layers, float64(zeros) / float64(max(total, 1))
}
