package compute

import (
	"math/rand/v2"
	"testing"
)

// benchmarkTrainStep times TrainBatch (forward and backward, no optimizer)
// at batch 128 and reports samples per second.
func benchmarkTrainStep(b *testing.B, spec ModelSpec) {
	const n = 128
	m := mustModel(b, spec, 1)
	batch := randomBatch(rand.New(rand.NewPCG(1, 1)), m, n, false)
	m.TrainBatch(batch, 1.0/n, 0)
	var step uint64
	for b.Loop() {
		step++
		m.TrainBatch(batch, 1.0/n, step)
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
}

func BenchmarkTrainStepMLP(b *testing.B) { benchmarkTrainStep(b, MLP(784, []int{512, 512}, 10)) }

func BenchmarkTrainStepCNN(b *testing.B) { benchmarkTrainStep(b, smallCNN()) }
