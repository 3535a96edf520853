package optim

import (
	"fmt"
	"math"
)

// Schedule kinds accepted in Schedule.Kind.
const (
	Constant  = "constant"
	StepDecay = "step"
	Cosine    = "cosine"
)

// Schedule turns the base learning rate into the rate of one step.
//
// Every kind may start with a linear warmup: over steps 0..Warmup-1 the rate
// climbs base/Warmup, 2*base/Warmup, ..., base, which keeps the first
// updates small while Adam's moment estimates are still noise. The decay
// that follows counts its steps from the end of the warmup.
type Schedule struct {
	// Kind is constant (the default), step or cosine.
	Kind string `yaml:"kind" json:"kind"`
	// Warmup is the number of linear warmup steps; 0 means none.
	Warmup int `yaml:"warmup_steps,omitempty" json:"warmup_steps,omitempty"`
	// StepSize is, for step, how many steps each stage lasts.
	StepSize int `yaml:"step_size,omitempty" json:"step_size,omitempty"`
	// Gamma in (0, 1] is, for step, the factor applied at each stage;
	// default DefaultGamma.
	Gamma float64 `yaml:"gamma,omitempty" json:"gamma,omitempty"`
	// MinLR is, for cosine, the floor the rate decays to at the last step.
	MinLR float64 `yaml:"min_lr,omitempty" json:"min_lr,omitempty"`
}

// Validate fills in the default kind and gamma and rejects fields that do
// not fit the kind. Config.Validate calls it; it is exported for callers
// that build a Schedule alone.
func (s *Schedule) Validate() error {
	if s.Kind == "" {
		s.Kind = Constant
	}
	if s.Warmup < 0 {
		return invalidf("schedule.warmup_steps must be >= 0, got %d", s.Warmup)
	}
	switch s.Kind {
	case Constant:
		if s.StepSize != 0 || s.Gamma != 0 || s.MinLR != 0 {
			return invalidf("schedule: step_size, gamma and min_lr are not used by %s", s.Kind)
		}
	case StepDecay:
		if s.StepSize <= 0 {
			return invalidf("schedule.step_size must be > 0 for step, got %d", s.StepSize)
		}
		fillDefault(&s.Gamma, DefaultGamma)
		if !(s.Gamma > 0 && s.Gamma <= 1) {
			return invalidf("schedule.gamma must be in (0, 1], got %v", s.Gamma)
		}
		if s.MinLR != 0 {
			return invalidf("schedule.min_lr is not used by %s", s.Kind)
		}
	case Cosine:
		if s.StepSize != 0 || s.Gamma != 0 {
			return invalidf("schedule: step_size and gamma are not used by %s", s.Kind)
		}
		if !(s.MinLR >= 0) || math.IsInf(s.MinLR, 0) {
			return invalidf("schedule.min_lr must be >= 0 and finite, got %v", s.MinLR)
		}
	default:
		return invalidf("schedule.kind must be one of constant, step, cosine, got %q", s.Kind)
	}
	return nil
}

// LR returns the learning rate of the 0-based step of a run of totalSteps
// steps, for base learning rate base.
//
// For cosine, the rate falls from base at step Warmup to MinLR at step
// totalSteps (reached only if the run goes past its planned end) and stays
// there; a run whose totalSteps does not exceed Warmup decays at once. The
// other kinds ignore totalSteps. An unknown Kind is treated as constant;
// Validate rejects it. LR panics on a negative step.
func (s Schedule) LR(base float64, step, totalSteps int) float64 {
	if step < 0 {
		panic(fmt.Sprintf("optim: negative schedule step %d", step))
	}
	if step < s.Warmup {
		return base * float64(step+1) / float64(s.Warmup)
	}
	t := step - s.Warmup
	switch s.Kind {
	case StepDecay:
		if s.StepSize <= 0 {
			return base
		}
		return base * math.Pow(s.Gamma, float64(t/s.StepSize))
	case Cosine:
		span := totalSteps - s.Warmup
		if span <= 0 || t >= span {
			return s.MinLR
		}
		progress := float64(t) / float64(span)
		return s.MinLR + (base-s.MinLR)*0.5*(1+math.Cos(math.Pi*progress))
	default:
		return base
	}
}
