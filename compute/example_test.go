package compute_test

import (
	"fmt"

	"github.com/troupe-ml/troupe/compute"
)

// Build the default MNIST model, take one training step on a batch of two
// blank images with plain SGD, and predict.
func Example() {
	model, err := compute.NewModel(compute.MLP(784, []int{512, 512}, 10), 1)
	if err != nil {
		panic(err)
	}
	fmt.Println("parameters:", model.NumParams())

	batch := compute.Batch{X: make([]float32, 2*784), N: 2, Labels: []int32{3, 7}}
	if err := model.CheckBatch(batch); err != nil { // data from outside: check at the boundary
		panic(err)
	}
	lossSum, _ := model.TrainBatch(batch, 1.0/float32(batch.N), 0)
	params, grads := model.Params(), model.Grads()
	for i := range params {
		params[i] -= 0.1 * grads[i]
	}
	fmt.Printf("loss before the step: %.3f\n", lossSum/float64(batch.N))

	logits := model.Predict(batch.X, batch.N)
	fmt.Println("logits shape:", logits.Shape)
	// Output:
	// parameters: 669706
	// loss before the step: 2.303
	// logits shape: [2 10]
}

func ExampleModelSpec_Validate() {
	spec := compute.ModelSpec{
		Input: []int{1, 28, 28},
		Layers: []compute.LayerSpec{
			{Type: "conv2d", Filters: 8, Kernel: 3, Padding: 1},
			{Type: "relu"},
			{Type: "maxpool2d", Size: 2},
			{Type: "conv2d", Filters: 16},
		},
	}
	fmt.Println(spec.Validate())
	// Output: compute: invalid model spec: layer 3 (conv2d): kernel must be > 0, got 0
}
