//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"testing"

	"github.com/troupe-ml/troupe/compute/optim"
	"github.com/troupe-ml/troupe/kernels"
)

// These tests need a GPU: a binary built with the cuda tag ends at start-up on a machine
// without one (gorgonia.org/cu's init), so they run where bench/gpu-check.sh carries them.

var dev *Device

func TestMain(m *testing.M) {
	var err error
	if dev, err = OpenDevice(0); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "GPU: %s, compute capability %d.%d, %.1f GiB, %d SMs at %d MHz; peaks: fp32 %.0f GFLOP/s, memory %.0f GB/s\n",
		dev.Name, dev.Major, dev.Minor, float64(dev.TotalMemory)/(1<<30), dev.SMs, dev.ClockKHz/1000, dev.PeakGFLOPS(), dev.PeakGBps())
	code := m.Run()
	_ = dev.Close()
	os.Exit(code)
}

func random(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

func upload(t testing.TB, x []float32) *Buffer {
	t.Helper()
	b, err := dev.Alloc(len(x))
	if err != nil {
		t.Fatal(err)
	}
	if err := dev.Upload(b, x); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Free(b) })
	return b
}

func download(t testing.TB, b *Buffer) []float32 {
	t.Helper()
	out := make([]float32, b.Len())
	if err := dev.Download(out, b); err != nil {
		t.Fatal(err)
	}
	return out
}

// within compares with a tolerance scaled by the number of terms behind each value.
func within(t *testing.T, what string, got, want []float32, terms int) {
	t.Helper()
	for i := range want {
		tol := 2e-6 * float64(terms+1) * math.Max(1, math.Abs(float64(want[i])))
		if d := math.Abs(float64(got[i] - want[i])); d > tol || math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
			t.Fatalf("%s: element %d = %v, CPU %v (tolerance %.2g)", what, i, got[i], want[i], tol)
		}
	}
}

func TestGemmMatchesTheCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 9))
	sizes := [][3]int{{1, 1, 1}, {3, 5, 4}, {17, 9, 33}, {128, 128, 8}, {129, 127, 130}, {300, 257, 511}, {128, 512, 784}}
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, sz := range sizes {
				for _, ab := range [][2]float32{{1, 0}, {-0.5, 1.5}} {
					m, n, k, pad := sz[0], sz[1], sz[2], 3
					rowsA, colsA := m, k
					if tA {
						rowsA, colsA = k, m
					}
					rowsB, colsB := k, n
					if tB {
						rowsB, colsB = n, k
					}
					lda, ldb, ldc := colsA+pad, colsB+pad, n+pad
					a, b, c := random(rng, rowsA*lda), random(rng, rowsB*ldb), random(rng, m*ldc)
					if ab[1] == 0 {
						c[0] = float32(math.NaN()) // beta 0 must not read C
					}
					want := append([]float32(nil), c...)
					if ab[1] == 0 {
						want[0] = 0
					}
					kernels.Reference{}.Gemm(tA, tB, m, n, k, ab[0], a, lda, b, ldb, ab[1], want, ldc)
					cb := upload(t, c)
					if err := dev.Gemm(tA, tB, m, n, k, ab[0], upload(t, a), lda, upload(t, b), ldb, ab[1], cb, ldc); err != nil {
						t.Fatal(err)
					}
					got := download(t, cb)
					name := fmt.Sprintf("tA=%v,tB=%v,%dx%dx%d,beta=%v", tA, tB, m, n, k, ab[1])
					for i := range m {
						for j := range ldc {
							if j >= n && got[i*ldc+j] != c[i*ldc+j] {
								t.Fatalf("%s: wrote the padding at (%d,%d)", name, i, j)
							}
						}
						within(t, name, got[i*ldc:i*ldc+n], want[i*ldc:i*ldc+n], k)
					}
				}
			}
		}
	}
}

func TestElementKernelsMatchTheCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 9))
	ref := kernels.Reference{}
	for _, n := range []int{1, 7, 1003, 1 << 20} {
		x, y := random(rng, n), random(rng, n)
		want := make([]float32, n)
		dst := upload(t, make([]float32, n))
		check := func(name string, run func() error, cpu func(), terms int) {
			t.Helper()
			if err := run(); err != nil {
				t.Fatal(err)
			}
			cpu()
			within(t, fmt.Sprintf("%s/%d", name, n), download(t, dst), want, terms)
		}
		xb, yb := upload(t, x), upload(t, y)
		check("Mul", func() error { return dev.Mul(dst, xb, yb) }, func() { ref.Mul(want, x, y) }, 0)
		check("Relu", func() error { return dev.Relu(dst, xb) }, func() { ref.Relu(want, x) }, 0)
		check("ReluGrad", func() error { return dev.ReluGrad(dst, xb, yb) }, func() { ref.ReluGrad(want, x, y) }, 0)
		if err := dev.Upload(dst, x); err != nil {
			t.Fatal(err)
		}
		check("Add", func() error { return dev.Add(dst, yb) }, func() {
			for i := range want {
				want[i] = x[i] + y[i]
			}
		}, 1)
		check("Scale", func() error { return dev.Scale(dst, 0.25) }, func() {
			for i := range want {
				want[i] *= 0.25
			}
		}, 1)
		got, err := dev.SumSquares(xb)
		if err != nil {
			t.Fatal(err)
		}
		if w := ref.SumSquares(x); math.Abs(got-w) > 1e-9*float64(n)*math.Max(1, w) {
			t.Fatalf("SumSquares/%d = %v, CPU %v", n, got, w)
		}
		if again, err := dev.SumSquares(xb); err != nil || again != got {
			t.Fatalf("SumSquares/%d: %v then %v (%v): a replica clipping by it would step differently", n, got, again, err)
		}
		check("Tanh", func() error { return dev.Tanh(dst, xb) }, func() {
			for i, v := range x {
				want[i] = float32(math.Tanh(float64(v)))
			}
		}, 0)
		tb := upload(t, download(t, dst)) // tanh's output
		check("TanhGrad", func() error { return dev.TanhGrad(dst, xb, tb) }, func() {
			for i, y := range want {
				want[i] = x[i] * (1 - y*y)
			}
		}, 0)
	}
	for _, rc := range [][2]int{{1, 1}, {3, 5}, {128, 10}, {9, 1001}, {128, 512}} {
		r, c := rc[0], rc[1]
		a, v := random(rng, r*c), random(rng, c)
		ab, vb := upload(t, a), upload(t, v)
		want := append([]float32(nil), a...)
		ref.AddRowVector(want, v)
		if err := dev.AddRowVector(ab, vb); err != nil {
			t.Fatal(err)
		}
		within(t, fmt.Sprintf("AddRowVector/%dx%d", r, c), download(t, ab), want, 1)
		ref.Relu(want, want)
		if err := dev.Upload(ab, a); err != nil {
			t.Fatal(err)
		}
		if err := dev.BiasRelu(ab, vb); err != nil {
			t.Fatal(err)
		}
		within(t, fmt.Sprintf("BiasRelu/%dx%d", r, c), download(t, ab), want, 1)
		cols, rows := upload(t, make([]float32, c)), upload(t, make([]float32, r))
		wantCols, wantRows := make([]float32, c), make([]float32, r)
		ref.ColSums(wantCols, a)
		ref.RowSums(wantRows, a)
		if err := dev.Upload(ab, a); err != nil {
			t.Fatal(err)
		}
		if err := dev.ColSums(cols, ab); err != nil {
			t.Fatal(err)
		}
		if err := dev.RowSums(rows, ab); err != nil {
			t.Fatal(err)
		}
		within(t, fmt.Sprintf("ColSums/%dx%d", r, c), download(t, cols), wantCols, r)
		within(t, fmt.Sprintf("RowSums/%dx%d", r, c), download(t, rows), wantRows, c)
	}
}

// softmaxCrossEntropy is the loss the CPU backend computes, written out as its definition.
func softmaxCrossEntropy(z []float32, label int, scale float32, g []float32) (loss float64, argmax int) {
	zmax := math.Inf(-1)
	for j, v := range z {
		if float64(v) > zmax {
			zmax, argmax = float64(v), j
		}
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v) - zmax)
	}
	lse := zmax + math.Log(sum)
	for j, v := range z {
		p := math.Exp(float64(v) - lse)
		if j == label {
			p--
		}
		g[j] = scale * float32(p)
	}
	return lse - float64(z[label]), argmax
}

func TestSoftmaxCrossEntropyMatchesTheCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 9))
	for _, rc := range [][2]int{{1, 10}, {128, 10}, {7, 1000}} {
		rows, classes := rc[0], rc[1]
		logits := random(rng, rows*classes)
		for i := range logits {
			logits[i] *= 8 // wide enough that the largest term dominates
		}
		labels := make([]int32, rows)
		for i := range labels {
			labels[i] = int32(rng.IntN(classes))
		}
		labelBuf := upload(t, make([]float32, rows))
		if err := dev.UploadLabels(labelBuf, labels); err != nil {
			t.Fatal(err)
		}
		loss, correct, grad := upload(t, make([]float32, 2*rows)), upload(t, make([]float32, rows)), upload(t, make([]float32, rows*classes))
		scale := float32(1) / float32(rows)
		if err := dev.SoftmaxCrossEntropy(loss, correct, grad, upload(t, logits), labelBuf, classes, scale); err != nil {
			t.Fatal(err)
		}
		gotLoss, gotCorrect, gotGrad := download(t, loss), download(t, correct), download(t, grad)
		wantGrad := make([]float32, rows*classes)
		var wantSum float64
		wantCorrect := 0
		for i := range rows {
			l, am := softmaxCrossEntropy(logits[i*classes:(i+1)*classes], int(labels[i]), scale, wantGrad[i*classes:(i+1)*classes])
			if got := Float64At(gotLoss, 2*i); math.Abs(got-l) > 1e-12*math.Max(1, l) {
				t.Fatalf("%dx%d: row %d loss %v, CPU %v", rows, classes, i, got, l)
			}
			if c := math.Float32bits(gotCorrect[i]); (c == 1) != (am == int(labels[i])) {
				t.Fatalf("%dx%d: row %d correct=%d, CPU argmax %d label %d", rows, classes, i, c, am, labels[i])
			}
			wantSum += l
			if am == int(labels[i]) {
				wantCorrect++
			}
		}
		within(t, fmt.Sprintf("grad %dx%d", rows, classes), gotGrad, wantGrad, 1)
		// The batch's totals, as the backend reads them.
		stats := upload(t, make([]float32, 4))
		q := dev.NewQueue()
		q.LossStats(stats, loss, correct, rows)
		if err := q.Run(); err != nil {
			t.Fatal(err)
		}
		got := download(t, stats)
		if sum := Float64At(got, 0); math.Abs(sum-wantSum) > 1e-12*float64(rows)*math.Max(1, wantSum) {
			t.Fatalf("%dx%d: loss sum %v, CPU %v", rows, classes, sum, wantSum)
		}
		if c := int(int32(math.Float32bits(got[2]))); c != wantCorrect {
			t.Fatalf("%dx%d: %d correct, CPU %d", rows, classes, c, wantCorrect)
		}
	}
}

func TestOptimizerStepsMatchTheCPU(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 9))
	const n = 100_003
	configs := []optim.Config{
		{Name: optim.Adam, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 1e-4},
		{Name: optim.AdamW, LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Epsilon: 1e-8, WeightDecay: 1e-2},
		{Name: optim.SGD, LR: 0.1, Momentum: 0.9, Nesterov: true, WeightDecay: 1e-4},
		{Name: optim.SGD, LR: 0.1},
		{Name: optim.RMSprop, LR: 1e-3, Alpha: 0.99, Epsilon: 1e-8, Momentum: 0.5},
	}
	for _, cfg := range configs {
		t.Run(fmt.Sprintf("%s/momentum=%v", cfg.Name, cfg.Momentum), func(t *testing.T) {
			cpu, err := optim.New(cfg, n)
			if err != nil {
				t.Fatal(err)
			}
			params := random(rng, n)
			p := upload(t, params)
			bufs := [2]*Buffer{upload(t, make([]float32, n)), upload(t, make([]float32, n))}
			for step := 1; step <= 3; step++ {
				grads := random(rng, n)
				g := upload(t, grads)
				cpu.Step(params, grads, cfg.LR)
				switch cfg.Name {
				case optim.Adam, optim.AdamW:
					err = dev.AdamStep(p, g, bufs[0], bufs[1], step, cfg.LR, cfg.Beta1, cfg.Beta2, cfg.Epsilon, cfg.WeightDecay, cfg.Name == optim.AdamW)
				case optim.SGD:
					vel := bufs[0]
					if cfg.Momentum == 0 {
						vel = nil
					}
					err = dev.SGDStep(p, g, vel, cfg.LR, cfg.WeightDecay, cfg.Momentum, cfg.Nesterov)
				case optim.RMSprop:
					err = dev.RMSpropStep(p, g, bufs[0], bufs[1], cfg.LR, cfg.WeightDecay, cfg.Alpha, cfg.Momentum, cfg.Epsilon)
				}
				if err != nil {
					t.Fatal(err)
				}
				within(t, fmt.Sprintf("step %d", step), download(t, p), params, 2)
			}
		})
	}
}

// The GPU's figures: matrix multiply GFLOP/s, and the bandwidth of the memory-bound kernels.

// Launches are asynchronous: each benchmark synchronizes inside the timed loop's span (b.N
// iterations, then Synchronize before the clock stops), or the kernels still queued at the end
// would go uncounted.

func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 9))
	for _, size := range []int{1024, 2048, 4096, 8192} {
		b.Run(fmt.Sprintf("square/%d", size), func(b *testing.B) {
			a, bb, c := upload(b, random(rng, size*size)), upload(b, random(rng, size*size)), upload(b, make([]float32, size*size))
			if err := dev.Synchronize(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := dev.Gemm(false, false, size, size, size, 1, a, size, bb, size, 0, c, size); err != nil {
					b.Fatal(err)
				}
			}
			if err := dev.Synchronize(); err != nil {
				b.Fatal(err)
			}
			gflops := 2 * math.Pow(float64(size), 3) * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(gflops, "GFLOP/s")
			b.ReportMetric(100*gflops/dev.PeakGFLOPS(), "%peak") // of the fp32 peak without tensor cores
		})
	}
}

// BenchmarkMemoryBound measures the element-wise kernels over 64M-element buffers (256 MiB
// each), counting the bytes each element moves: add reads two values and writes one (12
// bytes), the fused Adam update reads p, g, m and v and writes p, m and v (28 bytes). It
// reports GB/s and that as a percentage of the bandwidth the device's clock and bus allow.
func BenchmarkMemoryBound(b *testing.B) {
	rng := rand.New(rand.NewPCG(6, 9))
	const n = 64 << 20 // 256 MiB per buffer
	x, y := upload(b, random(rng, n)), upload(b, random(rng, n))
	m, v := upload(b, make([]float32, n)), upload(b, make([]float32, n))
	for _, k := range []struct {
		name  string
		bytes int // moved per element
		run   func() error
	}{
		{"add", 12, func() error { return dev.Add(x, y) }},
		{"adam_step", 28, func() error { return dev.AdamStep(x, y, m, v, 1, 1e-3, 0.9, 0.999, 1e-8, 0, false) }},
	} {
		b.Run(k.name, func(b *testing.B) {
			if err := dev.Synchronize(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := k.run(); err != nil {
					b.Fatal(err)
				}
			}
			if err := dev.Synchronize(); err != nil {
				b.Fatal(err)
			}
			gbps := float64(k.bytes) * n * float64(b.N) / b.Elapsed().Seconds() / 1e9
			b.ReportMetric(gbps, "GB/s")
			b.ReportMetric(100*gbps/dev.PeakGBps(), "%peak")
		})
	}
}
