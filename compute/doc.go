// Package compute is troupe's pure computation: tensors, layers, losses and
// models in float32, on the CPU kernels of package kernels. It has no
// goroutines of its own (gonum's Gemm may use some inside a call), no I/O,
// no clock, and is deterministic for a given seed.
//
// The core object is a Model, built from a declarative ModelSpec (what a
// job file holds). A model keeps every parameter in one flat []float32 and
// every gradient in another of the same layout; layers hold views into
// them, so an all-reduce, a state transfer or a checkpoint is one
// contiguous buffer. ParamViews names the tensors inside (dense weights are
// stored out×in and conv2d weights filters×channels×kernel×kernel, as
// PyTorch stores them).
//
// The loop a caller runs, once per step on each data-parallel rank:
//
//	model, err := compute.NewModel(spec, seed) // validates spec
//	...
//	if err := model.CheckBatch(b); err != nil { ... } // data from outside
//	lossSum, correct := model.TrainBatch(b, 1/float32(globalBatch), dropoutSeed)
//	allReduceSum(model.Grads())                // the shell's job
//	optimizer.Step(model.Params(), model.Grads(), lr)
//
// and Evaluate or Predict for inference.
//
// Layers: dense, relu, gelu (the tanh approximation), tanh, dropout
// (inverted: scaled by 1/(1-rate) in training, the identity in inference),
// conv2d (NCHW, square kernel, stride, zero padding; im2col over the whole
// batch and one Gemm), maxpool2d (no padding) and flatten. Losses: softmax
// cross-entropy (log-sum-exp with the maximum subtracted) and mean squared
// error, averaged over outputs per sample. Weights start from a uniform He
// or Xavier initializer, biases at zero. A relu right after a dense or
// conv2d layer is folded into it, saving a pass over the activations each
// way; see fuseActivations for why the results do not change.
//
// # Invariants
//
//   - Params() and Grads() are the same slices for the model's life and
//     have NumParams() elements.
//   - TrainBatch overwrites Grads() with d(lossScale·Σᵢ lossᵢ)/dθ; it never
//     accumulates. Gradients of sub-batches with the same lossScale sum to
//     the gradient of the whole batch, up to float32 rounding (dropout
//     aside: each call draws its masks from its own seed).
//   - The same spec, seed, batches, lossScale and dropout seeds give
//     bit-identical parameters, gradients and losses, run after run.
//   - Inputs are never modified: Batch.X, Labels and Targets belong to the
//     caller. Predict returns a tensor the caller owns.
//   - Scratch buffers grow to the largest batch (or Evaluate chunk) seen
//     and are reused: in steady state a step allocates nothing of its own.
//
// # Concurrency
//
// A Model is not safe for concurrent use: one goroutine (in troupe, the
// Worker actor) owns it. Distinct models share nothing and may run in
// parallel.
//
// # Errors
//
// A spec that cannot be built is reported by ModelSpec.Validate and
// NewModel as an error wrapping ErrInvalidSpec that names the layer index
// and field. A malformed batch is bad data: CheckBatch returns an error
// wrapping ErrBadBatch, and the caller runs it where batches enter the
// process. TrainBatch, Evaluate and Predict trust their input and panic
// with that same error when it is malformed, since at that point it is a
// programmer error. Shape mismatches inside the kernels panic with
// "kernels: length mismatch".
package compute
