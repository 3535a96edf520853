package synthetic

import (
	"math"
	"math/bits"
)

// Domain tags keep the streams of different purposes apart even when they share a seed and
// an index: the parameters of class 3 and sample 3 must not see the same numbers.
const (
	tagTabularSample uint64 = 0x7461625f73616d70 + iota
	tagTabularComponent
	tagTabularCategory
	tagTabularPrior
	tagImageSample
	tagImageStroke
	tagImagePrototype
	tagImageChannel
	tagModelSample
	tagKMeans
	tagEigen
)

const golden = 0x9e3779b97f4a7c15

// finalize is the splitmix64 output function: a bijection whose every output bit depends on
// every input bit, so neighbouring counters give unrelated words.
func finalize(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// key hashes a seed, a domain tag and a list of coordinates into one word. Each step is a
// bijection of the running word, so for a fixed prefix distinct coordinates give distinct keys.
func key(seed, tag uint64, coords ...uint64) uint64 {
	h := finalize(seed ^ finalize(tag+golden))
	for _, c := range coords {
		h = finalize(h ^ (c + golden))
	}
	return h
}

// stream is a splitmix64 sequence started at a key: a counter-based generator, so the
// numbers of sample i need nothing but (seed, i) and any node can produce them alone.
type stream struct{ s uint64 }

// streamAt starts the stream of one (seed, tag, index); it is key with one coordinate,
// written out so that it inlines and stays off the heap.
func streamAt(seed, tag, i uint64) stream {
	return stream{finalize(finalize(seed^finalize(tag+golden)) ^ (i + golden))}
}

func (s *stream) next() uint64 {
	s.s += golden
	return finalize(s.s)
}

// uniform is in [0, 1) with 53 random bits.
func (s *stream) uniform() float64 { return float64(s.next()>>11) * 0x1p-53 }

// uniformOpen is in (0, 1), safe under a logarithm.
func (s *stream) uniformOpen() float64 { return (float64(s.next()>>11) + 0.5) * 0x1p-53 }

// intn is in [0, n) for n > 0, by the high word of a 64x64 product (bias below n/2^64).
func (s *stream) intn(n int) int {
	hi, _ := bits.Mul64(s.next(), uint64(n))
	return int(hi)
}

// pick returns the index k with cum[k-1] <= u*cum[last] < cum[k]: a draw from the
// distribution whose cumulative weights are cum. Entries with zero weight are never chosen.
func (s *stream) pick(cum []float64) int {
	u := s.uniform() * cum[len(cum)-1]
	lo, hi := 0, len(cum)-1
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if cum[mid] > u {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// The ziggurat of Marsaglia and Tsang (2000) for the standard normal with 128 layers: one
// word, a multiply and a compare for about 99% of draws, and exact in distribution. It is
// written here rather than taken from math/rand so that the numbers cannot change with the
// Go release, and so that it runs off a counter-based stream.
const (
	zigR    = 3.442619855899
	zigArea = 9.91256303526217e-3
)

var (
	zigK [128]uint32
	zigW [128]float64
	zigF [128]float64
)

func init() {
	const m = 1 << 31
	dn := zigR
	tn := dn
	q := zigArea / math.Exp(-0.5*dn*dn)
	zigK[0] = uint32(dn / q * m)
	zigK[1] = 0
	zigW[0] = q / m
	zigW[127] = dn / m
	zigF[0] = 1
	zigF[127] = math.Exp(-0.5 * dn * dn)
	for i := 126; i >= 1; i-- {
		dn = math.Sqrt(-2 * math.Log(zigArea/dn+math.Exp(-0.5*dn*dn)))
		zigK[i+1] = uint32(dn / tn * m)
		tn = dn
		zigF[i] = math.Exp(-0.5 * dn * dn)
		zigW[i] = dn / m
	}
}

// normal draws from N(0, 1). The layer comes from the low bits and the value from the high
// word of the same draw, so the two are independent.
func (s *stream) normal() float64 {
	for {
		u := s.next()
		hz := int32(u >> 32)
		iz := u & 127
		a := int64(hz)
		if a < 0 {
			a = -a
		}
		x := float64(hz) * zigW[iz]
		if a < int64(zigK[iz]) {
			return x
		}
		if iz == 0 {
			// The tail beyond zigR, by Marsaglia's exponential rejection.
			for {
				x = -math.Log(s.uniformOpen()) / zigR
				y := -math.Log(s.uniformOpen())
				if y+y >= float64(x*x) {
					break
				}
			}
			if hz > 0 {
				return zigR + x
			}
			return -zigR - x
		}
		if zigF[iz]+float64(s.uniform()*(zigF[iz-1]-zigF[iz])) < math.Exp(-0.5*float64(x*x)) {
			return x
		}
	}
}

// quantize rounds v to the nearest byte level, clamping to [0, 255], and returns it as a
// float32 holding an integer: the form render writes before Gather maps it through the table.
func quantize(v float64) float32 {
	if !(v > 0) { // also catches NaN
		return 0
	}
	if v >= 255 {
		return 255
	}
	return float32(int32(v + 0.5)) // truncation is floor here: v+0.5 is positive
}
