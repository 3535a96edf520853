package optim

import (
	"runtime"

	"github.com/troupe-ml/troupe/internal/parallel"
)

// spanMin is the fewest values worth a goroutine of their own: Adam's
// loop does them in about 10 µs, several times what handing a span to a
// worker that is already awake costs.
const spanMin = 1 << 15

// spans runs an optimizer's update loop over the flat buffers on every
// core: each value's update reads and writes that value alone, so the
// buffers split into spans that need no coordination and give the same
// bits however they are split.
type spans struct {
	update func(lo, hi int, decay bool) // the optimizer's loop over [lo, hi), with or without weight decay
	chunk  func(i int)                  // spans.runChunk, made once so that a step allocates nothing
	n, per int
	// noDecay lists the sorted, disjoint ranges whose values get no weight decay.
	noDecay []Range
}

// Range is the values [Lo, Hi) of a flat vector.
type Range struct{ Lo, Hi int }

func (s *spans) init(update func(lo, hi int, decay bool)) {
	s.update = update
	s.chunk = s.runChunk
}

func (s *spans) runChunk(i int) {
	lo := i * s.per
	s.each(lo, min(lo+s.per, s.n))
}

// each updates [lo, hi), cut where weight decay starts or stops applying.
func (s *spans) each(lo, hi int) {
	for _, r := range s.noDecay {
		if r.Hi <= lo {
			continue
		}
		if r.Lo >= hi {
			break
		}
		if r.Lo > lo {
			s.update(lo, r.Lo, true)
		}
		end := min(r.Hi, hi)
		s.update(max(lo, r.Lo), end, false)
		lo = end
	}
	if lo < hi {
		s.update(lo, hi, true)
	}
}

// run updates [0, n), split when there are several cores and enough values.
func (s *spans) run(n int) {
	threads := runtime.GOMAXPROCS(0)
	if threads < 2 || n < 2*spanMin {
		s.each(0, n)
		return
	}
	// Two spans per goroutine, so one slowed down by another process on
	// its core holds the others up by less; whole cache lines each.
	chunks := min(2*threads, n/spanMin)
	s.n, s.per = n, ((n+chunks-1)/chunks+15)&^15
	parallel.For((n+s.per-1)/s.per, threads-1, s.chunk)
}

// Within returns the parts of the sorted, disjoint ranges rs that fall inside [lo, hi), shifted
// so that lo is 0: the ranges of an optimizer that owns only that slice of the vector.
func Within(rs []Range, lo, hi int) []Range {
	var out []Range
	for _, r := range rs {
		if a, b := max(r.Lo, lo), min(r.Hi, hi); a < b {
			out = append(out, Range{a - lo, b - lo})
		}
	}
	return out
}
