package kernels

import "math"

// Fused kernels: plain functions that do in one loop what would otherwise
// take several passes over the same memory (a layer's bias and activation
// and their gradients, a loss and its gradient). They are not part of Set:
// they are element-wise loops every Set would share. Each computes, value
// for value, what the unfused Reference kernels compute, unless its comment
// says where the rounding differs.

// BiasRelu sets every row r of c, a matrix of len(bias) columns, to
// max(r + bias, 0): a dense layer's bias and ReLU in one pass over its
// Gemm output. It equals AddRowVector followed by Relu, bit for bit.
func BiasRelu(c, bias []float32) {
	rows := rowsOf(c, len(bias))
	done := biasReluVector(c, bias, rows) // the columns the vector loop did
	for i := range rows {
		row := c[i*len(bias):][:len(bias)]
		for j := done; j < len(bias); j++ {
			row[j] = max(row[j]+bias[j], 0)
		}
	}
}

// AddRelu sets dst[i] = max(src[i] + b, 0): one channel of a convolution's
// output plus that channel's bias, through a ReLU. dst may be src.
func AddRelu(dst, src []float32, b float32) {
	checkSameLength(dst, src)
	dst = dst[:len(src)]
	for i, v := range src {
		dst[i] = max(v+b, 0)
	}
}

// reluMask returns v where y > 0 and +0 elsewhere, as ReluGrad does, but
// without a branch: the signs of activations are close to random, and a
// branch per value mispredicts often enough to cost more than the rest of
// the pass. y > 0 exactly when y's bits, read as an unsigned integer, lie
// in [1, 0x7f800000] (the smallest subnormal to +Inf; zeros, negatives
// and NaNs fall outside), which the compiler turns into a conditional move.
func reluMask(v, y float32) float32 {
	var m uint32
	if math.Float32bits(y)-1 < 0x7f800000 {
		m = ^uint32(0)
	}
	return math.Float32frombits(math.Float32bits(v) & m)
}

// ReluBiasGrad is the backward pass of BiasRelu. y is BiasRelu's output and
// dy the loss gradient with respect to it, both matrices of len(db)
// columns. It sets dz = dy where y > 0 and 0 elsewhere (the gradient with
// respect to the pre-activation) and db to the column sums of dz, in one
// pass. It equals ReluGrad followed by ColSums, bit for bit: the sums run
// down the rows in order, in float32. dz may be dy.
func ReluBiasGrad(dz, db, dy, y []float32) {
	checkSameLength(dz, dy, y)
	rows := rowsOf(dz, len(db))
	clear(db)
	done := reluBiasGradVector(dz, db, dy, y, rows) // the columns the vector loop did
	for i := range rows {
		off := i * len(db)
		zr, dr, yr := dz[off:][:len(db)], dy[off:][:len(db)], y[off:][:len(db)]
		for j := done; j < len(db); j++ {
			v := reluMask(dr[j], yr[j])
			zr[j] = v
			db[j] += v
		}
	}
}

// ReluGradSum sets dst = dy where y > 0 and 0 elsewhere, and returns the
// sum of dst accumulated in float64 (four running sums, combined as
// (s0+s1)+(s2+s3)): a convolution's ReLU mask and its bias gradient for
// one channel of one sample. dst may be dy.
func ReluGradSum(dst, dy, y []float32) float64 {
	checkSameLength(dst, dy, y)
	dy, y = dy[:len(dst)], y[:len(dst)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(dst); i += 4 {
		g4, y4 := dy[i:i+4:i+4], y[i:i+4:i+4]
		a := reluMask(g4[0], y4[0])
		b := reluMask(g4[1], y4[1])
		c := reluMask(g4[2], y4[2])
		d := reluMask(g4[3], y4[3])
		d4 := dst[i : i+4 : i+4]
		d4[0], d4[1], d4[2], d4[3] = a, b, c, d
		s0 += float64(a)
		s1 += float64(b)
		s2 += float64(c)
		s3 += float64(d)
	}
	for ; i < len(dst); i++ {
		a := reluMask(dy[i], y[i])
		dst[i] = a
		s0 += float64(a)
	}
	return (s0 + s1) + (s2 + s3)
}

// softmaxKeep is the longest row (a classifier's) whose exponentials
// SoftmaxCrossEntropy takes in float64 and keeps on the stack; longer rows
// (a language model's vocabulary) take them in float32 with the vector Exp.
const softmaxKeep = 64

// softmaxChunk is how many exponentials of a long row without a gradient
// buffer are taken at once, on the stack.
const softmaxChunk = 256

// SoftmaxCrossEntropy returns -log softmax(z)[label], computed in float64
// as logsumexp(z) - z[label] with the maximum subtracted first so exp
// cannot overflow. When g is non-nil it also sets g to
// scale·(softmax(z) - onehot(label)), taking softmax(z)_j as
// exp(z_j - max)/Σ so that each exponential is computed once (kept on the
// stack for rows up to softmaxKeep long). Against the form that computes
// exp(z_j - logsumexp(z)) again, the loss is the same bits and each
// probability within a few float64 ulps, so a gradient value differs by at
// most one float32 ulp, and only when it lies that close to a rounding
// boundary. Rows longer than softmaxKeep take the exponentials in float32
// (Exp, within 2 ulps) and sum them in float64: there the loss is within
// about 1e-7 of the float64 form and a gradient value within a few float32
// ulps of it, for a sixth of the time of two float64 exponentials per value.
// It panics, before writing, unless 0 <= label < len(z) and g is nil or as
// long as z.
func SoftmaxCrossEntropy(z []float32, label int, scale float32, g []float32) float64 {
	if g != nil {
		checkSameLength(g, z)
	}
	zl := float64(z[label]) // bounds check: a bad label panics before any write
	if len(z) > softmaxKeep {
		return softmaxCrossEntropyLong(z, zl, label, scale, g)
	}
	zmax := float64(z[0])
	for _, v := range z {
		zmax = math.Max(zmax, float64(v))
	}
	var kept [softmaxKeep]float64
	keep := g != nil && len(z) <= softmaxKeep
	var sum float64
	for j, v := range z {
		e := math.Exp(float64(v) - zmax)
		if keep {
			kept[j] = e
		}
		sum += e
	}
	if g != nil {
		for j, v := range z {
			var e float64
			if keep {
				e = kept[j]
			} else {
				e = math.Exp(float64(v) - zmax)
			}
			p := e / sum
			if j == label {
				p--
			}
			g[j] = scale * float32(p)
		}
	}
	return zmax + math.Log(sum) - zl
}

// softmaxCrossEntropyLong is SoftmaxCrossEntropy for rows longer than
// softmaxKeep: exp(z_j - max) into g (or a stack chunk when g is nil) by
// the vector Exp, summed in float64, then g scaled to the probabilities.
func softmaxCrossEntropyLong(z []float32, zl float64, label int, scale float32, g []float32) float64 {
	zmax := z[0]
	for _, v := range z {
		zmax = max(zmax, v) // NaN in, NaN out, as math.Max
	}
	var chunk [softmaxChunk]float32
	var sum float64
	for off := 0; off < len(z); off += softmaxChunk {
		src := z[off:min(off+softmaxChunk, len(z))]
		e := chunk[:len(src)]
		if g != nil {
			e = g[off : off+len(src)]
		}
		for i, v := range src {
			e[i] = v - zmax
		}
		expSerial(e, e)
		for _, v := range e {
			sum += float64(v)
		}
	}
	if g != nil {
		inv := 1 / sum
		pl := float64(g[label])*inv - 1
		for j, e := range g {
			g[j] = scale * float32(float64(e)*inv)
		}
		g[label] = scale * float32(pl)
	}
	return float64(zmax) + math.Log(sum) - zl
}
