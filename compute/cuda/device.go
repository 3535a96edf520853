//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/troupe-ml/troupe/kernels"
	ptx "github.com/troupe-ml/troupe/kernels/cuda"
)

// Device is one GPU with troupe's kernels loaded.
type Device struct {
	ctx    *cu.Ctx
	dev    cu.Device
	module cu.Module
	fns    map[string]cu.Function
	// Name, memory and compute capability, for reports.
	Name         string
	TotalMemory  int64
	Major, Minor int
	// For the peaks kernels are measured against: multiprocessors, their clock, the memory
	// clock (kHz) and bus width (bits).
	SMs, ClockKHz, MemClockKHz, BusBits int
}

// PeakGFLOPS is the fp32 peak without tensor cores: two flops per FMA lane per cycle; an SM of
// compute capability 8.0 has 64 fp32 lanes, later ones (8.6, 8.9, 9.0) 128.
func (d *Device) PeakGFLOPS() float64 {
	lanes := 128
	if d.Major == 8 && d.Minor == 0 {
		lanes = 64
	}
	return 2 * float64(lanes) * float64(d.SMs) * float64(d.ClockKHz) / 1e6
}

// PeakGBps is the memory bandwidth the clock and bus allow (double data rate).
func (d *Device) PeakGBps() float64 {
	return 2 * float64(d.MemClockKHz) * 1e3 * float64(d.BusBits) / 8 / 1e9
}

// ErrNoDevice is wrapped by OpenDevice's error for an ordinal no GPU of this machine has.
var ErrNoDevice = errors.New("cuda: no such device")

// OpenDevice creates a context on GPU ordinal and loads the kernels.
func OpenDevice(ordinal int) (d *Device, err error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("cuda: count devices: %w", err)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("%w: device %d asked for, %d present", ErrNoDevice, ordinal, n)
	}
	dev, err := cu.GetDevice(ordinal)
	if err != nil {
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	d = &Device{dev: dev, fns: map[string]cu.Function{}}
	defer func() { // NewContext panics where it could have returned an error
		if r := recover(); r != nil {
			d, err = nil, fmt.Errorf("cuda: create a context on device %d: %v", ordinal, r)
		}
	}()
	d.ctx = cu.NewContext(dev, cu.SchedAuto)
	err = d.ctx.Do(func() error {
		var err error
		if d.Name, err = dev.Name(); err != nil {
			return err
		}
		if d.TotalMemory, err = dev.TotalMem(); err != nil {
			return err
		}
		attrs, err := dev.Attributes(cu.ComputeCapabilityMajor, cu.ComputeCapabilityMinor, cu.MultiprocessorCount,
			cu.ClockRate, cu.MemoryClockRate, cu.GlobalMemoryBusWidth)
		if err != nil {
			return err
		}
		d.Major, d.Minor, d.SMs, d.ClockKHz, d.MemClockKHz, d.BusBits = attrs[0], attrs[1], attrs[2], attrs[3], attrs[4], attrs[5]
		if d.module, err = cu.LoadData(ptx.PTX()); err != nil {
			return fmt.Errorf("load the kernels' PTX: %w", err)
		}
		for _, name := range ptx.Kernels {
			fn, err := d.module.Function(name)
			if err != nil {
				return fmt.Errorf("kernel %s: %w", name, err)
			}
			d.fns[name] = fn
		}
		return nil
	})
	if err != nil {
		_ = d.ctx.Close()
		return nil, fmt.Errorf("cuda: device %d: %w", ordinal, err)
	}
	return d, nil
}

// Close releases the context and everything allocated in it.
func (d *Device) Close() error {
	err := d.ctx.Do(func() error { return d.module.Unload() })
	return errors.Join(err, d.ctx.Close())
}

// Buffer is n float32 values (or raw bytes: float64 sums, int32 labels and counts) in device
// memory: an allocation of its own, or a view into one (Slice).
type Buffer struct {
	ptr  cu.DevicePtr
	n    int
	view bool
}

// Len is the number of float32 values the buffer holds.
func (b *Buffer) Len() int { return b.n }

// Slice is the view of n values from off: what a layer's weights are inside the flat parameter
// buffer. It shares b's memory, is never freed itself, and is invalid once b is freed.
func (b *Buffer) Slice(off, n int) *Buffer {
	if off < 0 || n < 0 || off+n > b.n {
		panic(kernels.ErrLength)
	}
	return &Buffer{ptr: b.ptr + cu.DevicePtr(4*off), n: n, view: true}
}

// Alloc allocates a buffer of n float32 values. Its contents are undefined until written.
func (d *Device) Alloc(n int) (*Buffer, error) {
	b := &Buffer{n: n}
	if n == 0 {
		return b, nil
	}
	err := d.ctx.Do(func() error {
		var err error
		b.ptr, err = cu.MemAlloc(int64(4 * n))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("cuda: allocate %d floats: %w", n, err)
	}
	return b, nil
}

// Free releases b, which must be an allocation, not a view.
func (d *Device) Free(b *Buffer) error {
	if b.view {
		return errors.New("cuda: free of a view: free the buffer it views instead")
	}
	if b.n == 0 {
		return nil
	}
	err := d.ctx.Do(func() error { return cu.MemFree(b.ptr) })
	b.n = 0
	return err
}

// Upload copies src into the start of dst.
func (d *Device) Upload(dst *Buffer, src []float32) error {
	q := d.NewQueue()
	q.Upload(dst, src)
	return q.Run()
}

// Download copies the start of src into dst.
func (d *Device) Download(dst []float32, src *Buffer) error {
	q := d.NewQueue()
	q.Download(dst, src)
	return q.Run()
}

// Synchronize waits for every launched kernel to finish and returns the first error of one.
func (d *Device) Synchronize() error { return d.ctx.Do(cu.Synchronize) }

// arg is one kernel parameter as the driver copies it: every parameter travels in an 8-byte
// slot (gorgonia.org/cu's Launch reads 8 bytes per parameter), of which a 4-byte one uses the
// low half.
type arg uint64

func ptrArg(b *Buffer) arg   { return arg(b.ptr) }
func intArg(v int) arg       { return arg(uint32(int32(v))) }
func longArg(v int) arg      { return arg(uint64(int64(v))) }
func floatArg(v float32) arg { return arg(math.Float32bits(v)) }

// blocksFor is the grid of a grid-stride kernel over n elements: enough blocks of 256 threads
// to fill the GPU, no more.
func blocksFor(n int) int { return max(1, min((n+255)/256, 4096)) }
