package data

import (
	"errors"
	"math"
	"slices"
	"testing"
)

// tinySet is 5 samples of 2x3 pixels, sample i holding bytes 10*i .. 10*i+5 and label i%3.
func tinySet() *Dataset {
	d := &Dataset{Name: "tiny", SampleShape: []int{2, 3}, NumClasses: 3}
	for i := range 5 {
		for j := range 6 {
			d.Pixels = append(d.Pixels, uint8(10*i+j))
		}
		d.Labels = append(d.Labels, uint8(i%3))
	}
	return d
}

func TestSubsetAndSplitAreClippedViews(t *testing.T) {
	d := tinySet()
	if d.Len() != 5 || d.SampleSize() != 6 {
		t.Fatalf("Len %d SampleSize %d, want 5 and 6", d.Len(), d.SampleSize())
	}
	tests := []struct {
		name     string
		set      *Dataset
		first, n int // the view holds samples first .. first+n-1 of d
		wantName string
	}{
		{"subset", d.Subset(2), 0, 2, "tiny"},
		{"subset beyond length", d.Subset(99), 0, 5, "tiny"},
		{"subset empty", d.Subset(0), 0, 0, "tiny"},
		{"train", first(d.Split(2)), 0, 3, "tiny"},
		{"val", second(d.Split(2)), 3, 2, "tiny-val"},
		{"all val", second(d.Split(5)), 0, 5, "tiny-val"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.set
			if s.Len() != tc.n || s.Name != tc.wantName || s.NumClasses != 3 || s.SampleSize() != 6 {
				t.Fatalf("got %q with %d samples, %d classes, size %d", s.Name, s.Len(), s.NumClasses, s.SampleSize())
			}
			if !slices.Equal(s.Pixels, d.Pixels[tc.first*6:(tc.first+tc.n)*6]) || !slices.Equal(s.Labels, d.Labels[tc.first:tc.first+tc.n]) {
				t.Fatal("view holds other samples than expected")
			}
			if tc.n > 0 && &s.Pixels[0] != &d.Pixels[tc.first*6] {
				t.Error("view copied the pixels instead of sharing them")
			}
			if cap(s.Pixels) != len(s.Pixels) || cap(s.Labels) != len(s.Labels) {
				t.Error("view capacity reaches into the next samples")
			}
		})
	}
}

func first(a, _ *Dataset) *Dataset  { return a }
func second(_, b *Dataset) *Dataset { return b }

func TestSubsetAndSplitPanicOnBadCounts(t *testing.T) {
	for name, f := range map[string]func(){
		"subset -1": func() { tinySet().Subset(-1) },
		"split -1":  func() { tinySet().Split(-1) },
		"split 6":   func() { tinySet().Split(6) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			f()
		})
	}
}

func TestGatherNormalizes(t *testing.T) {
	d := tinySet()
	idx := []int32{4, 0, 4, 2}
	for _, norm := range []Normalize{{}, {Mean: 0.5, Std: 0.25}, MNISTNormalize, {Mean: 3, Std: 0}} {
		x := make([]float32, len(idx)*6)
		labels := make([]int32, len(idx))
		if err := d.Gather(idx, x, labels, norm); err != nil {
			t.Fatal(err)
		}
		var maxDiff float64
		for k, i := range idx {
			if labels[k] != int32(d.Labels[i]) {
				t.Errorf("%v: labels[%d] = %d, want %d", norm, k, labels[k], d.Labels[i])
			}
			for j := range 6 {
				want := float64(d.Pixels[int(i)*6+j]) / 255
				if norm.Std != 0 {
					want = (want - float64(norm.Mean)) / float64(norm.Std)
				}
				maxDiff = max(maxDiff, math.Abs(float64(x[k*6+j])-want))
			}
		}
		if maxDiff > 1e-6 {
			t.Errorf("%v: max difference from float64 reference %g, want <= 1e-6", norm, maxDiff)
		}
	}
}

func TestGatherRejectsBadArgumentsWithoutWriting(t *testing.T) {
	d := tinySet()
	tests := []struct {
		name    string
		idx     []int32
		xLen    int
		nLabels int
		want    error
	}{
		{"negative index", []int32{0, -1}, 12, 2, ErrIndexOutOfRange},
		{"index = Len", []int32{5, 0}, 12, 2, ErrIndexOutOfRange},
		{"x too short", []int32{0, 1}, 11, 2, ErrBufferLength},
		{"x too long", []int32{0, 1}, 13, 2, ErrBufferLength},
		{"labels too short", []int32{0, 1}, 12, 1, ErrBufferLength},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := make([]float32, tc.xLen)
			labels := make([]int32, tc.nLabels)
			for i := range x {
				x[i] = -7
			}
			for _, gather := range []func() error{
				func() error { return d.Gather(tc.idx, x, labels, Normalize{}) },
				func() error { return d.GatherShifted(tc.idx, x, labels, Normalize{}, Augment{MaxShift: 1}, 0) },
			} {
				if err := gather(); !errors.Is(err, tc.want) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				for _, v := range x {
					if v != -7 {
						t.Fatal("x was written before the arguments were checked")
					}
				}
			}
		})
	}
}

func TestGatherDoesNotAllocate(t *testing.T) {
	d := tinySet()
	idx := []int32{1, 3, 0}
	x := make([]float32, len(idx)*6)
	labels := make([]int32, len(idx))
	aug := Augment{MaxShift: 1, Seed: 3}
	allocs := testing.AllocsPerRun(50, func() {
		if err := d.Gather(idx, x, labels, MNISTNormalize); err != nil {
			t.Fatal(err)
		}
		if err := d.GatherShifted(idx, x, labels, MNISTNormalize, aug, 2); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per Gather+GatherShifted, want 0", allocs)
	}
}

func TestShiftIsDeterministicAndCoversTheRange(t *testing.T) {
	aug := Augment{MaxShift: 2, Seed: 11}
	seen := map[[2]int]int{}
	changed := 0
	for i := range int32(2000) {
		dy, dx := aug.Shift(i, 1)
		if dy2, dx2 := aug.Shift(i, 1); dy2 != dy || dx2 != dx {
			t.Fatalf("sample %d: shift (%d,%d) then (%d,%d)", i, dy, dx, dy2, dx2)
		}
		if dy < -2 || dy > 2 || dx < -2 || dx > 2 {
			t.Fatalf("sample %d: shift (%d,%d) beyond MaxShift 2", i, dy, dx)
		}
		seen[[2]int{dy, dx}]++
		if ny, nx := aug.Shift(i, 2); ny != dy || nx != dx {
			changed++
		}
	}
	// 25 equally likely shifts over 2000 samples: each expected 80 times.
	if len(seen) != 25 {
		t.Errorf("saw %d distinct shifts, want all 25", len(seen))
	}
	for s, n := range seen {
		if n < 40 || n > 130 {
			t.Errorf("shift %v drawn %d times, want about 80", s, n)
		}
	}
	if changed < 1800 {
		t.Errorf("only %d of 2000 samples moved differently in the next epoch", changed)
	}
	if dy, dx := (Augment{Seed: 5}).Shift(3, 1); dy != 0 || dx != 0 {
		t.Errorf("MaxShift 0 shifted by (%d,%d)", dy, dx)
	}
}

func TestGatherShiftedMovesPixels(t *testing.T) {
	// One 4x5 sample with distinct bytes, gathered with every shift the seed produces.
	d := &Dataset{Name: "grid", SampleShape: []int{4, 5}, NumClasses: 1, Labels: []uint8{0}}
	for p := range 20 {
		d.Pixels = append(d.Pixels, uint8(p+1))
	}
	x := make([]float32, 20)
	labels := make([]int32, 1)
	for epoch := range 30 {
		aug := Augment{MaxShift: 2, Seed: 9}
		if err := d.GatherShifted([]int32{0}, x, labels, Normalize{}, aug, epoch); err != nil {
			t.Fatal(err)
		}
		dy, dx := aug.Shift(0, epoch)
		for r := range 4 {
			for c := range 5 {
				want := 0.0
				if sr, sc := r-dy, c-dx; sr >= 0 && sr < 4 && sc >= 0 && sc < 5 {
					want = float64(d.Pixels[sr*5+sc]) / 255
				}
				if got := float64(x[r*5+c]); math.Abs(got-want) > 1e-7 {
					t.Fatalf("epoch %d shift (%d,%d): x[%d][%d] = %g, want %g", epoch, dy, dx, r, c, got, want)
				}
			}
		}
	}
	if err := (&Dataset{SampleShape: []int{6}, Pixels: make([]uint8, 6), Labels: []uint8{0}}).GatherShifted([]int32{0}, x[:6], labels, Normalize{}, Augment{}, 0); err == nil {
		t.Error("1-D samples shifted without error")
	}
}

func BenchmarkGatherMNISTBatch(b *testing.B) {
	d := &Dataset{Name: "bench", SampleShape: []int{28, 28}, NumClasses: 10, Pixels: make([]uint8, 1000*784), Labels: make([]uint8, 1000)}
	for i := range d.Pixels {
		d.Pixels[i] = uint8(i * 31)
	}
	idx := make([]int32, 128)
	for i := range idx {
		idx[i] = int32(i * 7)
	}
	x := make([]float32, len(idx)*784)
	labels := make([]int32, len(idx))
	b.SetBytes(int64(len(idx) * 784))
	for b.Loop() {
		if err := d.Gather(idx, x, labels, MNISTNormalize); err != nil {
			b.Fatal(err)
		}
	}
}
