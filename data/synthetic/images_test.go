package synthetic

import (
	"errors"
	"math"
	"testing"

	"github.com/troupe-ml/troupe/data"
)

// TestImagesBalance checks that classes are equally likely: a chi-square test over many labels.
func TestImagesBalance(t *testing.T) {
	n := 200000
	if raceEnabled {
		n = 20000
	}
	cfg := DefaultImages(21, n)
	cfg.Rows, cfg.Cols = 4, 4 // labels are what is tested; small images keep it fast
	g, err := NewImages(cfg)
	if err != nil {
		t.Fatal(err)
	}
	b := gatherAll(t, g, n)
	counts := make([]float64, cfg.Classes)
	for _, l := range b.labels {
		counts[l]++
	}
	want := float64(n) / float64(cfg.Classes)
	var chi2 float64
	for _, c := range counts {
		chi2 += (c - want) * (c - want) / want
	}
	// 27.9 is the 0.1% critical value of chi-square with 9 degrees of freedom.
	if chi2 > 27.9 {
		t.Errorf("class counts %v: chi-square %.1f over 27.9", counts, chi2)
	}
	for c, k := range counts {
		if math.Abs(k-want) > 0.05*want {
			t.Errorf("class %d: %v samples, want %v within 5%%", c, k, want)
		}
	}
}

// TestImagesLearnable fits two simple classifiers on generated samples and tests them on
// others: both must beat chance by far, and neither may be perfect.
func TestImagesLearnable(t *testing.T) {
	nTrain, nTest, epochs := 10000, 2000, 5
	if raceEnabled {
		nTrain, nTest, epochs = 2000, 500, 2
	}
	g, err := NewImages(DefaultImages(1, nTrain+nTest))
	if err != nil {
		t.Fatal(err)
	}
	all := gatherAll(t, g, nTrain+nTest)
	size := g.SampleSize()
	train := batch{x: all.x[:nTrain*size], labels: all.labels[:nTrain], size: size}
	test := batch{x: all.x[nTrain*size:], labels: all.labels[nTrain:], size: size}
	ncm := accuracy(test, fitNearestMean(train, 10).predict)
	soft := accuracy(test, fitSoftmax(train, 10, epochs, 1).predict)
	t.Logf("seed 1, %d train / %d test: nearest class mean %.4f, softmax regression %.4f", nTrain, nTest, ncm, soft)
	if ncm < 0.4 || soft < 0.5 {
		t.Errorf("accuracies %.3f, %.3f: the classes are hard to tell apart", ncm, soft)
	}
	if ncm > 0.95 || soft > 0.95 {
		t.Errorf("accuracies %.3f, %.3f: the classes are trivially separable", ncm, soft)
	}
}

// TestImagesShape checks the channel layout and that the prototypes have ink.
func TestImagesShape(t *testing.T) {
	cfg := DefaultImages(2, 50)
	cfg.Rows, cfg.Cols, cfg.Channels = 10, 14, 3
	g, err := NewImages(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Shape(); len(s) != 3 || s[0] != 3 || s[1] != 10 || s[2] != 14 || g.SampleSize() != 420 {
		t.Fatalf("shape %v, size %d", s, g.SampleSize())
	}
	for c := range cfg.Classes {
		for k := range cfg.Prototypes {
			var hi float32
			for _, v := range g.Prototype(c, k) {
				hi = max(hi, v)
			}
			if hi < 100 || hi > 255 {
				t.Errorf("prototype %d of class %d peaks at %v", k, c, hi)
			}
		}
	}
	// A materialized set works with the data package's shifting gather.
	ds := g.Materialize(50)
	shifted := make([]float32, 50*420)
	idx := make([]int32, 50)
	for i := range idx {
		idx[i] = int32(i)
	}
	if err := ds.GatherShifted(idx, shifted, make([]int32, 50), data.Normalize{}, data.Augment{MaxShift: 1, Seed: 1}, 0); err != nil {
		t.Fatalf("GatherShifted on a materialized set: %v", err)
	}
	one := DefaultImages(2, 10)
	if g1, _ := NewImages(one); len(g1.Shape()) != 2 {
		t.Errorf("one channel: shape %v", g1.Shape())
	}
}

func TestImagesConfigErrors(t *testing.T) {
	for name, mod := range map[string]func(*ImageConfig){
		"negative Len":   func(c *ImageConfig) { c.Len = -1 },
		"too long":       func(c *ImageConfig) { c.Len = MaxLen + 1 },
		"no classes":     func(c *ImageConfig) { c.Classes = 0 },
		"zero rows":      func(c *ImageConfig) { c.Rows = 0 },
		"no channels":    func(c *ImageConfig) { c.Channels = 0 },
		"no prototypes":  func(c *ImageConfig) { c.Prototypes = 0 },
		"no strokes":     func(c *ImageConfig) { c.Strokes = 0 },
		"negative shift": func(c *ImageConfig) { c.MaxShift = -1 },
		"huge shift":     func(c *ImageConfig) { c.MaxShift = 29 },
		"NaN noise":      func(c *ImageConfig) { c.Noise = math.NaN() },
		"clutter over 1": func(c *ImageConfig) { c.Clutter = 1.5 },
		"too large":      func(c *ImageConfig) { c.Rows, c.Cols, c.Channels = 4096, 4096, 2 },
	} {
		cfg := DefaultImages(1, 10)
		mod(&cfg)
		if _, err := NewImages(cfg); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: error %v, want ErrConfig", name, err)
		}
	}
}
