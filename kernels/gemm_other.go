//go:build !amd64 || purego

package kernels

// usableKernels: without assembly, the portable kernel only.
func usableKernels() []*microKernel { return []*microKernel{goKernel} }
