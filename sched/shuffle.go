package sched

import (
	"math/bits"
	"math/rand/v2"
)

// shuffle permutes order with Fisher-Yates, drawing from a PCG seeded with
// (seed, stream). Only the PCG's raw 64-bit outputs are used: the bounded
// draw and the swap order are defined here so the permutation cannot change
// with the standard library's helpers.
func shuffle(order []int32, seed, stream uint64) {
	src := rand.NewPCG(seed, stream)
	for i := len(order) - 1; i > 0; i-- {
		j := boundedDraw(src, uint64(i)+1)
		order[i], order[j] = order[j], order[i]
	}
}

// boundedDraw returns a uniform value in [0, n) for n > 0 by Lemire's
// multiply-and-reject method: the high word of x*n is uniform once the
// values of x whose low word falls below 2^64 mod n are rejected.
func boundedDraw(src *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(src.Uint64(), n)
	if lo < n { // rejection is only possible here; skip the modulo otherwise
		threshold := -n % n // 2^64 mod n
		for lo < threshold {
			hi, lo = bits.Mul64(src.Uint64(), n)
		}
	}
	return hi
}
