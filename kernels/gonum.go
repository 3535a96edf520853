package kernels

import (
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"
)

// Gonum is the default Set: gonum's pure-Go float32 BLAS (blocked,
// parallel Gemm; assembly axpy on amd64) where it has the kernel, and
// loops written for speed elsewhere.
type Gonum struct{}

var _ Set = Gonum{}

// blas32 is named here, not taken from blas32.Implementation, so that a
// global blas32.Use elsewhere in a program cannot change our numerics.
var blas32 gonum.Implementation

func transpose(t bool) blas.Transpose {
	if t {
		return blas.Trans
	}
	return blas.NoTrans
}

// Gemm calls gonum's Sgemm after checking sizes with kernels' own panics.
func (Gonum) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	blas32.Sgemm(transpose(transA), transpose(transB), m, n, k, alpha, a, max(lda, 1), b, max(ldb, 1), beta, c, ldc)
}

// Mul is Reference.Mul.
func (Gonum) Mul(dst, x, y []float32) { Reference{}.Mul(dst, x, y) }

// AddRowVector adds v to each row with a unit-stride axpy.
func (Gonum) AddRowVector(c, v []float32) {
	rows := rowsOf(c, len(v))
	for i := range rows {
		blas32.Saxpy(len(v), 1, v, 1, c[i*len(v):(i+1)*len(v)], 1)
	}
}

// ColSums adds the rows one by one into dst with a unit-stride axpy, so
// the inner loop runs along memory.
func (Gonum) ColSums(dst, a []float32) {
	rows := rowsOf(a, len(dst))
	clear(dst)
	for i := range rows {
		blas32.Saxpy(len(dst), 1, a[i*len(dst):(i+1)*len(dst)], 1, dst, 1)
	}
}

// RowSums is Reference.RowSums with four independent accumulators.
func (Gonum) RowSums(dst, a []float32) {
	cols := rowsOf(a, len(dst))
	for i := range dst {
		row := a[i*cols : (i+1)*cols]
		var s0, s1, s2, s3 float64
		j := 0
		for ; j+4 <= len(row); j += 4 {
			s0 += float64(row[j])
			s1 += float64(row[j+1])
			s2 += float64(row[j+2])
			s3 += float64(row[j+3])
		}
		for ; j < len(row); j++ {
			s0 += float64(row[j])
		}
		dst[i] = float32((s0 + s1) + (s2 + s3))
	}
}

// Relu is Reference.Relu.
func (Gonum) Relu(dst, x []float32) { Reference{}.Relu(dst, x) }

// ReluGrad is Reference.ReluGrad.
func (Gonum) ReluGrad(dst, dy, y []float32) { Reference{}.ReluGrad(dst, dy, y) }

// SumSquares is Reference.SumSquares with four independent accumulators.
func (Gonum) SumSquares(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}
