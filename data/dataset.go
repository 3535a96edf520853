package data

import (
	"errors"
	"fmt"
)

// Dataset is a labelled set of fixed-size 8-bit samples held in memory: sample i is
// Pixels[i*SampleSize() : (i+1)*SampleSize()] with label Labels[i].
//
// A Dataset is read-only once built; Subset and Split return views that share its slices.
type Dataset struct {
	Name        string
	SampleShape []int // for example [28 28]
	NumClasses  int   // every label is < NumClasses
	Pixels      []uint8
	Labels      []uint8
}

// Errors of Gather.
var (
	ErrIndexOutOfRange = errors.New("data: sample index out of range")
	ErrBufferLength    = errors.New("data: buffer length does not match")
)

// Len is the number of samples.
func (d *Dataset) Len() int { return len(d.Labels) }

// SampleSize is the number of values in one sample, the product of SampleShape.
func (d *Dataset) SampleSize() int {
	n := 1
	for _, s := range d.SampleShape {
		n *= s
	}
	return n
}

// Subset returns a view of the first n samples, or of all of them when n >= Len: a quick run
// on a slice of the data. It panics if n is negative.
func (d *Dataset) Subset(n int) *Dataset {
	if n < 0 {
		panic(fmt.Sprintf("data: Subset(%d): negative count", n))
	}
	return d.slice(d.Name, 0, min(n, d.Len()))
}

// Split returns views of the first Len-nVal samples (train, keeping the name) and of the last
// nVal (val, named Name+"-val"). It panics unless 0 <= nVal <= Len.
func (d *Dataset) Split(nVal int) (train, val *Dataset) {
	if nVal < 0 || nVal > d.Len() {
		panic(fmt.Sprintf("data: Split(%d) of %d samples", nVal, d.Len()))
	}
	cut := d.Len() - nVal
	return d.slice(d.Name, 0, cut), d.slice(d.Name+"-val", cut, d.Len())
}

// slice is a view of samples [from, to). Capacities are clipped so that appending to one view
// can never overwrite a neighbour's samples.
func (d *Dataset) slice(name string, from, to int) *Dataset {
	size := d.SampleSize()
	return &Dataset{
		Name:        name,
		SampleShape: append([]int(nil), d.SampleShape...),
		NumClasses:  d.NumClasses,
		Pixels:      d.Pixels[from*size : to*size : to*size],
		Labels:      d.Labels[from:to:to],
	}
}

// Normalize maps a byte p to (p/255 - Mean) / Std, or to p/255 when Std is 0.
type Normalize struct{ Mean, Std float32 }

// MNISTNormalize holds the mean and standard deviation of the MNIST training pixels after
// scaling to [0, 1], the usual values for centring MNIST inputs.
var MNISTNormalize = Normalize{Mean: 0.1307, Std: 0.3081}

// table computes the value of every byte once, so that gathering a batch costs one lookup per
// pixel rather than a division.
func (n Normalize) table() [256]float32 {
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

// Gather writes the samples idx into caller-owned buffers: sample idx[k] normalized into
// x[k*SampleSize() : (k+1)*SampleSize()] and its label into labels[k]. It needs
// len(x) == len(idx)*SampleSize() and len(labels) == len(idx), checks every index before
// writing anything, and allocates nothing.
func (d *Dataset) Gather(idx []int32, x []float32, labels []int32, norm Normalize) error {
	size := d.SampleSize()
	if err := d.checkGather(idx, x, labels); err != nil {
		return err
	}
	t := norm.table()
	for k, i := range idx {
		src := d.Pixels[int(i)*size : int(i)*size+size]
		dst := x[k*size : k*size+size]
		for j, p := range src {
			dst[j] = t[p]
		}
		labels[k] = int32(d.Labels[i])
	}
	return nil
}

// checkGather validates the arguments of Gather and GatherShifted.
func (d *Dataset) checkGather(idx []int32, x []float32, labels []int32) error {
	size := d.SampleSize()
	if len(x) != len(idx)*size {
		return fmt.Errorf("%w: x holds %d values, want %d samples x %d = %d", ErrBufferLength, len(x), len(idx), size, len(idx)*size)
	}
	if len(labels) != len(idx) {
		return fmt.Errorf("%w: labels holds %d values, want %d", ErrBufferLength, len(labels), len(idx))
	}
	if len(d.Pixels) != d.Len()*size {
		return fmt.Errorf("data: %s: %d pixels for %d samples of %d", d.Name, len(d.Pixels), d.Len(), size)
	}
	n := d.Len()
	for k, i := range idx {
		if i < 0 || int(i) >= n {
			return fmt.Errorf("%w: idx[%d] = %d, %s has %d samples", ErrIndexOutOfRange, k, i, d.Name, n)
		}
	}
	return nil
}
