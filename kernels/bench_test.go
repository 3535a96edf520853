package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkGemm times the products of a 784-512-512-10 MLP's dense layers
// at batch 128, weights stored out×in: forward y = x·wᵀ, backward
// dW = dyᵀ·x and dx = dy·w; and a convolution's input gradient.
func BenchmarkGemm(b *testing.B) {
	const batch = 128
	shapes := []struct {
		name           string
		transA, transB bool
		m, n, k        int
	}{
		{"forward/128x784x512", false, true, batch, 512, 784},
		{"forward/128x512x512", false, true, batch, 512, 512},
		{"dW/512x784x128", true, false, 512, 784, batch},
		{"dW/512x512x128", true, false, 512, 512, batch},
		{"dx/128x512x512", false, false, batch, 512, 512},
		// The input gradient of a 5×5 conv from 32 to 64 channels on
		// 14×14 maps at batch 128: weightsᵀ·dy, with the weights
		// transposed by Gemm or beforehand (compute uses the first).
		{"conv-dx-transA/800x25088x64", true, false, 800, 128 * 14 * 14, 64},
		{"conv-dx-pretransposed/800x25088x64", false, false, 800, 128 * 14 * 14, 64},
	}
	rng := rand.New(rand.NewPCG(3, 3))
	random := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	sets := []struct {
		name string
		set  Set
	}{{"default", Default}}
	for _, s := range sets {
		for _, sh := range shapes {
			b.Run(fmt.Sprintf("%s/%s", s.name, sh.name), func(b *testing.B) {
				lda, ldb := sh.k, sh.n
				if sh.transA {
					lda = sh.m
				}
				if sh.transB {
					ldb = sh.k
				}
				a, bm, c := random(sh.m*sh.k), random(sh.k*sh.n), make([]float32, sh.m*sh.n)
				for b.Loop() {
					s.set.Gemm(sh.transA, sh.transB, sh.m, sh.n, sh.k, 1, a, lda, bm, ldb, 0, c, sh.n)
				}
				flops := 2 * float64(sh.m) * float64(sh.n) * float64(sh.k) * float64(b.N)
				b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
