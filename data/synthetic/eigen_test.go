package synthetic

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/mat"
)

// checkTopEigen compares topEigen with gonum's full decomposition: the same leading
// eigenvalues, orthonormal vectors, and small residuals |A v - l v|.
func checkTopEigen(t *testing.T, name string, a []float64, n, r int) {
	t.Helper()
	sym := mat.NewSymDense(n, append([]float64(nil), a...))
	var eig mat.EigenSym
	if !eig.Factorize(sym, false) {
		t.Fatalf("%s: reference decomposition failed", name)
	}
	want := eig.Values(nil)
	var scale float64
	for _, v := range want {
		scale = max(scale, math.Abs(v))
	}
	scale = max(scale, 1e-300)
	vals, vecs, ok := topEigen(append([]float64(nil), a...), n, r)
	if !ok {
		t.Fatalf("%s: topEigen failed", name)
	}
	tiny := float64(n) * 0x1p-52 * scale * 4
	for k := range r {
		if math.Abs(vals[k]-want[n-1-k]) > 1e-10*scale {
			t.Errorf("%s: eigenvalue %d = %v, want %v", name, k, vals[k], want[n-1-k])
		}
		if vals[k] <= tiny {
			continue // a zero vector is allowed there
		}
		for c := range k + 1 {
			if vals[c] <= tiny {
				continue
			}
			var dot float64
			for j := range n {
				dot += vecs[j*r+k] * vecs[j*r+c]
			}
			if want := b2f(c == k); math.Abs(dot-want) > 1e-9 {
				t.Errorf("%s: vectors %d and %d have dot product %v", name, k, c, dot)
			}
		}
		var res float64
		for i := range n {
			av := -vals[k] * vecs[i*r+k]
			for j := range n {
				av += a[i*n+j] * vecs[j*r+k]
			}
			res = max(res, math.Abs(av))
		}
		if res > 1e-9*scale {
			t.Errorf("%s: residual of eigenpair %d is %v (scale %v)", name, k, res, scale)
		}
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// fromSpectrum builds Q diag(spec) Q^T for a random orthogonal Q.
func fromSpectrum(n int, spec []float64, seed uint64) []float64 {
	s := stream{seed}
	g := mat.NewDense(n, n, nil)
	for i := range n {
		for j := range n {
			g.Set(i, j, s.normal())
		}
	}
	var qr mat.QR
	qr.Factorize(g)
	var q mat.Dense
	qr.QTo(&q)
	a := make([]float64, n*n)
	for i := range n {
		for j := range n {
			for k := range n {
				a[i*n+j] += q.At(i, k) * spec[k] * q.At(j, k)
			}
		}
	}
	return a
}

func TestTopEigen(t *testing.T) {
	s := stream{1}
	const n = 40
	random := make([]float64, n*n)
	for i := range n {
		for j := range i + 1 {
			v := s.normal()
			random[i*n+j], random[j*n+i] = v, v
		}
	}
	checkTopEigen(t, "random", random, n, 10)
	checkTopEigen(t, "random full", random, n, n)

	spec := make([]float64, n)
	for k := range spec {
		spec[k] = []float64{9, 9, 9, 4, 4, 1}[min(k, 5)]
	}
	checkTopEigen(t, "clusters", fromSpectrum(n, spec, 2), n, 12)

	clear(spec)
	spec[0], spec[1], spec[2] = 5, 3, 3
	checkTopEigen(t, "rank 3", fromSpectrum(n, spec, 3), n, 8)

	diag := make([]float64, n*n)
	for i := range n {
		diag[i*n+i] = float64(i % 7)
	}
	checkTopEigen(t, "diagonal", diag, n, 15)

	checkTopEigen(t, "zero", make([]float64, n*n), n, 4)
	checkTopEigen(t, "1x1", []float64{2.5}, 1, 1)
	checkTopEigen(t, "2x2", []float64{2, 1, 1, 2}, 2, 2)

	// A covariance of a few MNIST-like samples: rank-deficient, large entries.
	ds := randomSet(30, 1, []int{n}, 4)
	_, cov, _ := classStats(ds, 0)
	flat := make([]float64, 0, n*n)
	for _, row := range cov {
		flat = append(flat, row...)
	}
	checkTopEigen(t, "covariance", flat, n, 35)
}
