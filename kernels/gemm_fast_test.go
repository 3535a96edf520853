package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"testing"
)

// fastVariant is Fast with one micro-kernel forced.
type fastVariant struct {
	name string
	set  Fast
}

// fastVariants returns, for every micro-kernel this machine runs, Fast
// with that kernel at one and two threads, and a copy of the kernel with
// tiny blocks so that small products go through every blocking loop
// (several k, row and column blocks) and the inter-block beta handling.
func fastVariants() []fastVariant {
	var vs []fastVariant
	for _, mk := range gemmKernels {
		tiny := &microKernel{
			name: mk.name + "-tinyblocks",
			mr:   mk.mr, nr: mk.nr,
			kc: 5, mc: 2 * mk.mr, nc: 2 * mk.nr,
			fn: mk.fn,
		}
		vs = append(vs,
			fastVariant{mk.name, Fast{Threads: 1, kern: mk}},
			fastVariant{mk.name + "-2threads", Fast{Threads: 2, kern: mk}},
			fastVariant{tiny.name, Fast{Threads: 1, kern: tiny}},
			fastVariant{tiny.name + "-2threads", Fast{Threads: 2, kern: tiny}},
		)
	}
	return vs
}

func TestFastKernelsAvailable(t *testing.T) {
	var names []string
	for _, mk := range gemmKernels {
		names = append(names, mk.name)
	}
	t.Logf("micro-kernels on this machine, best first: %v", names)
	if gemmKernels[len(gemmKernels)-1] != goKernel {
		t.Errorf("the portable kernel must always be available, last")
	}
	for _, mk := range gemmKernels {
		if mk.mc%mk.mr != 0 || mk.nc%mk.nr != 0 {
			t.Errorf("%s: blocks %d×%d are not whole %d×%d tiles", mk.name, mk.mc, mk.nc, mk.mr, mk.nr)
		}
	}
	if bestKernel != gemmKernels[0] {
		t.Errorf("bestKernel is %s, not the first of %v", bestKernel.name, names)
	}
}

// gemmShape is one Gemm call's arguments apart from the data.
type gemmShape struct {
	transA, transB bool
	m, n, k        int
	padA, padB     int // leading dimension past the row
	padC           int
	alpha, beta    float32
}

func (s gemmShape) String() string {
	return fmt.Sprintf("tA=%v,tB=%v,%dx%dx%d,pad=%d/%d/%d,alpha=%v,beta=%v",
		s.transA, s.transB, s.m, s.n, s.k, s.padA, s.padB, s.padC, s.alpha, s.beta)
}

// gemmShapes covers the edges of every tile shape (1..70 with primes and
// the tile sizes ±1), k = 1, vectors (m or n = 1), empty products, all four
// transposes, padded leading dimensions, and several alpha/beta pairs.
func gemmShapes(rng *rand.Rand) []gemmShape {
	dims := []int{0, 1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 16, 17, 31, 32, 33, 37, 47, 48, 49, 64, 67, 70}
	ab := [][2]float32{{1, 0}, {-0.5, 1.5}, {2, 1}, {0.75, -1}, {1, 0}}
	var shapes []gemmShape
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for range 40 {
				s := gemmShape{
					transA: tA, transB: tB,
					m: dims[rng.IntN(len(dims))], n: dims[rng.IntN(len(dims))], k: dims[rng.IntN(len(dims))],
					padA: rng.IntN(3) * 5, padB: rng.IntN(3) * 3, padC: rng.IntN(3) * 7,
				}
				p := ab[rng.IntN(len(ab))]
				s.alpha, s.beta = p[0], p[1]
				shapes = append(shapes, s)
			}
			for _, d := range [][3]int{{1, 1, 1}, {1, 70, 13}, {70, 1, 13}, {13, 70, 1}, {37, 41, 1}, {0, 5, 5}, {5, 0, 5}, {5, 5, 0}, {70, 70, 70}, {29, 97, 300}} {
				for _, p := range ab {
					shapes = append(shapes, gemmShape{transA: tA, transB: tB, m: d[0], n: d[1], k: d[2], padA: 1, padB: 2, padC: 3, alpha: p[0], beta: p[1]})
				}
			}
		}
	}
	return shapes
}

// sentinel marks memory a Gemm must not write: a NaN with a payload, so
// that any write, even of a NaN, is seen.
var sentinel = math.Float32frombits(0x7fc0beef)

// gemmOperands builds A, B and C for a shape. C is a view into a larger
// buffer: sentinels fill the rows' padding and guardLen elements on each
// side. With beta == 0, C itself holds NaNs, which must not propagate.
func gemmOperands(rng *rand.Rand, s gemmShape) (a, b []float32, lda, ldb int, cbuf []float32, ldc int) {
	rowsA, colsA := s.m, s.k
	if s.transA {
		rowsA, colsA = s.k, s.m
	}
	rowsB, colsB := s.k, s.n
	if s.transB {
		rowsB, colsB = s.n, s.k
	}
	lda, ldb, ldc = max(colsA, 1)+s.padA, max(colsB, 1)+s.padB, max(s.n, 1)+s.padC
	fill := func(rows, cols, ld int) []float32 {
		x := make([]float32, rows*ld)
		for i := range x {
			x[i] = float32(rng.NormFloat64())
		}
		return x
	}
	a, b = fill(rowsA, colsA, lda), fill(rowsB, colsB, ldb)
	cbuf = make([]float32, s.m*ldc+2*guardLen)
	for i := range cbuf {
		cbuf[i] = sentinel
	}
	for i := range s.m {
		for j := range s.n {
			v := float32(rng.NormFloat64())
			if s.beta == 0 {
				v = float32(math.NaN())
			}
			cbuf[guardLen+i*ldc+j] = v
		}
	}
	return a, b, lda, ldb, cbuf, ldc
}

// checkGemmResult compares C against Reference's result and checks that
// everything outside C's elements kept its sentinel bits.
func checkGemmResult(t *testing.T, name string, s gemmShape, got, want []float32, ldc int) {
	t.Helper()
	for i := range got {
		inC := false
		if off := i - guardLen; off >= 0 && off < s.m*ldc && off%ldc < s.n {
			inC = true
		}
		g, w := got[i], want[i]
		if !inC {
			if math.Float32bits(g) != math.Float32bits(sentinel) {
				t.Fatalf("%s: wrote %v outside C at buffer index %d", name, g, i)
			}
			continue
		}
		off := i - guardLen
		if math.IsNaN(float64(g)) || !closeEnough(g, w, s.k) {
			t.Fatalf("%s: C(%d,%d) = %v, reference %v", name, off/ldc, off%ldc, g, w)
		}
	}
}

func TestFastGemmMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	shapes := gemmShapes(rng)
	for _, v := range fastVariants() {
		for _, s := range shapes {
			name := v.name + "/" + s.String()
			a, b, lda, ldb, cbuf, ldc := gemmOperands(rng, s)
			want := append([]float32(nil), cbuf...)
			if s.beta == 0 {
				// Reference does not read C either; zero it only so that
				// the comparison below sees numbers.
				for i := range s.m {
					clear(want[guardLen+i*ldc : guardLen+i*ldc+s.n])
				}
			}
			Reference{}.Gemm(s.transA, s.transB, s.m, s.n, s.k, s.alpha, a, lda, b, ldb, s.beta, want[guardLen:len(want)-guardLen], ldc)
			a0, b0 := append([]float32(nil), a...), append([]float32(nil), b...)
			v.set.Gemm(s.transA, s.transB, s.m, s.n, s.k, s.alpha, a, lda, b, ldb, s.beta, cbuf[guardLen:len(cbuf)-guardLen], ldc)
			checkGemmResult(t, name, s, cbuf, want, ldc)
			compareSlices(t, name+": A changed", a, a0, 0)
			compareSlices(t, name+": B changed", b, b0, 0)
		}
	}
}

// TestFastGemmThreadsDeterministic checks that the split over goroutines
// does not change a single bit of the result, for splits over n and m.
func TestFastGemmThreadsDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 6))
	for _, mk := range gemmKernels {
		for _, s := range []gemmShape{
			{m: 67, n: 301, k: 259, alpha: 1, beta: 0},
			{transA: true, transB: true, m: 301, n: 67, k: 259, padA: 3, padB: 1, padC: 2, alpha: 0.5, beta: 2},
			{transB: true, m: 128, n: 512, k: 784, alpha: 1, beta: 0},
			// Long enough for two chunks per goroutine.
			{transB: true, m: 40, n: 1100, k: 30, alpha: 1, beta: 0.5},
			{transA: true, m: 1100, n: 40, k: 30, alpha: 1, beta: 0.5},
		} {
			a, b, lda, ldb, cbuf, ldc := gemmOperands(rng, s)
			var results [][]float32
			for _, threads := range []int{1, 2, 3} {
				c := append([]float32(nil), cbuf...)
				// Past Fast's GOMAXPROCS bound, so that the split is
				// exercised on any machine.
				gemmParallel(mk, threads, s.transA, s.transB, s.m, s.n, s.k, s.alpha, a, lda, b, ldb, s.beta, c[guardLen:len(c)-guardLen], ldc)
				results = append(results, c)
			}
			for ti := 1; ti < len(results); ti++ {
				for i := range results[0] {
					if math.Float32bits(results[ti][i]) != math.Float32bits(results[0][i]) {
						t.Fatalf("%s/%v: buffer index %d differs between 1 and %d threads: %v vs %v", mk.name, s, i, ti+1, results[0][i], results[ti][i])
					}
				}
			}
		}
	}
}

func TestFastGemmPlan(t *testing.T) {
	mk := bestKernel
	for _, tc := range []struct {
		m, n, k, threads int
		want             int
		splitN           bool
	}{
		{8, 8, 8, 2, 1, true},        // tiny: one goroutine
		{64, 64, 64, 2, 1, true},     // half a megaflop: one goroutine
		{256, 256, 256, 2, 2, true},  // square: split the columns
		{2048, 64, 256, 2, 2, false}, // tall: split the rows
		{128, 512, 784, 2, 2, true},  // an MLP layer
		{128, 512, 784, 1, 1, true},  // the caller's bound
		{1, 4096, 4096, 8, 8, true},  // a vector: columns only
		{4096, 1, 4096, 8, 8, false}, // a column: rows only
		{mk.mr, mk.nr, 1 << 16, 8, 1, true},
	} {
		threads, splitN := gemmPlan(mk, tc.m, tc.n, tc.k, tc.threads)
		if threads != tc.want || threads > 1 && splitN != tc.splitN {
			t.Errorf("gemmPlan(%dx%dx%d, %d) = %d threads, splitN %v; want %d, %v", tc.m, tc.n, tc.k, tc.threads, threads, splitN, tc.want, tc.splitN)
		}
	}
}

// TestFastGemmConcurrent runs products on shared operands from several
// goroutines at once (meant for -race: the packing buffers are pooled).
func TestFastGemmConcurrent(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	s := gemmShape{m: 96, n: 200, k: 150, alpha: 1, beta: 0}
	a, b, lda, ldb, cbuf, ldc := gemmOperands(rng, s)
	want := make([]float32, s.m*ldc)
	Fast{Threads: 1}.Gemm(false, false, s.m, s.n, s.k, 1, a, lda, b, ldb, 0, want, ldc)
	var wg sync.WaitGroup
	outs := make([][]float32, 6)
	for g := range outs {
		outs[g] = append([]float32(nil), cbuf[guardLen:len(cbuf)-guardLen]...)
		wg.Go(func() {
			for range 3 {
				Fast{Threads: 2}.Gemm(false, false, s.m, s.n, s.k, 1, a, lda, b, ldb, 0, outs[g], ldc)
			}
		})
	}
	wg.Wait()
	for g, c := range outs {
		for i := range s.m {
			for j := range s.n {
				if c[i*ldc+j] != want[i*ldc+j] {
					t.Fatalf("goroutine %d: C(%d,%d) = %v, want %v", g, i, j, c[i*ldc+j], want[i*ldc+j])
				}
			}
		}
	}
}

func TestFastGemmPanics(t *testing.T) {
	for name, tc := range map[string]struct {
		call func()
		want string
	}{
		"shortC": {func() {
			Fast{}.Gemm(false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 4), 2, 0, make([]float32, 3), 2)
		}, ErrLength},
		"shortA": {func() {
			Fast{}.Gemm(true, false, 2, 2, 3, 1, make([]float32, 5), 2, make([]float32, 6), 2, 0, make([]float32, 4), 2)
		}, ErrLength},
		"stride": {func() {
			Fast{}.Gemm(false, false, 2, 2, 3, 1, make([]float32, 6), 2, make([]float32, 6), 2, 0, make([]float32, 4), 2)
		}, ErrBadStride},
		"negative": {func() {
			Fast{}.Gemm(false, false, -1, 2, 3, 1, nil, 3, nil, 2, 0, nil, 2)
		}, ErrNegative},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if r := recover(); r != tc.want {
					t.Fatalf("recovered %v, want %q", r, tc.want)
				}
			}()
			tc.call()
		})
	}
}

// TestFastGemmSteadyStateAllocations checks that once a product has run,
// running it again allocates no packing buffers, whether or not the
// worker goroutines got to run a chunk.
func TestFastGemmSteadyStateAllocations(t *testing.T) {
	const n = 256
	a, b, c := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	f := Fast{Threads: 2}
	f.Gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const calls = 20
	for range calls {
		f.Gemm(false, false, n, n, n, 1, a, n, b, n, 0, c, n)
	}
	runtime.ReadMemStats(&after)
	if perCall := (after.TotalAlloc - before.TotalAlloc) / calls; perCall > 1<<10 {
		t.Errorf("%d bytes allocated per call", perCall)
	}
}
