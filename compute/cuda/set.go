//go:build cuda

package cuda

import "github.com/troupe-ml/troupe/kernels"

// Set runs kernels.Set on the GPU for host slices: every call uploads its inputs, runs the
// kernel and downloads the result. The copies make it slower than any CPU Set; it exists so
// that the GPU kernels pass the very conformance tests the CPU Sets pass. A driver error is a
// broken device, not a bad argument: it panics, kernels.Set having no errors to return.
type Set struct{ D *Device }

var _ kernels.Set = Set{}

// buffers uploads each slice into a new buffer; free releases them.
func (s Set) buffers(xs ...[]float32) []*Buffer {
	out := make([]*Buffer, len(xs))
	for i, x := range xs {
		b, err := s.D.Alloc(len(x))
		must(err)
		must(s.D.Upload(b, x))
		out[i] = b
	}
	return out
}

func (s Set) free(bs []*Buffer) {
	for _, b := range bs {
		_ = s.D.Free(b)
	}
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// Gemm implements kernels.Set.
func (s Set) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	bs := s.buffers(a, b, c)
	defer s.free(bs)
	must(s.D.Gemm(transA, transB, m, n, k, alpha, bs[0], lda, bs[1], ldb, beta, bs[2], ldc))
	must(s.D.Download(c, bs[2]))
}

// Mul implements kernels.Set.
func (s Set) Mul(dst, x, y []float32) {
	bs := s.buffers(dst, x, y)
	defer s.free(bs)
	must(s.D.Mul(bs[0], bs[1], bs[2]))
	must(s.D.Download(dst, bs[0]))
}

// AddRowVector implements kernels.Set.
func (s Set) AddRowVector(c, v []float32) {
	bs := s.buffers(c, v)
	defer s.free(bs)
	must(s.D.AddRowVector(bs[0], bs[1]))
	must(s.D.Download(c, bs[0]))
}

// ColSums implements kernels.Set.
func (s Set) ColSums(dst, a []float32) {
	bs := s.buffers(dst, a)
	defer s.free(bs)
	must(s.D.ColSums(bs[0], bs[1]))
	must(s.D.Download(dst, bs[0]))
}

// RowSums implements kernels.Set.
func (s Set) RowSums(dst, a []float32) {
	bs := s.buffers(dst, a)
	defer s.free(bs)
	must(s.D.RowSums(bs[0], bs[1]))
	must(s.D.Download(dst, bs[0]))
}

// Relu implements kernels.Set.
func (s Set) Relu(dst, x []float32) {
	bs := s.buffers(dst, x)
	defer s.free(bs)
	must(s.D.Relu(bs[0], bs[1]))
	must(s.D.Download(dst, bs[0]))
}

// ReluGrad implements kernels.Set.
func (s Set) ReluGrad(dst, dy, y []float32) {
	bs := s.buffers(dst, dy, y)
	defer s.free(bs)
	must(s.D.ReluGrad(bs[0], bs[1], bs[2]))
	must(s.D.Download(dst, bs[0]))
}

// SumSquares implements kernels.Set.
func (s Set) SumSquares(x []float32) float64 {
	bs := s.buffers(x)
	defer s.free(bs)
	v, err := s.D.SumSquares(bs[0])
	must(err)
	return v
}
