package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// variants lists every Set that must match Reference.
var variants = []struct {
	name string
	set  Set
}{
	{"gonum", Gonum{}},
}

const (
	guardLen   = 7
	guardValue = float32(-7777.25)
)

// guarded is a slice of n random values with guard values on both sides.
type guarded struct {
	full []float32
}

func newGuarded(rng *rand.Rand, n int) guarded {
	full := make([]float32, n+2*guardLen)
	for i := range full {
		full[i] = guardValue
	}
	for i := guardLen; i < guardLen+n; i++ {
		full[i] = float32(rng.NormFloat64())
	}
	return guarded{full}
}

func (g guarded) data() []float32 { return g.full[guardLen : len(g.full)-guardLen] }

func (g guarded) clone() guarded { return guarded{append([]float32(nil), g.full...)} }

// checkGuards fails when a guard value changed.
func (g guarded) checkGuards(t *testing.T, what string) {
	t.Helper()
	n := len(g.full)
	for i := range guardLen {
		if g.full[i] != guardValue || g.full[n-1-i] != guardValue {
			t.Fatalf("%s: write outside the slice", what)
		}
	}
}

// closeEnough compares with a tolerance scaled by the number of terms summed.
func closeEnough(got, want float32, terms int) bool {
	tol := 1e-6 * float64(terms+1) * math.Max(1, math.Abs(float64(want)))
	return math.Abs(float64(got-want)) <= tol
}

func compareSlices(t *testing.T, what string, got, want []float32, terms int) {
	t.Helper()
	for i := range want {
		if !closeEnough(got[i], want[i], terms) {
			t.Fatalf("%s: element %d = %v, reference %v", what, i, got[i], want[i])
		}
	}
}

func TestGemmMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	type gemmCase struct {
		transA, transB bool
		m, n, k        int
		pad            int // extra leading-dimension elements past each row
		alpha, beta    float32
	}
	var cases []gemmCase
	for _, tA := range []bool{false, true} {
		for _, tB := range []bool{false, true} {
			for _, size := range [][3]int{{0, 3, 2}, {3, 0, 2}, {2, 3, 0}, {1, 1, 1}, {3, 5, 4}, {17, 9, 33}, {70, 65, 80}} {
				for _, pad := range []int{0, 3} {
					cases = append(cases,
						gemmCase{tA, tB, size[0], size[1], size[2], pad, 1, 0},
						gemmCase{tA, tB, size[0], size[1], size[2], pad, -0.5, 1.5})
				}
			}
		}
	}
	for _, v := range variants {
		for _, tc := range cases {
			name := fmt.Sprintf("%s/tA=%v,tB=%v,%dx%dx%d,pad=%d,beta=%v", v.name, tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.pad, tc.beta)
			rowsA, colsA := tc.m, tc.k
			if tc.transA {
				rowsA, colsA = tc.k, tc.m
			}
			rowsB, colsB := tc.k, tc.n
			if tc.transB {
				rowsB, colsB = tc.n, tc.k
			}
			lda, ldb, ldc := max(colsA, 1)+tc.pad, max(colsB, 1)+tc.pad, max(tc.n, 1)+tc.pad
			a := newGuarded(rng, rowsA*lda)
			b := newGuarded(rng, rowsB*ldb)
			c := newGuarded(rng, tc.m*ldc)
			want := c.clone()
			Reference{}.Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a.data(), lda, b.data(), ldb, tc.beta, want.data(), ldc)
			a0, b0, c0 := a.clone(), b.clone(), c.clone()
			v.set.Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, tc.alpha, a.data(), lda, b.data(), ldb, tc.beta, c.data(), ldc)
			c.checkGuards(t, name)
			compareSlices(t, name+": inputs changed", a.full, a0.full, 0)
			compareSlices(t, name+": inputs changed", b.full, b0.full, 0)
			for i := range tc.m {
				for j := range ldc {
					got, ref := c.data()[i*ldc+j], want.data()[i*ldc+j]
					if j >= tc.n {
						if got != c0.data()[i*ldc+j] {
							t.Fatalf("%s: wrote the padding at (%d,%d)", name, i, j)
						}
						continue
					}
					if !closeEnough(got, ref, tc.k) {
						t.Fatalf("%s: C(%d,%d) = %v, reference %v", name, i, j, got, ref)
					}
				}
			}
		}
	}
}

func TestReferenceGemmByHand(t *testing.T) {
	a := []float32{1, 2, 3, 4, 5, 6}    // 2×3
	b := []float32{7, 8, 9, 10, 11, 12} // 3×2
	c := []float32{1, 1, 1, 1}
	Reference{}.Gemm(false, false, 2, 2, 3, 1, a, 3, b, 2, 2, c, 2)
	want := []float32{58 + 2, 64 + 2, 139 + 2, 154 + 2}
	for i := range want {
		if c[i] != want[i] {
			t.Fatalf("got %v, want %v", c, want)
		}
	}
}

func TestGemmBetaZeroIgnoresC(t *testing.T) {
	for _, s := range append(variants, struct {
		name string
		set  Set
	}{"reference", Reference{}}) {
		c := []float32{float32(math.NaN())}
		s.set.Gemm(false, false, 1, 1, 1, 2, []float32{3}, 1, []float32{4}, 1, 0, c, 1)
		if c[0] != 24 {
			t.Errorf("%s: got %v, want 24", s.name, c[0])
		}
	}
}

// elementCase runs one vector kernel on a set; sizes are in the closure.
type elementCase struct {
	name  string
	terms int // additions behind each output element, for the tolerance
	run   func(s Set, dst []float32, in [][]float32) float64
	dst   int   // destination length
	ins   []int // input lengths
}

func elementCases() []elementCase {
	var cases []elementCase
	for _, n := range []int{0, 1, 7, 64, 1003} {
		cases = append(cases,
			elementCase{fmt.Sprintf("Mul/%d", n), 0, func(s Set, d []float32, in [][]float32) float64 { s.Mul(d, in[0], in[1]); return 0 }, n, []int{n, n}},
			elementCase{fmt.Sprintf("Relu/%d", n), 0, func(s Set, d []float32, in [][]float32) float64 { s.Relu(d, in[0]); return 0 }, n, []int{n}},
			elementCase{fmt.Sprintf("ReluGrad/%d", n), 0, func(s Set, d []float32, in [][]float32) float64 { s.ReluGrad(d, in[0], in[1]); return 0 }, n, []int{n, n}},
			elementCase{fmt.Sprintf("SumSquares/%d", n), n, func(s Set, d []float32, in [][]float32) float64 { return s.SumSquares(in[0]) }, 0, []int{n}},
		)
	}
	for _, rc := range [][2]int{{0, 5}, {1, 1}, {3, 5}, {128, 10}, {9, 1001}} {
		r, c := rc[0], rc[1]
		cases = append(cases,
			elementCase{fmt.Sprintf("AddRowVector/%dx%d", r, c), 1, func(s Set, d []float32, in [][]float32) float64 { s.AddRowVector(d, in[0]); return 0 }, r * c, []int{c}},
			elementCase{fmt.Sprintf("ColSums/%dx%d", r, c), r, func(s Set, d []float32, in [][]float32) float64 { s.ColSums(d, in[0]); return 0 }, c, []int{r * c}},
			elementCase{fmt.Sprintf("RowSums/%dx%d", c, r), r, func(s Set, d []float32, in [][]float32) float64 { s.RowSums(d, in[0]); return 0 }, c, []int{r * c}},
		)
	}
	return cases
}

func TestElementKernelsMatchReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, v := range variants {
		for _, tc := range elementCases() {
			name := v.name + "/" + tc.name
			dst := newGuarded(rng, tc.dst)
			want := dst.clone()
			var ins []guarded
			var insData [][]float32
			for _, n := range tc.ins {
				g := newGuarded(rng, n)
				ins = append(ins, g)
				insData = append(insData, g.data())
			}
			refScalar := tc.run(Reference{}, want.data(), insData)
			gotScalar := tc.run(v.set, dst.data(), insData)
			dst.checkGuards(t, name)
			compareSlices(t, name, dst.data(), want.data(), tc.terms)
			if math.Abs(gotScalar-refScalar) > 1e-12*float64(tc.terms+1)*math.Max(1, math.Abs(refScalar)) {
				t.Fatalf("%s: got %v, reference %v", name, gotScalar, refScalar)
			}
			for i, g := range ins {
				g.checkGuards(t, fmt.Sprintf("%s: input %d", name, i))
			}
		}
	}
}

func TestReferenceElementKernelsByHand(t *testing.T) {
	r := Reference{}
	dst := make([]float32, 3)
	r.Relu(dst, []float32{-1, 0, 2})
	if dst[0] != 0 || dst[1] != 0 || dst[2] != 2 {
		t.Errorf("Relu: %v", dst)
	}
	r.ReluGrad(dst, []float32{5, 6, 7}, []float32{-1, 0, 2})
	if dst[0] != 0 || dst[1] != 0 || dst[2] != 7 {
		t.Errorf("ReluGrad: %v", dst)
	}
	sums := make([]float32, 2)
	r.ColSums(sums, []float32{1, 2, 3, 4, 5, 6})
	if sums[0] != 9 || sums[1] != 12 {
		t.Errorf("ColSums: %v", sums)
	}
	r.RowSums(sums, []float32{1, 2, 3, 4, 5, 6})
	if sums[0] != 6 || sums[1] != 15 {
		t.Errorf("RowSums: %v", sums)
	}
	if got := r.SumSquares([]float32{3, 4}); got != 25 {
		t.Errorf("SumSquares: %v", got)
	}
}

func TestLengthMismatchPanics(t *testing.T) {
	sets := []Set{Reference{}, Gonum{}}
	calls := map[string]func(Set){
		"Mul":          func(s Set) { s.Mul(make([]float32, 3), make([]float32, 3), make([]float32, 2)) },
		"Relu":         func(s Set) { s.Relu(make([]float32, 3), make([]float32, 4)) },
		"ReluGrad":     func(s Set) { s.ReluGrad(make([]float32, 3), make([]float32, 3), make([]float32, 4)) },
		"AddRowVector": func(s Set) { s.AddRowVector(make([]float32, 7), make([]float32, 2)) },
		"ColSums":      func(s Set) { s.ColSums(make([]float32, 2), make([]float32, 5)) },
		"RowSums":      func(s Set) { s.RowSums(make([]float32, 0), make([]float32, 5)) },
		"GemmShortC": func(s Set) {
			s.Gemm(false, false, 2, 2, 2, 1, make([]float32, 4), 2, make([]float32, 4), 2, 0, make([]float32, 3), 2)
		},
		"GemmShortA": func(s Set) {
			s.Gemm(true, false, 2, 2, 3, 1, make([]float32, 5), 2, make([]float32, 6), 2, 0, make([]float32, 4), 2)
		},
	}
	for _, s := range sets {
		for name, call := range calls {
			t.Run(fmt.Sprintf("%T/%s", s, name), func(t *testing.T) {
				defer func() {
					if r := recover(); r != ErrLength {
						t.Fatalf("recovered %v, want %q", r, ErrLength)
					}
				}()
				call(s)
			})
		}
	}
}

func TestGemmBadStridePanics(t *testing.T) {
	defer func() {
		if r := recover(); r != ErrBadStride {
			t.Fatalf("recovered %v, want %q", r, ErrBadStride)
		}
	}()
	Default.Gemm(false, false, 2, 2, 3, 1, make([]float32, 6), 2, make([]float32, 6), 2, 0, make([]float32, 4), 2)
}
