package synthetic

import (
	"errors"
	"slices"
	"testing"

	"github.com/troupe-ml/troupe/data"
)

// smallModel fits a model on a materialized image stream: a fitted model for the tests that
// must not depend on MNIST being present.
func smallModel(t testing.TB, fit FitConfig) *Model {
	t.Helper()
	cfg := DefaultImages(11, 3000)
	cfg.Rows, cfg.Cols = 12, 12
	g, err := NewImages(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Fit(g.Materialize(cfg.Len), fit)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// sources are one generator of each kind, small enough for every contract test.
func sources(t testing.TB) map[string]Source {
	t.Helper()
	tab, err := NewTabular(DefaultTabular(3, 1000))
	if err != nil {
		t.Fatal(err)
	}
	img, err := NewImages(DefaultImages(3, 1000))
	if err != nil {
		t.Fatal(err)
	}
	rgb := DefaultImages(3, 1000)
	rgb.Rows, rgb.Cols, rgb.Channels = 16, 8, 3
	col, err := NewImages(rgb)
	if err != nil {
		t.Fatal(err)
	}
	m, err := smallModel(t, FitConfig{Rank: 8, Components: 2, Seed: 5}).WithStream(3, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]Source{"tabular": tab, "images": img, "images-rgb": col, "model": m}
}

// TestGatherContract checks, for every generator, what data.Dataset.Gather promises: samples
// written in idx order through the normalization, every check before any write, and the same
// bytes as Sample and as a Materialize'd Dataset.
func TestGatherContract(t *testing.T) {
	norms := []data.Normalize{{}, data.MNISTNormalize, {Mean: 0.5, Std: 2}}
	for name, src := range sources(t) {
		t.Run(name, func(t *testing.T) {
			size := src.SampleSize()
			if size != shapeSize(src.Shape()) {
				t.Fatalf("SampleSize %d, shape %v", size, src.Shape())
			}
			ds := Materialize(src, name, src.Len())
			if ds.Len() != src.Len() || ds.SampleSize() != size || ds.NumClasses != src.NumClasses() {
				t.Fatalf("materialized %d x %d (%d classes), want %d x %d (%d)", ds.Len(), ds.SampleSize(), ds.NumClasses, src.Len(), size, src.NumClasses())
			}
			idx := []int32{5, 999, 0, 5, 321}
			for _, norm := range norms {
				x := make([]float32, len(idx)*size)
				labels := make([]int32, len(idx))
				if err := src.Gather(idx, x, labels, norm); err != nil {
					t.Fatal(err)
				}
				wx := make([]float32, len(idx)*size)
				wl := make([]int32, len(idx))
				if err := ds.Gather(idx, wx, wl, norm); err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(x, wx) || !slices.Equal(labels, wl) {
					t.Fatalf("norm %+v: Gather differs from the materialized set's Gather", norm)
				}
			}
			one := make([]uint8, size)
			for _, i := range idx {
				l, err := src.Sample(int(i), one)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(one, ds.Pixels[int(i)*size:(int(i)+1)*size]) || l != int(ds.Labels[i]) {
					t.Fatalf("Sample(%d) differs from the materialized sample", i)
				}
				if l < 0 || l >= src.NumClasses() {
					t.Fatalf("label %d of %d classes", l, src.NumClasses())
				}
			}
			if ds.Subset(3).Len() != 3 || Materialize(src, name, 3).Len() != 3 || Materialize(src, name, src.Len()+10).Len() != src.Len() {
				t.Fatal("Materialize does not take the first n samples")
			}
		})
	}
}

// TestGatherErrors checks that a bad call returns the data package's errors and leaves the
// buffers untouched.
func TestGatherErrors(t *testing.T) {
	for name, src := range sources(t) {
		t.Run(name, func(t *testing.T) {
			size := src.SampleSize()
			n := src.Len()
			for _, tc := range []struct {
				name         string
				idx          []int32
				xLen, labLen int
				want         error
			}{
				{"negative index", []int32{0, -1}, 2 * size, 2, data.ErrIndexOutOfRange},
				{"index at Len", []int32{int32(n), 0}, 2 * size, 2, data.ErrIndexOutOfRange},
				{"late bad index", []int32{0, 1, 2, int32(n + 5)}, 4 * size, 4, data.ErrIndexOutOfRange},
				{"short x", []int32{0, 1}, 2*size - 1, 2, data.ErrBufferLength},
				{"long x", []int32{0}, 2 * size, 1, data.ErrBufferLength},
				{"short labels", []int32{0, 1}, 2 * size, 1, data.ErrBufferLength},
			} {
				x := make([]float32, tc.xLen)
				labels := make([]int32, tc.labLen)
				for i := range x {
					x[i] = -7
				}
				for i := range labels {
					labels[i] = -7
				}
				err := src.Gather(tc.idx, x, labels, data.MNISTNormalize)
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: error %v, want %v", tc.name, err, tc.want)
				}
				if slices.ContainsFunc(x, func(v float32) bool { return v != -7 }) || slices.ContainsFunc(labels, func(v int32) bool { return v != -7 }) {
					t.Errorf("%s: buffers written before the error", tc.name)
				}
			}
			if err := src.Gather(nil, nil, nil, data.Normalize{}); err != nil {
				t.Errorf("empty gather: %v", err)
			}
			if _, err := src.Sample(n, make([]uint8, size)); !errors.Is(err, data.ErrIndexOutOfRange) {
				t.Errorf("Sample(Len): %v", err)
			}
			if _, err := src.Sample(-1, make([]uint8, size)); !errors.Is(err, data.ErrIndexOutOfRange) {
				t.Errorf("Sample(-1): %v", err)
			}
			if _, err := src.Sample(0, make([]uint8, size+1)); !errors.Is(err, data.ErrBufferLength) {
				t.Errorf("Sample into a long buffer: %v", err)
			}
		})
	}
}

// TestGatherAllocates checks that Gather allocates nothing.
func TestGatherAllocates(t *testing.T) {
	for name, src := range sources(t) {
		idx := []int32{1, 2, 3, 500, 999, 0, 7, 8}
		x := make([]float32, len(idx)*src.SampleSize())
		labels := make([]int32, len(idx))
		allocs := testing.AllocsPerRun(20, func() {
			if err := src.Gather(idx, x, labels, data.MNISTNormalize); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Gather allocates %.1f times per call", name, allocs)
		}
	}
}

// TestDeterminism checks that a sample depends only on the seed and its index: rebuilt
// generators agree, a sample is the same alone or in any batch, and another seed differs.
func TestDeterminism(t *testing.T) {
	build := func(seed uint64) map[string]Source {
		tab, err := NewTabular(DefaultTabular(seed, 5000))
		if err != nil {
			t.Fatal(err)
		}
		img, err := NewImages(DefaultImages(seed, 5000))
		if err != nil {
			t.Fatal(err)
		}
		fit := FitConfig{Rank: 6, Components: 2, Seed: seed}
		m, err := smallModel(t, fit).WithStream(seed, 5000)
		if err != nil {
			t.Fatal(err)
		}
		return map[string]Source{"tabular": tab, "images": img, "model": m}
	}
	a, b, other := build(1), build(1), build(2)
	for name := range a {
		size := a[name].SampleSize()
		idx := []int32{4999, 17, 17, 0, 2500}
		gather := func(src Source, idx []int32) []float32 {
			x := make([]float32, len(idx)*size)
			if err := src.Gather(idx, x, make([]int32, len(idx)), data.Normalize{}); err != nil {
				t.Fatal(err)
			}
			return x
		}
		xa, xb := gather(a[name], idx), gather(b[name], idx)
		if !slices.Equal(xa, xb) {
			t.Errorf("%s: two generators with one seed differ", name)
		}
		if !slices.Equal(xa[:size], gather(a[name], idx[:1])) || !slices.Equal(xa[size:2*size], xa[2*size:3*size]) {
			t.Errorf("%s: a sample depends on its batch", name)
		}
		if slices.Equal(xa, gather(other[name], idx)) {
			t.Errorf("%s: seeds 1 and 2 give the same samples", name)
		}
		if slices.Equal(xa[3*size:4*size], xa[4*size:]) {
			t.Errorf("%s: samples 0 and 2500 are equal", name)
		}
	}
}
