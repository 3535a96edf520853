//go:build cuda

package cuda

/*
#cgo LDFLAGS: -lcuda
#include <cuda.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// AllocPinned returns n float32 values of page-locked host memory, which the GPU reads and
// writes by DMA: a copy between it and the device skips the staging copy the driver makes for
// ordinary (pageable) memory. gorgonia.org/cu v0.9.6 binds only its release, so the allocation
// is called here. The memory is C memory, invisible to Go's collector: free it with FreePinned.
func (d *Device) AllocPinned(n int) ([]float32, error) {
	if n == 0 {
		return nil, nil
	}
	var p unsafe.Pointer
	err := d.ctx.Do(func() error {
		if r := C.cuMemHostAlloc(&p, C.size_t(4*n), C.CU_MEMHOSTALLOC_PORTABLE); r != C.CUDA_SUCCESS {
			return fmt.Errorf("cuda: allocate %d bytes of page-locked host memory: CUresult %d", 4*n, int(r))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*float32)(p), n), nil
}

// FreePinned releases memory AllocPinned returned.
func (d *Device) FreePinned(s []float32) error {
	if len(s) == 0 {
		return nil
	}
	p := unsafe.Pointer(unsafe.SliceData(s))
	return d.ctx.Do(func() error { return cu.MemFreeHost(p) })
}
