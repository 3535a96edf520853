package collective

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"gonum.org/v1/gonum/blas/blas32"
)

// randomBits draws floats of every kind: normal values, subnormals, zeros of both signs,
// infinities and NaNs with payloads.
func randomBits(rng *rand.Rand, n int) []float32 {
	f := make([]float32, n)
	for i := range f {
		switch rng.IntN(8) {
		case 0:
			f[i] = math.Float32frombits(rng.Uint32()) // any bits, NaNs included
		case 1:
			f[i] = float32(math.Copysign(0, float64(rng.IntN(2)*2-1)))
		case 2:
			f[i] = float32(math.Inf(rng.IntN(2)*2 - 1))
		default:
			f[i] = float32(rng.NormFloat64() * math.Pow(10, float64(rng.IntN(20)-10)))
		}
	}
	return f
}

// The kernels agree with the plain loop bit for bit, except which NaN a sum of two NaNs gives
// (Go leaves that to the compiler): any NaN then matches any NaN.
func TestAddToMatchesThePlainLoop(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 2, 7, 8, 9, 31, 32, 33, 63, 65, 127, 1000, 4099, 100_003} {
		for _, off := range []int{0, 1, 3} { // unaligned starts
			dst := randomBits(rng, n+off)[off:]
			src := randomBits(rng, n+off)[off:]
			want := append([]float32(nil), dst...)
			for i := range want {
				want[i] += src[i]
			}
			kernels := map[string]func(d, s []float32){"addTo": addTo, "generic": addGeneric}
			for name, add := range kernels {
				got := append([]float32(nil), dst...)
				add(got, append([]float32(nil), src...))
				for i := range want {
					if !sameSum(got[i], want[i]) {
						t.Fatalf("%s n=%d off=%d element %d: %x + %x = %x, want %x", name, n, off, i,
							math.Float32bits(dst[i]), math.Float32bits(src[i]), math.Float32bits(got[i]), math.Float32bits(want[i]))
					}
				}
			}
		}
	}
}

// The AVX2 kernel must leave the floats past n alone.
func TestAddToStaysInBounds(t *testing.T) {
	for n := range 70 {
		buf := make([]float32, n+8)
		for i := range buf {
			buf[i] = 1
		}
		src := make([]float32, n+8)
		for i := range src {
			src[i] = 2
		}
		addTo(buf[:n], src)
		for i, v := range buf {
			want := float32(1)
			if i < n {
				want = 3
			}
			if v != want {
				t.Fatalf("n=%d: element %d is %v, want %v", n, i, v, want)
			}
		}
	}
}

func plainAdd(dst, src []float32) {
	for i := range dst {
		dst[i] += src[i]
	}
}

// BenchmarkAdd compares the kernels on a cache-resident source (the receive scratch) added
// into a destination of growing size: from L1 to beyond the last-level cache.
func BenchmarkAdd(b *testing.B) {
	kernels := []struct {
		name string
		add  func(d, s []float32)
	}{
		{"addTo", addTo},
		{"generic", addGeneric},
		{"plain", plainAdd},
		{"gonumAxpy", func(d, s []float32) {
			blas32.Axpy(1, blas32.Vector{N: len(d), Inc: 1, Data: s[:len(d)]}, blas32.Vector{N: len(d), Inc: 1, Data: d})
		}},
	}
	for _, floats := range []int{4 << 10, 64 << 10, 16 << 20} {
		dst := make([]float32, floats)
		src := make([]float32, 32<<10)
		for _, k := range kernels {
			b.Run(fmt.Sprintf("%s/KiB=%d", k.name, floats*4>>10), func(b *testing.B) {
				b.SetBytes(int64(floats * 4))
				for b.Loop() {
					for off := 0; off < floats; off += len(src) {
						end := min(off+len(src), floats)
						k.add(dst[off:end], src)
					}
				}
			})
		}
	}
}
