package kernels

import (
	"math"
	"runtime"
	"sync"

	"github.com/troupe-ml/troupe/internal/parallel"
)

// The element-wise kernels of a transformer: exponentials for the attention softmax, the
// GELU of its MLP, and layer normalization. They work on float32 throughout, as the products
// around them do; Exp is accurate to about 2 float32 ulps, which the gradient checks and the
// comparison with PyTorch's float32 results bound well inside their tolerances.

const (
	log2e = 1.4426950408889634
	// ln2Hi + ln2Lo = ln 2, ln2Hi with its low bits zero so that n·ln2Hi is exact for the
	// n of float32's range (Cody and Waite's reduction).
	ln2Hi = 0.693145751953125
	ln2Lo = 1.4286068203094172321e-6
	// Below expMin exp underflows to 0 in float32 (the subnormals are flushed); above expMax
	// it overflows to +Inf.
	expMin = -87.33654
	expMax = 88.72283
)

// expf is e^x in float32: x = n·ln 2 + r with |r| <= ln2/2, e^r from its Taylor series to r⁷
// (truncation below 2⁻²⁴ relative), times 2^n put straight into the exponent bits.
func expf(x float32) float32 {
	switch {
	case x != x:
		return x
	case x < expMin:
		return 0
	case x > expMax:
		return float32(math.Inf(1))
	}
	n := float32(math.Floor(float64(x*log2e) + 0.5))
	r := x - n*ln2Hi - n*ln2Lo
	p := 1.0/5040 + r*(1.0/40320)
	p = 1.0/720 + r*p
	p = 1.0/120 + r*p
	p = 1.0/24 + r*p
	p = 1.0/6 + r*p
	p = 0.5 + r*p
	p = 1 + r*p
	p = 1 + r*p
	// n is in [-126, 128]; 2^128 is out of range, so scale by 2^(n-1) twice when n is 128.
	if n > 127 {
		return p * 2 * math.Float32frombits(uint32(int32(n)-1+127)<<23)
	}
	return p * math.Float32frombits(uint32(int32(n)+127)<<23)
}

// Exp sets dst[i] = e^src[i]. dst and src may be the same slice; it panics unless they have
// the same length.
func Exp(dst, src []float32) {
	checkSameLength(dst, src)
	if !elemSplit(elemExp, dst, src, nil) {
		expSerial(dst, src)
	}
}

// expSerial is Exp on the calling goroutine: the vector code (transformer_amd64.s) does as
// many values as it can, expGo the rest.
func expSerial(dst, src []float32) {
	i := expVector(elemLevel, dst, src)
	expGo(dst[i:], src[i:])
}

func expGo(dst, src []float32) {
	for i, v := range src {
		dst[i] = expf(v)
	}
}

// geluC is √(2/π), the constant of GELU's tanh approximation.
const geluC = 0.7978845608028654

// geluSigmoid returns s = σ(2u) = (1 + tanh u)/2 and 1 - s for u = √(2/π)(x + 0.044715x³),
// from one exponential: GELU is x·s, and writing it so (rather than x/2·(1 + tanh u)) avoids
// the cancellation of 1 + tanh u for negative x. u is clamped to ±40, where e^{80} still fits
// in float32 and s or 1 - s is below 1e-34.
func geluSigmoid(x float32) (s, oneMinus float32) {
	u := min(max(geluC*(x+0.044715*x*x*x), -40), 40)
	e := expf(-2 * u)
	s = 1 / (1 + e)
	return s, s * e
}

// GELU sets y to the tanh approximation of GELU that GPT-2 uses (PyTorch's
// gelu(approximate="tanh")): y = x/2 · (1 + tanh(√(2/π)·(x + 0.044715x³))). It panics unless
// y and x have the same length.
func GELU(y, x []float32) {
	checkSameLength(y, x)
	if !elemSplit(elemGELU, y, x, nil) {
		geluSerial(y, x)
	}
}

func geluSerial(y, x []float32) {
	i := geluVector(elemLevel, y, x)
	geluGo(y[i:], x[i:])
}

func geluGo(y, x []float32) {
	for i, v := range x {
		s, _ := geluSigmoid(v)
		y[i] = v * s
	}
}

// GELUGrad sets dx to dy times the derivative of GELU at x: s + x·2s(1-s)·du/dx. It panics
// unless the three have the same length.
func GELUGrad(dx, dy, x []float32) {
	checkSameLength(dx, dy, x)
	if !elemSplit(elemGELUGrad, dx, dy, x) {
		geluGradSerial(dx, dy, x)
	}
}

func geluGradSerial(dx, dy, x []float32) {
	i := geluGradVector(elemLevel, dx, dy, x)
	geluGradGo(dx[i:], dy[i:], x[i:])
}

// geluGradGo's expression is evaluated in this order, product by product, by the vector code
// too, so that the two differ only where their exponentials do.
func geluGradGo(dx, dy, x []float32) {
	for i, v := range x {
		s, sc := geluSigmoid(v)
		d := s + 2*v*s*sc*geluC*(1+3*0.044715*v*v)
		dx[i] = dy[i] * d
	}
}

// The vector code the element-wise kernels can run: transformer_amd64.go sets elemLevelMax to
// the best this CPU has, and elemLevel with it; tests lower elemLevel to compare the others.
const (
	elemGo = iota
	elemAVX2
	elemAVX512
)

var elemLevel, elemLevelMax = elemGo, elemGo

// elemWidth is how many values level's code takes at a time: it does the longest prefix of a
// slice that is a multiple of that, the Go loops the rest.
func elemWidth(level int) int {
	switch level {
	case elemAVX512:
		return 16
	case elemAVX2:
		return 8
	}
	return 0
}

// The element-wise kernels get slices of up to a few million values from one goroutine; from
// elemSplitMin values on they are cut into chunks of elemChunk that parallel.For hands to the
// other cores. A chunk of Exp takes a few microseconds on one core, so claiming one costs
// little, and there are enough of them to even out a core that another process slows down.
// elemChunk is a multiple of every vector width, so the values that the vector code and the
// Go loop of a *Serial function do are the same with and without the split: the results do
// not depend on it.
const (
	elemSplitMin = 1 << 16
	elemChunk    = 1 << 14
)

const (
	elemExp = iota
	elemGELU
	elemGELUGrad
)

// elemJob is one split call: out = op(a, b). Jobs are pooled with their run method bound
// once, so that a split call allocates nothing (parallel.For wants a function value made
// once, not a closure per call).
type elemJob struct {
	op        int
	out, a, b []float32
	run       func(chunk int)
}

var elemJobs = sync.Pool{New: func() any {
	j := new(elemJob)
	j.run = j.chunk
	return j
}}

func (j *elemJob) chunk(c int) {
	lo := c * elemChunk
	hi := min(lo+elemChunk, len(j.out))
	switch j.op {
	case elemExp:
		expSerial(j.out[lo:hi], j.a[lo:hi])
	case elemGELU:
		geluSerial(j.out[lo:hi], j.a[lo:hi])
	case elemGELUGrad:
		geluGradSerial(j.out[lo:hi], j.a[lo:hi], j.b[lo:hi])
	}
}

// elemSplit runs op over the cores and reports whether it did; it leaves slices shorter than
// elemSplitMin, and single-core programs, to the caller.
func elemSplit(op int, out, a, b []float32) bool {
	threads := runtime.GOMAXPROCS(0)
	if len(out) < elemSplitMin || threads < 2 {
		return false
	}
	j := elemJobs.Get().(*elemJob)
	j.op, j.out, j.a, j.b = op, out, a, b
	parallel.For(ceilDiv(len(out), elemChunk), threads-1, j.run)
	j.out, j.a, j.b = nil, nil, nil
	elemJobs.Put(j)
	return true
}

// LayerNormEps is the ε added to the variance, PyTorch's default.
const LayerNormEps = 1e-5

// LayerNorm normalizes each row of x (rows of cols values) to zero mean and unit variance and
// applies the gain and bias: y = (x - μ)/√(σ² + ε) · gain + bias. It keeps each row's μ and
// 1/√(σ² + ε) in mean and rstd for LayerNormGrad. The variance is the biased one (divided by
// cols), as PyTorch computes it; both moments are summed in float64, so rows whose mean is
// large against their spread keep their precision. It panics on mismatched lengths.
func LayerNorm(y, mean, rstd, x, gain, bias []float32, cols int) {
	rows := rowsOf(x, cols)
	checkSameLength(y, x)
	if len(mean) != rows || len(rstd) != rows || len(gain) != cols || len(bias) != cols {
		panic("kernels: LayerNorm: statistics or parameters of the wrong length")
	}
	for r := range rows {
		row := x[r*cols : (r+1)*cols]
		var s float64
		for _, v := range row {
			s += float64(v)
		}
		mu := s / float64(cols)
		var q float64
		for _, v := range row {
			d := float64(v) - mu
			q += d * d
		}
		rs := float32(1 / math.Sqrt(q/float64(cols)+LayerNormEps))
		m := float32(mu)
		mean[r], rstd[r] = m, rs
		out := y[r*cols : (r+1)*cols]
		for j, v := range row {
			out[j] = (v-m)*rs*gain[j] + bias[j]
		}
	}
}

// LayerNormGrad back-propagates dy through LayerNorm: it adds the input gradient to dx (so a
// residual connection's gradient can be there already) and the gain and bias gradients to
// dgain and dbias. With x̂ = (x - μ)·rstd and g = dy·gain, the input gradient of a row is
// rstd·(g - mean(g) - x̂·mean(g·x̂)). It panics on mismatched lengths.
func LayerNormGrad(dx, dgain, dbias, dy, x, mean, rstd, gain []float32, cols int) {
	rows := rowsOf(x, cols)
	checkSameLength(dx, dy, x)
	if len(mean) != rows || len(rstd) != rows || len(gain) != cols || len(dgain) != cols || len(dbias) != cols {
		panic("kernels: LayerNormGrad: statistics or parameters of the wrong length")
	}
	inv := 1 / float32(cols)
	for r := range rows {
		xr, dyr, dxr := x[r*cols:(r+1)*cols], dy[r*cols:(r+1)*cols], dx[r*cols:(r+1)*cols]
		m, rs := mean[r], rstd[r]
		var sg, sgx float32
		for j, v := range xr {
			xh := (v - m) * rs
			g := dyr[j] * gain[j]
			sg += g
			sgx += g * xh
			dgain[j] += dyr[j] * xh
			dbias[j] += dyr[j]
		}
		sg *= inv
		sgx *= inv
		for j, v := range xr {
			xh := (v - m) * rs
			dxr[j] += rs * (dyr[j]*gain[j] - sg - xh*sgx)
		}
	}
}
