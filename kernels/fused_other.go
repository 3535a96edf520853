//go:build !amd64 || purego

package kernels

var fusedVector = false

func biasReluVector(c, bias []float32, rows int) int { return 0 }

func reluBiasGradVector(dz, db, dy, y []float32, rows int) int { return 0 }
