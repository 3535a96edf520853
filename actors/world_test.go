package actors

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/cluster/collective"
	"github.com/troupe-ml/troupe/compute"
)

// runWorld runs job on size ranks of one static world, each rank a Run of its own (its own actor
// system, its own collective endpoint on 127.0.0.1), all in this process.
func runWorld(t testing.TB, job Job, size int, opts Options) []*Result {
	t.Helper()
	jobs := make([]Job, size)
	for i := range jobs {
		jobs[i] = job
	}
	return runWorldOf(t, jobs, opts)
}

// runWorldOf is runWorld with rank i running jobs[i]: the same job with local differences.
func runWorldOf(t testing.TB, jobs []Job, opts Options) []*Result {
	t.Helper()
	size := len(jobs)
	eps := make([]*collective.Endpoint, size)
	addrs := make([]string, size)
	for i := range eps {
		ep, err := collective.Listen("127.0.0.1:0", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ep.Close()
		eps[i], addrs[i] = ep, ep.Addr()
	}
	results := make([]*Result, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for r := range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := opts
			o.World = &StaticWorld{Rank: r, Addrs: addrs, Endpoint: eps[r], Generation: 1}
			results[r], errs[r] = Run(context.Background(), jobs[r], o)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return results
}

// DESIGN: "the learning dynamics do not depend on how many nodes happen to be alive". Three
// ranks splitting every global batch follow the single-process run step by step, up to the
// order of float additions, and end with identical parameters on every rank.
func TestThreeRanksFollowOneRank(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Model = compute.MLP(784, []int{32}, 10) // no dropout: each rank would draw its own masks
	job.Checkpoint.Dir = ""
	job.Train.Epochs = 2
	one := mustRun(t, context.Background(), job, Options{})
	// Every layer's gradient goes ahead in a bucket of its own, so the buckets' reductions are
	// checked against the one-process run too.
	three := runWorld(t, job, 3, Options{bucketValues: 1})

	// Per-step losses: float32 gradients summed in another order drift apart slowly; the run
	// measured under 1e-7 relative over its 48 steps. 1e-5 leaves a hundredfold margin and stays
	// far below what a wrong split of the batch gives (another sample set moves the loss by 1e-2).
	const tol = 1e-5
	worst := 0.0
	for _, res := range three {
		if len(res.Losses) != len(one.Losses) {
			t.Fatalf("%d steps on a rank, %d alone", len(res.Losses), len(one.Losses))
		}
		for i, l := range res.Losses {
			d := math.Abs(l-one.Losses[i]) / max(1, math.Abs(one.Losses[i]))
			worst = max(worst, d)
			if d > tol {
				t.Fatalf("step %d: loss %v on 3 ranks, %v alone", i, l, one.Losses[i])
			}
		}
		if res.ParamsSHA256 != three[0].ParamsSHA256 {
			t.Fatalf("ranks end with different parameters: %s vs %s", res.ParamsSHA256, three[0].ParamsSHA256)
		}
		if res.Samples != one.Samples {
			t.Fatalf("%d samples counted on 3 ranks, %d alone", res.Samples, one.Samples)
		}
	}
	if math.Abs(three[0].TestAccuracy-one.TestAccuracy) > 0.01 {
		t.Fatalf("test accuracy %v on 3 ranks, %v alone", three[0].TestAccuracy, one.TestAccuracy)
	}
	t.Logf("largest relative loss difference over %d steps: %.2e", len(one.Losses), worst)
}

// TestBucketsSentAheadChangeNoBit runs two ranks with the gradient of every layer sent ahead as
// its own bucket, and two ranks with none sent ahead: a sum of two values does not depend on
// which segment of the ring it falls in, so both must end with the same parameters bit for bit
// and the same per-step losses. The steps' reports show how many reductions each used.
func TestBucketsSentAheadChangeNoBit(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Model = compute.MLP(784, []int{32, 16}, 10) // three dense layers
	job.Checkpoint.Dir = ""
	job.Train.Epochs = 1
	var mu sync.Mutex
	counts := map[int]map[int]int{} // bucket size -> reductions per step -> steps
	run := func(bucket int) []*Result {
		counts[bucket] = map[int]int{}
		return runWorld(t, job, 2, Options{bucketValues: bucket, OnStep: func(s *StepDone) {
			mu.Lock()
			counts[bucket][s.Buckets]++
			mu.Unlock()
		}})
	}
	ahead, whole := run(1), run(-1)
	for r := range ahead {
		if ahead[r].ParamsSHA256 != whole[r].ParamsSHA256 {
			t.Fatalf("rank %d: parameters %s with buckets sent ahead, %s without", r, ahead[r].ParamsSHA256, whole[r].ParamsSHA256)
		}
		for i := range whole[r].Losses {
			if ahead[r].Losses[i] != whole[r].Losses[i] {
				t.Fatalf("rank %d step %d: loss %v with buckets sent ahead, %v without", r, i, ahead[r].Losses[i], whole[r].Losses[i])
			}
		}
	}
	steps := 2 * int(whole[0].Steps) // both ranks report every step
	if got := counts[1][3]; got != steps {
		t.Errorf("with every layer ahead: %v (reductions per step: steps), want all %d steps in 3", counts[1], steps)
	}
	if got := counts[-1][1]; got != steps {
		t.Errorf("with nothing ahead: %v (reductions per step: steps), want all %d steps in 1", counts[-1], steps)
	}
}
