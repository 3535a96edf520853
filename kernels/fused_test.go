package kernels

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// fusedGuard is how many guard values surround each slice handed to a
// fused kernel, and fusedGuardValue their value.
const (
	fusedGuard      = 5
	fusedGuardValue = float32(-31.0625)
)

// fusedSlice returns a slice of n values from gen inside a buffer with
// guard values on both sides, and a check that the guards are intact.
func fusedSlice(n int, gen func(i int) float32) (s []float32, guardsOK func() bool) {
	full := make([]float32, n+2*fusedGuard)
	for i := range full {
		full[i] = fusedGuardValue
	}
	s = full[fusedGuard : fusedGuard+n]
	for i := range s {
		s[i] = gen(i)
	}
	return s, func() bool {
		for i := range fusedGuard {
			if full[i] != fusedGuardValue || full[len(full)-1-i] != fusedGuardValue {
				return false
			}
		}
		return true
	}
}

// activations draws values with many of the cases a ReLU cares about:
// negatives, both zeros, NaNs of either sign, infinities, the smallest
// subnormal and the largest finite value, and ordinary positives.
func activations(rng *rand.Rand) func(int) float32 {
	special := []float32{0, float32(math.Copysign(0, -1)), float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e-40, -1e-40,
		math.Float32frombits(1), math.Float32frombits(0x7f800001), math.Float32frombits(0xff800001), math.MaxFloat32, -math.MaxFloat32}
	return func(int) float32 {
		if rng.IntN(8) == 0 {
			return special[rng.IntN(len(special))]
		}
		return float32(rng.NormFloat64())
	}
}

func normals(rng *rand.Rand) func(int) float32 {
	return func(int) float32 { return float32(rng.NormFloat64()) }
}

func sameFloatBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// fusedShapes are rows×cols shapes with odd, one and empty dimensions.
var fusedShapes = [][2]int{{0, 3}, {1, 1}, {1, 7}, {3, 5}, {7, 17}, {4, 33}, {9, 64}, {2, 129}}

func TestBiasReluIsAddRowVectorThenRelu(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, sh := range fusedShapes {
		rows, cols := sh[0], sh[1]
		bias, _ := fusedSlice(cols, activations(rng))
		c, guardsOK := fusedSlice(rows*cols, activations(rng))
		want := append([]float32(nil), c...)
		Reference{}.AddRowVector(want, bias)
		Reference{}.Relu(want, want)
		BiasRelu(c, bias)
		if !sameFloatBits(c, want) {
			t.Errorf("%d×%d: got %v, want %v", rows, cols, c, want)
		}
		if !guardsOK() {
			t.Errorf("%d×%d: wrote outside c", rows, cols)
		}
	}
}

func TestAddReluIsShiftThenRelu(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	for _, n := range []int{0, 1, 2, 7, 64, 197} {
		for _, b := range []float32{0, -0.5, 1.25, float32(math.NaN())} {
			src, srcOK := fusedSlice(n, activations(rng))
			want := make([]float32, n)
			for i, v := range src {
				want[i] = max(v+b, 0)
			}
			dst, dstOK := fusedSlice(n, normals(rng))
			AddRelu(dst, src, b)
			if !sameFloatBits(dst, want) || !dstOK() || !srcOK() {
				t.Errorf("n=%d b=%v: got %v, want %v (guards %v %v)", n, b, dst, want, dstOK(), srcOK())
			}
			AddRelu(src, src, b) // in place
			if !sameFloatBits(src, want) || !srcOK() {
				t.Errorf("n=%d b=%v in place: got %v, want %v", n, b, src, want)
			}
		}
	}
}

func TestReluBiasGradIsReluGradThenColSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	for _, sh := range fusedShapes {
		rows, cols := sh[0], sh[1]
		dy, dyOK := fusedSlice(rows*cols, activations(rng))
		y, _ := fusedSlice(rows*cols, activations(rng))
		wantDz := make([]float32, len(dy))
		Reference{}.ReluGrad(wantDz, dy, y)
		wantDb := make([]float32, cols)
		Reference{}.ColSums(wantDb, wantDz)

		dz, dzOK := fusedSlice(rows*cols, normals(rng))
		db, dbOK := fusedSlice(cols, normals(rng))
		ReluBiasGrad(dz, db, dy, y)
		if !sameFloatBits(dz, wantDz) || !sameFloatBits(db, wantDb) {
			t.Errorf("%d×%d: dz %v db %v, want %v %v", rows, cols, dz, db, wantDz, wantDb)
		}
		if !dzOK() || !dbOK() || !dyOK() {
			t.Errorf("%d×%d: wrote outside its slices", rows, cols)
		}
		ReluBiasGrad(dy, db, dy, y) // dz may be dy
		if !sameFloatBits(dy, wantDz) || !sameFloatBits(db, wantDb) {
			t.Errorf("%d×%d in place: dz %v db %v, want %v %v", rows, cols, dy, db, wantDz, wantDb)
		}
	}
}

func TestReluGradSum(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	for _, n := range []int{0, 1, 3, 4, 5, 8, 63, 196, 785} {
		dy, _ := fusedSlice(n, normals(rng))
		y, _ := fusedSlice(n, activations(rng))
		want := make([]float32, n)
		Reference{}.ReluGrad(want, dy, y)
		var wantSum float64
		for _, v := range want {
			wantSum += float64(v)
		}
		dst, dstOK := fusedSlice(n, normals(rng))
		sum := ReluGradSum(dst, dy, y)
		if !sameFloatBits(dst, want) || !dstOK() {
			t.Errorf("n=%d: got %v, want %v", n, dst, want)
		}
		// Float32 values summed in float64 in two orders: each partial
		// sum rounds to ~1e-16 of the running total.
		if math.Abs(sum-wantSum) > 1e-14*float64(n+1)*math.Max(1, math.Abs(wantSum)) {
			t.Errorf("n=%d: sum %v, want %v", n, sum, wantSum)
		}
	}
}

// softmaxRowReference is the plain two-exponential version: p = exp(z - lse).
func softmaxRowReference(z []float32, label int, scale float32, g []float32) float64 {
	zmax := float64(z[0])
	for _, v := range z {
		zmax = math.Max(zmax, float64(v))
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
	return lse - float64(z[label])
}

// withinUlp reports whether got is want or one of its float32 neighbours.
func withinUlp(got, want float32) bool {
	return got == want || got == math.Nextafter32(want, float32(math.Inf(1))) || got == math.Nextafter32(want, float32(math.Inf(-1)))
}

func TestSoftmaxCrossEntropy(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 5))
	var ulpOff, total int
	for _, n := range []int{1, 2, 3, 10, 63, 64, 65, 100, 256, 257, 1001, 4096} {
		for _, spread := range []float64{0.1, 3, 80} {
			z, _ := fusedSlice(n, func(int) float32 { return float32(spread * rng.NormFloat64()) })
			label := rng.IntN(n)
			scale := float32(1.0 / 128)
			want := make([]float32, n)
			wantLoss := softmaxRowReference(z, label, scale, want)
			g, gOK := fusedSlice(n, normals(rng))
			loss := SoftmaxCrossEntropy(z, label, scale, g)
			if !gOK() {
				t.Errorf("n=%d: wrote outside g", n)
			}
			if n > softmaxKeep {
				// float32 exponentials: the loss within 1e-6 (relative, or absolute
				// near 0), each gradient value within 1e-6 of the scale.
				for _, l := range []float64{loss, SoftmaxCrossEntropy(z, label, 0, nil)} {
					if math.Abs(l-wantLoss) > 1e-6*max(1, math.Abs(wantLoss)) {
						t.Errorf("n=%d spread %v: loss %v, want %v within 1e-6", n, spread, l, wantLoss)
					}
				}
				for j := range want {
					if d := math.Abs(float64(g[j] - want[j])); d > 1e-6*float64(scale) {
						t.Fatalf("n=%d spread %v: g[%d] = %v, want %v within %.2g", n, spread, j, g[j], want[j], 1e-6*scale)
					}
				}
				continue
			}
			if math.Float64bits(loss) != math.Float64bits(wantLoss) {
				t.Errorf("n=%d spread %v: loss %v, want %v", n, spread, loss, wantLoss)
			}
			if l := SoftmaxCrossEntropy(z, label, 0, nil); math.Float64bits(l) != math.Float64bits(wantLoss) {
				t.Errorf("n=%d spread %v: loss without gradient %v, want %v", n, spread, l, wantLoss)
			}
			// exp(z-max)/Σ and exp(z-lse) agree to a few float64 ulps, so
			// the float32 gradients agree to at most one float32 ulp.
			for j := range want {
				total++
				if g[j] != want[j] {
					ulpOff++
				}
				if !withinUlp(g[j], want[j]) {
					t.Fatalf("n=%d spread %v: g[%d] = %v, want %v", n, spread, j, g[j], want[j])
				}
			}
		}
	}
	t.Logf("%d of %d gradient values one float32 ulp from the two-exponential loop", ulpOff, total)
}

func TestSoftmaxCrossEntropyIsStable(t *testing.T) {
	g := make([]float32, 4)
	loss := SoftmaxCrossEntropy([]float32{1000, 0, -1000, 1000}, 1, 1, g)
	if math.Abs(loss-(1000+math.Ln2)) > 1e-9 {
		t.Errorf("loss %v, want 1000+ln 2", loss)
	}
	if g[0] != 0.5 || g[1] != -1 || g[2] != 0 || g[3] != 0.5 {
		t.Errorf("grad %v, want [0.5 -1 0 0.5]", g)
	}
	// A long row (the float32 path) likewise: two equal maxima far above the rest.
	long := make([]float32, 300)
	for j := range long {
		long[j] = -1000
	}
	long[7], long[250] = 1000, 1000
	g = make([]float32, len(long))
	loss = SoftmaxCrossEntropy(long, 3, 1, g)
	if math.Abs(loss-(2000+math.Ln2)) > 1e-9 {
		t.Errorf("long row: loss %v, want 2000+ln 2", loss)
	}
	if g[7] != 0.5 || g[250] != 0.5 || g[3] != -1 || g[0] != 0 {
		t.Errorf("long row: grad[7,250,3,0] = %v %v %v %v, want 0.5 0.5 -1 0", g[7], g[250], g[3], g[0])
	}
	long[100] = float32(math.NaN())
	if l := SoftmaxCrossEntropy(long, 3, 1, nil); !math.IsNaN(l) {
		t.Errorf("long row with a NaN: loss %v, want NaN", l)
	}
}

func TestSoftmaxCrossEntropyPanicsBeforeWriting(t *testing.T) {
	for _, tc := range []struct {
		name  string
		label int
		g     []float32
		want  string
	}{
		{"label too large", 3, make([]float32, 3), "out of range"},
		{"negative label", -1, make([]float32, 3), "out of range"},
		{"short g", 0, make([]float32, 2), ErrLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := range tc.g {
				tc.g[i] = fusedGuardValue
			}
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), tc.want) {
					t.Fatalf("recovered %v, want a panic containing %q", r, tc.want)
				}
				for _, v := range tc.g {
					if v != fusedGuardValue {
						t.Fatal("g was written before the panic")
					}
				}
			}()
			SoftmaxCrossEntropy([]float32{1, 2, 3}, tc.label, 1, tc.g)
		})
	}
}

func TestFusedLengthChecks(t *testing.T) {
	s3, s4 := make([]float32, 3), make([]float32, 4)
	for name, f := range map[string]func(){
		"BiasRelu":     func() { BiasRelu(s3, make([]float32, 2)) },
		"AddRelu":      func() { AddRelu(s3, s4, 0) },
		"ReluBiasGrad": func() { ReluBiasGrad(s4, make([]float32, 2), s4, s3) },
		"ReluGradSum":  func() { ReluGradSum(s3, s3, s4) },
	} {
		func() {
			defer func() {
				if r := recover(); r != ErrLength {
					t.Errorf("%s: recovered %v, want %q", name, r, ErrLength)
				}
			}()
			f()
		}()
	}
}

// BenchmarkFused times each fused kernel against the unfused kernels it
// replaces, at the sizes of a 784-512-512-10 MLP's hidden layer and output
// at batch 128 and of a 5×5 conv's 28×28 planes.
func BenchmarkFused(b *testing.B) {
	const rows, cols = 128, 512
	rng := rand.New(rand.NewPCG(6, 6))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	y, dy, dz, bias, db := fill(rows*cols), fill(rows*cols), fill(rows*cols), fill(cols), fill(cols)
	// The bias and ReLU run on a fresh copy of the same product each time
	// (the copy is in both timings), so that half the values stay negative.
	product, c, relu := fill(rows*cols), fill(rows*cols), fill(rows*cols)
	var k Set = Gonum{}
	b.Run("bias+relu/fused", func(b *testing.B) {
		for b.Loop() {
			copy(c, product)
			BiasRelu(c, bias)
		}
	})
	b.Run("bias+relu/unfused", func(b *testing.B) {
		for b.Loop() {
			copy(c, product)
			k.AddRowVector(c, bias)
			k.Relu(relu, c)
		}
	})
	b.Run("relu-grad+colsums/fused", func(b *testing.B) {
		for b.Loop() {
			ReluBiasGrad(dz, db, dy, y)
		}
	})
	b.Run("relu-grad+colsums/unfused", func(b *testing.B) {
		for b.Loop() {
			k.ReluGrad(dz, dy, y)
			k.ColSums(db, dz)
		}
	})
	const plane = 28 * 28
	b.Run("conv-relu-grad+sum/fused", func(b *testing.B) {
		for b.Loop() {
			for s := 0; s+plane <= len(dz); s += plane {
				ReluGradSum(dz[s:s+plane], dy[s:s+plane], y[s:s+plane])
			}
		}
	})
	b.Run("conv-relu-grad+sum/unfused", func(b *testing.B) {
		sums := make([]float32, len(dz)/plane)
		for b.Loop() {
			n := len(sums) * plane
			k.ReluGrad(dz[:n], dy[:n], y[:n])
			k.RowSums(sums, dz[:n])
		}
	})
	logits, labels := fill(rows*10), make([]int, rows)
	for i := range labels {
		labels[i] = rng.IntN(10)
	}
	g := make([]float32, rows*10)
	b.Run("softmax-xent/fused", func(b *testing.B) {
		for b.Loop() {
			for i := range rows {
				SoftmaxCrossEntropy(logits[i*10:][:10], labels[i], 1.0/rows, g[i*10:][:10])
			}
		}
	})
	b.Run("softmax-xent/two-exp", func(b *testing.B) {
		for b.Loop() {
			for i := range rows {
				softmaxRowReference(logits[i*10:][:10], labels[i], 1.0/rows, g[i*10:][:10])
			}
		}
	})
}
