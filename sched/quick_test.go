package sched

import (
	"math/rand"
	"testing"
	"testing/quick"
)

// obviousBounds deals a batch of n samples to the ranks one by one, round
// robin, then lays the ranks' shares out in rank order: obviously balanced,
// lower ranks first, and obviously contiguous. It returns each rank's [lo, hi).
func obviousBounds(n, ranks int) [][2]int {
	share := make([]int, ranks)
	for i := range n {
		share[i%ranks]++
	}
	bounds := make([][2]int, ranks)
	lo := 0
	for r, s := range share {
		bounds[r] = [2]int{lo, lo + s}
		lo += s
	}
	return bounds
}

func TestRankBoundsMatchesObvious(t *testing.T) {
	property := func(n uint16, ranks uint8) bool {
		r := int(ranks) + 1
		for rank, want := range obviousBounds(int(n), r) {
			if lo, hi := RankBounds(int(n), r, rank); lo != want[0] || hi != want[1] {
				t.Logf("RankBounds(%d, %d, %d) = [%d, %d), want %v", n, r, rank, lo, hi, want)
				return false
			}
		}
		return true
	}
	if err := quick.Check(property, &quick.Config{MaxCount: 500, Rand: rand.New(rand.NewSource(1))}); err != nil {
		t.Fatal(err)
	}
}

// TestEpochCoverageProperty draws random plans and world sizes and checks
// that each epoch covers every sample once, split evenly among the ranks.
func TestEpochCoverageProperty(t *testing.T) {
	property := func(seed uint64, samples, batch uint16, ranks uint8, epoch uint8) bool {
		plan := SamplePlan{Seed: seed, NumSamples: 1 + int(samples)%3000}
		plan.GlobalBatch = 1 + int(batch)%plan.NumSamples
		if err := epochCoverage(plan, int(epoch), 1+int(ranks)); err != nil {
			t.Logf("%+v, epoch %d, %d ranks: %v", plan, epoch, 1+int(ranks), err)
			return false
		}
		return true
	}
	if err := quick.Check(property, &quick.Config{MaxCount: 200, Rand: rand.New(rand.NewSource(2))}); err != nil {
		t.Fatal(err)
	}
}
