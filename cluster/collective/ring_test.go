package collective

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// world starts size endpoints on 127.0.0.1 and connects them into a ring for generation.
func world(t testing.TB, size int, generation uint64) ([]*Link, func()) {
	t.Helper()
	eps := make([]*Endpoint, size)
	addrs := make([]string, size)
	for i := range eps {
		ep, err := Listen("127.0.0.1:0", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		eps[i], addrs[i] = ep, ep.Addr()
	}
	links := make([]*Link, size)
	errs := make([]error, size)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			links[i], errs[i] = eps[i].Connect(ctx, generation, i, addrs)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return links, func() {
		for i := range links {
			links[i].Close()
			eps[i].Close()
		}
	}
}

// reduceAll runs one all-reduce on every rank at once.
func reduceAll(links []*Link, stamp Stamp, data [][]float32) error {
	return eachRank(links, func(l *Link, r int) error { return l.AllReduceSum(stamp, data[r]) })
}

func TestAllReduceSumOverTCP(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct{ size, n, chunk int }{
		{2, 1000, 0}, {3, 1001, 7}, {4, 3, 2}, {5, 17, 1}, {4, 100_003, 4096}, {2, 0, 0},
	} {
		t.Run(fmt.Sprintf("ranks=%d/n=%d/chunk=%d", tc.size, tc.n, tc.chunk), func(t *testing.T) {
			links, closeAll := world(t, tc.size, 1)
			defer closeAll()
			rng := rand.New(rand.NewPCG(uint64(tc.size), uint64(tc.n)))
			data := make([][]float32, tc.size)
			want := make([]float64, tc.n)
			for r := range data {
				links[r].ChunkFloats = tc.chunk
				data[r] = make([]float32, tc.n)
				for i := range data[r] {
					data[r][i] = float32(rng.NormFloat64())
					want[i] += float64(data[r][i])
				}
			}
			if err := reduceAll(links, Stamp{Generation: 1, Step: 9}, data); err != nil {
				t.Fatal(err)
			}
			// float32 sums of tc.size terms of unit scale: within a few ulps of the float64 sum.
			const tol = 1e-5
			for r := range data {
				for i, v := range data[r] {
					if math.Abs(float64(v)-want[i]) > tol*max(1, math.Abs(want[i])) {
						t.Fatalf("rank %d element %d: %v, want %v", r, i, v, want[i])
					}
					if math.Float32bits(v) != math.Float32bits(data[0][i]) {
						t.Fatalf("rank %d element %d: %v differs from rank 0's %v", r, i, v, data[0][i])
					}
				}
			}
		})
	}
}

func TestAllReduceIsDeterministic(t *testing.T) {
	defer goleak.VerifyNone(t)
	links, closeAll := world(t, 3, 1)
	defer closeAll()
	rng := rand.New(rand.NewPCG(1, 2))
	orig := make([][]float32, 3)
	for r := range orig {
		orig[r] = make([]float32, 5000)
		for i := range orig[r] {
			orig[r][i] = float32(rng.NormFloat64() * 1e3)
		}
	}
	var results [2][]float32
	for k := range results {
		data := make([][]float32, 3)
		for r := range data {
			data[r] = append([]float32(nil), orig[r]...)
		}
		if err := reduceAll(links, Stamp{Generation: 1, Step: int64(k)}, data); err != nil {
			t.Fatal(err)
		}
		results[k] = data[1]
	}
	for i := range results[0] {
		if math.Float32bits(results[0][i]) != math.Float32bits(results[1][i]) {
			t.Fatalf("element %d: %v then %v", i, results[0][i], results[1][i])
		}
	}
}

// A rank of another step (a stale world's straggler) is detected, not summed in.
func TestStaleChunkIsRejected(t *testing.T) {
	defer goleak.VerifyNone(t)
	links, closeAll := world(t, 2, 1)
	defer closeAll()
	data := [][]float32{make([]float32, 64), make([]float32, 64)}
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i, step := range []int64{5, 6} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = links[i].AllReduceSum(Stamp{Generation: 1, Step: step}, data[i])
			links[i].Close() // unblock the peer, as the shell does on an error
		}()
	}
	wg.Wait()
	if !errors.Is(errs[0], ErrStale) && !errors.Is(errs[1], ErrStale) {
		t.Fatalf("errors %v, %v: want ErrStale", errs[0], errs[1])
	}
}

// Garbage on the data port is dropped; the world still connects.
func TestEndpointDropsGarbage(t *testing.T) {
	defer goleak.VerifyNone(t)
	ep, err := Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ep.Close()
	c, err := net.Dial("tcp", ep.Addr())
	if err != nil {
		t.Fatal(err)
	}
	c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	one := make([]byte, 1)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(one); err == nil {
		t.Fatal("the endpoint answered garbage")
	}
	c.Close()

	other, err := Listen("127.0.0.1:0", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	addrs := []string{ep.Addr(), other.Addr()}
	var wg sync.WaitGroup
	var l1 *Link
	var err1 error
	wg.Add(1)
	go func() { defer wg.Done(); l1, err1 = other.Connect(ctx, 3, 1, addrs) }()
	l0, err0 := ep.Connect(ctx, 3, 0, addrs)
	wg.Wait()
	if err0 != nil || err1 != nil {
		t.Fatal(err0, err1)
	}
	l0.Close()
	l1.Close()
}

func TestSegmentsCoverTheBuffer(t *testing.T) {
	for n := range 30 {
		for size := 1; size <= 7; size++ {
			next := 0
			for i := range size {
				lo, hi := segment(n, size, i)
				if lo != next || hi < lo || hi-lo > n/size+1 {
					t.Fatalf("n=%d size=%d segment %d = [%d,%d)", n, size, i, lo, hi)
				}
				next = hi
			}
			if next != n {
				t.Fatalf("n=%d size=%d: segments end at %d", n, size, next)
			}
		}
	}
}

// BenchmarkAllReduce measures the ring's bus bandwidth on 127.0.0.1, ranks as goroutines of one
// process: busbw = bytes * 2(n-1)/n / time, the convention of allreduce_gloo.py.
func BenchmarkAllReduce(b *testing.B) {
	for _, size := range []int{2, 4} {
		for _, mib := range []int{1, 16, 64} {
			b.Run(fmt.Sprintf("ranks=%d/MiB=%d", size, mib), func(b *testing.B) {
				links, closeAll := world(b, size, 1)
				defer closeAll()
				n := mib << 20 / 4
				data := make([][]float32, size)
				for r := range data {
					data[r] = make([]float32, n)
				}
				b.SetBytes(int64(n * 4))
				b.ResetTimer()
				for i := range b.N {
					if err := reduceAll(links, Stamp{Generation: 1, Step: int64(i)}, data); err != nil {
						b.Fatal(err)
					}
				}
				perOp := b.Elapsed().Seconds() / float64(b.N)
				bus := float64(n*4) * 2 * float64(size-1) / float64(size) / perOp
				b.ReportMetric(bus/1e9, "busGB/s")
			})
		}
	}
}

// Broadcast is the state transfer: every rank ends with root's bits, -0 and NaN payloads included.
func TestBroadcastCopiesRootBits(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct{ size, root, n, chunk int }{{2, 0, 10, 3}, {3, 2, 1000, 64}, {4, 1, 5, 1}, {5, 3, 70_001, 4096}} {
		t.Run(fmt.Sprintf("ranks=%d/root=%d/n=%d", tc.size, tc.root, tc.n), func(t *testing.T) {
			links, closeAll := world(t, tc.size, 2)
			defer closeAll()
			rng := rand.New(rand.NewPCG(7, uint64(tc.n)))
			data := make([][]float32, tc.size)
			for r := range data {
				links[r].ChunkFloats = tc.chunk
				data[r] = make([]float32, tc.n)
				for i := range data[r] {
					data[r][i] = float32(rng.NormFloat64())
				}
			}
			want := data[tc.root]
			want[0] = float32(math.Copysign(0, -1))
			if tc.n > 1 {
				want[1] = math.Float32frombits(0x7fc00123) // a NaN with a payload
			}
			want = append([]float32(nil), want...)
			errs := make([]error, tc.size)
			var wg sync.WaitGroup
			for r, l := range links {
				wg.Add(1)
				go func() { defer wg.Done(); errs[r] = l.Broadcast(Stamp{Generation: 2, Step: 40}, data[r], tc.root) }()
			}
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			for r := range data {
				for i := range want {
					if math.Float32bits(data[r][i]) != math.Float32bits(want[i]) {
						t.Fatalf("rank %d element %d: %x, want %x", r, i, math.Float32bits(data[r][i]), math.Float32bits(want[i]))
					}
				}
			}
		})
	}
}

// TestReduceScatterThenAllGather checks the two halves of an all-reduce run apart: after the
// reduce-scatter each rank's shard holds the same bits an all-reduce leaves there; each rank
// then changes its shard alone (as a sharded optimizer step does), and the all-gather brings
// every rank every other rank's changed shard, bit for bit.
func TestReduceScatterThenAllGather(t *testing.T) {
	defer goleak.VerifyNone(t)
	for _, tc := range []struct{ size, n, chunk int }{{2, 1000, 0}, {3, 1001, 7}, {4, 3, 2}, {5, 17, 1}, {3, 100_003, 4096}} {
		t.Run(fmt.Sprintf("ranks=%d/n=%d/chunk=%d", tc.size, tc.n, tc.chunk), func(t *testing.T) {
			links, closeAll := world(t, tc.size, 1)
			defer closeAll()
			rng := rand.New(rand.NewPCG(uint64(tc.size), 3))
			orig := make([][]float32, tc.size)
			for r := range orig {
				links[r].ChunkFloats = tc.chunk
				orig[r] = make([]float32, tc.n)
				for i := range orig[r] {
					orig[r][i] = float32(rng.NormFloat64())
				}
			}
			reduced := clone2(orig)
			if err := reduceAll(links, Stamp{Generation: 1, Step: 1}, reduced); err != nil {
				t.Fatal(err)
			}
			data := clone2(orig)
			if err := eachRank(links, func(l *Link, r int) error { return l.ReduceScatterSum(Stamp{Generation: 1, Step: 2}, data[r]) }); err != nil {
				t.Fatal(err)
			}
			covered := 0
			for r := range data {
				lo, hi := Shard(tc.n, tc.size, r)
				covered += hi - lo
				for i := lo; i < hi; i++ {
					if math.Float32bits(data[r][i]) != math.Float32bits(reduced[0][i]) {
						t.Fatalf("rank %d element %d of its shard [%d, %d): %v, the all-reduce gives %v", r, i, lo, hi, data[r][i], reduced[0][i])
					}
					data[r][i] = data[r][i]*2 + float32(r) // the rank's own update of its shard
				}
			}
			if covered != tc.n {
				t.Fatalf("the shards cover %d of %d values", covered, tc.n)
			}
			if err := eachRank(links, func(l *Link, r int) error { return l.AllGather(Stamp{Generation: 1, Step: 3}, data[r]) }); err != nil {
				t.Fatal(err)
			}
			for r := range data {
				for owner := range tc.size {
					lo, hi := Shard(tc.n, tc.size, owner)
					for i := lo; i < hi; i++ {
						if want := reduced[0][i]*2 + float32(owner); math.Float32bits(data[r][i]) != math.Float32bits(want) {
							t.Fatalf("rank %d element %d (rank %d's shard): %v, want %v", r, i, owner, data[r][i], want)
						}
					}
				}
			}
		})
	}
}

func clone2(v [][]float32) [][]float32 {
	out := make([][]float32, len(v))
	for i := range v {
		out[i] = append([]float32(nil), v[i]...)
	}
	return out
}

// eachRank runs f on every rank at once.
func eachRank(links []*Link, f func(l *Link, rank int) error) error {
	errs := make([]error, len(links))
	var wg sync.WaitGroup
	for i, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(l, i)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
