//go:build cuda

package cuda

import (
	"math"

	"github.com/troupe-ml/troupe/kernels"
)

// The kernels on device buffers, as Queue methods (to run with others in one trip) and as
// Device methods (one call, one trip). Each mirrors the CPU kernel named in its comment;
// launches are asynchronous, and an error of a kernel shows at the next call that waits (a
// Download, Synchronize).

// do queues what enqueue queues and runs it: a Device method is its Queue method, run alone.
func (d *Device) do(enqueue func(q *Queue)) error {
	q := d.NewQueue()
	enqueue(q)
	return q.Run()
}

// Gemm is kernels.Set's Gemm on device buffers.
func (q *Queue) Gemm(transA, transB bool, m, n, k int, alpha float32, a *Buffer, lda int, b *Buffer, ldb int, beta float32, c *Buffer, ldc int) {
	checkGemm(transA, transB, m, n, k, a, lda, b, ldb, c, ldc)
	if m == 0 || n == 0 {
		return
	}
	name := "sgemm_" + map[bool]string{false: "n", true: "t"}[transA] + map[bool]string{false: "n", true: "t"}[transB]
	q.launch(name, (n+127)/128, (m+127)/128, 256,
		intArg(m), intArg(n), intArg(k), floatArg(alpha), ptrArg(a), intArg(max(lda, 1)), ptrArg(b), intArg(max(ldb, 1)),
		floatArg(beta), ptrArg(c), intArg(ldc))
}

// Gemm is kernels.Set's Gemm on device buffers.
func (d *Device) Gemm(transA, transB bool, m, n, k int, alpha float32, a *Buffer, lda int, b *Buffer, ldb int, beta float32, c *Buffer, ldc int) error {
	return d.do(func(q *Queue) { q.Gemm(transA, transB, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc) })
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
func (q *Queue) Mul(dst, x, y *Buffer) {
	sameLength(dst, x, y)
	q.launch("mul", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(x), ptrArg(y), longArg(dst.n))
}

// Mul: dst = x*y element-wise.
func (d *Device) Mul(dst, x, y *Buffer) error { return d.do(func(q *Queue) { q.Mul(dst, x, y) }) }

// Add: dst += src (the all-reduce's sum).
func (q *Queue) Add(dst, src *Buffer) {
	sameLength(dst, src)
	q.launch("add", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(src), longArg(dst.n))
}

// Add: dst += src (the all-reduce's sum).
func (d *Device) Add(dst, src *Buffer) error { return d.do(func(q *Queue) { q.Add(dst, src) }) }

// Scale: x *= s, each product rounded to float32 (as the CPU's clipping scales a gradient).
func (q *Queue) Scale(x *Buffer, s float32) {
	q.launch("scale", blocksFor(x.n), 1, 256, ptrArg(x), floatArg(s), longArg(x.n))
}

// Scale: x *= s.
func (d *Device) Scale(x *Buffer, s float32) error { return d.do(func(q *Queue) { q.Scale(x, s) }) }

// AddRowVector: c[i, :] += v.
func (q *Queue) AddRowVector(c, v *Buffer) {
	rows := rowsOf(c, v.n)
	q.launch("add_row_vector", blocksFor(c.n), 1, 256, ptrArg(c), ptrArg(v), longArg(rows), intArg(v.n))
}

// AddRowVector: c[i, :] += v.
func (d *Device) AddRowVector(c, v *Buffer) error {
	return d.do(func(q *Queue) { q.AddRowVector(c, v) })
}

// BiasRelu: c[i, :] = max(c[i, :] + v, 0), a dense layer's epilogue in one pass.
func (q *Queue) BiasRelu(c, v *Buffer) {
	rows := rowsOf(c, v.n)
	q.launch("bias_relu", blocksFor(c.n), 1, 256, ptrArg(c), ptrArg(v), longArg(rows), intArg(v.n))
}

// BiasRelu: c[i, :] = max(c[i, :] + v, 0).
func (d *Device) BiasRelu(c, v *Buffer) error { return d.do(func(q *Queue) { q.BiasRelu(c, v) }) }

// Relu: dst = max(x, 0).
func (q *Queue) Relu(dst, x *Buffer) {
	sameLength(dst, x)
	q.launch("relu", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(x), longArg(dst.n))
}

// Relu: dst = max(x, 0).
func (d *Device) Relu(dst, x *Buffer) error { return d.do(func(q *Queue) { q.Relu(dst, x) }) }

// ReluGrad: dst = dy where y > 0, else 0. dst may be dy.
func (q *Queue) ReluGrad(dst, dy, y *Buffer) {
	sameLength(dst, dy, y)
	q.launch("relu_grad", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(dy), ptrArg(y), longArg(dst.n))
}

// ReluGrad: dst = dy where y > 0, else 0.
func (d *Device) ReluGrad(dst, dy, y *Buffer) error {
	return d.do(func(q *Queue) { q.ReluGrad(dst, dy, y) })
}

// Tanh: y = tanh(x), as compute's tanh layer.
func (q *Queue) Tanh(y, x *Buffer) {
	sameLength(y, x)
	q.launch("tanh_forward", blocksFor(y.n), 1, 256, ptrArg(y), ptrArg(x), longArg(y.n))
}

// Tanh: y = tanh(x).
func (d *Device) Tanh(y, x *Buffer) error { return d.do(func(q *Queue) { q.Tanh(y, x) }) }

// TanhGrad: dx = dy*(1 - y²) from the layer's output y. dx may be dy.
func (q *Queue) TanhGrad(dx, dy, y *Buffer) {
	sameLength(dx, dy, y)
	q.launch("tanh_backward", blocksFor(dx.n), 1, 256, ptrArg(dx), ptrArg(dy), ptrArg(y), longArg(dx.n))
}

// TanhGrad: dx = dy*(1 - y²).
func (d *Device) TanhGrad(dx, dy, y *Buffer) error {
	return d.do(func(q *Queue) { q.TanhGrad(dx, dy, y) })
}

// ColSums: dst[j] = sum of column j of a.
func (q *Queue) ColSums(dst, a *Buffer) {
	rows := rowsOf(a, dst.n)
	q.launch("col_sums", blocksFor(dst.n), 1, 256, ptrArg(dst), ptrArg(a), longArg(rows), intArg(dst.n))
}

// ColSums: dst[j] = sum of column j of a.
func (d *Device) ColSums(dst, a *Buffer) error { return d.do(func(q *Queue) { q.ColSums(dst, a) }) }

// RowSums: dst[i] = sum of row i of a, accumulated in float64.
func (q *Queue) RowSums(dst, a *Buffer) {
	if dst.n == 0 {
		return
	}
	cols := a.n / dst.n
	if cols*dst.n != a.n {
		panic(kernels.ErrLength)
	}
	q.launch("row_sums", min(dst.n, 65535), 1, 256, ptrArg(dst), ptrArg(a), longArg(dst.n), intArg(cols))
}

// RowSums: dst[i] = sum of row i of a, accumulated in float64.
func (d *Device) RowSums(dst, a *Buffer) error { return d.do(func(q *Queue) { q.RowSums(dst, a) }) }

// SumSquaresPartials is how many float32 values the scratch buffer of SumSquares holds.
const SumSquaresPartials = 2 * 1024

// SumSquares queues out[0:2] = the float64 sum of x[i]² (read it with Float64At). scratch
// (SumSquaresPartials values) holds the blocks' partial sums, which are added in a fixed
// order: the same x gives the same bits on every run.
func (q *Queue) SumSquares(out, scratch, x *Buffer) {
	if out.n < 2 || scratch.n < SumSquaresPartials {
		panic(kernels.ErrLength)
	}
	blocks := min(blocksFor(x.n), SumSquaresPartials/2)
	q.launch("sum_squares", blocks, 1, 256, ptrArg(scratch), ptrArg(x), longArg(x.n))
	q.launch("sum_doubles", 1, 1, 256, ptrArg(out), ptrArg(scratch), intArg(blocks))
}

// SumSquares returns the sum of x[i]², accumulated in float64.
func (d *Device) SumSquares(x *Buffer) (float64, error) {
	scratch, err := d.Alloc(SumSquaresPartials + 2)
	if err != nil {
		return 0, err
	}
	defer d.Free(scratch)
	var out [2]float32
	err = d.do(func(q *Queue) {
		res := scratch.Slice(SumSquaresPartials, 2)
		q.SumSquares(res, scratch.Slice(0, SumSquaresPartials), x)
		q.Download(out[:], res)
	})
	return Float64At(out[:], 0), err
}

// Float64At reads the float64 a kernel wrote at float32 offset i (i, i+1) of a downloaded
// buffer.
func Float64At(v []float32, i int) float64 {
	return math.Float64frombits(uint64(math.Float32bits(v[i])) | uint64(math.Float32bits(v[i+1]))<<32)
}

// SoftmaxCrossEntropy computes, for each row of logits (rows×classes) against labels (int32 as
// bits in a float buffer, uploaded with UploadLabels or Queue.UploadInt32), the loss as a
// float64 in loss[2i:2i+2] (logsumexp - z[label], read it with Float64At) and correct[i] (1
// when the first maximum is the label, as float bits of an int32); when grad is not nil, grad
// = scale*(softmax - onehot). As kernels.SoftmaxCrossEntropy, in float64.
func (q *Queue) SoftmaxCrossEntropy(loss, correct, grad, logits, labels *Buffer, classes int, scale float32) {
	rows := rowsOf(logits, classes)
	if loss.n < 2*rows || correct.n < rows || labels.n < rows || (grad != nil && grad.n != logits.n) {
		panic(kernels.ErrLength)
	}
	gradArg := arg(0)
	if grad != nil {
		gradArg = ptrArg(grad)
	}
	q.launch("softmax_xent", min(rows, 65535), 1, 256, ptrArg(loss), ptrArg(correct), gradArg, ptrArg(logits),
		ptrArg(labels), longArg(rows), intArg(classes), floatArg(scale))
}

// SoftmaxCrossEntropy is Queue.SoftmaxCrossEntropy run alone.
func (d *Device) SoftmaxCrossEntropy(loss, correct, grad, logits, labels *Buffer, classes int, scale float32) error {
	return d.do(func(q *Queue) { q.SoftmaxCrossEntropy(loss, correct, grad, logits, labels, classes, scale) })
}

// LossStats queues out[0:2] = Σ loss (the float64 row losses SoftmaxCrossEntropy wrote, 2 per
// row, rows of them) and out[2] = Σ correct (int32 bits), summed in a fixed order.
func (q *Queue) LossStats(out, loss, correct *Buffer, rows int) {
	if out.n < 3 || loss.n < 2*rows || correct.n < rows {
		panic(kernels.ErrLength)
	}
	q.launch("loss_stats", 1, 1, 256, ptrArg(out), arg(out.ptr+8), ptrArg(loss), ptrArg(correct), longArg(rows))
}

// UploadLabels copies class labels into a buffer, as the int32 values the loss kernel reads.
func (d *Device) UploadLabels(dst *Buffer, labels []int32) error {
	return d.do(func(q *Queue) { q.UploadInt32(dst, labels) })
}

// AdamStep is step t (from 1) of Adam, or AdamW when decoupled, over flat buffers, with the
// scalars derived exactly as compute/optim's adam derives them, so that both round alike.
func (q *Queue) AdamStep(p, g, m, v *Buffer, t int, lr, beta1, beta2, eps, wd float64, decoupled bool) {
	sameLength(p, g, m, v)
	decay, l2 := float32(1), float32(wd)
	if decoupled {
		decay, l2 = float32(1-lr*wd), 0
	}
	stepSize := float32(lr / (1 - math.Pow(beta1, float64(t))))
	invSqrtC2 := float32(1 / math.Sqrt(1-math.Pow(beta2, float64(t))))
	q.launch("adam_step", blocksFor(p.n), 1, 256, ptrArg(p), ptrArg(g), ptrArg(m), ptrArg(v), longArg(p.n),
		floatArg(decay), floatArg(l2), floatArg(stepSize), floatArg(invSqrtC2), floatArg(float32(beta1)), floatArg(float32(1-beta1)),
		floatArg(float32(beta2)), floatArg(float32(1-beta2)), floatArg(float32(eps)))
}

// AdamStep is Queue.AdamStep run alone.
func (d *Device) AdamStep(p, g, m, v *Buffer, t int, lr, beta1, beta2, eps, wd float64, decoupled bool) error {
	return d.do(func(q *Queue) { q.AdamStep(p, g, m, v, t, lr, beta1, beta2, eps, wd, decoupled) })
}

// SGDStep is one SGD update, as compute/optim's sgd; vel is nil without momentum.
func (q *Queue) SGDStep(p, g, vel *Buffer, lr, wd, momentum float64, nesterov bool) {
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
	q.launch("sgd_step", blocksFor(p.n), 1, 256, ptrArg(p), ptrArg(g), velArg, longArg(p.n),
		floatArg(float32(lr)), floatArg(float32(wd)), floatArg(float32(momentum)), intArg(nest))
}

// SGDStep is Queue.SGDStep run alone.
func (d *Device) SGDStep(p, g, vel *Buffer, lr, wd, momentum float64, nesterov bool) error {
	return d.do(func(q *Queue) { q.SGDStep(p, g, vel, lr, wd, momentum, nesterov) })
}

// RMSpropStep is one RMSprop update, as compute/optim's rmsprop; vel is nil without momentum.
func (q *Queue) RMSpropStep(p, g, sq, vel *Buffer, lr, wd, alpha, momentum, eps float64) {
	sameLength(p, g, sq)
	velArg := arg(0)
	if vel != nil {
		sameLength(p, vel)
		velArg = ptrArg(vel)
	}
	q.launch("rmsprop_step", blocksFor(p.n), 1, 256, ptrArg(p), ptrArg(g), ptrArg(sq), velArg, longArg(p.n),
		floatArg(float32(lr)), floatArg(float32(wd)), floatArg(float32(alpha)), floatArg(float32(1-alpha)),
		floatArg(float32(momentum)), floatArg(float32(eps)))
}

// RMSpropStep is Queue.RMSpropStep run alone.
func (d *Device) RMSpropStep(p, g, sq, vel *Buffer, lr, wd, alpha, momentum, eps float64) error {
	return d.do(func(q *Queue) { q.RMSpropStep(p, g, sq, vel, lr, wd, alpha, momentum, eps) })
}
