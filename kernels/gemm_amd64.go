//go:build !purego

package kernels

import "golang.org/x/sys/cpu"

// The AVX-512 kernel's tile is 12×32: two zmm registers across each of 12
// rows of C make 24 accumulators, leaving 8 of the 32 registers: 2 for the
// B loads and 6 that take turns holding a broadcast value of A. Each step
// is 14 loads for 24 FMAs, under the two vector loads a cycle that the FMA
// units' two FMAs a cycle allow; broadcasting inside the FMAs instead (26
// loads) measured the kernel at 74% of the machine's FMA peak, against 96%
// this way. 24 independent sums hide the FMA latency. 12 rows waste little
// at the usual batch sizes (128 = 10×12 + 8); 16 rows would need all 32
// registers for accumulators. The kernel prefetches its tile of C before
// the steps, whose misses otherwise follow the FMAs at every C update.
//
// Blocking, for this kind of CPU (32-48 KiB L1d, 1 MiB L2 per core, a
// shared L3): kc = 512 makes the 12×512 A micro-panel 24 KiB, half of L1,
// and halves the C updates of kc = 256 (which measured 10-20% slower on
// 2048-4096 squares and the GPT's 4096-row products); 32-wide B
// micro-panels stream past it from L2. nc = 768 (a 1.5 MiB B block, over
// L2) measured as fast as or faster than nc = 384 and 512 with C
// prefetched; mc = 1536 bounds the packed A block to 3 MiB, read from L3
// once per B block.
var avx512Kernel = &microKernel{
	name: "avx512",
	mr:   12, nr: 32,
	kc: 512, mc: 1536, nc: 768,
	fn: gemmKernelAVX512x12x32,
}

// The AVX2 kernel's tile is 6×16: 12 ymm accumulators, 2 for B and 2 for
// broadcasts use all 16 registers. Its blocks: a 6 KiB A micro-panel in L1
// (kc = 256), a 768 KiB B block in L2. On CPUs whose FMA
// units are 256 bits wide (AVX-512 split in two halves) it comes close to
// the AVX-512 kernel, which still wins by issuing half the instructions.
var avx2Kernel = &microKernel{
	name: "avx2",
	mr:   6, nr: 16,
	kc: 256, mc: 1536, nc: 768,
	fn: gemmKernelAVX2x6x16,
}

//go:noescape
func packCopyAVX(d, src *float32, ld, kb, w int)

//go:noescape
func packTranspose8AVX(d, src *float32, ld, kb8, w int)

//go:noescape
func gemmKernelAVX512x12x32(kc int, a, b, c *float32, ldc int, alpha, beta float32)

//go:noescape
func gemmKernelAVX2x6x16(kc int, a, b, c *float32, ldc int, alpha, beta float32)

func init() {
	if cpu.X86.HasAVX {
		packTranspose8 = packTranspose8AVX
		packCopy = packCopyAVX
	}
}

// usableKernels lists the kernels this CPU and OS run, best first.
func usableKernels() []*microKernel {
	var ks []*microKernel
	if cpu.X86.HasAVX512F {
		ks = append(ks, avx512Kernel)
	}
	if cpu.X86.HasAVX2 && cpu.X86.HasFMA {
		ks = append(ks, avx2Kernel)
	}
	return append(ks, goKernel)
}
