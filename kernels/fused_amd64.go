//go:build !purego

package kernels

import "golang.org/x/sys/cpu"

//go:noescape
func biasReluAVX2(c, bias *float32, rows, cols, vcols int)

//go:noescape
func reluBiasGradAVX2(dz, db, dy, y *float32, rows, cols, vcols int)

// fusedVector says whether the fused kernels' vector loops run; tests turn
// it off to compare.
var fusedVector = cpu.X86.HasAVX2

// biasReluVector runs BiasRelu's loop over the first multiple-of-8 columns
// of every row and returns how many columns it did.
func biasReluVector(c, bias []float32, rows int) int {
	v := len(bias) &^ 7
	if !fusedVector || v == 0 || rows == 0 {
		return 0
	}
	biasReluAVX2(&c[0], &bias[0], rows, len(bias), v)
	return v
}

// reluBiasGradVector is biasReluVector for ReluBiasGrad; db must be cleared.
func reluBiasGradVector(dz, db, dy, y []float32, rows int) int {
	v := len(db) &^ 7
	if !fusedVector || v == 0 || rows == 0 {
		return 0
	}
	reluBiasGradAVX2(&dz[0], &db[0], &dy[0], &y[0], rows, len(db), v)
	return v
}
