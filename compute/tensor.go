package compute

import (
	"fmt"
	"math"

	"github.com/troupe-ml/troupe/kernels"
)

// Tensor is a dense row-major float32 array. Shape[0] is the batch
// dimension where there is one.
type Tensor struct {
	Shape []int
	Data  []float32
}

// NewTensor returns a zero tensor of the given shape. It panics on a
// negative dimension.
func NewTensor(shape ...int) *Tensor {
	for _, d := range shape {
		if d < 0 {
			panic(fmt.Sprintf("compute: negative dimension in shape %v", shape))
		}
	}
	return &Tensor{Shape: append([]int(nil), shape...), Data: make([]float32, product(shape))}
}

// Size returns the number of elements the shape holds.
func (t *Tensor) Size() int { return product(t.Shape) }

// Row returns a view of the i-th slice along the first dimension.
func (t *Tensor) Row(i int) []float32 {
	if len(t.Shape) == 0 || i < 0 || i >= t.Shape[0] {
		panic(fmt.Sprintf("compute: row %d out of range for shape %v", i, t.Shape))
	}
	w := product(t.Shape[1:])
	return t.Data[i*w : (i+1)*w]
}

// Argmax returns the index of the first largest value in row, ignoring
// NaNs (0 when all are NaN). It panics on an empty row.
func Argmax(row []float32) int {
	if len(row) == 0 {
		panic("compute: argmax of an empty row")
	}
	best := 0
	for i, v := range row {
		if v > row[best] || (row[best] != row[best] && v == v) {
			best = i
		}
	}
	return best
}

// L2Norm returns the Euclidean norm of x computed in float64, for example
// of Grads() for logging.
func L2Norm(x []float32) float64 {
	return math.Sqrt(kernels.Default.SumSquares(x))
}

// grow returns buf resliced to n elements, allocating only when its
// capacity is too small: scratch grows to the largest batch seen and is
// reused after that.
func grow[T float32 | float64](buf []T, n int) []T {
	if cap(buf) < n {
		return make([]T, n)
	}
	return buf[:n]
}

// defaultKernels is the kernel set new models run on.
func defaultKernels() kernels.Set { return kernels.Default }
