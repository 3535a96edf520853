package synthetic

import (
	"math"
	"slices"
	"testing"

	"gonum.org/v1/gonum/stat/distuv"
)

// TestNormal checks the ziggurat against N(0, 1): moments, tail mass, and the
// Kolmogorov-Smirnov distance, drawing from many short per-index streams as samples do.
func TestNormal(t *testing.T) {
	n := 400000
	if raceEnabled {
		n = 60000
	}
	xs := make([]float64, 0, n)
	for i := 0; len(xs) < n; i++ {
		s := streamAt(42, tagModelSample, uint64(i))
		for range 8 {
			xs = append(xs, s.normal())
		}
	}
	var sum, sum2, sum4 float64
	tail := 0
	for _, x := range xs {
		sum += x
		sum2 += x * x
		sum4 += x * x * x * x
		if math.Abs(x) > 3 {
			tail++
		}
	}
	fn := float64(len(xs))
	mean, variance, kurt := sum/fn, sum2/fn, sum4/fn
	// Standard errors: mean 1/sqrt(n), variance sqrt(2/n), fourth moment sqrt(96/n).
	if se := 1 / math.Sqrt(fn); math.Abs(mean) > 5*se {
		t.Errorf("mean %.5f, want 0 within %.5f", mean, 5*se)
	}
	if se := math.Sqrt(2 / fn); math.Abs(variance-1) > 5*se {
		t.Errorf("variance %.5f, want 1 within %.5f", variance, 5*se)
	}
	if se := math.Sqrt(96 / fn); math.Abs(kurt-3) > 5*se {
		t.Errorf("fourth moment %.4f, want 3 within %.4f", kurt, 5*se)
	}
	wantTail := 2 * distuv.UnitNormal.CDF(-3) * fn
	if math.Abs(float64(tail)-wantTail) > 5*math.Sqrt(wantTail) {
		t.Errorf("%d draws beyond 3 sigma, want about %.0f", tail, wantTail)
	}
	slices.Sort(xs)
	var ks float64
	for i, x := range xs {
		c := distuv.UnitNormal.CDF(x)
		ks = max(ks, math.Abs(c-float64(i)/fn), math.Abs(c-float64(i+1)/fn))
	}
	// 1.95/sqrt(n) is the 0.1% critical value.
	if limit := 1.95 / math.Sqrt(fn); ks > limit {
		t.Errorf("Kolmogorov-Smirnov distance %.5f over %.5f", ks, limit)
	}
	t.Logf("%d draws: mean %.5f variance %.5f fourth moment %.4f, beyond 3 sigma %d (expect %.0f), KS %.5f", len(xs), mean, variance, kurt, tail, wantTail, ks)
}

// TestStreamsIndependent checks that neighbouring indices and neighbouring seeds give
// uncorrelated first draws: a counter hash must not leak the counter.
func TestStreamsIndependent(t *testing.T) {
	const n = 100000
	corr := func(a, b func(i int) float64) float64 {
		var sab, sa, sb, saa, sbb float64
		for i := range n {
			x, y := a(i), b(i)
			sa += x
			sb += y
			sab += x * y
			saa += x * x
			sbb += y * y
		}
		cov := sab/n - sa/n*sb/n
		return cov / math.Sqrt((saa/n-sa/n*sa/n)*(sbb/n-sb/n*sb/n))
	}
	first := func(seed uint64, off int) func(int) float64 {
		return func(i int) float64 { s := streamAt(seed, tagImageSample, uint64(i+off)); return s.uniform() }
	}
	limit := 5 / math.Sqrt(n)
	if r := corr(first(1, 0), first(1, 1)); math.Abs(r) > limit {
		t.Errorf("correlation of samples i and i+1: %.4f", r)
	}
	if r := corr(first(1, 0), first(2, 0)); math.Abs(r) > limit {
		t.Errorf("correlation of seeds 1 and 2: %.4f", r)
	}
	other := func(i int) float64 { s := streamAt(1, tagTabularSample, uint64(i)); return s.uniform() }
	if r := corr(first(1, 0), other); math.Abs(r) > limit {
		t.Errorf("correlation of two tags: %.4f", r)
	}
}

// TestPick checks the categorical draw against its weights, zero weights included.
func TestPick(t *testing.T) {
	w := []float64{0, 1, 0, 3, 6, 0}
	cum, ok := normalize(w)
	if !ok {
		t.Fatal("normalize refused positive weights")
	}
	const n = 200000
	counts := make([]int, len(w))
	s := stream{7}
	for range n {
		counts[s.pick(cum)]++
	}
	for k, p := range w {
		if p == 0 {
			if counts[k] != 0 {
				t.Errorf("weight 0 at %d drawn %d times", k, counts[k])
			}
			continue
		}
		want := p * n
		if math.Abs(float64(counts[k])-want) > 5*math.Sqrt(want) {
			t.Errorf("index %d drawn %d times, want about %.0f", k, counts[k], want)
		}
	}
	if _, ok := normalize([]float64{0, 0}); ok {
		t.Error("normalize accepted all-zero weights")
	}
}

func TestQuantize(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want float32
	}{{-3, 0}, {0, 0}, {0.49, 0}, {0.5, 1}, {1.5, 2}, {254.4, 254}, {254.5, 255}, {1e9, 255}, {math.Inf(1), 255}, {math.Inf(-1), 0}, {math.NaN(), 0}} {
		if got := quantize(tc.in); got != tc.want {
			t.Errorf("quantize(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
