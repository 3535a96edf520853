package synthetic

import (
	"bytes"
	"errors"
	"math"
	"testing"

	"github.com/troupe-ml/troupe/data"
)

// randomSet is a data set of n samples of the given shape with bytes from a test stream.
func randomSet(n, classes int, shape []int, seed uint64) *data.Dataset {
	size := shapeSize(shape)
	ds := &data.Dataset{Name: "random", SampleShape: shape, NumClasses: classes, Pixels: make([]uint8, n*size), Labels: make([]uint8, n)}
	s := stream{seed}
	for i := range n {
		ds.Labels[i] = uint8(s.intn(classes))
		for j := range size {
			// Sparse-ish: a third of the pixels are zero, as ink on a background.
			if s.intn(3) > 0 {
				ds.Pixels[i*size+j] = uint8(s.intn(256))
			}
		}
	}
	return ds
}

// classStats is the mean and unbiased covariance of the class-c samples, computed directly.
func classStats(ds *data.Dataset, c int) (mean []float64, cov [][]float64, n int) {
	size := ds.SampleSize()
	mean = make([]float64, size)
	cov = make([][]float64, size)
	for j := range cov {
		cov[j] = make([]float64, size)
	}
	for i, l := range ds.Labels {
		if int(l) != c {
			continue
		}
		n++
		for j, v := range ds.Pixels[i*size : (i+1)*size] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(n)
	}
	for i, l := range ds.Labels {
		if int(l) != c {
			continue
		}
		x := ds.Pixels[i*size : (i+1)*size]
		for j := range size {
			for k := range size {
				cov[j][k] += (float64(x[j]) - mean[j]) * (float64(x[k]) - mean[k])
			}
		}
	}
	for j := range cov {
		for k := range cov[j] {
			cov[j][k] /= float64(n - 1)
		}
	}
	return mean, cov, n
}

// modelCov is the covariance a component declares: basis*basis^T + diag(noise^2).
func modelCov(m *Model, k int) [][]float64 {
	c := &m.comps[k]
	size, r := m.size, m.rank
	cov := make([][]float64, size)
	for j := range cov {
		cov[j] = make([]float64, size)
		for l := range size {
			for q := range r {
				cov[j][l] += float64(c.basis[j*r+q]) * float64(c.basis[l*r+q])
			}
		}
		cov[j][j] += float64(c.noise[j]) * float64(c.noise[j])
	}
	return cov
}

// TestFitMoments checks Fit against directly computed statistics: with full rank the declared
// covariance is the sample covariance; with lower rank the diagonal still is, the loadings are
// orthogonal with decreasing norms, and the means and priors are the observed ones.
func TestFitMoments(t *testing.T) {
	ds := randomSet(600, 3, []int{3, 4}, 1)
	for _, rank := range []int{12, 4, 0} {
		m, err := Fit(ds, FitConfig{Rank: rank, Components: 1, Seed: 1})
		if err != nil {
			t.Fatal(err)
		}
		if m.Components() != 3 || m.Rank() != rank || m.Len() != 600 {
			t.Fatalf("rank %d: %d components, rank %d, len %d", rank, m.Components(), m.Rank(), m.Len())
		}
		for k := range m.Components() {
			class, weight, mean, _ := m.Component(k)
			wantMean, wantCov, n := classStats(ds, class)
			if weight != 1 || math.Abs(m.Prior(class)-float64(n)/600) > 1e-12 {
				t.Errorf("class %d: weight %v prior %v, want 1 and %v", class, weight, m.Prior(class), float64(n)/600)
			}
			for j := range mean {
				if math.Abs(float64(mean[j])-wantMean[j]) > 1e-4 {
					t.Errorf("class %d pixel %d: mean %v, want %v", class, j, mean[j], wantMean[j])
				}
			}
			got := modelCov(m, k)
			for j := range got {
				for l := range got {
					if rank < 12 && j != l {
						continue
					}
					if math.Abs(got[j][l]-wantCov[j][l]) > 1e-4*wantCov[j][j] {
						t.Fatalf("rank %d class %d: covariance [%d][%d] = %v, want %v", rank, class, j, l, got[j][l], wantCov[j][l])
					}
				}
			}
			c := &m.comps[k]
			prev := math.Inf(1)
			for p := range rank {
				for q := range rank {
					var d float64
					for j := range m.size {
						d += float64(c.basis[j*rank+p]) * float64(c.basis[j*rank+q])
					}
					if p == q {
						if d > prev*(1+1e-5) {
							t.Errorf("rank %d class %d: direction %d has variance %v after %v", rank, class, p, d, prev)
						}
						prev = d
					} else if math.Abs(d) > 1e-3*math.Sqrt(prev) {
						t.Errorf("rank %d class %d: directions %d and %d not orthogonal (%v)", rank, class, p, q, d)
					}
				}
			}
		}
	}
}

// TestModelSamples draws from a fitted model and compares the empirical class frequencies,
// means and covariances with the declared parameters. The training set sits mid-range so that
// clipping to bytes is rare.
func TestModelSamples(t *testing.T) {
	const size = 6
	train := &data.Dataset{Name: "gauss", SampleShape: []int{2, 3}, NumClasses: 2}
	s := stream{3}
	for i := range 20000 {
		c := 0
		if i%4 != 0 {
			c = 1
		}
		z1, z2 := s.normal(), s.normal()
		for j := range size {
			v := 100 + 20*float64(c) + 15*z1*float64(j%3-1) + 10*z2*float64(c*j%2) + 6*s.normal()
			train.Pixels = append(train.Pixels, uint8(quantize(v)))
		}
		train.Labels = append(train.Labels, uint8(c))
	}
	m, err := Fit(train, FitConfig{Rank: 2, Components: 1, Seed: 4, Len: 100000})
	if err != nil {
		t.Fatal(err)
	}
	n := 100000
	if raceEnabled {
		n = 20000
	}
	b := gatherAll(t, m, n)
	for k := range m.Components() {
		class, _, mean, _ := m.Component(k)
		cov := modelCov(m, k)
		var cnt float64
		sum := make([]float64, size)
		sum2 := make([][]float64, size)
		for j := range sum2 {
			sum2[j] = make([]float64, size)
		}
		for i, l := range b.labels {
			if int(l) != class {
				continue
			}
			cnt++
			x := b.x[i*size : (i+1)*size]
			for j := range size {
				v := float64(x[j]) * 255
				sum[j] += v
				for l := range size {
					sum2[j][l] += v * float64(x[l]) * 255
				}
			}
		}
		p := m.Prior(class)
		if se := math.Sqrt(p * (1 - p) / float64(n)); math.Abs(cnt/float64(n)-p) > 5*se {
			t.Errorf("class %d frequency %.4f, prior %.4f", class, cnt/float64(n), p)
		}
		for j := range size {
			gotMean := sum[j] / cnt
			if se := math.Sqrt(cov[j][j] / cnt); math.Abs(gotMean-float64(mean[j])) > 5*se+0.05 {
				t.Errorf("class %d pixel %d: sample mean %.3f, declared %.3f", class, j, gotMean, mean[j])
			}
			for l := range size {
				got := sum2[j][l]/cnt - gotMean*sum[l]/cnt
				// Rounding to bytes adds 1/12 to the variance.
				want := cov[j][l]
				if j == l {
					want += 1.0 / 12
				}
				if se := math.Sqrt((cov[j][j]*cov[l][l] + cov[j][l]*cov[j][l]) / cnt); math.Abs(got-want) > 5*se+0.2 {
					t.Errorf("class %d: sample covariance [%d][%d] %.2f, declared %.2f", class, j, l, got, want)
				}
			}
		}
	}
}

// TestFitDeterministic fits twice with one configuration and compares the encodings.
func TestFitDeterministic(t *testing.T) {
	fit := FitConfig{Rank: 5, Components: 3, Seed: 8}
	a, err := smallModel(t, fit).MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := smallModel(t, fit).MarshalBinary()
	if !bytes.Equal(a, b) {
		t.Error("two fits with one seed differ")
	}
	fit.Seed = 9
	c, _ := smallModel(t, fit).MarshalBinary()
	if bytes.Equal(a, c) {
		t.Error("the seed changes neither the k-means start nor the sampling seed")
	}
}

// TestFitMixture checks the k-means split: weights sum to one per class and each class gets at
// most Components Gaussians, every one with members.
func TestFitMixture(t *testing.T) {
	m := smallModel(t, FitConfig{Rank: 4, Components: 4, Seed: 1})
	per := make([]int, m.NumClasses())
	wsum := make([]float64, m.NumClasses())
	for k := range m.Components() {
		c, w, _, _ := m.Component(k)
		per[c]++
		wsum[c] += w
		if w <= 0 {
			t.Errorf("component %d has weight %v", k, w)
		}
	}
	for c := range per {
		if per[c] < 2 || per[c] > 4 || math.Abs(wsum[c]-1) > 1e-9 {
			t.Errorf("class %d: %d components, weights sum to %v", c, per[c], wsum[c])
		}
	}
}

// TestFitAbsentClass checks that a class without samples gets prior 0 and is never drawn.
func TestFitAbsentClass(t *testing.T) {
	ds := randomSet(300, 2, []int{5}, 2)
	ds.NumClasses = 4 // classes 2 and 3 have no samples
	m, err := Fit(ds, FitConfig{Rank: 2, Components: 2, Seed: 1, Len: 5000})
	if err != nil {
		t.Fatal(err)
	}
	if m.Prior(2) != 0 || m.Prior(3) != 0 {
		t.Fatalf("priors of absent classes: %v, %v", m.Prior(2), m.Prior(3))
	}
	for _, l := range gatherAll(t, m, 5000).labels {
		if l >= 2 {
			t.Fatalf("absent class %d drawn", l)
		}
	}
	enc, _ := m.MarshalBinary()
	if err := new(Model).UnmarshalBinary(enc); err != nil {
		t.Fatalf("model with absent classes does not decode: %v", err)
	}
}

func TestFitErrors(t *testing.T) {
	good := randomSet(50, 2, []int{4}, 1)
	badLabel := randomSet(50, 2, []int{4}, 1)
	badLabel.Labels[7] = 2
	short := randomSet(50, 2, []int{4}, 1)
	short.Pixels = short.Pixels[:199]
	for _, tc := range []struct {
		name string
		ds   *data.Dataset
		cfg  FitConfig
	}{
		{"nil", nil, FitConfig{Rank: 1, Components: 1}},
		{"empty", good.Subset(0), FitConfig{Rank: 1, Components: 1}},
		{"label over NumClasses", badLabel, FitConfig{Rank: 1, Components: 1}},
		{"pixel count", short, FitConfig{Rank: 1, Components: 1}},
		{"rank over size", good, FitConfig{Rank: 5, Components: 1}},
		{"negative rank", good, FitConfig{Rank: -1, Components: 1}},
		{"no components", good, FitConfig{Rank: 1}},
		{"too many components", good, FitConfig{Rank: 1, Components: MaxFitComponents + 1}},
		{"negative iterations", good, FitConfig{Rank: 1, Components: 2, KMeansIters: -1}},
		{"negative Len", good, FitConfig{Rank: 1, Components: 1, Len: -1}},
		{"negative dimension", &data.Dataset{SampleShape: []int{-2, -2}, NumClasses: 2, Pixels: make([]uint8, 4), Labels: []uint8{0}}, FitConfig{Rank: 1, Components: 1}},
		{"too large", &data.Dataset{SampleShape: []int{65, 65}, NumClasses: 2, Pixels: make([]uint8, 65*65), Labels: []uint8{0}}, FitConfig{Rank: 1, Components: 1}},
	} {
		if _, err := Fit(tc.ds, tc.cfg); !errors.Is(err, ErrFit) {
			t.Errorf("%s: error %v, want ErrFit", tc.name, err)
		}
	}
	m, err := Fit(good, FitConfig{Rank: 1, Components: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WithStream(1, -1); err == nil {
		t.Error("WithStream accepted a negative length")
	}
}
