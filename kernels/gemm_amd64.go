//go:build !purego

package kernels

import "golang.org/x/sys/cpu"

// The AVX-512 kernel's tile is 12×32: two zmm registers across each of 12
// rows of C make 24 accumulators, leaving 8 of the 32 registers for the B
// loads; each step loads 2 vectors of B and broadcasts 12 values of A
// straight from memory into 24 FMAs, so loads never limit the FMA units
// and 24 independent sums hide the FMA latency. 12 rows waste little at the
// usual batch sizes (128 = 10×12 + 8); 14 would waste 9% there, and 16 rows
// would need all 32 registers for accumulators.
//
// Blocking, for this kind of CPU (32 KiB L1d, 1 MiB L2 per core, a shared
// L3): kc = 256 keeps the 12×256 A micro-panel at 12 KiB, under half of
// L1, while 32-wide B micro-panels stream past it from L2; nc = 768 makes
// the packed B block 768 KiB, most of L2; mc = 1536 bounds the packed A
// block to 1.5 MiB, read from L3 once per B block. Keeping the B panel in
// L1 instead (the other loop order, kc = 128) measured slower from n = 1024
// up; kc = 384 with nc = 512 measured the same as this.
var avx512Kernel = &microKernel{
	name: "avx512",
	mr:   12, nr: 32,
	kc: 256, mc: 1536, nc: 768,
	fn: gemmKernelAVX512x12x32,
}

// The AVX2 kernel's tile is 6×16: 12 ymm accumulators, 2 for B and 2 for
// broadcasts use all 16 registers. The blocks are the AVX-512 kernel's: a
// 6 KiB A micro-panel in L1, a 768 KiB B block in L2. On CPUs whose FMA
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
