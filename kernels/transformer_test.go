package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"testing"
)

// ulps is the distance between a float32 result and the float64 truth in units of the
// float32 spacing at the truth.
func ulps(got float32, want float64) float64 {
	if want == 0 {
		return math.Abs(float64(got)) / math.SmallestNonzeroFloat32
	}
	f := float32(want)
	spacing := float64(math.Nextafter32(f, float32(math.Inf(1))) - f)
	return math.Abs(float64(got)-want) / spacing
}

func TestExpAccuracy(t *testing.T) {
	var xs []float32
	for x := float32(-87); x < 88.5; x += 0.000917 {
		xs = append(xs, x)
	}
	got := make([]float32, len(xs))
	// expGo is expf; expAt runs the vector code of each level there is, and the Go loop for
	// the last few values.
	for _, l := range append([]int{elemGo}, vectorLevels()...) {
		expAt(l, got, xs)
		var worst float64
		var at float32
		for i, x := range xs {
			u := ulps(got[i], math.Exp(float64(x)))
			if u > worst {
				worst, at = u, x
			}
		}
		t.Logf("%s: worst error %.2f ulps at %v", levelName(l), worst, at)
		if worst > 2 {
			t.Errorf("%s: exp is %.2f ulps off at %v, want <= 2", levelName(l), worst, at)
		}
	}
	for _, c := range []struct{ x, want float32 }{
		{-100, 0}, {0, 1}, {float32(math.Inf(-1)), 0}, {89, float32(math.Inf(1))}, {float32(math.Inf(1)), float32(math.Inf(1))},
	} {
		if got := expf(c.x); got != c.want {
			t.Errorf("exp(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if nan := float32(math.NaN()); expf(nan) == expf(nan) {
		t.Errorf("exp(NaN) is not NaN")
	}
}

func geluRef(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(geluC*(x+0.044715*x*x*x)))
}

func TestGELUAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 20000)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 4)
	}
	x[0], x[1], x[2] = 0, -30, 30
	y := make([]float32, len(x))
	GELU(y, x)
	dy := make([]float32, len(x))
	for i := range dy {
		dy[i] = 1
	}
	dx := make([]float32, len(x))
	GELUGrad(dx, dy, x)
	for i, v := range x {
		xv := float64(v)
		want := geluRef(xv)
		if d := math.Abs(float64(y[i]) - want); d > 2e-7*max(1, math.Abs(want)) {
			t.Fatalf("gelu(%v) = %v, want %v", v, y[i], want)
		}
		h := 1e-4 * max(1, math.Abs(xv))
		wantD := (geluRef(xv+h) - geluRef(xv-h)) / (2 * h)
		if d := math.Abs(float64(dx[i]) - wantD); d > 1e-5 {
			t.Fatalf("gelu'(%v) = %v, want %v", v, dx[i], wantD)
		}
	}
}

func TestLayerNormAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 7, 48
	x, gain, bias := make([]float32, rows*cols), make([]float32, cols), make([]float32, cols)
	for i := range x {
		x[i] = float32(100 + rng.NormFloat64()) // a large mean: the moments must keep precision
	}
	for j := range gain {
		gain[j], bias[j] = float32(1+rng.NormFloat64()/4), float32(rng.NormFloat64()/4)
	}
	y, mean, rstd := make([]float32, len(x)), make([]float32, rows), make([]float32, rows)
	LayerNorm(y, mean, rstd, x, gain, bias, cols)
	for r := range rows {
		var mu, v float64
		for _, xv := range x[r*cols : (r+1)*cols] {
			mu += float64(xv)
		}
		mu /= cols
		for _, xv := range x[r*cols : (r+1)*cols] {
			v += (float64(xv) - mu) * (float64(xv) - mu)
		}
		rs := 1 / math.Sqrt(v/cols+LayerNormEps)
		for j := range cols {
			want := (float64(x[r*cols+j])-mu)*rs*float64(gain[j]) + float64(bias[j])
			if d := math.Abs(float64(y[r*cols+j]) - want); d > 2e-5 {
				t.Fatalf("row %d col %d: %v, want %v", r, j, y[r*cols+j], want)
			}
		}
	}

	// The gradient against central differences of Σ y·w, in float64 around the float32 forward.
	w := make([]float32, len(x))
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	dx, dgain, dbias := make([]float32, len(x)), make([]float32, cols), make([]float32, cols)
	LayerNormGrad(dx, dgain, dbias, w, x, mean, rstd, gain, cols)
	loss := func() float64 {
		LayerNorm(y, mean, rstd, x, gain, bias, cols)
		var s float64
		for i, v := range y {
			s += float64(v) * float64(w[i])
		}
		return s
	}
	check := func(what string, v *float32, analytic float32) {
		orig := *v
		const h = 1e-2
		*v = orig + h
		plus := loss()
		*v = orig - h
		minus := loss()
		*v = orig
		numeric := (plus - minus) / (2 * h)
		if math.Abs(float64(analytic)-numeric) > 2e-2*max(1, math.Abs(numeric)) {
			t.Errorf("%s: analytic %v, numeric %v", what, analytic, numeric)
		}
	}
	for i := range 3 * cols {
		check("dx", &x[i], dx[i])
	}
	for j := range cols {
		check("dgain", &gain[j], dgain[j])
		check("dbias", &bias[j], dbias[j])
	}
}

// The vector code (transformer_amd64.s) against the Go loops. It computes the same steps, but
// with FMAs in expf's reduction and polynomial, which moves Exp by at most 1 ulp; GELU passes
// that on through 1 + e, the division and the product with x, which leaves it at most 4 ulps
// from the Go loop; GELUGrad's sum s + T can cancel (it crosses zero near x = -0.75), so its
// bound is in ulps of the larger term, 8 of them, times |dy|. Those are the worst cases over
// all 2³² inputs (TestElemExhaustive), which the tests here hold the code to on chosen and
// random ones.
const (
	expVectorUlps      = 1
	geluVectorUlps     = 4
	geluGradVectorUlps = 8
)

// vectorLevels lists the vector code this CPU runs, best first: CPUs with AVX-512 have AVX2
// and FMA as well.
func vectorLevels() []int {
	var ls []int
	for l := elemLevelMax; l > elemGo; l-- {
		ls = append(ls, l)
	}
	return ls
}

// withLevel runs f with elemLevel set to level.
func withLevel(level int, f func()) {
	defer func(l int) { elemLevel = l }(elemLevel)
	elemLevel = level
	f()
}

// orderedBits maps float32s to integers in their order, ±0 both to 0, so that the distance of
// two is their distance in ulps.
func orderedBits(f float32) int64 {
	b := math.Float32bits(f)
	if b>>31 != 0 {
		return -int64(b & 0x7fffffff)
	}
	return int64(b)
}

func ulpDistance(a, b float32) int64 {
	d := orderedBits(a) - orderedBits(b)
	return max(d, -d)
}

// elemInputs are values from the whole float32 range: the special ones and those at the
// kernels' edges, random bit patterns (NaNs, infinities and subnormals among them), and
// random values where exp and GELU are neither 0 nor saturated.
func elemInputs(rng *rand.Rand) []float32 {
	inf := float32(math.Inf(1))
	xs := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.5, -0.5, inf, -inf,
		float32(math.NaN()), math.Float32frombits(0x7fc00001), math.Float32frombits(0xffc12345),
		math.Float32frombits(0x7f800001), // a signaling NaN
		math.MaxFloat32, -math.MaxFloat32, math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		1e-30, -1e-30, 1e30, -1e30, 40, -40, 5, -5, 10, -10, 20, -20, -0.7524613, -2.942891,
		88, -87, 100, -100, 88.5, 88.7, -87.3, -87.33,
	}
	for _, e := range []float32{expMin, expMax, 0} {
		v := e
		for range 8 {
			xs = append(xs, v)
			v = math.Nextafter32(v, -inf)
		}
		v = e
		for range 8 {
			v = math.Nextafter32(v, inf)
			xs = append(xs, v)
		}
	}
	// Where x·log2e is a tie, k + 1/2, or next to one: n must be rounded up there, as floor does.
	for k := -126; k <= 127; k++ {
		t := float32(k) + 0.5
		v := t / log2e
		for _, w := range []float32{math.Nextafter32(v, -inf), v, math.Nextafter32(v, inf)} {
			xs = append(xs, w)
		}
	}
	for range 1 << 15 {
		xs = append(xs, math.Float32frombits(rng.Uint32()))
	}
	for range 1 << 15 {
		xs = append(xs, float32(rng.Float64()*200-100))
	}
	for range 1 << 15 {
		xs = append(xs, float32(rng.NormFloat64()*4))
	}
	return xs
}

// geluGradTolerance is how far from the Go loop's dy·d the vector code's may be: bound ulps
// of the larger of geluSigmoid's s and T = 2x·s·(1-s)·du/dx, times |dy|, and half an ulp of
// each rounded product on top, as float64.
func geluGradTolerance(dy, x float32, bound float64) float64 {
	s, sc := geluSigmoid(x)
	t := 2 * x * s * sc * geluC * (1 + 3*0.044715*x*x)
	big := max(float32(math.Abs(float64(s))), float32(math.Abs(float64(t))))
	spacing := float64(math.Nextafter32(big, float32(math.Inf(1))) - big)
	want := float64(dy) * float64(s+t)
	return bound*math.Abs(float64(dy))*spacing + math.Abs(want)*0x1p-23 + math.SmallestNonzeroFloat32
}

// checkElem compares a kernel's results with the Go loop's: NaN where it is NaN, equal
// infinities, and the values within ok.
func checkElem(t *testing.T, what string, x, got, want []float32, ok func(i int) bool) {
	t.Helper()
	bad := 0
	for i := range want {
		g, w := got[i], want[i]
		switch {
		case w != w || g != g:
			if g == g || w == w {
				t.Errorf("%s(%v) = %v, want %v", what, x[i], g, w)
				bad++
			}
		case math.IsInf(float64(w), 0) || math.IsInf(float64(g), 0):
			if g != w {
				t.Errorf("%s(%v) = %v, want %v", what, x[i], g, w)
				bad++
			}
		case !ok(i):
			t.Errorf("%s(%v) = %v (%#x), want %v (%#x), %d ulps off", what, x[i], g, math.Float32bits(g), w, math.Float32bits(w), ulpDistance(g, w))
			bad++
		}
		if bad >= 10 {
			t.Fatalf("%s: too many errors", what)
		}
	}
}

// checkAgainstGo runs the three kernels on x (and dy) with elemLevel's code and with the Go
// loops and compares them.
func checkAgainstGo(t *testing.T, name string, x, dy []float32) {
	t.Helper()
	got, want := make([]float32, len(x)), make([]float32, len(x))
	expSerial(got, x)
	expGo(want, x)
	checkElem(t, name+" exp", x, got, want, func(i int) bool { return ulpDistance(got[i], want[i]) <= expVectorUlps })
	geluSerial(got, x)
	geluGo(want, x)
	checkElem(t, name+" gelu", x, got, want, func(i int) bool { return ulpDistance(got[i], want[i]) <= geluVectorUlps })
	geluGradSerial(got, dy, x)
	geluGradGo(want, dy, x)
	checkElem(t, name+" gelu'", x, got, want, func(i int) bool {
		return math.Abs(float64(got[i])-float64(want[i])) <= geluGradTolerance(dy[i], x[i], geluGradVectorUlps)
	})
}

func levelName(l int) string { return [...]string{"go", "avx2", "avx512"}[l] }

func TestElemVectorAgainstGo(t *testing.T) {
	if len(vectorLevels()) == 0 {
		t.Skip("no vector code on this machine")
	}
	rng := rand.New(rand.NewPCG(5, 6))
	x := elemInputs(rng)
	dy := make([]float32, len(x))
	for i := range dy {
		dy[i] = float32(rng.NormFloat64())
	}
	ones := make([]float32, len(x))
	for i := range ones {
		ones[i] = 1
	}
	for _, l := range vectorLevels() {
		withLevel(l, func() {
			checkAgainstGo(t, levelName(l), x, dy)
			checkAgainstGo(t, levelName(l)+" dy=1", x, ones)
		})
	}
}

// TestElemVectorLevelsAgree checks that the AVX2 and AVX-512 code, the same operations at
// two widths, give the same bits.
func TestElemVectorLevelsAgree(t *testing.T) {
	if elemLevelMax < elemAVX512 {
		t.Skip("no AVX-512 on this machine")
	}
	rng := rand.New(rand.NewPCG(7, 8))
	x := elemInputs(rng)
	dy := make([]float32, len(x))
	for i := range dy {
		dy[i] = math.Float32frombits(rng.Uint32())
	}
	run := func(l int) (e, g, d []float32) {
		e, g, d = make([]float32, len(x)), make([]float32, len(x)), make([]float32, len(x))
		withLevel(l, func() {
			expSerial(e, x)
			geluSerial(g, x)
			geluGradSerial(d, dy, x)
		})
		return e, g, d
	}
	e16, g16, d16 := run(elemAVX512)
	e8, g8, d8 := run(elemAVX2)
	for i := range x {
		for _, c := range []struct {
			what string
			a, b float32
		}{{"exp", e16[i], e8[i]}, {"gelu", g16[i], g8[i]}, {"gelu'", d16[i], d8[i]}} {
			if math.Float32bits(c.a) != math.Float32bits(c.b) {
				t.Fatalf("%s(%v): avx512 %v (%#x), avx2 %v (%#x)", c.what, x[i], c.a, math.Float32bits(c.a), c.b, math.Float32bits(c.b))
			}
		}
	}
}

// TestElemTails runs every length up to 40 at every offset of a 64-byte line's first
// floats, so that the vector code's loop, the Go loop's tail and unaligned slices all come
// in, in place and out of place, and checks that nothing around the output is written.
func TestElemTails(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	const guard = 16
	src := make([]float32, 64+guard)
	dys := make([]float32, 64+guard)
	for i := range src {
		src[i] = float32(rng.NormFloat64() * 6)
		dys[i] = float32(rng.NormFloat64())
	}
	src[3], src[17], src[30] = float32(math.NaN()), float32(math.Inf(-1)), 89
	const sentinel = -12345.5
	levels := append(vectorLevels(), elemGo)
	kernels := []struct {
		name string
		run  func(out, x, dy []float32)
		ref  func(out, x, dy []float32)
		ok   func(g, w, x, dy float32) bool
	}{
		{"exp", func(o, x, _ []float32) { Exp(o, x) }, func(o, x, _ []float32) { expGo(o, x) },
			func(g, w, _, _ float32) bool { return ulpDistance(g, w) <= expVectorUlps }},
		{"gelu", func(o, x, _ []float32) { GELU(o, x) }, func(o, x, _ []float32) { geluGo(o, x) },
			func(g, w, _, _ float32) bool { return ulpDistance(g, w) <= geluVectorUlps }},
		{"gelu'", func(o, x, dy []float32) { GELUGrad(o, dy, x) }, func(o, x, dy []float32) { geluGradGo(o, dy, x) },
			func(g, w, x, dy float32) bool {
				return math.Abs(float64(g)-float64(w)) <= geluGradTolerance(dy, x, geluGradVectorUlps)
			}},
	}
	for _, l := range levels {
		withLevel(l, func() {
			for _, k := range kernels {
				for off := range 5 {
					for n := range 41 {
						x, dy := src[off:off+n], dys[off:off+n]
						want := make([]float32, n)
						k.ref(want, x, dy)
						buf := make([]float32, 64+2*guard)
						for i := range buf {
							buf[i] = sentinel
						}
						out := buf[guard+off : guard+off+n]
						k.run(out, x, dy)
						// in place: the output over the input
						inPlace := append([]float32(nil), x...)
						k.run(inPlace, inPlace, dy)
						for i := range buf {
							if (i < guard+off || i >= guard+off+n) && buf[i] != sentinel {
								t.Fatalf("%s %s n=%d off=%d: wrote buf[%d] outside the output", levelName(l), k.name, n, off, i)
							}
						}
						w := elemWidth(l)
						for i := range n {
							for _, got := range []float32{out[i], inPlace[i]} {
								same := math.Float32bits(got) == math.Float32bits(want[i]) ||
									got != got && want[i] != want[i]
								// The Go loop does the tail after the vector code's multiple of w.
								if w == 0 || i >= n&^(w-1) {
									if !same {
										t.Fatalf("%s %s n=%d off=%d [%d] (Go tail): %v, want %v", levelName(l), k.name, n, off, i, got, want[i])
									}
									continue
								}
								if !same && !(got == got && want[i] == want[i] && k.ok(got, want[i], x[i], dy[i])) {
									t.Fatalf("%s %s n=%d off=%d [%d]: %v, want %v", levelName(l), k.name, n, off, i, got, want[i])
								}
							}
						}
					}
				}
			}
		})
	}
}

// TestElemSplit checks that the kernels split over goroutines (from elemSplitMin values on)
// give the very bits that one goroutine does, at lengths around the chunk size.
func TestElemSplit(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(max(2, runtime.GOMAXPROCS(0))))
	rng := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{elemSplitMin - 1, elemSplitMin, elemSplitMin + 37, 5*elemChunk + 15, 1<<20 + 3} {
		x, dy := make([]float32, n), make([]float32, n)
		for i := range x {
			x[i] = float32(rng.NormFloat64() * 8)
			dy[i] = float32(rng.NormFloat64())
		}
		got, want := make([]float32, n), make([]float32, n)
		same := func(what string) {
			for i := range want {
				if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
					t.Fatalf("%s n=%d [%d]: split %v, serial %v", what, n, i, got[i], want[i])
				}
			}
		}
		Exp(got, x)
		expSerial(want, x)
		same("exp")
		GELU(got, x)
		geluSerial(want, x)
		same("gelu")
		GELUGrad(got, dy, x)
		geluGradSerial(want, dy, x)
		same("gelu'")
	}
}

// TestElemExhaustive holds the vector code to the bounds above on all 2³² float32 inputs
// (GELUGrad with dy = 1), and the AVX2 code to the AVX-512 code's bits. It takes minutes, so
// it runs only with TROUPE_EXHAUSTIVE=1 in the environment.
func TestElemExhaustive(t *testing.T) {
	if os.Getenv("TROUPE_EXHAUSTIVE") != "1" || len(vectorLevels()) == 0 {
		t.Skip("set TROUPE_EXHAUSTIVE=1 to run it (on a machine with the vector code)")
	}
	const chunk = 1 << 16
	workers := runtime.GOMAXPROCS(0)
	type worst struct {
		exp, gelu int64
		grad      float64
	}
	results := make([]worst, workers)
	failed := make([]string, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			x, ones := make([]float32, chunk), make([]float32, chunk)
			for i := range ones {
				ones[i] = 1
			}
			got, want, other := make([]float32, chunk), make([]float32, chunk), make([]float32, chunk)
			r := &results[w]
			for c := w; c < 1<<32/chunk && failed[w] == ""; c += workers {
				for i := range x {
					x[i] = math.Float32frombits(uint32(c*chunk + i))
				}
				for k := range 3 {
					// elemLevel is shared by the workers: the levels are passed instead.
					vec := func(l int, out []float32) {
						switch k {
						case 0:
							expAt(l, out, x)
						case 1:
							geluAt(l, out, x)
						case 2:
							geluGradAt(l, out, ones, x)
						}
					}
					vec(elemLevelMax, got)
					switch k {
					case 0:
						expGo(want, x)
					case 1:
						geluGo(want, x)
					case 2:
						geluGradGo(want, ones, x)
					}
					if elemLevelMax == elemAVX512 {
						vec(elemAVX2, other)
					} else {
						copy(other, got)
					}
					for i := range x {
						g, wv := got[i], want[i]
						if math.Float32bits(g) != math.Float32bits(other[i]) {
							failed[w] = fmt.Sprintf("kernel %d at %v: avx512 %v, avx2 %v", k, x[i], g, other[i])
							break
						}
						if g != g || wv != wv {
							if g == g || wv == wv {
								failed[w] = fmt.Sprintf("kernel %d at %v: %v, want %v", k, x[i], g, wv)
							}
							continue
						}
						switch k {
						case 0:
							r.exp = max(r.exp, ulpDistance(g, wv))
						case 1:
							r.gelu = max(r.gelu, ulpDistance(g, wv))
						case 2:
							if g != wv {
								if math.IsInf(float64(g), 0) || math.IsInf(float64(wv), 0) {
									failed[w] = fmt.Sprintf("gelu' at %v: %v, want %v", x[i], g, wv)
									continue
								}
								s, sc := geluSigmoid(x[i])
								tt := 2 * x[i] * s * sc * geluC * (1 + 3*0.044715*x[i]*x[i])
								big := max(float32(math.Abs(float64(s))), float32(math.Abs(float64(tt))))
								spacing := float64(math.Nextafter32(big, float32(math.Inf(1))) - big)
								r.grad = max(r.grad, math.Abs(float64(g)-float64(wv))/spacing)
							}
						}
					}
				}
			}
		})
	}
	wg.Wait()
	var all worst
	for w, r := range results {
		if failed[w] != "" {
			t.Error(failed[w])
		}
		all.exp, all.gelu, all.grad = max(all.exp, r.exp), max(all.gelu, r.gelu), max(all.grad, r.grad)
	}
	t.Logf("worst: exp %d ulps, gelu %d ulps, gelu' %.2f ulps of its larger term", all.exp, all.gelu, all.grad)
	if all.exp > expVectorUlps || all.gelu > geluVectorUlps || all.grad > geluGradVectorUlps {
		t.Errorf("beyond the bounds %d, %d, %d", expVectorUlps, geluVectorUlps, geluGradVectorUlps)
	}
}

// expAt, geluAt and geluGradAt are the *Serial functions with level's code.
func expAt(level int, dst, src []float32) {
	i := expVector(level, dst, src)
	expGo(dst[i:], src[i:])
}

func geluAt(level int, y, x []float32) {
	i := geluVector(level, y, x)
	geluGo(y[i:], x[i:])
}

func geluGradAt(level int, dx, dy, x []float32) {
	i := geluGradVector(level, dx, dy, x)
	geluGradGo(dx[i:], dy[i:], x[i:])
}
