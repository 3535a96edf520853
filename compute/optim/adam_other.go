//go:build !amd64 || purego

package optim

var hasAVX2 = false

func adamVector(params, grads, m, v []float32, gradScale float32, c *adamCoeffs) int { return 0 }
