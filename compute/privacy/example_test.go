package privacy_test

import (
	"fmt"

	"github.com/troupe-ml/troupe/compute/privacy"
)

// DP-SGD on MNIST: 60000 records, expected batch 256, noise multiplier 1.1,
// 60 epochs. The trainer records each global step and reads epsilon when it
// logs; here a whole epoch is recorded at once.
func Example() {
	const n, batch, sigma, delta = 60000, 256, 1.1, 1e-5
	q := float64(batch) / n
	stepsPerEpoch := n / batch

	acct, err := privacy.NewAccountant()
	if err != nil {
		panic(err)
	}
	for epoch := 1; epoch <= 60; epoch++ {
		if err := acct.Step(q, sigma, stepsPerEpoch); err != nil {
			panic(err)
		}
		if epoch == 1 || epoch%20 == 0 {
			eps, order, err := acct.Epsilon(delta)
			if err != nil {
				panic(err)
			}
			fmt.Printf("epoch %2d: epsilon %.3f (order %v)\n", epoch, eps, order)
		}
	}
	classic, _, _ := acct.EpsilonWith(delta, privacy.Classic)
	fmt.Printf("classic conversion: %.3f\n", classic)

	// Planning: the noise that keeps the same run within epsilon 2.
	s, err := privacy.NoiseMultiplier(2, q, 60*stepsPerEpoch, delta)
	if err != nil {
		panic(err)
	}
	fmt.Printf("sigma for epsilon 2: %.3f\n", s)
	// Output:
	// epoch  1: epsilon 0.740 (order 13)
	// epoch 20: epsilon 1.463 (order 12)
	// epoch 40: epsilon 2.087 (order 9.5)
	// epoch 60: epsilon 2.594 (order 8.1)
	// classic conversion: 3.006
	// sigma for epsilon 2: 1.294
}
