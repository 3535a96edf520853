package parallel

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFor checks that every chunk runs exactly once, with many
// products handed to the workers at once, and that the workers go away
// once idle.
func TestFor(t *testing.T) {
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for round := range 50 {
				chunks := 1 + (g+round)%7
				counts := make([]atomic.Int32, chunks)
				For(chunks, 1+g%3, func(i int) {
					counts[i].Add(1)
					if round%10 == 0 {
						time.Sleep(50 * time.Microsecond)
					}
				})
				for i := range counts {
					if n := counts[i].Load(); n != 1 {
						t.Errorf("chunk %d of %d ran %d times", i, chunks, n)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for team.alive.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still alive long after the last product", team.alive.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestForAllocatesNothing checks that, with a function value made once,
// calls after the first allocate nothing, whether or not the workers got
// to run a chunk.
func TestForAllocatesNothing(t *testing.T) {
	var sum [8]atomic.Int64
	run := func(chunk int) { sum[chunk].Add(1) }
	For(len(sum), 1, run)
	if allocs := testing.AllocsPerRun(100, func() { For(len(sum), 1, run) }); allocs != 0 {
		t.Errorf("For allocates %.1f times per call", allocs)
	}
	for i := range sum {
		if got := sum[i].Load(); got != 102 {
			t.Errorf("chunk %d ran %d times in 102 calls", i, got)
		}
	}
}
