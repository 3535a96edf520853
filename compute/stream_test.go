package compute

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestTrainBatchStreamingReportsFinishedGradients checks, for models with
// and without convolutions, that every ready(from) call comes when
// Grads()[from:] already holds what the whole step leaves there, that from
// falls to 0 through one call per layer with parameters, that the result
// is TrainBatch's bit for bit, and that an empty batch makes the same calls.
func TestTrainBatchStreamingReportsFinishedGradients(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec ModelSpec
		n    int
	}{
		{"mlp", MLP(784, []int{64, 32}, 10), 16},
		{"cnn", smallCNN(), 4},
		{"every layer", smallNet(), 8},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := mustModel(t, tc.spec, 3)
			b := randomBatch(rand.New(rand.NewPCG(4, 4)), m, tc.n, false)
			m.TrainBatch(b, 1/float32(tc.n), 7)
			want := slices.Clone(m.Grads())
			clear(m.Grads())

			var froms []int
			var early [][]float32
			m.TrainBatchStreaming(b, 1/float32(tc.n), 7, func(from int) {
				froms = append(froms, from)
				early = append(early, slices.Clone(m.Grads()[from:]))
			})
			var layers []int
			for _, f := range m.gradFrom {
				if f >= 0 {
					layers = append([]int{f}, layers...)
				}
			}
			if !slices.Equal(froms, layers) {
				t.Fatalf("ready called with %v, want each layer's start from the last: %v", froms, layers)
			}
			for i, from := range froms {
				if !slices.Equal(early[i], want[from:]) {
					t.Fatalf("at ready(%d) the gradients from there on were not final yet", from)
				}
			}
			if !slices.Equal(m.Grads(), want) {
				t.Fatal("TrainBatchStreaming's gradient differs from TrainBatch's")
			}

			var emptyFroms []int
			m.TrainBatchStreaming(Batch{X: []float32{}, Labels: []int32{}}, 1, 7, func(from int) { emptyFroms = append(emptyFroms, from) })
			if !slices.Equal(emptyFroms, froms) {
				t.Fatalf("an empty batch called ready with %v, a full one with %v", emptyFroms, froms)
			}
		})
	}
}
