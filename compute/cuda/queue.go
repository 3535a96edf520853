//go:build cuda

package cuda

import (
	"fmt"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/troupe-ml/troupe/kernels"
)

// Queue gathers driver calls (kernel launches, copies, clears) and runs them in order in one
// trip to the context's thread. Each trip is a hand-off between goroutines, one of them locked
// to its OS thread, which costs microseconds: a training step of a few dozen kernels goes as
// one queue instead of a few dozen trips.
//
// Sizes are checked, and panic, when a call is queued; driver errors come back from Run. The
// host slices given to Upload and Download must stay untouched until Run returns.
type Queue struct {
	d     *Device
	calls []func() error
}

// NewQueue returns an empty queue on d.
func (d *Device) NewQueue() *Queue { return &Queue{d: d} }

// Reset drops the calls queued and not run (those of a call that panicked), and returns q.
func (q *Queue) Reset() *Queue {
	q.calls = q.calls[:0]
	return q
}

// Run runs the queued calls and empties the queue; it stops at the first error. Launches are
// asynchronous: a kernel's failure shows in a later copy to the host, or in Synchronize.
func (q *Queue) Run() error {
	calls := q.calls
	q.calls = q.calls[:0]
	if len(calls) == 0 {
		return nil
	}
	return q.d.ctx.Do(func() error {
		for _, call := range calls {
			if err := call(); err != nil {
				return err
			}
		}
		return nil
	})
}

// launch queues kernel name on a grid of gridX×gridY blocks of threads.
func (q *Queue) launch(name string, gridX, gridY, threads int, args ...arg) {
	fn, ok := q.d.fns[name]
	if !ok {
		panic("cuda: no kernel " + name)
	}
	params := make([]unsafe.Pointer, len(args))
	for i := range args {
		params[i] = unsafe.Pointer(&args[i])
	}
	q.calls = append(q.calls, func() error {
		if err := fn.Launch(gridX, gridY, 1, threads, 1, 1, 0, cu.Stream{}, params); err != nil {
			return fmt.Errorf("cuda: launch %s: %w", name, err)
		}
		return nil
	})
}

// copyIn queues a copy of bytes host bytes at src to dst. The copy is synchronous for the host
// and ordered after the kernels queued before it.
func (q *Queue) copyIn(dst *Buffer, src unsafe.Pointer, bytes int64) {
	q.calls = append(q.calls, func() error {
		if err := cu.MemcpyHtoD(dst.ptr, src, bytes); err != nil {
			return fmt.Errorf("cuda: copy %d bytes to the device: %w", bytes, err)
		}
		return nil
	})
}

// Upload queues a copy of src into the start of dst.
func (q *Queue) Upload(dst *Buffer, src []float32) {
	if len(src) > dst.n {
		panic(kernels.ErrLength)
	}
	if len(src) > 0 {
		q.copyIn(dst, unsafe.Pointer(&src[0]), int64(4*len(src)))
	}
}

// UploadInt32 queues a copy of src's bits into the start of dst: labels, for the loss kernel.
func (q *Queue) UploadInt32(dst *Buffer, src []int32) {
	if len(src) > dst.n {
		panic(kernels.ErrLength)
	}
	if len(src) > 0 {
		q.copyIn(dst, unsafe.Pointer(&src[0]), int64(4*len(src)))
	}
}

// Download queues a copy of the start of src into dst. It waits for the kernels queued
// before it.
func (q *Queue) Download(dst []float32, src *Buffer) {
	if len(dst) > src.n {
		panic(kernels.ErrLength)
	}
	if len(dst) == 0 {
		return
	}
	bytes := int64(4 * len(dst))
	p := unsafe.Pointer(&dst[0])
	q.calls = append(q.calls, func() error {
		if err := cu.MemcpyDtoH(p, src.ptr, bytes); err != nil {
			return fmt.Errorf("cuda: copy %d bytes from the device: %w", bytes, err)
		}
		return nil
	})
}

// Zero queues a clear of b to zero bits.
func (q *Queue) Zero(b *Buffer) {
	if b.n == 0 {
		return
	}
	q.calls = append(q.calls, func() error {
		if err := cu.MemsetD32(b.ptr, 0, int64(b.n)); err != nil {
			return fmt.Errorf("cuda: clear %d floats: %w", b.n, err)
		}
		return nil
	})
}
