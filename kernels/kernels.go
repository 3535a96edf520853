package kernels

// Panic messages, constant so that tests and callers can match them.
const (
	ErrLength    = "kernels: length mismatch"
	ErrNegative  = "kernels: negative dimension"
	ErrBadStride = "kernels: leading dimension too small"
)

// Set is the kernel set compute runs on. See the Reference methods for the
// exact loop each kernel computes.
type Set interface {
	// Gemm computes C = alpha*op(A)*op(B) + beta*C for row-major matrices,
	// like BLAS sgemm: op(A) is m×k, op(B) is k×n and C is m×n. When beta
	// is zero, C is not read (NaNs in it do not propagate).
	Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int)
	// Mul sets dst[i] = x[i]*y[i]. dst may be x or y.
	Mul(dst, x, y []float32)
	// AddRowVector adds v to every row of the matrix c of len(c)/len(v)
	// rows of len(v) columns.
	AddRowVector(c, v []float32)
	// ColSums sets dst[j] to the sum of column j of a, a matrix with
	// len(dst) columns.
	ColSums(dst, a []float32)
	// RowSums sets dst[i] to the sum of row i of a, a matrix with len(dst)
	// rows, accumulating in float64 (rows may be long).
	RowSums(dst, a []float32)
	// Relu sets dst[i] = max(x[i], 0). dst may be x.
	Relu(dst, x []float32)
	// ReluGrad sets dst[i] = dy[i] where y[i] > 0 and 0 elsewhere, y being
	// Relu's output (or its input: both are positive at the same places).
	// dst may be dy.
	ReluGrad(dst, dy, y []float32)
	// SumSquares returns the sum of x[i]*x[i], accumulated in float64.
	SumSquares(x []float32) float64
}

// Default is the Set compute uses.
var Default Set = Fast{}

// checkGemm panics unless the slices hold the matrices Gemm's sizes name.
func checkGemm(transA, transB bool, m, n, k int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(ErrNegative)
	}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	checkMatrix(rowsA, colsA, a, lda)
	checkMatrix(rowsB, colsB, b, ldb)
	checkMatrix(m, n, c, ldc)
}

// checkMatrix panics unless data holds a rows×cols matrix with leading
// dimension ld.
func checkMatrix(rows, cols int, data []float32, ld int) {
	if ld < max(1, cols) {
		panic(ErrBadStride)
	}
	if rows > 0 && cols > 0 && len(data) < (rows-1)*ld+cols {
		panic(ErrLength)
	}
}

// rowsOf returns how many rows of cols elements a holds, panicking when a
// is not a whole number of rows.
func rowsOf(a []float32, cols int) int {
	if cols == 0 {
		if len(a) != 0 {
			panic(ErrLength)
		}
		return 0
	}
	if len(a)%cols != 0 {
		panic(ErrLength)
	}
	return len(a) / cols
}

func checkSameLength(dst []float32, xs ...[]float32) {
	for _, x := range xs {
		if len(x) != len(dst) {
			panic(ErrLength)
		}
	}
}
