package kernels

// Reference is the plain-Go kernel set: the definition every other Set is
// tested against. Each method's doc comment is its loop.
type Reference struct{}

var _ Set = Reference{}

// Gemm is
//
//	for i := range m {
//		for j := range n {
//			var s float32
//			for l := range k {
//				s += opA(i, l) * opB(l, j)
//			}
//			if beta == 0 {
//				c[i*ldc+j] = alpha * s
//			} else {
//				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
//			}
//		}
//	}
//
// where opA(i, l) is a[i*lda+l], or a[l*lda+i] when transA, and likewise
// for B.
func (Reference) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	for i := range m {
		for j := range n {
			var s float32
			for l := range k {
				s += elem(a, lda, i, l, transA) * elem(b, ldb, l, j, transB)
			}
			if beta == 0 {
				c[i*ldc+j] = alpha * s
			} else {
				c[i*ldc+j] = alpha*s + beta*c[i*ldc+j]
			}
		}
	}
}

// Mul is
//
//	for i := range dst { dst[i] = x[i] * y[i] }
func (Reference) Mul(dst, x, y []float32) {
	checkSameLength(dst, x, y)
	for i := range dst {
		dst[i] = x[i] * y[i]
	}
}

// AddRowVector is
//
//	for i := range len(c) / len(v) { for j := range v { c[i*len(v)+j] += v[j] } }
func (Reference) AddRowVector(c, v []float32) {
	rows := rowsOf(c, len(v))
	for i := range rows {
		for j := range v {
			c[i*len(v)+j] += v[j]
		}
	}
}

// ColSums is
//
//	for j := range dst { dst[j] = 0; for i := range len(a) / len(dst) { dst[j] += a[i*len(dst)+j] } }
func (Reference) ColSums(dst, a []float32) {
	rows := rowsOf(a, len(dst))
	for j := range dst {
		dst[j] = 0
		for i := range rows {
			dst[j] += a[i*len(dst)+j]
		}
	}
}

// RowSums is
//
//	for i := range dst { var s float64; for _, v := range a[i*cols : (i+1)*cols] { s += float64(v) }; dst[i] = float32(s) }
//
// with cols = len(a) / len(dst).
func (Reference) RowSums(dst, a []float32) {
	cols := rowsOf(a, len(dst))
	for i := range dst {
		var s float64
		for _, v := range a[i*cols : (i+1)*cols] {
			s += float64(v)
		}
		dst[i] = float32(s)
	}
}

// Relu is
//
//	for i, v := range x { dst[i] = max(v, 0) }
func (Reference) Relu(dst, x []float32) {
	checkSameLength(dst, x)
	for i, v := range x {
		dst[i] = max(v, 0)
	}
}

// ReluGrad is
//
//	for i := range dst { if y[i] > 0 { dst[i] = dy[i] } else { dst[i] = 0 } }
func (Reference) ReluGrad(dst, dy, y []float32) {
	checkSameLength(dst, dy, y)
	for i := range dst {
		if y[i] > 0 {
			dst[i] = dy[i]
		} else {
			dst[i] = 0
		}
	}
}

// SumSquares is
//
//	var s float64; for _, v := range x { s += float64(v) * float64(v) }; return s
func (Reference) SumSquares(x []float32) float64 {
	var s float64
	for _, v := range x {
		s += float64(v) * float64(v)
	}
	return s
}

// elem is element (i, j) of op(M) for a row-major M with leading dimension ld.
func elem(m []float32, ld, i, j int, trans bool) float32 {
	if trans {
		return m[j*ld+i]
	}
	return m[i*ld+j]
}
