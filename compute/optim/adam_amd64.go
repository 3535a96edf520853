//go:build !purego

package optim

import "golang.org/x/sys/cpu"

// adamAVX2 is adamUpdate over n values, n a multiple of 8 (adam_amd64.s).
//
//go:noescape
func adamAVX2(params, grads, m, v *float32, n int, gradScale float32, writeBack bool, c *adamCoeffs)

// hasAVX2 says whether adamAVX2 runs here; tests turn it off to compare.
var hasAVX2 = cpu.X86.HasAVX2

// adamVector runs adamUpdate's loop over the longest multiple-of-8 prefix
// in assembly and returns how many values it did.
func adamVector(params, grads, m, v []float32, gradScale float32, c *adamCoeffs) int {
	n := len(grads) &^ 7
	if !hasAVX2 || n == 0 {
		return 0
	}
	adamAVX2(&params[0], &grads[0], &m[0], &v[0], n, gradScale, gradScale != 1, c)
	return n
}
