package actors_test

import (
	"context"
	"fmt"

	"github.com/troupe-ml/troupe/actors"
	"github.com/troupe-ml/troupe/compute"
)

// A whole training run in this process: the default job cut down to a few steps, with a hook
// that sees every step.
func ExampleRun() {
	job := actors.DefaultJob()
	job.Model = compute.MLP(784, []int{64}, 10)
	job.Data.TrainLimit = 1000 // ten steps of 100 per epoch
	job.Data.TestLimit = 1000
	job.Train.Epochs = 2
	job.Train.BatchSize = 100
	job.Checkpoint.Dir = "" // no checkpoints

	steps := 0
	res, err := actors.Run(context.Background(), job, actors.Options{
		OnStep: func(s *actors.StepDone) { steps++ },
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(steps, "steps,", res.Samples, "samples, test accuracy above 0.5:", res.TestAccuracy > 0.5)
	// Output: 20 steps, 2000 samples, test accuracy above 0.5: true
}
