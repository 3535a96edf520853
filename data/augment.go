package data

import "fmt"

// Augment describes a random translation of 2-D samples: each sample moves by up to MaxShift
// pixels along each axis, and the uncovered border is filled with the value of a zero byte.
// The shift of a sample depends only on (Seed, epoch, sample index), so a replayed or
// redistributed step sees the same inputs whichever node gathers it.
type Augment struct {
	MaxShift int
	Seed     uint64
}

// Shift returns the displacement (rows, columns) of sample i in the given epoch, each in
// [-MaxShift, MaxShift].
func (a Augment) Shift(i int32, epoch int) (dy, dx int) {
	if a.MaxShift <= 0 {
		return 0, 0
	}
	h := mix64(a.Seed ^ mix64(uint64(epoch)<<32^uint64(uint32(i))))
	span := uint64(2*a.MaxShift + 1)
	return int(h%span) - a.MaxShift, int((h>>32)%span) - a.MaxShift
}

// mix64 is the splitmix64 finalizer: a cheap bijective hash whose output bits all depend on
// every input bit.
func mix64(z uint64) uint64 {
	z += 0x9e3779b97f4a7c15
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// GatherShifted is Gather with each sample translated as aug says for the epoch. The last two
// entries of SampleShape are taken as rows and columns; leading ones (channels) shift alike.
// It allocates nothing.
func (d *Dataset) GatherShifted(idx []int32, x []float32, labels []int32, norm Normalize, aug Augment, epoch int) error {
	if len(d.SampleShape) < 2 {
		return fmt.Errorf("data: %s: shifting needs 2-D samples, shape is %v", d.Name, d.SampleShape)
	}
	if err := d.checkGather(idx, x, labels); err != nil {
		return err
	}
	rows, cols := d.SampleShape[len(d.SampleShape)-2], d.SampleShape[len(d.SampleShape)-1]
	plane := rows * cols
	size := d.SampleSize()
	t := norm.table()
	for k, i := range idx {
		dy, dx := aug.Shift(i, epoch)
		src := d.Pixels[int(i)*size : int(i)*size+size]
		dst := x[k*size : k*size+size]
		for p := 0; p < size; p += plane {
			shiftPlane(dst[p:p+plane], src[p:p+plane], rows, cols, dy, dx, &t)
		}
		labels[k] = int32(d.Labels[i])
	}
	return nil
}

// shiftPlane writes src moved by (dy, dx) into dst through the table t: dst[r][c] is
// t[src[r-dy][c-dx]] where that lies inside the plane and t[0] elsewhere.
func shiftPlane(dst []float32, src []uint8, rows, cols, dy, dx int, t *[256]float32) {
	for r := range rows {
		out := dst[r*cols : (r+1)*cols]
		sr := r - dy
		if sr < 0 || sr >= rows {
			for c := range out {
				out[c] = t[0]
			}
			continue
		}
		in := src[sr*cols : (sr+1)*cols]
		for c := range out {
			if sc := c - dx; sc >= 0 && sc < cols {
				out[c] = t[in[sc]]
			} else {
				out[c] = t[0]
			}
		}
	}
}
