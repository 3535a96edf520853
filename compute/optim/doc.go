// Package optim holds the optimizers that turn an averaged gradient into a
// parameter update, the learning-rate schedules that drive them, gradient
// clipping and early stopping.
//
// A model keeps all of its parameters in one flat []float32 and all of its
// gradients in another of the same length, so an optimizer works on two flat
// slices and its state is a few flat buffers of the same length. That keeps a
// checkpoint or a state transfer to a joining peer a handful of contiguous
// copies.
//
// The loop a caller runs, once per step:
//
//	opt, err := optim.New(cfg, len(params)) // cfg validated by New
//	...
//	lr := cfg.Schedule.LR(cfg.LR, step, totalSteps)
//	opt.Step(params, grads, lr) // grads: the all-reduced average
//
// Step clips the gradient itself when Config.ClipNorm is set; a caller that
// wants the norm for its logs calls ClipGlobalNorm first (a second clip to
// the same bound then changes nothing beyond rounding).
//
// Supported optimizers, named as in a job file:
//
//   - sgd: plain, with momentum, optionally Nesterov, and L2 weight decay.
//   - adam: bias-corrected Adam with L2 weight decay added to the gradient.
//   - adamw: Adam with weight decay decoupled from the gradient.
//   - rmsprop: RMSprop with optional momentum and L2 weight decay.
//
// The update rules follow the formulations PyTorch documents for its
// optimizers of the same names, so learning rates and hyperparameters carry
// over from published recipes.
//
// # Invariants
//
//   - An optimizer built for n parameters only ever accepts slices of length
//     n; its state buffers have length n for the optimizer's whole life.
//   - The update is a deterministic function of (state, params, grads, lr):
//     the same inputs give bit-identical outputs on every run, so restoring
//     a checkpointed State continues the exact trajectory.
//   - Arithmetic over the slices is float32; per-step scalars (bias
//     corrections, decay factors) are computed once per step in float64.
//   - Step does not allocate.
//
// # Aliasing
//
// Step writes params and its own state. It reads grads and, only when
// Config.ClipNorm is set and the norm exceeds it, scales grads in place.
// Weight decay never writes grads. State returns views of the optimizer's
// buffers, valid until the next Step or SetState; SetState copies its input
// and keeps no reference to it.
//
// # Concurrency
//
// Nothing in this package starts goroutines, reads clocks or does I/O. An
// Optimizer or a Tracker is not safe for concurrent use; Config, Schedule
// and EarlyStopping values are safe to read concurrently.
//
// # Errors
//
// Bad configuration (from a job file) is an error wrapping ErrInvalidConfig
// whose text names the offending field. A checkpointed State that does not
// fit the optimizer is an error wrapping ErrStateMismatch. Slices of the
// wrong length passed to Step are a programmer error and panic with the
// lengths in the message.
package optim
