//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/troupe-ml/troupe/kernels"
)

// The kernels on device buffers. Each mirrors the CPU kernel named in its comment; launches
// are asynchronous, and an error of a kernel shows at the next call that waits (a Download,
// Synchronize).

// Gemm is kernels.Set's Gemm on device buffers.
func (d *Device) Gemm(transA, transB bool, m, n, k int, alpha float32, a *Buffer, lda int, b *Buffer, ldb int, beta float32, c *Buffer, ldc int) error {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return nil
	}
	name := "sgemm_" + map[bool]string{false: "n", true: "t"}[transA] + map[bool]string{false: "n", true: "t"}[transB]
	return d.launch(name, (n+127)/128, (m+127)/128, 256,
		intArg(m), intArg(n), intArg(k), floatArg(alpha), ptrArg(a), intArg(max(lda, 1)), ptrArg(b), intArg(max(ldb, 1)),
		floatArg(beta), ptrArg(c), intArg(ldc))
}

// checkGemm panics unless the buffers hold the matrices the sizes name, as kernels.Set does.
func checkGemm(transA, transB bool, m, n, k int, a *Buffer, lda int, b *Buffer, ldb int, c *Buffer, ldc int) {
	if m < 0 || n < 0 || k < 0 {
		panic(kernels.ErrNegative)
	}
	rowsA, colsA := m, k
	if transA {
		rowsA, colsA = k, m
	}
	rowsB, colsB := k, n
	if transB {
		rowsB, colsB = n, k
	}
	for _, mat := range []struct {
		rows, cols, ld int
		buf            *Buffer
	}{{rowsA, colsA, lda, a}, {rowsB, colsB, ldb, b}, {m, n, ldc, c}} {
		if mat.ld < max(1, mat.cols) {
			panic(kernels.ErrBadStride)
		}
		if mat.rows > 0 && mat.cols > 0 && mat.buf.n < (mat.rows-1)*mat.ld+mat.cols {
			panic(kernels.ErrLength)
		}
	}
}

func sameLength(dst *Buffer, xs ...*Buffer) {
	for _, x := range xs {
		if x.n != dst.n {
			panic(kernels.ErrLength)
		}
	}
}

func rowsOf(a *Buffer, cols int) int {
	if cols == 0 || a.n%cols != 0 {
		panic(kernels.ErrLength)
	}
	return a.n / cols
}

// Mul: dst = x*y element-wise.
func (d *Device) Mul(dst, x, y *Buffer) error {
	sameLength(dst, x, y)
	return d.launch("mul", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(x), ptrArg(y), longArg(dst.n))
}

// Add: dst += src (the all-reduce's sum).
func (d *Device) Add(dst, src *Buffer) error {
	sameLength(dst, src)
	return d.launch("add", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(src), longArg(dst.n))
}

// Scale: x *= s.
func (d *Device) Scale(x *Buffer, s float32) error {
	return d.launch("scale", blocksFor(x.n), 1, 256, ptrArg(x), floatArg(s), longArg(x.n))
}

// AddRowVector: c[i, :] += v.
func (d *Device) AddRowVector(c, v *Buffer) error {
	rows := rowsOf(c, v.n)
	return d.launch("add_row_vector", blocksFor(c.n), 1, 256, ptrArg(c), ptrArg(v), longArg(rows), intArg(v.n))
}

// BiasRelu: c[i, :] = max(c[i, :] + v, 0), a dense layer's epilogue in one pass.
func (d *Device) BiasRelu(c, v *Buffer) error {
	rows := rowsOf(c, v.n)
	return d.launch("bias_relu", blocksFor(c.n), 1, 256, ptrArg(c), ptrArg(v), longArg(rows), intArg(v.n))
}

// Relu: dst = max(x, 0).
func (d *Device) Relu(dst, x *Buffer) error {
	sameLength(dst, x)
	return d.launch("relu", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(x), longArg(dst.n))
}

// ReluGrad: dst = dy where y > 0, else 0.
func (d *Device) ReluGrad(dst, dy, y *Buffer) error {
	sameLength(dst, dy, y)
	return d.launch("relu_grad", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(dy), ptrArg(y), longArg(dst.n))
}

// ColSums: dst[j] = sum of column j of a.
func (d *Device) ColSums(dst, a *Buffer) error {
	rows := rowsOf(a, dst.n)
	return d.launch("col_sums", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(a), longArg(rows), intArg(dst.n))
}

// RowSums: dst[i] = sum of row i of a, accumulated in float64.
func (d *Device) RowSums(dst, a *Buffer) error {
	if dst.n == 0 {
		return nil
	}
	cols := a.n / dst.n
	if cols*dst.n != a.n {
		panic(kernels.ErrLength)
	}
	return d.launch("row_sums", min(dst.n, 65535), 1, 256, ptrArg(dst), ptrArg(a), longArg(dst.n), intArg(cols))
}

// SumSquares returns the sum of x[i]², accumulated in float64.
func (d *Device) SumSquares(x *Buffer) (float64, error) {
	out, err := d.Alloc(2) // one float64
	if err != nil {
		return 0, err
	}
	defer d.Free(out)
	if err := d.ctx.Do(func() error { return cu.MemsetD32(out.ptr, 0, 2) }); err != nil {
		return 0, fmt.Errorf("cuda: clear: %w", err)
	}
	if err := d.launch("sum_squares", min(blocksFor(x.n), 1024), 1, 256, ptrArg(out), ptrArg(x), longArg(x.n)); err != nil {
		return 0, err
	}
	var bits [2]float32
	if err := d.Download(bits[:], out); err != nil {
		return 0, err
	}
	return *(*float64)(unsafe.Pointer(&bits[0])), nil
}

// SoftmaxCrossEntropy computes, for each row of logits (rows×classes) against labels (int32 as
// bits in a float buffer, uploaded with UploadLabels), loss[i] = logsumexp - z[label] and
// correct[i] (1 when the first maximum is the label, as float bits of an int32); when grad is
// not nil, grad = scale*(softmax - onehot). As compute's softmaxCrossEntropyRow, in float64.
func (d *Device) SoftmaxCrossEntropy(loss, correct, grad, logits, labels *Buffer, classes int, scale float32) error {
	rows := rowsOf(logits, classes)
	if loss.n < rows || correct.n < rows || labels.n < rows || (grad != nil && grad.n != logits.n) {
		panic(kernels.ErrLength)
	}
	gradArg := arg(0)
	if grad != nil {
		gradArg = ptrArg(grad)
	}
	return d.launch("softmax_xent", min(rows, 65535), 1, 256, ptrArg(loss), ptrArg(correct), gradArg, ptrArg(logits),
		ptrArg(labels), longArg(rows), intArg(classes), floatArg(scale))
}

// UploadLabels copies class labels into a buffer, as the int32 values the loss kernel reads.
func (d *Device) UploadLabels(dst *Buffer, labels []int32) error {
	if len(labels) > dst.n {
		panic(kernels.ErrLength)
	}
	bits := make([]float32, len(labels))
	for i, l := range labels {
		bits[i] = math.Float32frombits(uint32(l))
	}
	return d.Upload(dst, bits)
}

// AdamStep is step t (from 1) of Adam, or AdamW when decoupled, over flat buffers, with the
// scalars derived exactly as compute/optim's adam derives them, so that both round alike.
func (d *Device) AdamStep(p, g, m, v *Buffer, t int, lr, beta1, beta2, eps, wd float64, decoupled bool) error {
	sameLength(p, g, m, v)
	decay, l2 := float32(1), float32(wd)
	if decoupled {
		decay, l2 = float32(1-lr*wd), 0
	}
	stepSize := float32(lr / (1 - math.Pow(beta1, float64(t))))
	invSqrtC2 := float32(1 / math.Sqrt(1-math.Pow(beta2, float64(t))))
	return d.launch("adam_step", blocksFor(p.n), 1, 256, ptrArg(p), ptrArg(g), ptrArg(m), ptrArg(v), longArg(p.n),
		floatArg(decay), floatArg(l2), floatArg(stepSize), floatArg(invSqrtC2), floatArg(float32(beta1)), floatArg(float32(1-beta1)),
		floatArg(float32(beta2)), floatArg(float32(1-beta2)), floatArg(float32(eps)))
}

// SGDStep is one SGD update, as compute/optim's sgd; vel is nil without momentum.
func (d *Device) SGDStep(p, g, vel *Buffer, lr, wd, momentum float64, nesterov bool) error {
	sameLength(p, g)
	velArg := arg(0)
	if vel != nil {
		sameLength(p, vel)
		velArg = ptrArg(vel)
	}
	nest := 0
	if nesterov {
		nest = 1
	}
	return d.launch("sgd_step", blocksFor(p.n), 1, 256, ptrArg(p), ptrArg(g), velArg, longArg(p.n),
		floatArg(float32(lr)), floatArg(float32(wd)), floatArg(float32(momentum)), intArg(nest))
}

// RMSpropStep is one RMSprop update, as compute/optim's rmsprop; vel is nil without momentum.
func (d *Device) RMSpropStep(p, g, sq, vel *Buffer, lr, wd, alpha, momentum, eps float64) error {
	sameLength(p, g, sq)
	velArg := arg(0)
	if vel != nil {
		sameLength(p, vel)
		velArg = ptrArg(vel)
	}
	return d.launch("rmsprop_step", blocksFor(p.n), 1, 256, ptrArg(p), ptrArg(g), ptrArg(sq), velArg, longArg(p.n),
		floatArg(float32(lr)), floatArg(float32(wd)), floatArg(float32(alpha)), floatArg(float32(1-alpha)),
		floatArg(float32(momentum)), floatArg(float32(eps)))
}
