// Package cuda holds troupe's GPU kernels: CUDA C sources (troupe.cu) compiled offline to PTX
// and embedded, so that neither a build nor a machine that runs the binary needs the CUDA
// toolkit: the driver JIT-compiles the PTX for its GPU. The package itself is plain Go; the
// backend that loads the PTX lives behind the cuda build tag in compute/cuda.
//
// The PTX targets compute capability 8.0 (A100 and newer: H100 and H200 JIT it forward), is
// compiled with fused multiply-adds off outside the explicit fmaf of the matrix multiply, so
// that element-wise results round as the CPU's do, and is checked in: regenerate it with
//
//	go generate ./kernels/cuda
//
// after changing troupe.cu (needs nvcc: Debian's nvidia-cuda-toolkit; see .ci/install-cuda).
package cuda

import _ "embed"

//go:generate nvcc --ptx -arch=compute_80 -O3 --fmad=false -o troupe.ptx troupe.cu

// PTX is the compiled module, NUL-terminated as the driver's cuModuleLoadData wants it.
//
//go:embed troupe.ptx
var ptx string

// PTX returns the module's text with a terminating NUL.
func PTX() string { return ptx + "\x00" }

// Kernels names every entry point of the module, for the loader and its tests.
var Kernels = []string{
	"sgemm_nn", "sgemm_nt", "sgemm_tn", "sgemm_tt",
	"mul", "add_row_vector", "relu", "relu_grad", "bias_relu", "tanh_forward", "tanh_backward", "add", "scale",
	"col_sums", "row_sums", "sum_squares", "sum_doubles", "softmax_xent", "loss_stats",
	"adam_step", "sgd_step", "rmsprop_step",
}
