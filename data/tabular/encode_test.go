package tabular

import (
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/troupe-ml/troupe/data"
)

func TestEncoderFitsOnTrainingRowsOnly(t *testing.T) {
	tab := people(t)
	// Training rows 0, 1, 4: ages 17, 29, 45 (mean 91/3), zips 13053, 13068, 14850, sex F, M, F.
	enc, err := Fit(tab, []int{0, 1, 4})
	if err != nil {
		t.Fatal(err)
	}
	wantFeatures := []string{"age", "zip=13053", "zip=13068", "zip=14850", "sex=F", "sex=M"}
	if !slices.Equal(enc.Features, wantFeatures) || enc.Dim() != 6 || enc.NumClasses() != 2 {
		t.Fatalf("features %q, dim %d, classes %d", enc.Features, enc.Dim(), enc.NumClasses())
	}
	m, err := enc.Encode(tab, []int{5, 3, 0})
	if err != nil {
		t.Fatal(err)
	}
	mean := (17.0 + 29 + 45) / 3
	std := math.Sqrt(((17-mean)*(17-mean) + (29-mean)*(29-mean) + (45-mean)*(45-mean)) / 3)
	std32 := func(v float64) float32 { return float32((v - mean) / std) }
	want := []float32{
		std32(61), 0, 0, 1, 1, 0, // Fay: 14850 seen in training
		std32(30), 0, 0, 0, 0, 1, // Dan: zip 14853 unseen -> zeros; age is the fill, 30
		std32(17), 1, 0, 0, 1, 0, // Ann
	}
	if !slices.Equal(m.X, want) {
		t.Errorf("X = %v\nwant %v", m.X, want)
	}
	if !slices.Equal(m.Labels, []int32{0, 0, 1}) || m.Len() != 3 || m.Dim != 6 || m.NumClasses != 2 {
		t.Errorf("labels %v, len %d, dim %d", m.Labels, m.Len(), m.Dim)
	}

	// A table whose age became ranges is not the table the encoder knows.
	cfg := Config{Transforms: []Transform{{Column: "age", Op: OpBins, Edges: []float64{30}}}}
	cfg.Validate()
	binned, _, err := Apply(tab, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := enc.Encode(binned, []int{0}); !errors.Is(err, ErrSchemaMismatch) {
		t.Errorf("encoding a binned table: %v, want ErrSchemaMismatch", err)
	}
	if _, err := Fit(tab, nil); err == nil {
		t.Error("Fit on no rows succeeded")
	}
	if _, err := enc.Encode(tab, []int{6}); err == nil {
		t.Error("Encode of row 6 of 6 succeeded")
	}
}

func TestGatherContract(t *testing.T) {
	tab := people(t)
	train, _, enc, err := EncodeSplit(tab, 0.34, 7)
	if err != nil {
		t.Fatal(err)
	}
	if train.Len() != 4 || train.Dim != enc.Dim() {
		t.Fatalf("train %d rows of %d", train.Len(), train.Dim)
	}
	d := train.Dim
	idx := []int32{3, 0, 3}
	x := make([]float32, len(idx)*d)
	labels := make([]int32, len(idx))
	if err := train.Gather(idx, x, labels); err != nil {
		t.Fatal(err)
	}
	for k, i := range idx {
		if !slices.Equal(x[k*d:(k+1)*d], train.X[int(i)*d:(int(i)+1)*d]) || labels[k] != train.Labels[i] {
			t.Errorf("slot %d differs from row %d", k, i)
		}
	}
	const sentinel = -7
	for _, tc := range []struct {
		name string
		idx  []int32
		x, l int
		want error
	}{
		{"short x", idx, len(x) - 1, 3, data.ErrBufferLength},
		{"long labels", idx, len(x), 4, data.ErrBufferLength},
		{"negative index", []int32{0, -1, 2}, len(x), 3, data.ErrIndexOutOfRange},
		{"index past the end", []int32{0, 1, 4}, len(x), 3, data.ErrIndexOutOfRange},
	} {
		bx, bl := make([]float32, tc.x), make([]int32, tc.l)
		for i := range bx {
			bx[i] = sentinel
		}
		for i := range bl {
			bl[i] = sentinel
		}
		if err := train.Gather(tc.idx, bx, bl); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
		if slices.ContainsFunc(bx, func(v float32) bool { return v != sentinel }) || slices.ContainsFunc(bl, func(v int32) bool { return v != sentinel }) {
			t.Errorf("%s: Gather wrote before failing", tc.name)
		}
	}
	if allocs := testing.AllocsPerRun(100, func() { train.Gather(idx, x, labels) }); allocs != 0 {
		t.Errorf("Gather allocates %v times per call", allocs)
	}
}

func TestSplit(t *testing.T) {
	train, test, err := Split(100, 0.2, 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(train) != 80 || len(test) != 20 || !slices.IsSorted(train) || !slices.IsSorted(test) {
		t.Fatalf("sizes %d, %d", len(train), len(test))
	}
	all := slices.Sorted(slices.Values(append(slices.Clone(train), test...)))
	for i, v := range all {
		if v != i {
			t.Fatalf("train and test do not partition 0..99: %v", all)
		}
	}
	train2, test2, _ := Split(100, 0.2, 42)
	_, test3, _ := Split(100, 0.2, 43)
	if !slices.Equal(train, train2) || !slices.Equal(test, test2) {
		t.Error("same seed, different split")
	}
	if slices.Equal(test, test3) {
		t.Error("seeds 42 and 43 give the same split")
	}
	for _, tc := range []struct {
		n int
		f float64
	}{{100, 0}, {100, 1}, {100, math.NaN()}, {1, 0.5}, {3, 0.1}} {
		if _, _, err := Split(tc.n, tc.f, 1); err == nil {
			t.Errorf("Split(%d, %g) succeeded", tc.n, tc.f)
		}
	}
}
