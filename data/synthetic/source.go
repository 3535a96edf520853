package synthetic

import (
	"errors"
	"fmt"

	"github.com/troupe-ml/troupe/data"
)

// Source is what every generator here offers, and the part of data.Dataset a batch reader
// needs, so a reader can take either a generator or a loaded set.
type Source interface {
	// Len is the number of samples in the stream; valid indices are [0, Len).
	Len() int
	// SampleSize is the number of bytes in one sample, the product of Shape.
	SampleSize() int
	// Shape is the shape of one sample, as data.Dataset.SampleShape.
	Shape() []int
	// NumClasses bounds every label.
	NumClasses() int
	// Sample writes the bytes of sample i into dst (len SampleSize) and returns its label.
	// It allocates a scratch row per call; Gather is the hot path.
	Sample(i int, dst []uint8) (label int, err error)
	// Gather has the contract of data.Dataset.Gather.
	Gather(idx []int32, x []float32, labels []int32, norm data.Normalize) error
}

// ErrConfig reports generator parameters that make no sense.
var ErrConfig = errors.New("synthetic: invalid configuration")

// MaxLen bounds the stream length: Gather takes int32 indices.
const MaxLen = 1<<31 - 1

// renderer is the one method each generator implements: the bytes of sample i, each written
// as a float32 holding an integer in [0, 255], into out (len SampleSize), and its label.
// Writing float32 lets Gather render straight into the caller's batch and then map each value
// through the normalization table in place, with no scratch buffer.
type renderer interface {
	render(i int, out []float32) int
}

// normTable is data.Normalize's byte-to-value map, computed the same way as data.Dataset
// computes it so that a generator and its Materialize'd set gather bit-identical batches.
func normTable(n data.Normalize) [256]float32 {
	var t [256]float32
	for p := range t {
		v := float32(p) / 255
		if n.Std != 0 {
			v = (v - n.Mean) / n.Std
		}
		t[p] = v
	}
	return t
}

// gather is the shared body of every Gather: all checks first, then render and normalize.
func gather(r renderer, name string, n, size int, idx []int32, x []float32, labels []int32, norm data.Normalize) error {
	if len(x) != len(idx)*size {
		return fmt.Errorf("%w: x holds %d values, want %d samples x %d = %d", data.ErrBufferLength, len(x), len(idx), size, len(idx)*size)
	}
	if len(labels) != len(idx) {
		return fmt.Errorf("%w: labels holds %d values, want %d", data.ErrBufferLength, len(labels), len(idx))
	}
	for k, i := range idx {
		if i < 0 || int(i) >= n {
			return fmt.Errorf("%w: idx[%d] = %d, %s has %d samples", data.ErrIndexOutOfRange, k, i, name, n)
		}
	}
	t := normTable(norm)
	for k, i := range idx {
		out := x[k*size : (k+1)*size]
		labels[k] = int32(r.render(int(i), out))
		for j, v := range out {
			out[j] = t[uint8(v)]
		}
	}
	return nil
}

// sample is the shared body of every Sample. It renders into dst through a float32 scratch
// row and so allocates; Gather is the allocation-free path.
func sample(r renderer, name string, n, size, i int, dst []uint8) (int, error) {
	if i < 0 || i >= n {
		return 0, fmt.Errorf("%w: index %d, %s has %d samples", data.ErrIndexOutOfRange, i, name, n)
	}
	if len(dst) != size {
		return 0, fmt.Errorf("%w: dst holds %d bytes, want %d", data.ErrBufferLength, len(dst), size)
	}
	row := make([]float32, size)
	label := r.render(i, row)
	for j, v := range row {
		dst[j] = uint8(v)
	}
	return label, nil
}

// Materialize renders the first n samples of src into an in-memory data.Dataset, or all of
// them when n >= src.Len(): for code that wants a Dataset (Subset, Split, GatherShifted).
// It panics if n is negative, as data.Dataset.Subset does.
func Materialize(src Source, name string, n int) *data.Dataset {
	if n < 0 {
		panic(fmt.Sprintf("synthetic: Materialize(%d): negative count", n))
	}
	n = min(n, src.Len())
	size := src.SampleSize()
	ds := &data.Dataset{
		Name:        name,
		SampleShape: append([]int(nil), src.Shape()...),
		NumClasses:  src.NumClasses(),
		Pixels:      make([]uint8, n*size),
		Labels:      make([]uint8, n),
	}
	r, direct := src.(renderer)
	row := make([]float32, size)
	for i := range n {
		dst := ds.Pixels[i*size : (i+1)*size]
		var label int
		if direct {
			label = r.render(i, row)
			for j, v := range row {
				dst[j] = uint8(v)
			}
		} else {
			var err error
			if label, err = src.Sample(i, dst); err != nil {
				panic(fmt.Sprintf("synthetic: Materialize: sample %d: %v", i, err))
			}
		}
		ds.Labels[i] = uint8(label)
	}
	return ds
}

// shapeSize multiplies the dimensions of a shape.
func shapeSize(shape []int) int {
	n := 1
	for _, s := range shape {
		n *= s
	}
	return n
}
