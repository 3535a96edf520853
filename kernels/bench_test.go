package kernels

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"
)

// BenchmarkGemm times the products of a 784-512-512-10 MLP's dense layers
// at batch 128, weights stored out×in: forward y = x·wᵀ, backward
// dW = dyᵀ·x and dx = dy·w; a convolution's input gradient; and square
// products, the shape BLAS benchmarks quote.
//
// Each runs on every Set (default, gonum, and Fast with each micro-kernel
// this machine runs forced) with GOMAXPROCS at 1 and then 2, which bounds
// both gonum's and Fast's goroutines: -bench 'Gemm/fast-avx512/threads=1/square'.
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
		{"square/256", false, false, 256, 256, 256},
		{"square/512", false, false, 512, 512, 512},
		{"square/1024", false, false, 1024, 1024, 1024},
		{"square/2048", false, false, 2048, 2048, 2048},
		{"square/4096", false, false, 4096, 4096, 4096},
		// A GPT's products at 4096 rows (a batch of windows times their positions):
		// gpt-go's MLP (width 128, hidden 512) and gpt-small's (384, 1536) forward,
		// weight gradient and input gradient, and gpt-small's attention per head
		// (256 positions, head size 64): scores q·kᵀ and the weighted sum P·V.
		{"gpt-go/mlp-forward/4096x512x128", false, true, 4096, 512, 128},
		{"gpt-go/mlp-dW/512x128x4096", true, false, 512, 128, 4096},
		{"gpt-go/mlp-dx/4096x128x512", false, false, 4096, 128, 512},
		{"gpt-small/mlp-forward/4096x1536x384", false, true, 4096, 1536, 384},
		{"gpt-small/mlp-dW/1536x384x4096", true, false, 1536, 384, 4096},
		{"gpt-small/mlp-dx/4096x384x1536", false, false, 4096, 384, 1536},
		{"gpt-small/attn-scores/256x256x64", false, true, 256, 256, 64},
		{"gpt-small/attn-pv/256x64x256", false, false, 256, 64, 256},
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
	}{{"default", Default}, {"gonum", Gonum{}}}
	for _, mk := range gemmKernels {
		sets = append(sets, struct {
			name string
			set  Set
		}{"fast-" + mk.name, Fast{kern: mk}})
	}
	for _, s := range sets {
		for _, threads := range []int{1, 2} {
			for _, sh := range shapes {
				b.Run(fmt.Sprintf("%s/threads=%d/%s", s.name, threads, sh.name), func(b *testing.B) {
					defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(threads))
					benchmarkGemmShape(b, s.set, sh.transA, sh.transB, sh.m, sh.n, sh.k, random)
				})
			}
		}
	}
}

// benchmarkGemmShape times C = op(A)·op(B) on random operands.
func benchmarkGemmShape(b *testing.B, set Set, transA, transB bool, m, n, k int, random func(int) []float32) {
	lda, ldb := k, n
	if transA {
		lda = m
	}
	if transB {
		ldb = k
	}
	a, bm, c := random(m*k), random(k*n), make([]float32, m*n)
	var calls []time.Duration
	for b.Loop() {
		t0 := time.Now()
		set.Gemm(transA, transB, m, n, k, 1, a, lda, bm, ldb, 0, c, n)
		calls = append(calls, time.Since(t0))
	}
	flop := 2 * float64(m) * float64(n) * float64(k)
	b.ReportMetric(flop*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
	// Per-call figures as the reference sgemm script reports them: on a
	// shared machine the median and best call say more than the mean.
	slices.Sort(calls)
	b.ReportMetric(flop/calls[len(calls)/2].Seconds()/1e9, "median-GFLOP/s")
	b.ReportMetric(flop/calls[0].Seconds()/1e9, "best-GFLOP/s")
}

// BenchmarkGemmMicroKernel times each micro-kernel alone on packed panels
// that stay in L1 (kc = 128), the ceiling the blocked product can reach.
func BenchmarkGemmMicroKernel(b *testing.B) {
	for _, mk := range gemmKernels {
		b.Run(mk.name, func(b *testing.B) {
			const kc = 128
			a, bp, c := alignedFloats(mk.mr*kc), alignedFloats(mk.nr*kc), alignedFloats(mk.mr*mk.nr)
			for i := range a {
				a[i] = 1
			}
			for i := range bp {
				bp[i] = 1
			}
			for b.Loop() {
				mk.fn(kc, &a[0], &bp[0], &c[0], mk.nr, 1, 1)
			}
			flops := 2 * float64(mk.mr*mk.nr*kc) * float64(b.N)
			b.ReportMetric(flops/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}
