package collective

// addTo sets dst[i] += src[i] for every i of dst; src must be at least as long. It is the
// reduce-scatter's inner loop and runs at memory speed: SIMD where the CPU has it (a vector
// add rounds each element exactly as the scalar add, so the sums are the same bits), the plain
// loop elsewhere.
func addTo(dst, src []float32) {
	src = src[:len(dst)]
	if len(dst) == 0 {
		return
	}
	addKernel(dst, src)
}

// addGeneric is the portable kernel, unrolled so that the compiler drops the bounds checks
// and overlaps the independent adds.
func addGeneric(dst, src []float32) {
	src = src[:len(dst)]
	i := 0
	for ; i+8 <= len(dst); i += 8 {
		d, s := dst[i:i+8:i+8], src[i:i+8:i+8]
		d[0] += s[0]
		d[1] += s[1]
		d[2] += s[2]
		d[3] += s[3]
		d[4] += s[4]
		d[5] += s[5]
		d[6] += s[6]
		d[7] += s[7]
	}
	for ; i < len(dst); i++ {
		dst[i] += src[i]
	}
}
