package compute

import (
	"math/rand/v2"
	"testing"

	"github.com/troupe-ml/troupe/kernels"
)

// serialGonum is kernels.Gonum with every product cut into 64×64 tiles of
// C, small enough that gonum computes each on the calling goroutine: its
// parallel path starts goroutines and allocates for them on every call,
// which would hide whatever compute itself allocates.
type serialGonum struct{ kernels.Gonum }

func (g serialGonum) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	const tile = 64
	for i := 0; i < m; i += tile {
		ai := i * lda
		if transA {
			ai = i
		}
		for j := 0; j < n; j += tile {
			bj := j
			if transB {
				bj = j * ldb
			}
			g.Gonum.Gemm(transA, transB, min(tile, m-i), min(tile, n-j), k, alpha, a[ai:], lda, b[bj:], ldb, beta, c[i*ldc+j:], ldc)
		}
	}
}

// TestSerialGonumIsGemm checks the test kernel set against Reference, so
// that the allocation tests below run the real products.
func TestSerialGonumIsGemm(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 3))
	fill := func(n int) []float32 {
		s := make([]float32, n)
		for i := range s {
			s[i] = float32(rng.NormFloat64())
		}
		return s
	}
	for _, tc := range []struct {
		transA, transB bool
		m, n, k        int
	}{{false, true, 130, 70, 9}, {true, false, 65, 129, 3}, {false, false, 3, 200, 64}, {true, true, 64, 64, 5}} {
		a, b := fill(tc.m*tc.k), fill(tc.k*tc.n)
		lda, ldb := tc.k, tc.n
		if tc.transA {
			lda = tc.m
		}
		if tc.transB {
			ldb = tc.k
		}
		got, want := fill(tc.m*tc.n), make([]float32, tc.m*tc.n)
		copy(want, got)
		serialGonum{}.Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, 0.5, a, lda, b, ldb, 0.25, got, tc.n)
		kernels.Reference{}.Gemm(tc.transA, tc.transB, tc.m, tc.n, tc.k, 0.5, a, lda, b, ldb, 0.25, want, tc.n)
		for i := range want {
			if d := got[i] - want[i]; d > 1e-4 || d < -1e-4 {
				t.Fatalf("%+v: element %d is %v, want %v", tc, i, got[i], want[i])
			}
		}
	}
}

// TestTrainStepAllocatesNothing checks that a training step, after one
// step at the largest batch size, reuses every buffer: forward, loss,
// backward and the gradient vector, at that size and a smaller one.
func TestTrainStepAllocatesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		spec ModelSpec
		n    int
	}{
		{"mlp", MLP(784, []int{512, 512}, 10), 128},
		{"cnn", smallCNN(), 8},
		{"every layer", smallNet(), 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := newModel(tc.spec, 1, serialGonum{})
			if err != nil {
				t.Fatal(err)
			}
			b := randomBatch(rand.New(rand.NewPCG(8, 8)), m, tc.n, false)
			half := Batch{X: b.X[:tc.n/2*m.InputSize()], N: tc.n / 2, Labels: b.Labels[:tc.n/2]}
			m.TrainBatch(b, 1/float32(tc.n), 0)
			var seed uint64
			if allocs := testing.AllocsPerRun(2, func() {
				seed++
				m.TrainBatch(b, 1/float32(tc.n), seed)
				m.TrainBatch(half, 1/float32(tc.n), seed)
			}); allocs != 0 {
				t.Errorf("%.1f allocations per pair of steps after warm-up", allocs)
			}
		})
	}
}

// TestEvaluateAllocatesNothing checks that Evaluate keeps its scratch
// between calls and allocates nothing per chunk.
func TestEvaluateAllocatesNothing(t *testing.T) {
	m, err := newModel(MLP(784, []int{512, 512}, 10), 1, serialGonum{})
	if err != nil {
		t.Fatal(err)
	}
	b := randomBatch(rand.New(rand.NewPCG(9, 9)), m, 200, false)
	m.Evaluate(b, 64)
	if allocs := testing.AllocsPerRun(2, func() {
		m.Evaluate(b, 64)
		m.Evaluate(b, 50)
	}); allocs != 0 {
		t.Errorf("Evaluate: %.1f allocations per two passes after warm-up", allocs)
	}
}
