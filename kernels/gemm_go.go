package kernels

import "unsafe"

// goKernel is the portable micro-kernel. Its 2×4 tile keeps 8 scalar
// accumulators and the 6 operands of a step within the 15 float registers
// Go's amd64 ABI leaves free (a 4×4 tile spills there and runs slower).
var goKernel = &microKernel{
	name: "go",
	mr:   2, nr: 4,
	// Blocks as for the vector kernels: the 2×256 A micro-panel is 2 KiB
	// of L1, the 256×512 B block 512 KiB of L2.
	kc: 256, mc: 1024, nc: 512,
	fn: gemmKernelGo2x4,
}

// gemmKernelGo2x4 is microKernel.fn for a 2×4 tile. The panels are walked
// by pointer: their length is the packing's invariant, and index checks
// on every step cost a third of the loop.
func gemmKernelGo2x4(kc int, a, b, c *float32, ldc int, alpha, beta float32) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	pa, pb := unsafe.Pointer(a), unsafe.Pointer(b)
	for range kc {
		av := (*[2]float32)(pa)
		bv := (*[4]float32)(pb)
		b0, b1, b2, b3 := bv[0], bv[1], bv[2], bv[3]
		a0 := av[0]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		a1 := av[1]
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		pa, pb = unsafe.Add(pa, 8), unsafe.Add(pb, 16)
	}
	cs := unsafe.Slice(c, ldc+4)
	storeRow4(cs[0:4], c00, c01, c02, c03, alpha, beta)
	storeRow4(cs[ldc:ldc+4], c10, c11, c12, c13, alpha, beta)
}

// storeRow4 writes alpha·x + beta·dst, not reading dst when beta is 0.
func storeRow4(dst []float32, x0, x1, x2, x3, alpha, beta float32) {
	d := (*[4]float32)(dst)
	if beta == 0 {
		d[0], d[1], d[2], d[3] = alpha*x0, alpha*x1, alpha*x2, alpha*x3
		return
	}
	d[0] = alpha*x0 + beta*d[0]
	d[1] = alpha*x1 + beta*d[1]
	d[2] = alpha*x2 + beta*d[2]
	d[3] = alpha*x3 + beta*d[3]
}
