package sched_test

import (
	"fmt"

	"github.com/troupe-ml/troupe/sched"
)

// Ten samples in batches of four make three steps per epoch, the last one
// holding the remainder. A world of three ranks splits each batch into
// contiguous parts, the lower ranks taking the extra samples.
func ExampleRankSlice() {
	plan := sched.SamplePlan{Seed: 7, NumSamples: 10, GlobalBatch: 4}
	if err := plan.Validate(); err != nil {
		panic(err)
	}
	const ranks = 3
	order := plan.Order(0)
	fmt.Println("order", order)
	for step := range int64(plan.StepsPerEpoch()) {
		batch := plan.BatchIndices(order, step)
		fmt.Printf("step %d batch %v:", step, batch)
		for rank := range ranks {
			fmt.Printf(" rank%d=%v", rank, sched.RankSlice(batch, ranks, rank))
		}
		fmt.Println()
	}
	next := sched.Cursor{Step: 3}
	fmt.Printf("step %d opens epoch %d\n", next.Step, next.Epoch(plan))
	// Output:
	// order [7 8 6 4 3 5 1 0 9 2]
	// step 0 batch [7 8 6 4]: rank0=[7 8] rank1=[6] rank2=[4]
	// step 1 batch [3 5 1 0]: rank0=[3 5] rank1=[1] rank2=[0]
	// step 2 batch [9 2]: rank0=[9] rank1=[2] rank2=[]
	// step 3 opens epoch 1
}
