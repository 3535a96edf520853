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

// BenchmarkGPTStep is one training step (forward, backward) of the default language model's
// shape, examples/gpt-go.yaml: 4 layers, 4 heads, 128 wide, windows of 128 bytes, 16 windows.
func BenchmarkGPTStep(b *testing.B) {
	for _, recompute := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "recompute"}[recompute], func(b *testing.B) {
			m, err := NewModel(ModelSpec{GPT: &GPTSpec{Layers: 4, Heads: 4, Embedding: 128, BlockSize: 128, Vocab: 256}}, 1)
			if err != nil {
				b.Fatal(err)
			}
			m.SetRecompute(recompute)
			const n = 16
			batch := tokenBatch(rand.New(rand.NewPCG(1, 2)), m, n)
			m.TrainBatch(batch, 1.0/n, 0)
			b.ResetTimer()
			for i := range b.N {
				m.TrainBatch(batch, 1.0/n, uint64(i))
			}
			b.ReportMetric(float64(b.N*n*128)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}
