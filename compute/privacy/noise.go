package privacy

import (
	"fmt"
	"math"
)

// Bounds of the noise multiplier search: below sigmaMin every realistic run
// is far past any useful epsilon, and above sigmaMax the RDP is so small that
// the order grid, not the noise, sets epsilon.
const (
	sigmaMin = 1e-3
	sigmaMax = 1e4
	sigmaTol = 1e-6 // relative width at which bisection stops
)

// NoiseMultiplier returns the smallest noise multiplier (to a relative 1e-6)
// for which steps Poisson-subsampled Gaussian steps at rate q stay within
// targetEps at delta, under DefaultOrders and the Improved conversion, the
// accounting an Accountant made with NewAccountant() does. The value
// returned always meets the target; one a hair smaller may not.
//
// The search is a bisection on log(sigma): epsilon only falls as sigma grows,
// because more noise is a post-processing of less. A target below what the
// order grid can certify even with vanishing RDP (about 0.01 at delta 1e-5)
// is reported as an error.
func NoiseMultiplier(targetEps, q float64, steps int, delta float64) (float64, error) {
	if math.IsNaN(targetEps) || math.IsInf(targetEps, 0) || targetEps <= 0 {
		return 0, fmt.Errorf("privacy: target epsilon %v must be finite and > 0", targetEps)
	}
	if math.IsNaN(q) || q <= 0 || q > 1 {
		return 0, fmt.Errorf("privacy: sampling rate q=%v must lie in (0, 1]", q)
	}
	if steps < 1 {
		return 0, fmt.Errorf("privacy: step count %d must be >= 1", steps)
	}
	if err := checkDelta(delta); err != nil {
		return 0, err
	}
	orders := DefaultOrders()
	total := make([]float64, len(orders))
	epsAt := func(sigma float64) (float64, error) {
		per, err := RDP(q, sigma, orders)
		if err != nil {
			return 0, err
		}
		for i, r := range per {
			total[i] = float64(steps) * r
		}
		e, _, err := EpsilonFromRDP(orders, total, delta, Improved)
		return e, err
	}
	// Bracket: eps(lo) > target >= eps(hi).
	hi := 1.0
	e, err := epsAt(hi)
	if err != nil {
		return 0, err
	}
	lo := hi
	if e > targetEps {
		for e > targetEps {
			lo = hi
			if hi *= 2; hi > sigmaMax {
				return 0, fmt.Errorf("privacy: epsilon %v is out of reach at delta=%v with these orders: even sigma=%v gives more", targetEps, delta, sigmaMax)
			}
			if e, err = epsAt(hi); err != nil {
				return 0, err
			}
		}
	} else {
		for e <= targetEps {
			hi = lo
			if lo /= 2; lo < sigmaMin {
				return hi, nil
			}
			if e, err = epsAt(lo); err != nil {
				return 0, err
			}
		}
	}
	for hi/lo-1 > sigmaTol {
		mid := math.Sqrt(lo * hi)
		e, err := epsAt(mid)
		if err != nil {
			return 0, err
		}
		if e > targetEps {
			lo = mid
		} else {
			hi = mid
		}
	}
	return hi, nil
}
