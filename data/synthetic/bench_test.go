package synthetic

import (
	"testing"

	"github.com/troupe-ml/troupe/data"
)

// benchGather gathers batches of 64 consecutive samples and reports the cost per sample.
func benchGather(b *testing.B, src Source) {
	const batchSize = 64
	idx := make([]int32, batchSize)
	x := make([]float32, batchSize*src.SampleSize())
	labels := make([]int32, batchSize)
	next := 0
	b.ReportAllocs()
	for b.Loop() {
		for k := range idx {
			idx[k] = int32(next)
			next = (next + 1) % src.Len()
		}
		if err := src.Gather(idx, x, labels, data.MNISTNormalize); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*batchSize), "ns/sample")
}

func BenchmarkTabularGather(b *testing.B) {
	g, err := NewTabular(DefaultTabular(1, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	benchGather(b, g)
}

func BenchmarkImagesGather(b *testing.B) {
	g, err := NewImages(DefaultImages(1, 1<<20))
	if err != nil {
		b.Fatal(err)
	}
	benchGather(b, g)
}

// BenchmarkMNISTReadGather is the baseline: gathering real MNIST samples from memory.
func BenchmarkMNISTReadGather(b *testing.B) {
	train, _ := loadMNIST(b)
	benchGather(b, &datasetSource{train})
}

func BenchmarkModelGather(b *testing.B) {
	train, _ := loadMNIST(b)
	m, err := Fit(train, FitConfig{Rank: 30, Components: 1, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	benchGather(b, m)
}

// BenchmarkFitMNIST times one fit on the 60000 training images; run with -benchtime 1x and
// GOMAXPROCS=1 for the one-core figure.
func BenchmarkFitMNIST(b *testing.B) {
	train, _ := loadMNIST(b)
	for _, comps := range []int{1, 3} {
		b.Run(map[int]string{1: "gaussian", 3: "mixture3"}[comps], func(b *testing.B) {
			for b.Loop() {
				if _, err := Fit(train, FitConfig{Rank: 30, Components: comps, Seed: 1}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// datasetSource adapts a data.Dataset to the benchmark's needs.
type datasetSource struct{ *data.Dataset }

func (d *datasetSource) Shape() []int                     { return d.SampleShape }
func (d *datasetSource) NumClasses() int                  { return d.Dataset.NumClasses }
func (d *datasetSource) Sample(int, []uint8) (int, error) { panic("unused") }
