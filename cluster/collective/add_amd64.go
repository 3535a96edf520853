package collective

import "golang.org/x/sys/cpu"

// useAVX2 also requires the OS to save the YMM registers, which x/sys/cpu checks.
var useAVX2 = cpu.X86.HasAVX2

// addAVX2 adds n floats of src into dst, n >= 0.
//
//go:noescape
func addAVX2(dst, src *float32, n int)

func addKernel(dst, src []float32) {
	if useAVX2 {
		addAVX2(&dst[0], &src[0], len(dst))
		return
	}
	addGeneric(dst, src)
}
