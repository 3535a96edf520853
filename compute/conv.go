package compute

import (
	"math/rand/v2"

	"github.com/troupe-ml/troupe/kernels"
)

// conv2D is a 2-D convolution over NCHW data with square kernels, a stride
// and zero padding. Weights are stored filters×channels×kernel×kernel
// (PyTorch's Conv2d layout).
//
// The whole batch goes through one Gemm: im2col lays every receptive field
// out as a column of a (channels·kernel²)×(batch·outH·outW) matrix, so the
// output is weights·columns, a filters×(batch·outH·outW) matrix that is then
// permuted into NCHW.
type conv2D struct {
	k                 kernels.Set
	c, h, w           int // input
	f, oh, ow         int // output
	size, stride, pad int
	weight, bias      []float32
	dWeight, dBias    []float32
	cols              []float32 // im2col of the last forward; reused for its gradient in backward
	tmp               []float32 // filters×(n·oh·ow): the Gemm output, and dy in that layout
	y, dx             []float32
	relu              bool // a following ReLU is folded in (see fuseActivations)
	// With keepNorms, backward also computes each sample's squared gradient norm into
	// sampleSq (TrainBatchClipped's first pass); g is its scratch, one sample's dWeight.
	keepNorms bool
	sampleSq  []float64
	g, dcols  []float32
}

func (l *conv2D) fuseRelu() { l.relu = true }

func newConv2D(lp layerPlan, k kernels.Set) *conv2D {
	return &conv2D{k: k,
		c: lp.in[0], h: lp.in[1], w: lp.in[2],
		f: lp.out[0], oh: lp.out[1], ow: lp.out[2],
		size: lp.spec.Kernel, stride: lp.spec.Stride, pad: lp.spec.Padding}
}

func (l *conv2D) fanIn() int { return l.c * l.size * l.size }

func (l *conv2D) bind(params, grads []float32) {
	nw := l.f * l.fanIn()
	l.weight, l.bias = params[:nw], params[nw:nw+l.f]
	l.dWeight, l.dBias = grads[:nw], grads[nw:nw+l.f]
}

func (l *conv2D) initialize(rng *rand.Rand, init string) {
	uniformInit(l.weight, rng, init, l.fanIn(), l.f*l.size*l.size)
	clear(l.bias)
}

func (l *conv2D) tensors() []tensorShape {
	return weightAndBias([]int{l.f, l.c, l.size, l.size}, []int{l.f})
}

// validRange returns the output positions o in [lo, hi) whose input
// coordinate o*stride - pad + offset lies inside [0, extent).
func validRange(offset, extent, stride, pad, outLen int) (lo, hi int) {
	// o*stride >= pad - offset  and  o*stride <= extent - 1 + pad - offset
	start := pad - offset
	if start > 0 {
		lo = (start + stride - 1) / stride
	}
	end := extent - 1 + pad - offset
	if end < 0 {
		return 0, 0
	}
	hi = min(end/stride+1, outLen)
	return min(lo, hi), hi
}

// im2col writes cols[(ci·K+kh)·K+kw][(s·oh+y)·ow+x] = input(s, ci, y·stride-pad+kh, x·stride-pad+kw),
// zero outside the input.
func (l *conv2D) im2col(cols, x []float32, n int) {
	np := n * l.oh * l.ow
	for ci := range l.c {
		for kh := range l.size {
			yLo, yHi := validRange(kh, l.h, l.stride, l.pad, l.oh)
			for kw := range l.size {
				xLo, xHi := validRange(kw, l.w, l.stride, l.pad, l.ow)
				row := cols[((ci*l.size+kh)*l.size+kw)*np:][:np]
				for s := range n {
					plane := x[(s*l.c+ci)*l.h*l.w:][:l.h*l.w]
					out := row[s*l.oh*l.ow:][:l.oh*l.ow]
					clear(out[:yLo*l.ow])
					for oy := yLo; oy < yHi; oy++ {
						dst := out[oy*l.ow:][:l.ow]
						src := plane[(oy*l.stride-l.pad+kh)*l.w:][:l.w]
						clear(dst[:xLo])
						ix := xLo*l.stride - l.pad + kw
						for ox := xLo; ox < xHi; ox++ {
							dst[ox] = src[ix]
							ix += l.stride
						}
						clear(dst[xHi:])
					}
					clear(out[yHi*l.ow:])
				}
			}
		}
	}
}

// col2im is im2col's adjoint: it sums every column entry back into the
// input position it was read from, overwriting dx.
func (l *conv2D) col2im(dx, cols []float32, n int) {
	clear(dx)
	np := n * l.oh * l.ow
	for ci := range l.c {
		for kh := range l.size {
			yLo, yHi := validRange(kh, l.h, l.stride, l.pad, l.oh)
			for kw := range l.size {
				xLo, xHi := validRange(kw, l.w, l.stride, l.pad, l.ow)
				row := cols[((ci*l.size+kh)*l.size+kw)*np:][:np]
				for s := range n {
					plane := dx[(s*l.c+ci)*l.h*l.w:][:l.h*l.w]
					in := row[s*l.oh*l.ow:][:l.oh*l.ow]
					for oy := yLo; oy < yHi; oy++ {
						src := in[oy*l.ow:][:l.ow]
						dst := plane[(oy*l.stride-l.pad+kh)*l.w:][:l.w]
						ix := xLo*l.stride - l.pad + kw
						for ox := xLo; ox < xHi; ox++ {
							dst[ix] += src[ox]
							ix += l.stride
						}
					}
				}
			}
		}
	}
}

func (l *conv2D) forward(x []float32, n int, train bool) []float32 {
	plane := l.oh * l.ow
	np := n * plane
	l.cols = grow(l.cols, l.fanIn()*np)
	l.tmp = grow(l.tmp, l.f*np)
	l.y = grow(l.y, n*l.f*plane)
	l.im2col(l.cols, x, n)
	l.k.Gemm(false, false, l.f, np, l.fanIn(), 1, l.weight, l.fanIn(), l.cols, np, 0, l.tmp, np)
	// tmp is filters × (sample, y, x); NCHW wants sample × filters × (y, x).
	for fi := range l.f {
		b := l.bias[fi]
		for s := range n {
			src := l.tmp[fi*np+s*plane:][:plane]
			dst := l.y[(s*l.f+fi)*plane:][:plane]
			if l.relu {
				kernels.AddRelu(dst, src, b)
				continue
			}
			for i, v := range src {
				dst[i] = v + b
			}
		}
	}
	return l.y
}

func (l *conv2D) backward(dy []float32, n int, needDx bool) []float32 {
	plane := l.oh * l.ow
	np := n * plane
	if l.relu {
		// Mask dy by the ReLU while permuting it, and sum the bias
		// gradient on the way (in float64, as RowSums does).
		for fi := range l.f {
			var sum float64
			for s := range n {
				at := (s*l.f + fi) * plane
				sum += kernels.ReluGradSum(l.tmp[fi*np+s*plane:][:plane], dy[at:][:plane], l.y[at:][:plane])
			}
			l.dBias[fi] = float32(sum)
		}
	} else {
		for fi := range l.f {
			for s := range n {
				copy(l.tmp[fi*np+s*plane:][:plane], dy[(s*l.f+fi)*plane:][:plane])
			}
		}
		l.k.RowSums(l.dBias, l.tmp)
	}
	l.k.Gemm(false, true, l.f, l.fanIn(), np, 1, l.tmp, np, l.cols, np, 0, l.dWeight, l.fanIn())
	if l.keepNorms {
		l.sampleNorms(n)
	}
	if !needDx {
		return nil
	}
	// The columns are no longer needed, so their buffer takes their gradient, unless another
	// backward pass over the same forward follows (the norms' pass of TrainBatchClipped).
	dcols := l.cols
	if l.keepNorms {
		l.dcols = grow(l.dcols, len(l.cols))
		dcols = l.dcols
	}
	l.k.Gemm(true, false, l.fanIn(), np, l.f, 1, l.weight, l.fanIn(), l.tmp, np, 0, dcols, np)
	l.dx = grow(l.dx, n*l.c*l.h*l.w)
	l.col2im(l.dx, dcols, n)
	return l.dx
}

// sampleNorms sets sampleSq[s] to the squared norm of sample s's share of the weight and bias
// gradients: the weights share over positions, so each sample's weight gradient is a product
// of its own (its block of the columns times its block of tmp), one Gemm per sample: the
// flops of dWeight's Gemm again.
func (l *conv2D) sampleNorms(n int) {
	plane := l.oh * l.ow
	np := n * plane
	l.g = grow(l.g, l.f*l.fanIn())
	l.sampleSq = grow(l.sampleSq, n)
	for s := range n {
		l.k.Gemm(false, true, l.f, l.fanIn(), plane, 1, l.tmp[s*plane:], np, l.cols[s*plane:], np, 0, l.g, l.fanIn())
		var sq float64
		for _, v := range l.g {
			sq += float64(v) * float64(v)
		}
		for fi := range l.f {
			var b float64
			for _, v := range l.tmp[fi*np+s*plane:][:plane] {
				b += float64(v)
			}
			sq += b * b
		}
		l.sampleSq[s] = sq
	}
}

func (l *conv2D) keepSampleNorms(on bool) { l.keepNorms = on }

func (l *conv2D) addSampleNormsSq(n int, acc []float64) {
	for s, sq := range l.sampleSq[:n] {
		acc[s] += sq
	}
}

// maxPool2D takes the maximum over square windows of each channel, without
// padding. Ties go to the first position in row-major order.
type maxPool2D struct {
	c, h, w      int
	oh, ow       int
	size, stride int
	argmax       []int // per output value, the input index it came from
	y, dx        []float32
}

func newMaxPool2D(lp layerPlan) *maxPool2D {
	return &maxPool2D{c: lp.in[0], h: lp.in[1], w: lp.in[2], oh: lp.out[1], ow: lp.out[2],
		size: lp.spec.Size, stride: lp.spec.Stride}
}

func (p *maxPool2D) forward(x []float32, n int, train bool) []float32 {
	planes := n * p.c
	p.y = grow(p.y, planes*p.oh*p.ow)
	if cap(p.argmax) < len(p.y) {
		p.argmax = make([]int, len(p.y))
	}
	p.argmax = p.argmax[:len(p.y)]
	for pl := range planes {
		base := pl * p.h * p.w
		for oy := range p.oh {
			for ox := range p.ow {
				best := base + oy*p.stride*p.w + ox*p.stride
				for ky := range p.size {
					row := base + (oy*p.stride+ky)*p.w + ox*p.stride
					for kx := range p.size {
						if x[row+kx] > x[best] {
							best = row + kx
						}
					}
				}
				o := (pl*p.oh+oy)*p.ow + ox
				p.y[o] = x[best]
				p.argmax[o] = best
			}
		}
	}
	return p.y
}

func (p *maxPool2D) backward(dy []float32, n int, needDx bool) []float32 {
	if !needDx {
		return nil
	}
	p.dx = grow(p.dx, n*p.c*p.h*p.w)
	clear(p.dx)
	for o, g := range dy {
		p.dx[p.argmax[o]] += g
	}
	return p.dx
}
