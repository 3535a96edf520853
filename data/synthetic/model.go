package synthetic

import (
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/troupe-ml/troupe/data"
)

// Limits of a fitted model. They keep the class covariance (SampleSize^2 values) and the
// per-sample latent vector (kept on the stack) small.
const (
	MaxRank          = 256
	MaxModelSize     = 4096 // bytes per sample
	MaxFitComponents = 64   // Gaussians per class
)

// ErrFit reports a data set or configuration that Fit cannot use.
var ErrFit = errors.New("synthetic: cannot fit")

// FitConfig sets how Fit models each class.
type FitConfig struct {
	// Rank is the number of principal directions kept per Gaussian, 0 to MaxRank; 20 to 40
	// suits MNIST. The variance left over is kept per pixel (the diagonal part).
	Rank int
	// Components is the number of Gaussians per class, 1 to MaxFitComponents. Above 1 the
	// class is split by k-means and each cluster gets its own Gaussian, weighted by its size.
	Components int
	// KMeansIters bounds the k-means passes; zero means 20.
	KMeansIters int
	// Seed drives the k-means seeding and is the sampling seed of the fitted model.
	Seed uint64
	// Len is the stream length of the fitted model; zero means the data set's length.
	Len int
}

// Model is a per-class Gaussian model of a labelled image set: each class a mixture of
// Gaussians whose covariance is low-rank plus diagonal. It is also a seeded stateless
// generator: sample i is a pure function of the parameters, the seed and i. Safe for
// concurrent use; its parameters never change after Fit or UnmarshalBinary.
type Model struct {
	shape     []int
	size      int
	classes   int
	rank      int
	seed      uint64
	n         int
	prior     []float64 // per class, sums to one
	comps     []component
	priorCum  []float64
	byClass   [][]int // component indices of each class
	weightCum [][]float64
}

type component struct {
	class  int
	weight float64   // within its class
	mean   []float32 // [size]
	basis  []float32 // [size*rank] row-major: pixel j's loadings are basis[j*rank:(j+1)*rank]
	noise  []float32 // [size] standard deviation of the diagonal part
}

// Fit estimates a Model from ds. Per class it optionally splits the samples into
// cfg.Components clusters by k-means (seeded by k-means++ from cfg.Seed), then for each
// cluster takes the mean, the sample covariance S, the top cfg.Rank eigenpairs (l_k, v_k) of S,
// and sets the loadings to v_k*sqrt(l_k) and the per-pixel variance to what S's diagonal keeps
// beyond them. Class priors and cluster weights are the observed frequencies.
//
// The covariance is accumulated in integers over the nonzero pixels only, which makes it exact
// and fast on sparse images like MNIST's; the leading eigenpairs are found on the pixels that
// vary, by tridiagonal reduction and inverse iteration (see topEigen).
// The result depends only on ds and cfg.
func Fit(ds *data.Dataset, cfg FitConfig) (*Model, error) {
	if ds == nil || ds.Len() == 0 {
		return nil, fmt.Errorf("%w: empty data set", ErrFit)
	}
	size := ds.SampleSize()
	switch {
	case len(ds.SampleShape) == 0 || len(ds.SampleShape) > maxDims || slices.ContainsFunc(ds.SampleShape, func(d int) bool { return d < 1 }) || size > MaxModelSize:
		return nil, fmt.Errorf("%w: sample shape %v, want 1 to %d dimensions and 1 to %d values", ErrFit, ds.SampleShape, maxDims, MaxModelSize)
	case len(ds.Pixels) != ds.Len()*size:
		return nil, fmt.Errorf("%w: %d pixels for %d samples of %d", ErrFit, len(ds.Pixels), ds.Len(), size)
	case ds.NumClasses < 1 || ds.NumClasses > 256:
		return nil, fmt.Errorf("%w: %d classes", ErrFit, ds.NumClasses)
	case cfg.Rank < 0 || cfg.Rank > min(MaxRank, size):
		return nil, fmt.Errorf("%w: rank %d outside [0, %d]", ErrFit, cfg.Rank, min(MaxRank, size))
	case cfg.Components < 1 || cfg.Components > MaxFitComponents:
		return nil, fmt.Errorf("%w: %d components per class, want 1 to %d", ErrFit, cfg.Components, MaxFitComponents)
	case cfg.KMeansIters < 0:
		return nil, fmt.Errorf("%w: %d k-means iterations", ErrFit, cfg.KMeansIters)
	case cfg.Len < 0 || cfg.Len > MaxLen:
		return nil, fmt.Errorf("%w: Len %d outside [0, %d]", ErrFit, cfg.Len, MaxLen)
	}
	members := make([][]int, ds.NumClasses)
	for i, l := range ds.Labels {
		if int(l) >= ds.NumClasses {
			return nil, fmt.Errorf("%w: label %d of sample %d is not below %d", ErrFit, l, i, ds.NumClasses)
		}
		members[l] = append(members[l], i)
	}
	iters := cfg.KMeansIters
	if iters == 0 {
		iters = 20
	}
	n := cfg.Len
	if n == 0 {
		n = min(ds.Len(), MaxLen)
	}
	m := &Model{
		shape:   append([]int(nil), ds.SampleShape...),
		size:    size,
		classes: ds.NumClasses,
		rank:    cfg.Rank,
		seed:    cfg.Seed,
		n:       n,
		prior:   make([]float64, ds.NumClasses),
	}
	acc := newCovAcc(size)
	for c, idx := range members {
		m.prior[c] = float64(len(idx)) / float64(ds.Len())
		if len(idx) == 0 {
			continue
		}
		clusters := [][]int{idx}
		if cfg.Components > 1 {
			clusters = kmeans(ds, idx, min(cfg.Components, len(idx)), iters, key(cfg.Seed, tagKMeans, uint64(c)))
		}
		for _, cl := range clusters {
			if len(cl) == 0 {
				continue
			}
			comp, err := acc.gaussian(ds, cl, cfg.Rank)
			if err != nil {
				return nil, fmt.Errorf("%w: class %d: %v", ErrFit, c, err)
			}
			comp.class = c
			comp.weight = float64(len(cl)) / float64(len(idx))
			m.comps = append(m.comps, comp)
		}
	}
	if err := m.index(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrFit, err)
	}
	return m, nil
}

// index checks the parameters and builds the sampling tables; Fit and UnmarshalBinary end here.
func (m *Model) index() error {
	var ok bool
	prior := append([]float64(nil), m.prior...)
	if m.priorCum, ok = normalize(prior); !ok {
		return errors.New("class priors sum to zero")
	}
	m.byClass = make([][]int, m.classes)
	for k, comp := range m.comps {
		m.byClass[comp.class] = append(m.byClass[comp.class], k)
	}
	m.weightCum = make([][]float64, m.classes)
	for c, ks := range m.byClass {
		if m.prior[c] == 0 {
			continue
		}
		w := make([]float64, len(ks))
		for j, k := range ks {
			w[j] = m.comps[k].weight
		}
		if m.weightCum[c], ok = normalize(w); !ok {
			return fmt.Errorf("class %d has a positive prior but no weighted component", c)
		}
	}
	return nil
}

// covAcc holds the scratch of one covariance estimate, reused across clusters.
type covAcc struct {
	size int
	sum  []int64 // pixel sums
	prod []int64 // upper triangle of the sum of outer products, row-major size x size
	nz   []int32
}

func newCovAcc(size int) *covAcc {
	return &covAcc{size: size, sum: make([]int64, size), prod: make([]int64, size*size), nz: make([]int32, 0, size)}
}

// gaussian estimates the component of the samples idx with the given rank.
func (a *covAcc) gaussian(ds *data.Dataset, idx []int, rank int) (component, error) {
	size := a.size
	clear(a.sum)
	clear(a.prod)
	for _, i := range idx {
		x := ds.Pixels[i*size : (i+1)*size]
		nz := a.nz[:0]
		for j, p := range x {
			if p != 0 {
				nz = append(nz, int32(j))
			}
		}
		for q, j := range nz {
			xj := int64(x[j])
			a.sum[j] += xj
			row := a.prod[int(j)*size : (int(j)+1)*size]
			for _, l := range nz[q:] {
				row[l] += xj * int64(x[l])
			}
		}
		a.nz = nz
	}
	n := float64(len(idx))
	comp := component{
		mean:  make([]float32, size),
		basis: make([]float32, size*rank),
		noise: make([]float32, size),
	}
	// The pixels that vary in this cluster; the others are constant at their mean.
	var active []int
	variance := make([]float64, size)
	for j := range size {
		comp.mean[j] = float32(float64(a.sum[j]) / n)
		if len(idx) > 1 {
			variance[j] = a.cov(j, j, n)
		}
		if variance[j] > 0 {
			active = append(active, j)
		}
	}
	r := min(rank, len(active))
	if r > 0 {
		na := len(active)
		s := make([]float64, na*na)
		for p, j := range active {
			for q := range p + 1 {
				s[p*na+q] = a.cov(j, active[q], n)
			}
		}
		values, vecs, ok := topEigen(s, na, r)
		if !ok {
			return comp, errors.New("eigenvalue iteration did not converge")
		}
		for k := range r {
			scale := math.Sqrt(max(values[k], 0))
			// Fix the sign so that the largest loading is positive: eigenvectors are only
			// defined up to sign, and a fixed choice keeps fits comparable.
			big, sign := 0.0, 1.0
			for p := range active {
				if v := vecs[p*r+k]; math.Abs(v) > big {
					big, sign = math.Abs(v), math.Copysign(1, v)
				}
			}
			for p, j := range active {
				comp.basis[j*rank+k] = float32(sign * scale * vecs[p*r+k])
			}
		}
	}
	for _, j := range active {
		left := variance[j]
		for _, w := range comp.basis[j*rank : (j+1)*rank] {
			left -= float64(w) * float64(w)
		}
		comp.noise[j] = float32(math.Sqrt(max(left, 0)))
	}
	return comp, nil
}

// cov is the unbiased covariance of pixels j <= l from the exact integer sums.
func (a *covAcc) cov(j, l int, n float64) float64 {
	if j > l {
		j, l = l, j
	}
	sj, sl := float64(a.sum[j]), float64(a.sum[l])
	return (float64(a.prod[j*a.size+l]) - sj*sl/n) / (n - 1)
}

// kmeans splits the samples idx into k clusters by Lloyd's algorithm from a k-means++ start
// drawn from the stream at seedKey. Ties go to the lower cluster and sums run in index order,
// so the result is a function of its inputs. Clusters may come back empty.
func kmeans(ds *data.Dataset, idx []int, k, iters int, seedKey uint64) [][]int {
	size := ds.SampleSize()
	// The nonzero pixels of each sample, listed once: distances then cost one multiply per
	// ink pixel rather than one per pixel.
	start := make([]int, len(idx)+1)
	var nzIdx []int32
	var nzVal []float64
	norms := make([]float64, len(idx))
	for p, i := range idx {
		for j, v := range ds.Pixels[i*size : (i+1)*size] {
			if v != 0 {
				nzIdx = append(nzIdx, int32(j))
				nzVal = append(nzVal, float64(v))
				norms[p] += float64(v) * float64(v)
			}
		}
		start[p+1] = len(nzIdx)
	}
	dot := func(p int, c []float64) float64 {
		var s float64
		vals := nzVal[start[p]:start[p+1]]
		for q, j := range nzIdx[start[p]:start[p+1]] {
			s += vals[q] * c[j]
		}
		return s
	}
	centers := make([][]float64, k)
	cnorm := make([]float64, k)
	setCenter := func(c, p int) {
		centers[c] = make([]float64, size)
		for j, v := range ds.Pixels[idx[p]*size : (idx[p]+1)*size] {
			centers[c][j] = float64(v)
		}
		cnorm[c] = norms[p]
	}
	s := stream{seedKey}
	setCenter(0, s.intn(len(idx)))
	d2 := make([]float64, len(idx))
	cum := make([]float64, len(idx))
	for c := 1; c < k; c++ {
		var total float64
		for p := range idx {
			d := max(norms[p]-2*dot(p, centers[c-1])+cnorm[c-1], 0)
			if c == 1 || d < d2[p] {
				d2[p] = d
			}
			total += d2[p]
			cum[p] = total
		}
		if total == 0 { // every sample sits on a centre already
			setCenter(c, s.intn(len(idx)))
			continue
		}
		setCenter(c, s.pick(cum))
	}
	assign := make([]int, len(idx))
	for it := range iters {
		changed := false
		for p := range idx {
			best, bestD := 0, math.Inf(1)
			for c := range k {
				if d := cnorm[c] - 2*dot(p, centers[c]); d < bestD {
					best, bestD = c, d
				}
			}
			changed = changed || best != assign[p]
			assign[p] = best
		}
		if !changed && it > 0 {
			break
		}
		counts := make([]int, k)
		for c := range k {
			clear(centers[c])
		}
		for p, c := range assign {
			counts[c]++
			vals := nzVal[start[p]:start[p+1]]
			for q, j := range nzIdx[start[p]:start[p+1]] {
				centers[c][j] += vals[q]
			}
		}
		for c := range k {
			cnorm[c] = 0
			if counts[c] == 0 {
				continue // no members: the centre sits at zero and the cluster stays empty
			}
			for j := range centers[c] {
				centers[c][j] /= float64(counts[c])
				cnorm[c] += centers[c][j] * centers[c][j]
			}
		}
	}
	clusters := make([][]int, k)
	for p, i := range idx {
		clusters[assign[p]] = append(clusters[assign[p]], i)
	}
	return clusters
}

// WithStream returns the model with another sampling seed and stream length, sharing the
// parameters: for instance one stream per experiment from one fit.
func (m *Model) WithStream(seed uint64, n int) (*Model, error) {
	if n < 0 || n > MaxLen {
		return nil, fmt.Errorf("%w: Len %d outside [0, %d]", ErrConfig, n, MaxLen)
	}
	c := *m
	c.seed, c.n = seed, n
	return &c, nil
}

// Len is the number of samples in the stream.
func (m *Model) Len() int { return m.n }

// Seed is the sampling seed.
func (m *Model) Seed() uint64 { return m.seed }

// SampleSize is the number of bytes in one sample.
func (m *Model) SampleSize() int { return m.size }

// Shape is the sample shape of the data set the model was fitted to.
func (m *Model) Shape() []int { return append([]int(nil), m.shape...) }

// NumClasses is the number of labels.
func (m *Model) NumClasses() int { return m.classes }

// Rank is the number of principal directions per Gaussian.
func (m *Model) Rank() int { return m.rank }

// Prior is the probability of class c.
func (m *Model) Prior(c int) float64 { return m.prior[c] }

// Components is the number of Gaussians over all classes.
func (m *Model) Components() int { return len(m.comps) }

// Component returns the class, weight within the class, mean and per-pixel residual standard
// deviation of Gaussian k (copies; byte units, before clipping).
func (m *Model) Component(k int) (class int, weight float64, mean, noise []float32) {
	c := &m.comps[k]
	return c.class, c.weight, append([]float32(nil), c.mean...), append([]float32(nil), c.noise...)
}

// render draws class, component, the latent vector z and the per-pixel noise e from the
// stream of sample i, and writes clip(mean + basis*z + noise.*e) rounded to bytes.
func (m *Model) render(i int, out []float32) int {
	s := streamAt(m.seed, tagModelSample, uint64(i))
	c := s.pick(m.priorCum)
	comp := &m.comps[m.byClass[c][s.pick(m.weightCum[c])]]
	r := m.rank
	var zbuf [MaxRank]float32
	z := zbuf[:r]
	for k := range z {
		z[k] = float32(s.normal())
	}
	for j := range out {
		v := comp.mean[j] + dot32(comp.basis[j*r:(j+1)*r], z)
		out[j] = quantize(float64(v) + float64(float64(comp.noise[j])*s.normal()))
	}
	return c
}

// dot32 is the dot product of w and z[:len(w)] in a fixed order with four partial sums. The
// explicit conversions forbid fused multiply-adds, so every build computes the same bits.
func dot32(w, z []float32) float32 {
	z = z[:len(w)]
	var s0, s1, s2, s3 float32
	k := 0
	for ; k+4 <= len(w); k += 4 {
		s0 += float32(w[k] * z[k])
		s1 += float32(w[k+1] * z[k+1])
		s2 += float32(w[k+2] * z[k+2])
		s3 += float32(w[k+3] * z[k+3])
	}
	for ; k < len(w); k++ {
		s0 += float32(w[k] * z[k])
	}
	return (s0 + s1) + (s2 + s3)
}

// Sample writes the bytes of sample i into dst.
func (m *Model) Sample(i int, dst []uint8) (int, error) {
	return sample(m, "fitted model", m.n, m.size, i, dst)
}

// Gather has the contract of data.Dataset.Gather: samples idx normalized into x, labels into
// labels; all checks before any write; no allocation.
func (m *Model) Gather(idx []int32, x []float32, labels []int32, norm data.Normalize) error {
	return gather(m, "fitted model", m.n, m.size, idx, x, labels, norm)
}

// Materialize renders the first n samples (all when n >= Len) into a data.Dataset.
func (m *Model) Materialize(n int) *data.Dataset { return Materialize(m, "synthetic-fitted", n) }
