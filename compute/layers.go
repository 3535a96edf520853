package compute

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/troupe-ml/troupe/kernels"
)

// layer is one step of the chain. Buffers it returns are its own and stay
// valid until its next forward or backward; it never writes its inputs.
type layer interface {
	// forward maps n samples x (n×inSize) to the layer's output. In
	// training mode it keeps what backward needs.
	forward(x []float32, n int, train bool) []float32
	// backward takes the loss gradient with respect to the last training
	// forward's output, overwrites the layer's parameter gradients, and
	// returns the gradient with respect to its input when needDx (nil
	// otherwise).
	backward(dy []float32, n int, needDx bool) []float32
}

// paramLayer is a layer that owns parameters: views into the model's flat
// vectors, weights first, then biases.
type paramLayer interface {
	layer
	bind(params, grads []float32)
	initialize(rng *rand.Rand, init string)
	// tensors lists the layer's parameter tensors in the order bind lays them out, named
	// relative to the layer.
	tensors() []tensorShape
}

// tensorShape is one parameter tensor of a layer. decay marks the matrices that weight
// decay applies to when a model restricts it (a GPT's: not its biases, gains and
// embeddings).
type tensorShape struct {
	name  string
	shape []int
	decay bool
}

// weightAndBias is the tensors of a layer with one weight tensor and one bias vector.
func weightAndBias(weight, bias []int) []tensorShape {
	return []tensorShape{{name: "weight", shape: weight, decay: true}, {name: "bias", shape: bias}}
}

// newLayer builds the layer lp describes.
func newLayer(lp layerPlan, k kernels.Set) layer {
	inSize, outSize := product(lp.in), product(lp.out)
	switch lp.spec.Type {
	case LayerDense:
		return &dense{k: k, in: inSize, out: outSize}
	case LayerConv2D:
		return newConv2D(lp, k)
	case LayerMaxPool2D:
		return newMaxPool2D(lp)
	case LayerDropout:
		return &dropout{k: k, rate: lp.spec.Rate}
	case LayerFlatten:
		return flatten{}
	case LayerReLU:
		return &relu{k: k}
	case LayerGELU:
		return &gelu{}
	case LayerTanh:
		return &tanhLayer{}
	}
	panic(fmt.Sprintf("compute: layer type %q passed validation but has no implementation", lp.spec.Type))
}

// uniformInit fills w from U(-bound, bound), bound chosen by the
// initializer from the fans.
func uniformInit(w []float32, rng *rand.Rand, init string, fanIn, fanOut int) {
	bound := math.Sqrt(6 / float64(fanIn))
	if init == InitXavier {
		bound = math.Sqrt(6 / float64(fanIn+fanOut))
	}
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
}

// dense is y = x·Wᵀ + b with W stored out×in (PyTorch's Linear layout, so
// exported weights load there unchanged).
type dense struct {
	k       kernels.Set
	in, out int
	w, b    []float32
	dw, db  []float32
	x       []float32 // input of the last training forward
	y, dx   []float32
	// relu is set when the next layer is a ReLU folded into this one
	// (see fuseActivations): y is then max(x·Wᵀ + b, 0), and backward
	// receives the gradient with respect to that and masks it into dz.
	relu bool
	dz   []float32
	// gz is the gradient with respect to x·Wᵀ + b of the last backward pass (dz, or dy
	// without a folded ReLU), kept for per-sample gradient norms.
	gz []float32
}

func (d *dense) bind(params, grads []float32) {
	nw := d.in * d.out
	d.w, d.b = params[:nw], params[nw:nw+d.out]
	d.dw, d.db = grads[:nw], grads[nw:nw+d.out]
}

func (d *dense) initialize(rng *rand.Rand, init string) {
	uniformInit(d.w, rng, init, d.in, d.out)
	clear(d.b)
}

func (d *dense) tensors() []tensorShape { return weightAndBias([]int{d.out, d.in}, []int{d.out}) }

func (d *dense) forward(x []float32, n int, train bool) []float32 {
	d.y = grow(d.y, n*d.out)
	d.k.Gemm(false, true, n, d.out, d.in, 1, x, d.in, d.w, d.in, 0, d.y, d.out)
	if d.relu {
		kernels.BiasRelu(d.y, d.b)
	} else {
		d.k.AddRowVector(d.y, d.b)
	}
	if train {
		d.x = x
	}
	return d.y
}

func (d *dense) backward(dy []float32, n int, needDx bool) []float32 {
	if d.relu {
		d.dz = grow(d.dz, len(dy))
		kernels.ReluBiasGrad(d.dz, d.db, dy, d.y)
		dy = d.dz
	} else {
		d.k.ColSums(d.db, dy)
	}
	d.gz = dy
	d.k.Gemm(true, false, d.out, d.in, n, 1, dy, d.out, d.x, d.in, 0, d.dw, d.in)
	if !needDx {
		return nil
	}
	d.dx = grow(d.dx, n*d.in)
	d.k.Gemm(false, false, n, d.in, d.out, 1, dy, d.out, d.w, d.in, 0, d.dx, d.in)
	return d.dx
}

// addSampleNormsSq adds to acc[i] the squared L2 norm of sample i's share of the last
// backward pass's gradients of W and b: sample i contributes gzᵢ ⊗ xᵢ to dW and gzᵢ to db,
// whose squared norms are ‖gzᵢ‖²·‖xᵢ‖² and ‖gzᵢ‖², so no per-sample gradient is formed.
func (d *dense) addSampleNormsSq(n int, acc []float64) {
	for i := range n {
		var g2, x2 float64
		for _, v := range d.gz[i*d.out : (i+1)*d.out] {
			g2 += float64(v) * float64(v)
		}
		for _, v := range d.x[i*d.in : (i+1)*d.in] {
			x2 += float64(v) * float64(v)
		}
		acc[i] += g2 * (x2 + 1)
	}
}

// relu is y = max(x, 0). When folded into the layer before it (fused),
// that layer applies it and its gradient, and relu passes values through.
type relu struct {
	k     kernels.Set
	fused bool
	y, dx []float32
}

func (r *relu) forward(x []float32, n int, train bool) []float32 {
	if r.fused {
		return x
	}
	r.y = grow(r.y, len(x))
	r.k.Relu(r.y, x)
	return r.y
}

func (r *relu) backward(dy []float32, n int, needDx bool) []float32 {
	if !needDx {
		return nil
	}
	if r.fused {
		return dy
	}
	r.dx = grow(r.dx, len(dy))
	r.k.ReluGrad(r.dx, dy, r.y)
	return r.dx
}

// reluFuser is a layer that can apply a ReLU that follows it in the same
// pass as its bias, and mask the gradient in the same pass as its bias
// gradient.
type reluFuser interface {
	fuseRelu()
}

func (d *dense) fuseRelu() { d.relu = true }

// fuseActivations folds every ReLU that directly follows a dense or conv2d
// layer into that layer, saving a pass and a buffer each way. Outputs and
// input gradients are the same bits as unfused: max(v+b, 0) is what the
// two layers computed in sequence, and y > 0 holds at the same places
// before and after the ReLU. A dense bias gradient is the same bits too
// (float32 column sums in row order, as ColSums); a conv2d one is summed
// in float64 per sample plane, an order that can differ from RowSums' in
// the last bit of the float64 sum, far below the float32 result's rounding.
func fuseActivations(layers []layer) {
	for i := 1; i < len(layers); i++ {
		r, ok := layers[i].(*relu)
		if !ok {
			continue
		}
		if f, ok := layers[i-1].(reluFuser); ok {
			f.fuseRelu()
			r.fused = true
		}
	}
}

// geluC is √(2/π), the constant of GELU's tanh approximation.
var geluC = math.Sqrt(2 / math.Pi)

// gelu uses the tanh approximation (as GPT-2 does):
// y = x/2 · (1 + tanh(√(2/π)·(x + 0.044715x³))).
type gelu struct {
	x, y, dx []float32
}

func (g *gelu) forward(x []float32, n int, train bool) []float32 {
	g.y = grow(g.y, len(x))
	for i, v := range x {
		xv := float64(v)
		g.y[i] = float32(0.5 * xv * (1 + math.Tanh(geluC*(xv+0.044715*xv*xv*xv))))
	}
	g.x = x
	return g.y
}

func (g *gelu) backward(dy []float32, n int, needDx bool) []float32 {
	if !needDx {
		return nil
	}
	g.dx = grow(g.dx, len(dy))
	for i, v := range g.x {
		xv := float64(v)
		t := math.Tanh(geluC * (xv + 0.044715*xv*xv*xv))
		grad := 0.5*(1+t) + 0.5*xv*(1-t*t)*geluC*(1+3*0.044715*xv*xv)
		g.dx[i] = float32(float64(dy[i]) * grad)
	}
	return g.dx
}

// tanhLayer is y = tanh(x).
type tanhLayer struct {
	y, dx []float32
}

func (h *tanhLayer) forward(x []float32, n int, train bool) []float32 {
	h.y = grow(h.y, len(x))
	for i, v := range x {
		h.y[i] = float32(math.Tanh(float64(v)))
	}
	return h.y
}

func (h *tanhLayer) backward(dy []float32, n int, needDx bool) []float32 {
	if !needDx {
		return nil
	}
	h.dx = grow(h.dx, len(dy))
	for i, y := range h.y {
		h.dx[i] = dy[i] * (1 - y*y)
	}
	return h.dx
}

// dropout is inverted dropout: in training each value is kept with
// probability 1-rate and scaled by 1/(1-rate), so inference is the
// identity. The mask is a function of the seed the model sets per call.
type dropout struct {
	k     kernels.Set
	rate  float64
	src   rand.PCG
	mask  []float32 // 0 or 1/(1-rate) per value of the last training forward
	y, dx []float32
	// callSeed and stream, set by seed, fix the mask of every training forward until
	// the next seed: a block that recomputes its forward pass draws the same mask again.
	callSeed, stream uint64
}

// seed makes the training forwards' mask a function of (callSeed, stream) alone.
func (d *dropout) seed(callSeed, stream uint64) { d.callSeed, d.stream = callSeed, stream }

func (d *dropout) forward(x []float32, n int, train bool) []float32 {
	if !train || d.rate == 0 {
		return x
	}
	// A value is dropped when 24 random bits, read as a fraction, fall
	// below rate.
	d.src.Seed(d.callSeed, d.stream)
	threshold := uint64(d.rate * (1 << 24))
	scale := float32(1 / (1 - d.rate))
	d.mask = grow(d.mask, len(x))
	for i := range d.mask {
		if d.src.Uint64()>>40 < threshold {
			d.mask[i] = 0
		} else {
			d.mask[i] = scale
		}
	}
	d.y = grow(d.y, len(x))
	d.k.Mul(d.y, x, d.mask)
	return d.y
}

func (d *dropout) backward(dy []float32, n int, needDx bool) []float32 {
	if !needDx {
		return nil
	}
	if d.rate == 0 {
		return dy
	}
	d.dx = grow(d.dx, len(dy))
	d.k.Mul(d.dx, dy, d.mask)
	return d.dx
}

// flatten only reinterprets the shape: the data is already row-major.
type flatten struct{}

func (flatten) forward(x []float32, n int, train bool) []float32 { return x }

func (flatten) backward(dy []float32, n int, needDx bool) []float32 {
	if !needDx {
		return nil
	}
	return dy
}
