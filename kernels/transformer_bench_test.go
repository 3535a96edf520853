package kernels

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkExp, BenchmarkGELU and BenchmarkGELUGrad time the element-wise kernels at a
// small size (4096 values, in L1), at elemSplitMin (1<<16), where the split starts, and at a
// transformer MLP's (1<<20 values, 4 MiB a slice, past L2): the Go loop ("go"), each vector code this machine runs on one goroutine ("avx2",
// "avx512"), and the exported function ("split"), which is the best vector code split over
// GOMAXPROCS goroutines from elemSplitMin values on. MB/s counts the bytes read and written.
func BenchmarkExp(b *testing.B) {
	benchElem(b, 8, func(level int, out, x, _ []float32) {
		if level < 0 {
			Exp(out, x)
		} else {
			expAt(level, out, x)
		}
	})
}

func BenchmarkGELU(b *testing.B) {
	benchElem(b, 8, func(level int, out, x, _ []float32) {
		if level < 0 {
			GELU(out, x)
		} else {
			geluAt(level, out, x)
		}
	})
}

func BenchmarkGELUGrad(b *testing.B) {
	benchElem(b, 12, func(level int, out, x, dy []float32) {
		if level < 0 {
			GELUGrad(out, dy, x)
		} else {
			geluGradAt(level, out, dy, x)
		}
	})
}

// benchElem runs kernel at each level (-1 for the exported function) on normal values of
// standard deviation 4, the spread of a GELU's inputs.
func benchElem(b *testing.B, bytesPerValue int, kernel func(level int, out, x, dy []float32)) {
	for _, n := range []int{4096, 1 << 16, 1 << 20} {
		rng := rand.New(rand.NewPCG(1, 1))
		x, dy, out := make([]float32, n), make([]float32, n), make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 4)
			dy[i] = float32(rng.NormFloat64())
		}
		levels := append([]int{elemGo}, vectorLevels()...)
		names := append([]string(nil), "go")
		for _, l := range levels[1:] {
			names = append(names, levelName(l))
		}
		levels, names = append(levels, -1), append(names, "split")
		for i, l := range levels {
			b.Run(fmt.Sprintf("n=%d/%s", n, names[i]), func(b *testing.B) {
				b.SetBytes(int64(bytesPerValue * n))
				for b.Loop() {
					kernel(l, out, x, dy)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/value")
			})
		}
	}
}
