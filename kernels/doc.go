// Package kernels holds the CPU hot loops that compute runs on, behind one
// small interface, Set, so that faster variants (SIMD, assembly, another
// BLAS) can replace the default without compute changing.
//
// The core object is a Set. Reference is the plain-Go version of every
// kernel: each of its methods is documented by the loop it runs, and it is
// the yardstick every other Set is tested against. Gonum is the default
// (Default): gonum's float32 BLAS for Gemm and the vector updates, plain
// loops for the rest.
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
// # Concurrency
//
// The Sets here hold no state and are safe for concurrent use on disjoint
// destinations. Gonum's Gemm may split a large product over goroutines of
// its own; it returns only once they are done.
//
// # Errors
//
// The kernels return no errors. Inconsistent sizes are programmer errors and
// panic with a constant message: ErrLength's text ("kernels: length
// mismatch") for a slice too short or of the wrong length, and the other
// panic messages below for negative sizes and bad leading dimensions.
package kernels
