package synthetic

import (
	"fmt"
	"math"

	"github.com/troupe-ml/troupe/data"
)

// TabularConfig describes a class-conditional Gaussian mixture with optional categorical
// columns. Every parameter is derived from Seed as documented on NewTabular.
type TabularConfig struct {
	Seed uint64
	// Len is the number of samples in the stream, at most MaxLen.
	Len int
	// Classes is the number of labels, 1 to 256 (labels are bytes).
	Classes int
	// Dims is the number of continuous columns.
	Dims int
	// Components is the number of Gaussians in each class's mixture, at least 1.
	Components int
	// Separation is the standard deviation of each coordinate of a component mean: larger
	// values push the components, and so the classes, further apart. Zero makes all classes
	// share the same means, so only the categorical columns and scales carry the label.
	Separation float64
	// ScaleMin and ScaleMax bound each component's per-column standard deviation.
	ScaleMin, ScaleMax float64
	// Priors are the class probabilities up to a common factor; nil means equal.
	Priors []float64
	// Categories lists the number of values of each categorical column (each 2 to 256).
	Categories []int
	// CategoryStrength is the standard deviation of the per-class logits of each category:
	// zero makes the categorical columns independent of the class.
	CategoryStrength float64
	// Range sets the byte encoding of continuous values: [-Range, Range] maps onto 0..255.
	// Zero means 3*sqrt(Separation^2 + ScaleMax^2), about three standard deviations.
	Range float64
}

// DefaultTabular is a ten-class, 16-column mixture with two components per class and two
// categorical columns: classes overlap enough that a linear model does not reach 100%.
func DefaultTabular(seed uint64, n int) TabularConfig {
	return TabularConfig{
		Seed: seed, Len: n, Classes: 10, Dims: 16, Components: 2,
		Separation: 1.5, ScaleMin: 0.5, ScaleMax: 1.5,
		Categories: []int{4, 7}, CategoryStrength: 1,
	}
}

// Tabular is a seeded stateless generator of tabular rows: row i is a pure function of
// (Seed, i). Safe for concurrent use.
type Tabular struct {
	cfg       TabularConfig
	size      int
	rng       float64 // encoding half-range
	encA      float64 // byte = encA*v + encB before rounding
	encB      float64
	priorCum  []float64   // cumulative class priors
	prior     []float64   // normalized class priors
	weight    [][]float64 // [class][component] normalized weights
	weightCum [][]float64
	mean      [][]float64 // [class*Components+k][dim]
	scale     [][]float64
	catProb   [][][]float64 // [column][class][value]
	catCum    [][][]float64
}

// NewTabular checks cfg and derives the parameters from cfg.Seed:
//
//   - class priors are cfg.Priors normalized, or equal;
//   - the weight of component k of class c is 0.5+u, u uniform in [0, 1), then normalized
//     within the class;
//   - its mean has each coordinate N(0, Separation^2), its per-column standard deviations are
//     uniform in [ScaleMin, ScaleMax];
//   - categorical column j has, for class c, value probabilities softmax(CategoryStrength*g)
//     with g a vector of independent N(0, 1).
//
// Each of these is drawn from its own stream keyed by (Seed, class, component) or
// (Seed, column, class), so adding classes, components or columns leaves the existing ones
// unchanged, and raising Dims only appends coordinates.
func NewTabular(cfg TabularConfig) (*Tabular, error) {
	switch {
	case cfg.Len < 0 || cfg.Len > MaxLen:
		return nil, fmt.Errorf("%w: Len %d outside [0, %d]", ErrConfig, cfg.Len, MaxLen)
	case cfg.Classes < 1 || cfg.Classes > 256:
		return nil, fmt.Errorf("%w: Classes %d outside [1, 256]", ErrConfig, cfg.Classes)
	case cfg.Dims < 0 || cfg.Dims > 1<<16:
		return nil, fmt.Errorf("%w: Dims %d outside [0, 65536]", ErrConfig, cfg.Dims)
	case cfg.Dims == 0 && len(cfg.Categories) == 0:
		return nil, fmt.Errorf("%w: no columns", ErrConfig)
	case cfg.Components < 1 || cfg.Components > 1024:
		return nil, fmt.Errorf("%w: Components %d outside [1, 1024]", ErrConfig, cfg.Components)
	case !(cfg.Separation >= 0) || math.IsInf(cfg.Separation, 0):
		return nil, fmt.Errorf("%w: Separation %v", ErrConfig, cfg.Separation)
	case cfg.Dims > 0 && !(cfg.ScaleMin > 0 && cfg.ScaleMax >= cfg.ScaleMin && !math.IsInf(cfg.ScaleMax, 0)):
		return nil, fmt.Errorf("%w: scales [%v, %v]", ErrConfig, cfg.ScaleMin, cfg.ScaleMax)
	case !(cfg.CategoryStrength >= 0) || math.IsInf(cfg.CategoryStrength, 0):
		return nil, fmt.Errorf("%w: CategoryStrength %v", ErrConfig, cfg.CategoryStrength)
	case !(cfg.Range >= 0) || math.IsInf(cfg.Range, 0):
		return nil, fmt.Errorf("%w: Range %v", ErrConfig, cfg.Range)
	case cfg.Priors != nil && len(cfg.Priors) != cfg.Classes:
		return nil, fmt.Errorf("%w: %d priors for %d classes", ErrConfig, len(cfg.Priors), cfg.Classes)
	}
	g := &Tabular{cfg: cfg, size: cfg.Dims}
	g.cfg.Priors = append([]float64(nil), cfg.Priors...)
	g.cfg.Categories = append([]int(nil), cfg.Categories...)
	for j, m := range cfg.Categories {
		if m < 2 || m > 256 {
			return nil, fmt.Errorf("%w: categorical column %d has %d values, want 2 to 256", ErrConfig, j, m)
		}
		g.size += m
	}
	if g.size > 1<<20 {
		return nil, fmt.Errorf("%w: %d bytes per sample", ErrConfig, g.size)
	}
	if cfg.Dims > 0 && cfg.Classes*cfg.Components*cfg.Dims > 1<<24 {
		return nil, fmt.Errorf("%w: %d classes x %d components x %d columns is too many parameters", ErrConfig, cfg.Classes, cfg.Components, cfg.Dims)
	}

	g.prior = make([]float64, cfg.Classes)
	for c := range g.prior {
		g.prior[c] = 1
		if cfg.Priors != nil {
			p := cfg.Priors[c]
			if !(p >= 0) || math.IsInf(p, 0) {
				return nil, fmt.Errorf("%w: prior %d is %v", ErrConfig, c, p)
			}
			g.prior[c] = p
		}
	}
	var ok bool
	if g.priorCum, ok = normalize(g.prior); !ok {
		return nil, fmt.Errorf("%w: priors sum to zero", ErrConfig)
	}

	g.rng = cfg.Range
	if g.rng == 0 {
		g.rng = 3 * math.Hypot(cfg.Separation, cfg.ScaleMax)
		if g.rng == 0 {
			g.rng = 1
		}
	}
	g.encA, g.encB = 255/(2*g.rng), 127.5

	K := cfg.Components
	g.weight = make([][]float64, cfg.Classes)
	g.weightCum = make([][]float64, cfg.Classes)
	g.mean = make([][]float64, cfg.Classes*K)
	g.scale = make([][]float64, cfg.Classes*K)
	for c := range cfg.Classes {
		w := make([]float64, K)
		for k := range K {
			s := stream{key(cfg.Seed, tagTabularComponent, uint64(c), uint64(k))}
			w[k] = 0.5 + s.uniform()
			mean := make([]float64, cfg.Dims)
			scale := make([]float64, cfg.Dims)
			for d := range cfg.Dims {
				mean[d] = cfg.Separation * s.normal()
				scale[d] = cfg.ScaleMin + (cfg.ScaleMax-cfg.ScaleMin)*s.uniform()
			}
			g.mean[c*K+k], g.scale[c*K+k] = mean, scale
		}
		g.weightCum[c], _ = normalize(w)
		g.weight[c] = w
	}

	g.catProb = make([][][]float64, len(cfg.Categories))
	g.catCum = make([][][]float64, len(cfg.Categories))
	for j, m := range cfg.Categories {
		g.catProb[j] = make([][]float64, cfg.Classes)
		g.catCum[j] = make([][]float64, cfg.Classes)
		for c := range cfg.Classes {
			s := stream{key(cfg.Seed, tagTabularCategory, uint64(j), uint64(c))}
			p := make([]float64, m)
			hi := math.Inf(-1)
			for v := range p {
				p[v] = cfg.CategoryStrength * s.normal()
				hi = max(hi, p[v])
			}
			for v := range p {
				p[v] = math.Exp(p[v] - hi)
			}
			g.catCum[j][c], _ = normalize(p)
			g.catProb[j][c] = p
		}
	}
	return g, nil
}

// normalize scales p in place to sum to one and returns its cumulative sums; ok is false
// when the sum is not positive.
func normalize(p []float64) (cum []float64, ok bool) {
	var sum float64
	for _, v := range p {
		sum += v
	}
	if !(sum > 0) || math.IsInf(sum, 0) {
		return nil, false
	}
	cum = make([]float64, len(p))
	var acc float64
	for k := range p {
		p[k] /= sum
		acc += p[k]
		cum[k] = acc
	}
	return cum, true
}

// Len is the number of rows in the stream.
func (g *Tabular) Len() int { return g.cfg.Len }

// SampleSize is Dims plus the sum of the categorical cardinalities: each categorical column
// is one-hot encoded in the byte view.
func (g *Tabular) SampleSize() int { return g.size }

// Shape is [SampleSize].
func (g *Tabular) Shape() []int { return []int{g.size} }

// NumClasses is the number of labels.
func (g *Tabular) NumClasses() int { return g.cfg.Classes }

// Config returns the configuration the generator was built from.
func (g *Tabular) Config() TabularConfig {
	c := g.cfg
	c.Priors = append([]float64(nil), c.Priors...)
	c.Categories = append([]int(nil), c.Categories...)
	return c
}

// Prior is the probability of class c.
func (g *Tabular) Prior(c int) float64 { return g.prior[c] }

// Component returns the weight within class c of its component k, the component's mean and
// its per-column standard deviations (copies).
func (g *Tabular) Component(c, k int) (weight float64, mean, scale []float64) {
	i := c*g.cfg.Components + k
	return g.weight[c][k], append([]float64(nil), g.mean[i]...), append([]float64(nil), g.scale[i]...)
}

// CategoryProbs returns the value probabilities of categorical column j given class c (a copy).
func (g *Tabular) CategoryProbs(j, c int) []float64 {
	return append([]float64(nil), g.catProb[j][c]...)
}

// Encode maps a continuous value to its byte in the Gather view: [-Range, Range] onto 0..255,
// rounded and clamped. Decode is its approximate inverse (to the centre of the byte's bin).
func (g *Tabular) Encode(v float64) uint8 {
	return uint8(quantize(float64(g.encA*v) + g.encB))
}

// Decode maps a byte of a continuous column back to a value.
func (g *Tabular) Decode(b uint8) float64 { return float64(b)/255*2*g.rng - g.rng }

// Row writes the exact values of row i: cont (len Dims) gets the continuous columns, cat
// (len len(Categories)) the categorical values. Either may be nil to skip it. It returns the
// label and allocates nothing.
func (g *Tabular) Row(i int, cont []float64, cat []int) (label int, err error) {
	if i < 0 || i >= g.cfg.Len {
		return 0, fmt.Errorf("%w: index %d, tabular stream has %d rows", data.ErrIndexOutOfRange, i, g.cfg.Len)
	}
	if cont != nil && len(cont) != g.cfg.Dims {
		return 0, fmt.Errorf("%w: cont holds %d values, want %d", data.ErrBufferLength, len(cont), g.cfg.Dims)
	}
	if cat != nil && len(cat) != len(g.cfg.Categories) {
		return 0, fmt.Errorf("%w: cat holds %d values, want %d", data.ErrBufferLength, len(cat), len(g.cfg.Categories))
	}
	s := streamAt(g.cfg.Seed, tagTabularSample, uint64(i))
	c := s.pick(g.priorCum)
	k := s.pick(g.weightCum[c])
	mean, scale := g.mean[c*g.cfg.Components+k], g.scale[c*g.cfg.Components+k]
	for d := range g.cfg.Dims {
		v := mean[d] + float64(scale[d]*s.normal())
		if cont != nil {
			cont[d] = v
		}
	}
	for j := range g.cfg.Categories {
		v := s.pick(g.catCum[j][c])
		if cat != nil {
			cat[j] = v
		}
	}
	return c, nil
}

// render draws the same numbers as Row, in the same order, and writes the byte view.
func (g *Tabular) render(i int, out []float32) int {
	s := streamAt(g.cfg.Seed, tagTabularSample, uint64(i))
	c := s.pick(g.priorCum)
	k := s.pick(g.weightCum[c])
	mean, scale := g.mean[c*g.cfg.Components+k], g.scale[c*g.cfg.Components+k]
	for d := range g.cfg.Dims {
		v := mean[d] + float64(scale[d]*s.normal())
		out[d] = quantize(float64(g.encA*v) + g.encB)
	}
	o := g.cfg.Dims
	for j, m := range g.cfg.Categories {
		v := s.pick(g.catCum[j][c])
		for x := range m {
			out[o+x] = 0
		}
		out[o+v] = 255
		o += m
	}
	return c
}

// Sample writes the byte view of row i into dst.
func (g *Tabular) Sample(i int, dst []uint8) (int, error) {
	return sample(g, "tabular stream", g.cfg.Len, g.size, i, dst)
}

// Gather has the contract of data.Dataset.Gather over the byte view: rows idx normalized into
// x, labels into labels; all checks before any write; no allocation.
func (g *Tabular) Gather(idx []int32, x []float32, labels []int32, norm data.Normalize) error {
	return gather(g, "tabular stream", g.cfg.Len, g.size, idx, x, labels, norm)
}

// Materialize renders the first n rows (all when n >= Len) into a data.Dataset.
func (g *Tabular) Materialize(n int) *data.Dataset { return Materialize(g, "synthetic-tabular", n) }
