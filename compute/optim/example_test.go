package optim_test

import (
	"fmt"

	"github.com/troupe-ml/troupe/compute/optim"
)

// A training loop asks the schedule for each step's rate and hands it, with
// the averaged gradient, to the optimizer.
func Example() {
	cfg := optim.Config{Name: optim.SGD, LR: 0.2, Schedule: optim.Schedule{Kind: optim.Cosine, Warmup: 2}}
	opt, err := optim.New(cfg, 1)
	if err != nil {
		panic(err)
	}
	x := []float32{4} // minimise x*x, whose gradient is 2x
	grad := make([]float32, 1)
	const steps = 6
	for step := range steps {
		lr := cfg.Schedule.LR(cfg.LR, step, steps)
		grad[0] = 2 * x[0]
		opt.Step(x, grad, lr)
		fmt.Printf("step %d lr %.3f x %.4f\n", step, lr, x[0])
	}
	// Output:
	// step 0 lr 0.100 x 3.2000
	// step 1 lr 0.200 x 1.9200
	// step 2 lr 0.200 x 1.1520
	// step 3 lr 0.171 x 0.7587
	// step 4 lr 0.100 x 0.6069
	// step 5 lr 0.029 x 0.5714
}
