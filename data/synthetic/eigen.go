package synthetic

import (
	"math"

	"gonum.org/v1/gonum/blas"
	lapack "gonum.org/v1/gonum/lapack/gonum"
)

// topEigen returns the r largest eigenvalues of the symmetric n x n matrix a (row-major; the
// lower triangle is read and a is overwritten), in descending order, and unit eigenvectors as
// the columns of vecs (n x r, row-major). It reports false if the eigenvalue iteration fails.
//
// A full decomposition spends most of its time rotating all n eigenvectors; Fit needs only
// a few. So: reduce to tridiagonal form T = Q^T A Q (Dsytrd), take T's eigenvalues alone
// (Dsterf), find each wanted eigenvector of T by inverse iteration, orthogonalized against the
// ones before it so that close eigenvalues still give an orthonormal set, and map them back
// with Q (Dormqr). Eigenvalues at or below the rounding level get a zero vector: Fit scales
// each vector by the square root of its eigenvalue, so their direction never matters.
func topEigen(a []float64, n, r int) (vals, vecs []float64, ok bool) {
	vals = make([]float64, r)
	vecs = make([]float64, n*r)
	if r == 0 {
		return vals, vecs, true
	}
	if n == 1 {
		vals[0], vecs[0] = a[0], 1
		return vals, vecs, true
	}
	var impl lapack.Implementation
	d := make([]float64, n)
	e := make([]float64, n-1)
	tau := make([]float64, n-1)
	query := []float64{0}
	impl.Dsytrd(blas.Lower, n, a, n, d, e, tau, query, -1)
	work := make([]float64, max(1, int(query[0])))
	impl.Dsytrd(blas.Lower, n, a, n, d, e, tau, work, len(work))

	ev := append([]float64(nil), d...)
	ee := append([]float64(nil), e...)
	if !impl.Dsterf(n, ev, ee) {
		return nil, nil, false
	}
	var tnorm float64 // a bound on the norm of T
	for i := range d {
		off := 0.0
		if i > 0 {
			off += math.Abs(e[i-1])
		}
		if i < n-1 {
			off += math.Abs(e[i])
		}
		tnorm = max(tnorm, math.Abs(d[i])+off)
	}
	tiny := float64(n) * 0x1p-52 * tnorm

	x := make([]float64, n)
	saved := make([]float64, n)
	dl, dd, du := make([]float64, n-1), make([]float64, n), make([]float64, n-1)
	s := stream{key(0, tagEigen)}
	for k := range r {
		lam := ev[n-1-k]
		vals[k] = lam
		if lam <= tiny {
			continue
		}
		for j := range x {
			x[j] = s.uniform() - 0.5
		}
		shift := lam
		done := 0
		for tries := 0; done < 3 && tries < 12; tries++ {
			copy(dl, e)
			copy(du, e)
			for j := range dd {
				dd[j] = d[j] - shift
			}
			copy(saved, x)
			if !impl.Dgtsv(n, 1, dl, dd, du, x, 1) {
				// An exactly singular pivot: move the shift by a rounding unit of T.
				shift += max(tiny, 0x1p-52*math.Abs(lam))
				copy(x, saved)
				continue
			}
			// Twice Gram-Schmidt against the vectors found so far, then normalize.
			for range 2 {
				for c := range k {
					var dot float64
					for j := range n {
						dot += x[j] * vecs[j*r+c]
					}
					for j := range n {
						x[j] -= dot * vecs[j*r+c]
					}
				}
			}
			var norm float64
			for _, v := range x {
				norm += v * v
			}
			norm = math.Sqrt(norm)
			if !(norm > 0) || math.IsInf(norm, 0) {
				// The solve landed in the span of earlier vectors, or overflowed: start over.
				for j := range x {
					x[j] = s.uniform() - 0.5
				}
				shift += max(tiny, 0x1p-52*math.Abs(lam))
				done = 0
				continue
			}
			for j := range x {
				x[j] /= norm
			}
			done++
		}
		if done == 0 {
			return nil, nil, false
		}
		for j := range n {
			vecs[j*r+k] = x[j]
		}
	}
	// vecs = Q * vecs. Q = diag(1, Q') where Q' is the product of the reflectors held below the
	// subdiagonal, laid out as a QR factorization of the (n-1) x (n-1) block at a[1][0].
	impl.Dormqr(blas.Left, blas.NoTrans, n-1, r, n-1, a[n:], n, tau, vecs[r:], r, query, -1)
	if need := int(query[0]); need > len(work) {
		work = make([]float64, need)
	}
	impl.Dormqr(blas.Left, blas.NoTrans, n-1, r, n-1, a[n:], n, tau, vecs[r:], r, work, len(work))
	return vals, vecs, true
}
