package actors

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/checkpoint"
	"github.com/troupe-ml/troupe/cluster/collective"
	"github.com/troupe-ml/troupe/compute/optim"
)

// A sharded world of three follows the unsharded world of three: the same per-step losses within
// 1e-5 relative over 200 steps of the GPT (AdamW, clipping, weight decay on matrices only), one
// parameter digest on every rank, a third of the optimizer state per rank, and a whole checkpoint
// whose optimizer state is the unsharded run's.
func TestShardedOptimizerFollowsUnsharded(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := textJob(t)
	job.Data.TrainLimit = 3200   // 200 steps
	job.Optimizer.ClipNorm = 0.5 // clips often: the world's norm must be the unsharded one
	run := func(sharded bool) ([]*Result, *checkpoint.Snapshot) {
		j := job
		j.Train.ShardOptimizer = sharded
		j.Checkpoint = CheckpointSpec{Dir: t.TempDir(), EverySteps: 50, Keep: 2}
		res := runWorld(t, j, 3, Options{})
		snap, _, _, err := checkpoint.NewManager(mustStore(t, j.Checkpoint.Dir), 2).LoadLatest()
		if err != nil {
			t.Fatal(err)
		}
		return res, snap
	}
	plain, plainSnap := run(false)
	sharded, shardSnap := run(true)
	if len(plain[0].Losses) != 200 {
		t.Fatalf("%d steps, want 200", len(plain[0].Losses))
	}
	worst := 0.0
	for r, res := range sharded {
		for i, l := range res.Losses {
			d := math.Abs(l-plain[0].Losses[i]) / math.Abs(plain[0].Losses[i])
			worst = max(worst, d)
			if d > 1e-5 {
				t.Fatalf("rank %d step %d: loss %v sharded, %v not", r, i, l, plain[0].Losses[i])
			}
		}
		if res.ParamsSHA256 != sharded[0].ParamsSHA256 {
			t.Fatalf("sharded ranks end with different parameters: %s vs %s", res.ParamsSHA256, sharded[0].ParamsSHA256)
		}
		third := plain[r].OptimizerStateBytes / 3
		if b := res.OptimizerStateBytes; b < third-8 || b > third+8 {
			t.Errorf("rank %d holds %d bytes of optimizer state sharded, %d unsharded: want a third", r, b, plain[r].OptimizerStateBytes)
		}
	}
	t.Logf("largest relative loss difference over %d steps: %.2e; optimizer state per rank %d bytes sharded, %d not",
		len(plain[0].Losses), worst, sharded[0].OptimizerStateBytes, plain[0].OptimizerStateBytes)

	// The final checkpoint is whole: the same optimizer state, up to the rounding drift.
	if shardSnap.Step != 200 || shardSnap.Optimizer.Step != plainSnap.Optimizer.Step || len(shardSnap.Optimizer.Buffers) != len(plainSnap.Optimizer.Buffers) {
		t.Fatalf("checkpoints at step %d/%d, optimizer step %d/%d", shardSnap.Step, plainSnap.Step, shardSnap.Optimizer.Step, plainSnap.Optimizer.Step)
	}
	for b, want := range plainSnap.Optimizer.Buffers {
		if d := relDiff(shardSnap.Optimizer.Buffers[b], want); d > 1e-3 {
			t.Errorf("optimizer buffer %d of the sharded checkpoint is %.2e from the unsharded one", b, d)
		}
	}
}

// relDiff is |a-b| / |b| in the L2 norm.
func relDiff(a, b []float32) float64 {
	var num, den float64
	for i := range b {
		d := float64(a[i]) - float64(b[i])
		num += d * d
		den += float64(b[i]) * float64(b[i])
	}
	return math.Sqrt(num / max(den, 1e-300))
}

func TestPlanRecut(t *testing.T) {
	r := func(lo, hi int) optim.Range { return optim.Range{Lo: lo, Hi: hi} }
	for _, tc := range []struct {
		name   string
		holds  []holding
		pieces []piece
		lost   []optim.Range
		ahead  int
	}{
		{"same layout", []holding{{0, 4, 7}, {4, 10, 7}}, []piece{{0, 0, 4}, {1, 4, 10}}, nil, 0},
		{"a joiner holds nothing", []holding{{0, 10, 7}, {0, 0, -1}}, []piece{{0, 0, 10}}, nil, 0},
		{"a killed member's slice", []holding{{0, 3, 7}, {6, 10, 7}}, []piece{{0, 0, 3}, {1, 6, 10}}, []optim.Range{r(3, 6)}, 0},
		{"stale and ahead", []holding{{0, 5, 6}, {5, 10, 8}, {0, 10, 7}}, []piece{{2, 0, 10}}, nil, 0},
		{"exact first, then one step ahead", []holding{{0, 6, 8}, {4, 10, 7}}, []piece{{1, 4, 10}, {0, 0, 4}}, nil, 4},
		{"overlaps go once", []holding{{0, 6, 7}, {2, 10, 7}}, []piece{{0, 0, 6}, {1, 6, 10}}, nil, 0},
		{"nothing", []holding{{0, 0, -1}}, nil, []optim.Range{r(0, 10)}, 0},
	} {
		p := planRecut(tc.holds, 7, 10)
		if !reflect.DeepEqual(p.pieces, tc.pieces) || !reflect.DeepEqual(p.lost, tc.lost) || p.ahead != tc.ahead {
			t.Errorf("%s: pieces %v lost %v ahead %d, want %v %v %d", tc.name, p.pieces, p.lost, p.ahead, tc.pieces, tc.lost, tc.ahead)
		}
	}
}

// A re-cut over a real ring of three: from the slices of a world of two plus a joiner to the
// slices of three, exactly; then with one slice lost, filled with zero momenta and the mean of
// the surviving squares of each tensor.
func TestRecutOverARing(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // after the endpoints' cleanups
	const n = 3001
	spec := &shardSpec{n: n, buffers: 2, squares: []int{1}, groups: []optim.Range{{Lo: 0, Hi: 1000}, {Lo: 1000, Hi: n}}}
	whole := [][]float32{make([]float32, n), make([]float32, n)}
	for i := range n {
		whole[0][i], whole[1][i] = float32(i)-1500, float32(i%1000)+1
	}
	old := shardsOf(n, 2)
	slice := func(r optim.Range) [][]float32 { return [][]float32{whole[0][r.Lo:r.Hi], whole[1][r.Lo:r.Hi]} }
	targets := shardsOf(n, 3)

	type in struct {
		h    holding
		bufs [][]float32
	}
	recutAll := func(ins []in) []recutResult {
		t.Helper()
		rings := connectRing(t, len(ins))
		out := make([]recutResult, len(ins))
		errs := make([]error, len(ins))
		var wg sync.WaitGroup
		for k := range ins {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c := recut{ring: &rings[k].Ring, stamp: collective.Stamp{Generation: 2, Step: 9}, shardSpec: spec}
				out[k], errs[k] = c.run(ins[k].h, ins[k].bufs, targets, 9)
			}()
		}
		wg.Wait()
		for _, l := range rings {
			l.Close()
		}
		for k, err := range errs {
			if err != nil {
				t.Fatalf("rank %d: %v", k, err)
			}
		}
		return out
	}

	exact := recutAll([]in{
		{holding{old[0].Lo, old[0].Hi, 9}, slice(old[0])},
		{holding{old[1].Lo, old[1].Hi, 9}, slice(old[1])},
		{holding{cursor: -1}, nil},
	})
	for k, res := range exact {
		if !reflect.DeepEqual(res.buffers, slice(targets[k])) || len(res.plan.lost) != 0 || res.fresh {
			t.Fatalf("rank %d: the re-cut slice differs from the whole state's", k)
		}
	}
	if exact[2].received != targets[2].Hi-targets[2].Lo {
		t.Errorf("the joiner took %d values for its slice of %d", exact[2].received, targets[2].Hi-targets[2].Lo)
	}

	// Rank 1 of the old world was killed; a survivor and two joiners remain.
	lost := recutAll([]in{
		{holding{old[0].Lo, old[0].Hi, 9}, slice(old[0])},
		{holding{cursor: -1}, nil},
		{holding{cursor: -1}, nil},
	})
	wantLost := []optim.Range{{Lo: old[1].Lo, Hi: old[1].Hi}}
	meanOf := func(lo, hi int) float32 {
		s := 0.0
		for _, v := range whole[1][lo:hi] {
			s += float64(v)
		}
		return float32(s / float64(hi-lo))
	}
	for k, res := range lost {
		if !reflect.DeepEqual(res.plan.lost, wantLost) {
			t.Fatalf("rank %d: lost %v, want %v", k, res.plan.lost, wantLost)
		}
		tg := targets[k]
		for i := tg.Lo; i < tg.Hi; i++ {
			m, v := res.buffers[0][i-tg.Lo], res.buffers[1][i-tg.Lo]
			wantM, wantV := whole[0][i], whole[1][i]
			if i >= old[1].Lo && i < old[1].Hi { // lost: the mean of what survived of its tensor
				g := spec.groups[0]
				if i >= 1000 {
					g = spec.groups[1]
				}
				lo, hi := max(g.Lo, old[0].Lo), min(g.Hi, old[0].Hi)
				if lo >= hi { // nothing of the tensor survived: the mean of all that did
					lo, hi = old[0].Lo, old[0].Hi
				}
				wantM, wantV = 0, meanOf(lo, hi)
			}
			if m != wantM || v != wantV {
				t.Fatalf("rank %d value %d: %v, %v; want %v, %v", k, i, m, v, wantM, wantV)
			}
		}
	}
}

// connectRing connects size ranks of a ring on 127.0.0.1.
func connectRing(t *testing.T, size int) []*collective.Link {
	t.Helper()
	eps := make([]*collective.Endpoint, size)
	addrs := make([]string, size)
	for i := range eps {
		ep, err := collective.Listen("127.0.0.1:0", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ep.Close() })
		eps[i], addrs[i] = ep, ep.Addr()
	}
	links := make([]*collective.Link, size)
	errs := make([]error, size)
	var wg sync.WaitGroup
	for i := range size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			links[i], errs[i] = eps[i].Connect(context.Background(), 2, i, addrs)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatal(fmt.Errorf("rank %d: %w", i, err))
		}
	}
	return links
}
