// Package cuda is compute's GPU backend: a Device that owns one CUDA context, device buffers,
// and the kernels of kernels/cuda (embedded PTX, JIT-compiled by the driver), launched through
// gorgonia.org/cu's driver API; and Open, the compute.Backend it registers as the "cuda"
// device, which keeps a model's parameters, gradients and optimizer state in GPU memory.
//
// It is built only with the cuda build tag (`go build -tags cuda`), and a binary so built
// needs libcuda.so.1 at run time; gorgonia.org/cu ends the process at start-up when the
// driver finds no GPU, so the default build never links it. Without the tag this package is
// this comment alone.
//
// # Concurrency
//
// CUDA binds a context to an OS thread. A Device runs every driver call on one goroutine
// locked to its thread (gorgonia.org/cu's Ctx): its methods may be called from any goroutine,
// and they run one at a time, in call order. A Queue batches many calls into one such trip; it
// belongs to one goroutine at a time.
//
// # Errors
//
// Methods return the driver's errors, wrapped with what was being done. Sizes that do not
// fit their buffers are programmer errors and panic, as kernels.Set's do.
package cuda
