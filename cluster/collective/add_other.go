//go:build !amd64

package collective

const useAVX2 = false

func addKernel(dst, src []float32) { addGeneric(dst, src) }
