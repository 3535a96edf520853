// Package kernels holds the CPU hot loops that compute runs on, behind one
// small interface, Set, so that faster variants (SIMD, assembly, another
// BLAS) can replace the default without compute changing.
//
// The core object is a Set. Reference is the plain-Go version of every
// kernel: each of its methods is documented by the loop it runs, and it is
// the yardstick every other Set is tested against. Gonum wraps gonum's
// pure-Go float32 BLAS. Fast is the default (Default): its Gemm is a
// packed, cache-blocked matrix multiply around a register-blocked
// micro-kernel, and its other methods are Gonum's.
//
// A caller picks a Set once and calls it from its own loop:
//
//	k := kernels.Default
//	k.Gemm(false, true, n, out, in, 1, x, in, w, in, 0, y, out) // y = x·wᵀ
//	k.AddRowVector(y, bias)                                      // y[i,:] += bias
//
// Matrices are row-major: element (i, j) of a matrix with leading dimension
// ld sits at index i*ld+j, as in C BLAS with CblasRowMajor.
//
// # Invariants
//
//   - Destination first: the first slice argument is the only one written;
//     all others are read only. Unless a method says otherwise, the
//     destination must not overlap any input.
//   - Every Set computes what Reference computes, up to float32 rounding
//     (the order of additions may differ between Sets, never between two
//     calls of the same Set on the same inputs: results are deterministic).
//   - A kernel never writes outside the elements its arguments name, which
//     matters when a caller passes a view into a larger buffer.
//
// # Fast's Gemm
//
// op(A) and op(B) are copied, block by block, into micro-panels laid out
// in the order the micro-kernel reads them (this is where transposes,
// leading dimensions and the zero padding of edge tiles are dealt with),
// so that the kernel itself only ever sees one layout. The micro-kernel
// holds an mr×nr tile of C in registers and adds one column of an A panel
// times one row of a B panel per step, with vectors along C's rows.
//
// The kernel is chosen at start-up from the CPU (golang.org/x/sys/cpu):
// AVX-512 (12×32 tile, 24 zmm accumulators) or AVX2 with FMA (6×16, 12 ymm
// accumulators), in Go assembly on amd64; elsewhere, or with the purego
// build tag, a plain-Go 2×4 kernel. The block sizes sit next to each
// kernel with the reasoning behind them.
//
// Large products are split over up to GOMAXPROCS goroutines (Fast.Threads
// lowers it), each chunk whole tiles of C's columns or rows; the split
// never cuts k, so the result is the same bit for bit at any thread count.
// Products under a few megaflops stay on the caller's goroutine.
//
// # Concurrency
//
// The Sets here are safe for concurrent use on disjoint destinations. Fast
// keeps its packing buffers (a few MiB per goroutine that packed at the
// same time) for the life of the program. Fast's and Gonum's Gemm may
// split a large product over goroutines of their own and return only once
// the whole product is done; Fast's workers then poll for the next product
// for about a millisecond before exiting, so that back-to-back products do
// not wait for a core to wake up.
//
// # Errors
//
// The kernels return no errors. Inconsistent sizes are programmer errors and
// panic with a constant message: ErrLength's text ("kernels: length
// mismatch") for a slice too short or of the wrong length, and the other
// panic messages below for negative sizes and bad leading dimensions.
package kernels
