package optim

import (
	"errors"
	"fmt"
	"math"
)

// ErrInvalidConfig is wrapped by every error Validate returns.
var ErrInvalidConfig = errors.New("optim: invalid config")

// configError names the field at fault; errors.Is matches ErrInvalidConfig.
type configError struct{ msg string }

func (e *configError) Error() string { return "optim: " + e.msg }
func (e *configError) Unwrap() error { return ErrInvalidConfig }

func invalidf(format string, args ...any) error {
	return &configError{msg: fmt.Sprintf(format, args...)}
}

// Optimizer names accepted in Config.Name.
const (
	SGD     = "sgd"
	Adam    = "adam"
	AdamW   = "adamw"
	RMSprop = "rmsprop"
)

// Defaults filled in by Validate for fields left at zero.
const (
	// DefaultBeta1 and DefaultBeta2 are the values of the Adam paper, used
	// by nearly every published recipe.
	DefaultBeta1 = 0.9
	DefaultBeta2 = 0.999
	// DefaultEpsilon only guards the division; it is small enough not to
	// damp updates for gradients of ordinary magnitude.
	DefaultEpsilon = 1e-8
	// DefaultAlpha is RMSprop's squared-gradient decay, as in PyTorch.
	DefaultAlpha = 0.99
	// DefaultAdamWWeightDecay is PyTorch's AdamW default: AdamW exists for
	// its decay, so leaving the field out should not switch it off.
	DefaultAdamWWeightDecay = 0.01
	// DefaultGamma is StepLR's default decay factor in PyTorch: a tenfold
	// drop per stage.
	DefaultGamma = 0.1
)

// Config is the optimizer section of a job file.
//
// Zero means "use the default" for every field that has one, which is why a
// zero Beta1 or a zero AdamW weight decay cannot be asked for (use sgd with
// momentum or adam instead). Fields that an optimizer does not use must be
// left at zero so that a typo'd or misplaced setting is reported rather than
// silently ignored.
type Config struct {
	// Name is one of sgd, adam, adamw, rmsprop.
	Name string `yaml:"name" json:"name"`
	// LR is the base learning rate; the Schedule scales it per step.
	LR float64 `yaml:"lr" json:"lr"`
	// Momentum in [0, 1): sgd and rmsprop only.
	Momentum float64 `yaml:"momentum,omitempty" json:"momentum,omitempty"`
	// Nesterov switches sgd's momentum to Nesterov's form; needs Momentum > 0.
	Nesterov bool `yaml:"nesterov,omitempty" json:"nesterov,omitempty"`
	// Beta1 and Beta2 in (0, 1): adam and adamw moment decays.
	Beta1 float64 `yaml:"beta1,omitempty" json:"beta1,omitempty"`
	Beta2 float64 `yaml:"beta2,omitempty" json:"beta2,omitempty"`
	// Epsilon > 0 guards adam, adamw and rmsprop's division.
	Epsilon float64 `yaml:"epsilon,omitempty" json:"epsilon,omitempty"`
	// Alpha in (0, 1): rmsprop's squared-gradient decay.
	Alpha float64 `yaml:"alpha,omitempty" json:"alpha,omitempty"`
	// WeightDecay >= 0 is L2 regularisation added to the gradient for sgd,
	// adam and rmsprop, and decoupled decay (params *= 1 - lr*wd) for adamw.
	WeightDecay float64 `yaml:"weight_decay,omitempty" json:"weight_decay,omitempty"`
	// ClipNorm > 0 clips the gradient to this global L2 norm before each
	// update; 0 turns clipping off.
	ClipNorm float64 `yaml:"clip_norm,omitempty" json:"clip_norm,omitempty"`
	// Schedule scales LR over the run.
	Schedule Schedule `yaml:"schedule,omitempty" json:"schedule,omitempty"`
}

// Validate fills in defaults for zero fields (see the Default constants) and
// returns an error naming the first field that makes no sense.
func (c *Config) Validate() error {
	if !(c.LR > 0) || math.IsInf(c.LR, 0) {
		return invalidf("lr must be > 0 and finite, got %v", c.LR)
	}
	if err := checkRange("weight_decay", c.WeightDecay, 0, math.MaxFloat64); err != nil {
		return err
	}
	if err := checkRange("clip_norm", c.ClipNorm, 0, math.MaxFloat64); err != nil {
		return err
	}
	if err := checkRange("epsilon", c.Epsilon, 0, math.MaxFloat64); err != nil {
		return err
	}
	var err error
	switch c.Name {
	case SGD:
		err = c.validateSGD()
	case Adam, AdamW:
		err = c.validateAdam()
	case RMSprop:
		err = c.validateRMSprop()
	default:
		return invalidf("name must be one of sgd, adam, adamw, rmsprop, got %q", c.Name)
	}
	if err != nil {
		return err
	}
	if err := c.Schedule.Validate(); err != nil {
		return err
	}
	if c.Schedule.MinLR > c.LR {
		return invalidf("schedule.min_lr must be <= lr (%v), got %v", c.LR, c.Schedule.MinLR)
	}
	return nil
}

func (c *Config) validateSGD() error {
	if err := c.unused("beta1", c.Beta1 != 0); err != nil {
		return err
	}
	if err := c.unused("beta2", c.Beta2 != 0); err != nil {
		return err
	}
	if err := c.unused("epsilon", c.Epsilon != 0); err != nil {
		return err
	}
	if err := c.unused("alpha", c.Alpha != 0); err != nil {
		return err
	}
	if err := checkRange("momentum", c.Momentum, 0, 1); err != nil {
		return err
	}
	if c.Nesterov && c.Momentum == 0 {
		return invalidf("nesterov needs momentum > 0")
	}
	return nil
}

func (c *Config) validateAdam() error {
	if err := c.unused("momentum", c.Momentum != 0); err != nil {
		return err
	}
	if err := c.unused("nesterov", c.Nesterov); err != nil {
		return err
	}
	if err := c.unused("alpha", c.Alpha != 0); err != nil {
		return err
	}
	fillDefault(&c.Beta1, DefaultBeta1)
	fillDefault(&c.Beta2, DefaultBeta2)
	fillDefault(&c.Epsilon, DefaultEpsilon)
	if c.Name == AdamW {
		fillDefault(&c.WeightDecay, DefaultAdamWWeightDecay)
	}
	if err := checkRange("beta1", c.Beta1, 0, 1); err != nil {
		return err
	}
	return checkRange("beta2", c.Beta2, 0, 1)
}

func (c *Config) validateRMSprop() error {
	if err := c.unused("beta1", c.Beta1 != 0); err != nil {
		return err
	}
	if err := c.unused("beta2", c.Beta2 != 0); err != nil {
		return err
	}
	if err := c.unused("nesterov", c.Nesterov); err != nil {
		return err
	}
	fillDefault(&c.Alpha, DefaultAlpha)
	fillDefault(&c.Epsilon, DefaultEpsilon)
	if err := checkRange("alpha", c.Alpha, 0, 1); err != nil {
		return err
	}
	return checkRange("momentum", c.Momentum, 0, 1)
}

// unused reports a field set for an optimizer that ignores it.
func (c *Config) unused(field string, set bool) error {
	if set {
		return invalidf("%s is not used by %s", field, c.Name)
	}
	return nil
}

func fillDefault(v *float64, def float64) {
	if *v == 0 {
		*v = def
	}
}

// checkRange accepts lo <= v < hi (v <= hi when hi is MaxFloat64) and
// rejects NaN.
func checkRange(field string, v, lo, hi float64) error {
	if hi == math.MaxFloat64 {
		if !(v >= lo) || math.IsInf(v, 0) {
			return invalidf("%s must be >= %v and finite, got %v", field, lo, v)
		}
		return nil
	}
	if !(v >= lo && v < hi) {
		return invalidf("%s must be in [%v, %v), got %v", field, lo, hi, v)
	}
	return nil
}
