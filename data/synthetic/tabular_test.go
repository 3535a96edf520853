package synthetic

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// TestTabularMoments draws many rows and compares the class frequencies, class means and
// variances, and categorical frequencies with the parameters the generator declares.
func TestTabularMoments(t *testing.T) {
	n := 200000
	if raceEnabled {
		n = 40000
	}
	cfg := TabularConfig{
		Seed: 9, Len: n, Classes: 4, Dims: 5, Components: 3,
		Separation: 2, ScaleMin: 0.3, ScaleMax: 1.2,
		Priors: []float64{1, 2, 3, 4}, Categories: []int{3, 5}, CategoryStrength: 1.5,
	}
	g, err := NewTabular(cfg)
	if err != nil {
		t.Fatal(err)
	}
	C, D := cfg.Classes, cfg.Dims
	count := make([]float64, C)
	sum := make([][]float64, C)
	sum2 := make([][]float64, C)
	catCount := make([][][]float64, len(cfg.Categories))
	for j, m := range cfg.Categories {
		catCount[j] = make([][]float64, C)
		for c := range C {
			catCount[j][c] = make([]float64, m)
		}
	}
	for c := range C {
		sum[c], sum2[c] = make([]float64, D), make([]float64, D)
	}
	cont := make([]float64, D)
	cat := make([]int, len(cfg.Categories))
	for i := range n {
		c, err := g.Row(i, cont, cat)
		if err != nil {
			t.Fatal(err)
		}
		count[c]++
		for d, v := range cont {
			sum[c][d] += v
			sum2[c][d] += v * v
		}
		for j, v := range cat {
			catCount[j][c][v]++
		}
	}
	for c := range C {
		p := g.Prior(c)
		if want := cfg.Priors[c] / 10; math.Abs(p-want) > 1e-12 {
			t.Errorf("prior %d = %v, want %v", c, p, want)
		}
		if se := math.Sqrt(p * (1 - p) / float64(n)); math.Abs(count[c]/float64(n)-p) > 5*se {
			t.Errorf("class %d frequency %.4f, prior %.4f", c, count[c]/float64(n), p)
		}
		// The declared class mean and variance of the mixture, per column.
		for d := range D {
			var m1, m2, wsum float64
			for k := range cfg.Components {
				w, mean, scale := g.Component(c, k)
				wsum += w
				m1 += w * mean[d]
				m2 += w * (scale[d]*scale[d] + mean[d]*mean[d])
			}
			if math.Abs(wsum-1) > 1e-12 {
				t.Fatalf("class %d component weights sum to %v", c, wsum)
			}
			variance := m2 - m1*m1
			gotMean := sum[c][d] / count[c]
			gotVar := sum2[c][d]/count[c] - gotMean*gotMean
			if se := math.Sqrt(variance / count[c]); math.Abs(gotMean-m1) > 5*se {
				t.Errorf("class %d column %d: mean %.4f, declared %.4f (se %.4f)", c, d, gotMean, m1, se)
			}
			// A loose bound on the variance: the mixture's fourth moment is below 8 sigma^4 here.
			if se := variance * math.Sqrt(8/count[c]); math.Abs(gotVar-variance) > 5*se {
				t.Errorf("class %d column %d: variance %.4f, declared %.4f", c, d, gotVar, variance)
			}
		}
		for j := range cfg.Categories {
			for v, p := range g.CategoryProbs(j, c) {
				got := catCount[j][c][v] / count[c]
				if se := math.Sqrt(p * (1 - p) / count[c]); math.Abs(got-p) > 5*se+1e-9 {
					t.Errorf("class %d column %d value %d: frequency %.4f, declared %.4f", c, j, v, got, p)
				}
			}
		}
	}
	// CategoryStrength makes the categorical columns informative: the class-conditional
	// distributions must differ.
	if slices.Equal(g.CategoryProbs(0, 0), g.CategoryProbs(0, 1)) {
		t.Error("categorical column 0 does not depend on the class")
	}
}

// TestTabularBytes checks that the byte view encodes Row: continuous values through Encode,
// categorical columns one-hot.
func TestTabularBytes(t *testing.T) {
	cfg := DefaultTabular(4, 500)
	g, err := NewTabular(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if want := cfg.Dims + 4 + 7; g.SampleSize() != want {
		t.Fatalf("SampleSize %d, want %d", g.SampleSize(), want)
	}
	cont := make([]float64, cfg.Dims)
	cat := make([]int, 2)
	b := make([]uint8, g.SampleSize())
	clipped := 0
	for i := range g.Len() {
		l1, err := g.Row(i, cont, cat)
		if err != nil {
			t.Fatal(err)
		}
		l2, err := g.Sample(i, b)
		if err != nil {
			t.Fatal(err)
		}
		if l1 != l2 {
			t.Fatalf("row %d: labels %d and %d", i, l1, l2)
		}
		for d, v := range cont {
			if b[d] != g.Encode(v) {
				t.Fatalf("row %d column %d: byte %d, Encode(%v) = %d", i, d, b[d], v, g.Encode(v))
			}
			if b[d] == 0 || b[d] == 255 {
				clipped++
			} else if math.Abs(g.Decode(b[d])-v) > g.Decode(1)-g.Decode(0) {
				t.Fatalf("Decode(%d) = %v, value %v", b[d], g.Decode(b[d]), v)
			}
		}
		o := cfg.Dims
		for j, m := range cfg.Categories {
			for v := range m {
				want := uint8(0)
				if v == cat[j] {
					want = 255
				}
				if b[o+v] != want {
					t.Fatalf("row %d categorical column %d: one-hot %v, value %d", i, j, b[o:o+m], cat[j])
				}
			}
			o += m
		}
	}
	// The automatic range spans about three standard deviations: few values clip.
	if frac := float64(clipped) / float64(g.Len()*cfg.Dims); frac > 0.01 {
		t.Errorf("%.3f of the continuous bytes clip", frac)
	}
	if _, err := g.Row(0, make([]float64, 3), nil); err == nil {
		t.Error("Row accepted a short buffer")
	}
	if _, err := g.Row(g.Len(), nil, nil); err == nil {
		t.Error("Row accepted index Len")
	}
}

// TestTabularParamsStable checks the documented derivation: growing the configuration keeps
// the parameters already there.
func TestTabularParamsStable(t *testing.T) {
	small := DefaultTabular(5, 10)
	big := small
	big.Classes, big.Components, big.Dims = 12, 3, 20
	big.Categories = []int{4, 7, 9}
	a, err := NewTabular(small)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewTabular(big)
	if err != nil {
		t.Fatal(err)
	}
	for c := range small.Classes {
		for k := range small.Components {
			_, ma, sa := a.Component(c, k)
			_, mb, sb := b.Component(c, k)
			if !slices.Equal(ma, mb[:small.Dims]) || !slices.Equal(sa, sb[:small.Dims]) {
				t.Fatalf("class %d component %d changed when the configuration grew", c, k)
			}
		}
		for j := range small.Categories {
			if !slices.Equal(a.CategoryProbs(j, c), b.CategoryProbs(j, c)) {
				t.Fatalf("categorical column %d of class %d changed", j, c)
			}
		}
	}
}

func TestTabularConfigErrors(t *testing.T) {
	for name, mod := range map[string]func(*TabularConfig){
		"negative Len":      func(c *TabularConfig) { c.Len = -1 },
		"no classes":        func(c *TabularConfig) { c.Classes = 0 },
		"257 classes":       func(c *TabularConfig) { c.Classes = 257 },
		"no columns":        func(c *TabularConfig) { c.Dims, c.Categories = 0, nil },
		"no components":     func(c *TabularConfig) { c.Components = 0 },
		"NaN separation":    func(c *TabularConfig) { c.Separation = math.NaN() },
		"zero scale":        func(c *TabularConfig) { c.ScaleMin = 0 },
		"inverted scales":   func(c *TabularConfig) { c.ScaleMin, c.ScaleMax = 2, 1 },
		"priors length":     func(c *TabularConfig) { c.Priors = []float64{1, 2} },
		"negative prior":    func(c *TabularConfig) { c.Priors = make([]float64, 10); c.Priors[3] = -1 },
		"zero priors":       func(c *TabularConfig) { c.Priors = make([]float64, 10) },
		"one category":      func(c *TabularConfig) { c.Categories = []int{1} },
		"negative strength": func(c *TabularConfig) { c.CategoryStrength = -1 },
		"infinite range":    func(c *TabularConfig) { c.Range = math.Inf(1) },
	} {
		cfg := DefaultTabular(1, 10)
		mod(&cfg)
		if _, err := NewTabular(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", name, err)
		}
	}
	// Categorical columns alone are a valid table.
	cfg := DefaultTabular(1, 10)
	cfg.Dims, cfg.ScaleMin, cfg.ScaleMax = 0, 0, 0
	if _, err := NewTabular(cfg); err != nil {
		t.Errorf("categorical-only table: %v", err)
	}
}
