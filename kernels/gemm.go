package kernels

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/troupe-ml/troupe/internal/parallel"
)

// Fast is the Set built for speed: its Gemm packs the operands into
// cache-sized panels and runs a register-blocked micro-kernel in assembly
// (AVX-512 or AVX2+FMA, picked from the CPU at start-up; plain Go
// elsewhere and under the purego build tag). Its other methods are
// Gonum's.
//
// Results do not depend on Threads: work is split on the micro-kernel's
// tile grid and never along k, so every element of C is summed in the same
// order whatever the split.
type Fast struct {
	// Threads, when positive, lowers the number of goroutines one Gemm
	// may use below runtime.GOMAXPROCS(0), which it never exceeds. Small
	// products always run on the caller's goroutine.
	Threads int

	// kern forces a micro-kernel (tests and benchmarks); nil means the
	// best one this CPU runs.
	kern *microKernel
}

var _ Set = Fast{}

// microKernel describes one register-blocked kernel and the blocking that
// suits it.
//
// The loop nest is Goto's and BLIS's, applied to Cᵀ = op(B)ᵀ·op(A)ᵀ since
// C is row-major and the vectors run along its rows:
//
//	for i0 in m by mc:          A block, mc×kc, packed: lives in L3
//	  for p0 in k by kc:
//	    for j0 in n by nc:      B block, kc×nc, packed: lives in L2
//	      for ir in mc by mr:   A micro-panel, mr×kc: stays in L1
//	        for jr in nc by nr: B micro-panel streams from L2
//	          C[ir:ir+mr, jr:jr+nr] += A panel · B panel
type microKernel struct {
	name   string
	mr, nr int // tile: mr rows of C by nr columns, held in registers
	kc     int // depth of one packed block
	mc     int // rows of A packed at once, a multiple of mr
	nc     int // columns of B packed at once, a multiple of nr
	// fn computes the mr×nr tile at c (row stride ldc) from kc steps of
	// packed panels a (mr per step) and b (nr per step): it stores
	// alpha·AB when beta is zero (C not read), else alpha·AB + beta·C.
	fn func(kc int, a, b, c *float32, ldc int, alpha, beta float32)

	scratchMu sync.Mutex
	free      []*gemmScratch // packing buffers not in use
	made      int            // packing buffers allocated
}

// gemmScratch is one goroutine's packing space.
type gemmScratch struct {
	a, b []float32 // packed A block and B block
	tile []float32 // mr×nr result of an edge tile
}

// The packing buffers (about 2.4 MiB each for the AVX-512 kernel) are kept
// for the life of the program, as many as goroutines ever packed at once:
// a sync.Pool hands them to the garbage collector, keeps some out of reach
// of other Ps, and so has later products allocate them again.

func (mk *microKernel) newScratch() *gemmScratch {
	mk.made++
	return &gemmScratch{
		a:    alignedFloats(mk.mc * mk.kc),
		b:    alignedFloats(mk.kc * mk.nc),
		tile: alignedFloats(mk.mr * mk.nr),
	}
}

// scratch takes a packing buffer; putScratch gives it back.
func (mk *microKernel) scratch() *gemmScratch {
	mk.scratchMu.Lock()
	defer mk.scratchMu.Unlock()
	if n := len(mk.free); n > 0 {
		s := mk.free[n-1]
		mk.free = mk.free[:n-1]
		return s
	}
	return mk.newScratch()
}

func (mk *microKernel) putScratch(s *gemmScratch) {
	mk.scratchMu.Lock()
	mk.free = append(mk.free, s)
	mk.scratchMu.Unlock()
}

// reserve makes sure n buffers exist, so that a product split over n
// goroutines allocates them on its first call, not on whichever later
// call first finds its workers quick enough to run a chunk at the same
// time as the caller (see parallel.For).
func (mk *microKernel) reserve(n int) {
	mk.scratchMu.Lock()
	for mk.made < n {
		mk.free = append(mk.free, mk.newScratch())
	}
	mk.scratchMu.Unlock()
}

// alignedFloats returns n zeros starting on a 64-byte boundary, so that
// the kernels' vector loads never straddle a cache line.
func alignedFloats(n int) []float32 {
	buf := make([]float32, n+16)
	off := int((64 - uintptr(unsafe.Pointer(&buf[0]))%64) % 64 / 4)
	return buf[off : off+n : off+n]
}

// bestKernel is the fastest micro-kernel this CPU runs; gemmKernels lists
// every one it runs, best first, as usableKernels (one per architecture)
// returns them.
var (
	gemmKernels []*microKernel
	bestKernel  *microKernel
)

func init() {
	gemmKernels = usableKernels()
	bestKernel = gemmKernels[0]
}

// minFlopsPerThread is the least work worth another goroutine: about 40 µs
// of one core at the kernels' speed, ten times what waking and joining a
// goroutine costs, so that 128×128×128 stays on one and 256³ gets two.
const minFlopsPerThread = 4 << 20

// Gemm computes C = alpha·op(A)·op(B) + beta·C (see Reference.Gemm).
func (f Fast) Gemm(transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	if k == 0 {
		scaleMatrix(m, n, beta, c, ldc)
		return
	}
	mk := f.kern
	if mk == nil {
		mk = bestKernel
	}
	threads := runtime.GOMAXPROCS(0)
	if f.Threads > 0 {
		threads = min(threads, f.Threads)
	}
	gemmParallel(mk, threads, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
}

// gemmParallel runs a checked product with m, n, k > 0 on up to threads
// goroutines, the caller's included.
func gemmParallel(mk *microKernel, threads int, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	threads, splitN := gemmPlan(mk, m, n, k, threads)
	if threads <= 1 {
		gemmSerial(mk, transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
		return
	}
	mk.reserve(threads)
	// Each chunk is a product of its own over whole tiles of C's columns
	// (or rows), packing all of A (or B) again: sharing that packing
	// would make every goroutine wait for the one packing it, which
	// measured 10-15% slower on two idle cores. Chunks are claimed, not
	// assigned (see parallel.For), and there are two per goroutine where
	// each stays at least chunkMin wide, so that a goroutine slowed down
	// by another process on its core holds the others up by less.
	if splitN {
		per := chunkWidth(n, mk.nr, threads)
		parallel.For(ceilDiv(n, per), threads-1, func(chunk int) {
			j0 := chunk * per
			var bj []float32
			if transB {
				bj = b[j0*ldb:]
			} else {
				bj = b[j0:]
			}
			gemmSerial(mk, transA, transB, m, min(per, n-j0), k, alpha, a, lda, bj, ldb, beta, c[j0:], ldc)
		})
		return
	}
	per := chunkWidth(m, mk.mr, threads)
	parallel.For(ceilDiv(m, per), threads-1, func(chunk int) {
		i0 := chunk * per
		var ai []float32
		if transA {
			ai = a[i0:]
		} else {
			ai = a[i0*lda:]
		}
		gemmSerial(mk, transA, transB, min(per, m-i0), n, k, alpha, ai, lda, b, ldb, beta, c[i0*ldc:], ldc)
	})
}

// chunkMin is the narrowest chunk worth a second one per goroutine: a
// chunk repacks the whole of the other operand, which costs about 6/width
// of its time (packing a value takes about 0.12 ns, and each value feeds
// 2·width flops at about 0.01 ns each), so 2-3% here.
const chunkMin = 256

// chunkWidth returns the chunk size along a dimension of n values cut for
// threads goroutines, in whole tiles of t.
func chunkWidth(n, t, threads int) int {
	chunks := threads
	if n >= 2*threads*chunkMin {
		chunks = 2 * threads
	}
	return ceilDiv(ceilDiv(n, t), chunks) * t
}

// gemmPlan returns how many goroutines an m×n×k product gets, at most
// threads, and whether they split its columns (else its rows). Each gets
// whole tiles and at least minFlopsPerThread of work.
func gemmPlan(mk *microKernel, m, n, k, threads int) (int, bool) {
	flops := 2 * float64(m) * float64(n) * float64(k)
	threads = min(threads, max(1, int(flops/minFlopsPerThread)))
	tilesM, tilesN := ceilDiv(m, mk.mr), ceilDiv(n, mk.nr)
	// Split the dimension whose other operand is cheaper to pack twice:
	// splitting n makes every goroutine pack all of A, splitting m all
	// of B.
	splitN := m <= n && tilesN >= threads || tilesM < threads
	if splitN {
		return min(threads, tilesN), true
	}
	return min(threads, tilesM), false
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// scaleMatrix sets C = beta·C, or C = 0 without reading it when beta is 0.
func scaleMatrix(m, n int, beta float32, c []float32, ldc int) {
	for i := range m {
		row := c[i*ldc : i*ldc+n]
		if beta == 0 {
			clear(row)
			continue
		}
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemmSerial runs the blocked product on the calling goroutine. k > 0.
func gemmSerial(mk *microKernel, transA, transB bool, m, n, k int, alpha float32, a []float32, lda int, b []float32, ldb int, beta float32, c []float32, ldc int) {
	s := mk.scratch()
	defer mk.putScratch(s)
	// Equal k blocks: a last block of a few steps would run the kernel
	// for little work per C update. The split depends on k alone, which
	// keeps the summation order fixed.
	kc := ceilDiv(k, ceilDiv(k, mk.kc))
	// Likewise for the A and B blocks, in whole micro-panels.
	mc := ceilDiv(ceilDiv(m, ceilDiv(m, mk.mc)), mk.mr) * mk.mr
	nc := ceilDiv(ceilDiv(n, ceilDiv(n, mk.nc)), mk.nr) * mk.nr
	for i0 := 0; i0 < m; i0 += mc {
		mb := min(mc, m-i0)
		for p0 := 0; p0 < k; p0 += kc {
			kb := min(kc, k-p0)
			packA(s.a, a, lda, transA, i0, mb, p0, kb, mk.mr)
			bt := beta
			if p0 > 0 {
				bt = 1
			}
			for j0 := 0; j0 < n; j0 += nc {
				nb := min(nc, n-j0)
				packB(s.b, b, ldb, transB, p0, kb, j0, nb, mk.nr)
				macroKernel(mk, s, mb, nb, kb, alpha, bt, c[i0*ldc+j0:], ldc)
			}
		}
	}
}

// macroKernel multiplies the packed blocks into the mb×nb block of C at c.
func macroKernel(mk *microKernel, s *gemmScratch, mb, nb, kb int, alpha, beta float32, c []float32, ldc int) {
	mr, nr := mk.mr, mk.nr
	for ir := 0; ir < mb; ir += mr {
		for jr := 0; jr < nb; jr += nr {
			tile(mk, s, ir, jr, mb, nb, kb, alpha, beta, c, ldc)
		}
	}
}

// tile runs the micro-kernel for the tile at (ir, jr) of the packed
// blocks.
func tile(mk *microKernel, s *gemmScratch, ir, jr, mb, nb, kb int, alpha, beta float32, c []float32, ldc int) {
	mr, nr := mk.mr, mk.nr
	ap := &s.a[ir*kb]
	bp := &s.b[jr*kb]
	rows := min(mr, mb-ir)
	cols := min(nr, nb-jr)
	if rows == mr && cols == nr {
		mk.fn(kb, ap, bp, &c[ir*ldc+jr], ldc, alpha, beta)
		return
	}
	// An edge tile: the packing padded the panels with zeros; compute
	// the whole tile aside and keep the part that exists.
	mk.fn(kb, ap, bp, &s.tile[0], nr, 1, 0)
	for r := range rows {
		t := s.tile[r*nr : r*nr+cols]
		dst := c[(ir+r)*ldc+jr : (ir+r)*ldc+jr+cols]
		if beta == 0 {
			for j, v := range t {
				dst[j] = alpha * v
			}
		} else {
			for j, v := range t {
				dst[j] = alpha*v + beta*dst[j]
			}
		}
	}
}

// packA copies op(A)[i0:i0+mb, p0:p0+kb] into dst as micro-panels of mr
// rows: panel p holds, for each step l, the mr values of column l, rows
// past mb being zero.
func packA(dst, a []float32, lda int, trans bool, i0, mb, p0, kb, mr int) {
	for ir := 0; ir < mb; ir += mr {
		d := dst[ir*kb : ir*kb+mr*kb]
		rows := min(mr, mb-ir)
		if trans {
			// op(A)(i, l) = a[l*lda+i]: each step is a run in memory.
			packRuns(d, a[p0*lda+i0+ir:], lda, kb, rows, mr)
		} else {
			// op(A)(i, l) = a[i*lda+l]: each row is a run along l.
			packStrided(d, a[(i0+ir)*lda+p0:], lda, kb, rows, mr)
		}
	}
}

// packB copies op(B)[p0:p0+kb, j0:j0+nb] into dst as micro-panels of nr
// columns: panel p holds, for each step l, the nr values of row l,
// columns past nb being zero.
func packB(dst, b []float32, ldb int, trans bool, p0, kb, j0, nb, nr int) {
	for jr := 0; jr < nb; jr += nr {
		d := dst[jr*kb : jr*kb+nr*kb]
		cols := min(nr, nb-jr)
		if trans {
			packStrided(d, b[(j0+jr)*ldb+p0:], ldb, kb, cols, nr)
		} else {
			packRuns(d, b[p0*ldb+j0+jr:], ldb, kb, cols, nr)
		}
	}
}

// packRuns fills the panel d (steps of w) from kb runs of n ≤ w values
// ld apart in src, zero-padding each step to w.
func packRuns(d, src []float32, ld, kb, n, w int) {
	if packCopy != nil && n == w && kb > 0 && (w == 32 || w == 16 || w == 12 || w == 6) {
		// Bounds the assembly relies on.
		_ = src[(kb-1)*ld+w-1]
		_ = d[kb*w-1]
		packCopy(&d[0], &src[0], ld, kb, w)
		return
	}
	if n == w {
		switch w {
		case 32:
			for l := range kb {
				*(*[32]float32)(d[l*32:]) = *(*[32]float32)(src[l*ld:])
			}
			return
		case 16:
			for l := range kb {
				*(*[16]float32)(d[l*16:]) = *(*[16]float32)(src[l*ld:])
			}
			return
		case 12:
			for l := range kb {
				*(*[12]float32)(d[l*12:]) = *(*[12]float32)(src[l*ld:])
			}
			return
		case 6:
			for l := range kb {
				*(*[6]float32)(d[l*6:]) = *(*[6]float32)(src[l*ld:])
			}
			return
		case 4:
			for l := range kb {
				*(*[4]float32)(d[l*4:]) = *(*[4]float32)(src[l*ld:])
			}
			return
		}
	}
	for l := range kb {
		row := d[l*w : l*w+w]
		copy(row, src[l*ld:l*ld+n])
		clear(row[n:])
	}
}

// packStrided fills the panel d (steps of w) from n ≤ w runs of kb values
// ld apart in src, run r going to lane r of every step; lanes past n are
// zero. This is the transposing case: it walks four runs at once so that
// each step's lanes are written together.
func packStrided(d, src []float32, ld, kb, n, w int) {
	r := 0
	if packTranspose8 != nil && kb >= 8 {
		kb8 := kb &^ 7
		for ; r+8 <= n; r += 8 {
			// Bounds the assembly relies on: 8 runs of kb8 values
			// and kb8 steps of the panel.
			_ = src[(r+7)*ld+kb8-1]
			_ = d[(kb8-1)*w+r+7]
			packTranspose8(&d[r], &src[r*ld], ld, kb8, w)
			for l := kb8; l < kb; l++ {
				o := d[l*w+r : l*w+r+8]
				for i := range o {
					o[i] = src[(r+i)*ld+l]
				}
			}
		}
	}
	for ; r+4 <= n; r += 4 {
		s0 := src[r*ld : r*ld+kb]
		s1 := src[(r+1)*ld : (r+1)*ld+kb]
		s2 := src[(r+2)*ld : (r+2)*ld+kb]
		s3 := src[(r+3)*ld : (r+3)*ld+kb]
		for l := range s0 {
			o := d[l*w+r : l*w+r+4]
			o[0], o[1], o[2], o[3] = s0[l], s1[l], s2[l], s3[l]
		}
	}
	for ; r < n; r++ {
		s := src[r*ld : r*ld+kb]
		for l, v := range s {
			d[l*w+r] = v
		}
	}
	if n < w {
		for l := range kb {
			clear(d[l*w+n : l*w+w])
		}
	}
}

// packTranspose8, where set, packs 8 runs of a multiple of 8 values into
// lanes 0..7 of a panel of width w (see packStrided) with vector
// transposes.
var packTranspose8 func(d, src *float32, ld, kb8, w int)

// packCopy, where set, is packRuns for full panels of width 6, 12, 16 or
// 32, with vector moves.
var packCopy func(d, src *float32, ld, kb, w int)

// Mul is Gonum.Mul.
func (Fast) Mul(dst, x, y []float32) { Gonum{}.Mul(dst, x, y) }

// AddRowVector is Gonum.AddRowVector.
func (Fast) AddRowVector(c, v []float32) { Gonum{}.AddRowVector(c, v) }

// ColSums is Gonum.ColSums.
func (Fast) ColSums(dst, a []float32) { Gonum{}.ColSums(dst, a) }

// RowSums is Gonum.RowSums.
func (Fast) RowSums(dst, a []float32) { Gonum{}.RowSums(dst, a) }

// Relu is Gonum.Relu.
func (Fast) Relu(dst, x []float32) { Gonum{}.Relu(dst, x) }

// ReluGrad is Gonum.ReluGrad.
func (Fast) ReluGrad(dst, dy, y []float32) { Gonum{}.ReluGrad(dst, dy, y) }

// SumSquares is Gonum.SumSquares.
func (Fast) SumSquares(x []float32) float64 { return Gonum{}.SumSquares(x) }
