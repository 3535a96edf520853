package synthetic

import (
	"fmt"
	"math"

	"github.com/troupe-ml/troupe/data"
)

// ImageConfig describes class-conditional images drawn from a few stroke prototypes per class.
type ImageConfig struct {
	Seed uint64
	// Len is the number of samples in the stream, at most MaxLen.
	Len int
	// Classes is the number of labels, 1 to 256; classes are equally likely.
	Classes int
	// Rows, Cols and Channels give the shape: [Rows Cols] for one channel, else
	// [Channels Rows Cols], channels first as data.Augment expects.
	Rows, Cols, Channels int
	// Prototypes is the number of prototype images per class, at least 1.
	Prototypes int
	// Strokes is the number of line segments in each class's skeleton, at least 1.
	Strokes int
	// MaxShift bounds the per-sample translation along each axis, in pixels.
	MaxShift int
	// Noise is the standard deviation of the per-pixel Gaussian noise, in byte levels.
	Noise float64
	// Clutter is the largest ink level, in [0, 1], of a prototype of a random class that is
	// overlaid on each sample: it makes classes overlap so that no model is perfect.
	Clutter float64
}

// DefaultImages is an MNIST-shaped set: ten classes of 28x28 one-channel images, six
// prototypes of three strokes each per class, shifts of up to 3 pixels, noise of 32 levels and
// clutter up to 0.4. A linear classifier stays well short of perfect on it (see the tests).
func DefaultImages(seed uint64, n int) ImageConfig {
	return ImageConfig{
		Seed: seed, Len: n, Classes: 10, Rows: 28, Cols: 28, Channels: 1,
		Prototypes: 6, Strokes: 3, MaxShift: 3, Noise: 32, Clutter: 0.4,
	}
}

// Images is a seeded stateless image generator: sample i is a pure function of (Seed, i).
// Safe for concurrent use.
type Images struct {
	cfg   ImageConfig
	shape []int
	plane int
	proto [][]float32 // [class*Prototypes+k][Rows*Cols], byte units
	gain  []float64   // [class*Channels+ch]
}

// NewImages checks cfg and builds the prototypes from cfg.Seed:
//
//   - class c has a skeleton: a polyline of Strokes segments through Strokes+1 points drawn
//     uniformly in the central 60% of the image, each segment with a width of 3.5% to 6.5% of
//     the smaller side;
//   - prototype k of class c moves every point by N(0, (8% of the smaller side)^2) per axis,
//     scales every width by 0.8 to 1.2 and sets an ink level of 0.75 to 1; a pixel's value is
//     the ink level times the largest exp(-d^2/2w^2) over the segments, d its distance to a
//     segment and w that segment's width;
//   - with several channels, class c weights channel ch by a gain uniform in [0.35, 1].
//
// Sample i picks its class uniformly, then two prototypes of that class and a blend of them,
// a prototype of any class overlaid at an ink level up to Clutter (pixelwise maximum), a
// contrast in [0.7, 1] and a shift within MaxShift, and adds Noise-level Gaussian noise to
// every pixel before rounding and clamping to bytes.
func NewImages(cfg ImageConfig) (*Images, error) {
	switch {
	case cfg.Len < 0 || cfg.Len > MaxLen:
		return nil, fmt.Errorf("%w: Len %d outside [0, %d]", ErrConfig, cfg.Len, MaxLen)
	case cfg.Classes < 1 || cfg.Classes > 256:
		return nil, fmt.Errorf("%w: Classes %d outside [1, 256]", ErrConfig, cfg.Classes)
	case cfg.Rows < 1 || cfg.Rows > 4096 || cfg.Cols < 1 || cfg.Cols > 4096:
		return nil, fmt.Errorf("%w: image of %dx%d", ErrConfig, cfg.Rows, cfg.Cols)
	case cfg.Channels < 1 || cfg.Channels > 64:
		return nil, fmt.Errorf("%w: Channels %d outside [1, 64]", ErrConfig, cfg.Channels)
	case cfg.Prototypes < 1 || cfg.Prototypes > 256:
		return nil, fmt.Errorf("%w: Prototypes %d outside [1, 256]", ErrConfig, cfg.Prototypes)
	case cfg.Strokes < 1 || cfg.Strokes > 64:
		return nil, fmt.Errorf("%w: Strokes %d outside [1, 64]", ErrConfig, cfg.Strokes)
	case cfg.MaxShift < 0 || cfg.MaxShift > min(cfg.Rows, cfg.Cols):
		return nil, fmt.Errorf("%w: MaxShift %d for a %dx%d image", ErrConfig, cfg.MaxShift, cfg.Rows, cfg.Cols)
	case !(cfg.Noise >= 0) || math.IsInf(cfg.Noise, 0):
		return nil, fmt.Errorf("%w: Noise %v", ErrConfig, cfg.Noise)
	case !(cfg.Clutter >= 0 && cfg.Clutter <= 1):
		return nil, fmt.Errorf("%w: Clutter %v outside [0, 1]", ErrConfig, cfg.Clutter)
	}
	plane := cfg.Rows * cfg.Cols
	if plane*cfg.Channels > 1<<24 || cfg.Classes*cfg.Prototypes*plane > 1<<26 {
		return nil, fmt.Errorf("%w: %d classes x %d prototypes of %dx%dx%d is too large", ErrConfig, cfg.Classes, cfg.Prototypes, cfg.Channels, cfg.Rows, cfg.Cols)
	}
	g := &Images{cfg: cfg, plane: plane}
	if cfg.Channels == 1 {
		g.shape = []int{cfg.Rows, cfg.Cols}
	} else {
		g.shape = []int{cfg.Channels, cfg.Rows, cfg.Cols}
	}
	side := float64(min(cfg.Rows, cfg.Cols))
	type point struct{ y, x float64 }
	pts := make([]point, cfg.Strokes+1)
	widths := make([]float64, cfg.Strokes)
	ps := make([]point, cfg.Strokes+1)
	ws := make([]float64, cfg.Strokes)
	g.proto = make([][]float32, cfg.Classes*cfg.Prototypes)
	g.gain = make([]float64, cfg.Classes*cfg.Channels)
	for c := range cfg.Classes {
		s := stream{key(cfg.Seed, tagImageStroke, uint64(c))}
		for p := range pts {
			pts[p] = point{(0.2 + 0.6*s.uniform()) * float64(cfg.Rows), (0.2 + 0.6*s.uniform()) * float64(cfg.Cols)}
		}
		for p := range widths {
			widths[p] = (0.035 + 0.03*s.uniform()) * side
		}
		for k := range cfg.Prototypes {
			s := stream{key(cfg.Seed, tagImagePrototype, uint64(c), uint64(k))}
			for p := range pts {
				ps[p] = point{pts[p].y + 0.08*side*s.normal(), pts[p].x + 0.08*side*s.normal()}
			}
			for p := range widths {
				ws[p] = widths[p] * (0.8 + 0.4*s.uniform())
			}
			ink := 255 * (0.75 + 0.25*s.uniform())
			img := make([]float32, plane)
			for r := range cfg.Rows {
				for col := range cfg.Cols {
					y, x := float64(r)+0.5, float64(col)+0.5
					best := 0.0
					for p := range ws {
						d2 := segmentDist2(y, x, ps[p].y, ps[p].x, ps[p+1].y, ps[p+1].x)
						best = max(best, math.Exp(-d2/(2*ws[p]*ws[p])))
					}
					img[r*cfg.Cols+col] = float32(ink * best)
				}
			}
			g.proto[c*cfg.Prototypes+k] = img
		}
		for ch := range cfg.Channels {
			gain := 1.0
			if cfg.Channels > 1 {
				s := stream{key(cfg.Seed, tagImageChannel, uint64(c), uint64(ch))}
				gain = 0.35 + 0.65*s.uniform()
			}
			g.gain[c*cfg.Channels+ch] = gain
		}
	}
	return g, nil
}

// segmentDist2 is the squared distance from (y, x) to the segment from (ay, ax) to (by, bx).
func segmentDist2(y, x, ay, ax, by, bx float64) float64 {
	dy, dx := by-ay, bx-ax
	t := 0.0
	if l2 := dy*dy + dx*dx; l2 > 0 {
		t = min(1, max(0, ((y-ay)*dy+(x-ax)*dx)/l2))
	}
	ey, ex := y-(ay+t*dy), x-(ax+t*dx)
	return ey*ey + ex*ex
}

// Len is the number of samples in the stream.
func (g *Images) Len() int { return g.cfg.Len }

// SampleSize is Channels*Rows*Cols.
func (g *Images) SampleSize() int { return g.plane * g.cfg.Channels }

// Shape is [Rows Cols], or [Channels Rows Cols] with several channels.
func (g *Images) Shape() []int { return append([]int(nil), g.shape...) }

// NumClasses is the number of labels.
func (g *Images) NumClasses() int { return g.cfg.Classes }

// Config returns the configuration the generator was built from.
func (g *Images) Config() ImageConfig { return g.cfg }

// Prototype returns prototype k of class c before gain, shift and noise, in byte units (a copy).
func (g *Images) Prototype(c, k int) []float32 {
	return append([]float32(nil), g.proto[c*g.cfg.Prototypes+k]...)
}

func (g *Images) render(i int, out []float32) int {
	cfg := &g.cfg
	s := streamAt(cfg.Seed, tagImageSample, uint64(i))
	c := s.intn(cfg.Classes)
	p1 := g.proto[c*cfg.Prototypes+s.intn(cfg.Prototypes)]
	p2 := g.proto[c*cfg.Prototypes+s.intn(cfg.Prototypes)]
	alpha := float32(s.uniform())
	p3 := g.proto[s.intn(len(g.proto))]
	beta := float32(cfg.Clutter * s.uniform())
	contrast := 0.7 + float64(0.3*s.uniform())
	span := 2*cfg.MaxShift + 1
	dy, dx := s.intn(span)-cfg.MaxShift, s.intn(span)-cfg.MaxShift
	rows, cols := cfg.Rows, cfg.Cols
	for ch := range cfg.Channels {
		a := contrast * g.gain[c*cfg.Channels+ch]
		dst := out[ch*g.plane : (ch+1)*g.plane]
		for r := range rows {
			sr := r - dy
			row := dst[r*cols : (r+1)*cols]
			for col := range row {
				base := float32(0)
				if sc := col - dx; sr >= 0 && sr < rows && sc >= 0 && sc < cols {
					j := sr*cols + sc
					base = p2[j] + float32(alpha*(p1[j]-p2[j]))
					base = max(base, float32(beta*p3[j]))
				}
				row[col] = quantize(float64(a*float64(base)) + float64(cfg.Noise*s.normal()))
			}
		}
	}
	return c
}

// Sample writes the bytes of sample i into dst.
func (g *Images) Sample(i int, dst []uint8) (int, error) {
	return sample(g, "image stream", g.cfg.Len, g.SampleSize(), i, dst)
}

// Gather has the contract of data.Dataset.Gather: samples idx normalized into x, labels into
// labels; all checks before any write; no allocation.
func (g *Images) Gather(idx []int32, x []float32, labels []int32, norm data.Normalize) error {
	return gather(g, "image stream", g.cfg.Len, g.SampleSize(), idx, x, labels, norm)
}

// Materialize renders the first n samples (all when n >= Len) into a data.Dataset.
func (g *Images) Materialize(n int) *data.Dataset { return Materialize(g, "synthetic-images", n) }
