//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
)

func init() { compute.RegisterDevice("cuda", Open) }

// backend is compute.Backend on one GPU. What lives in device memory: the flat parameter
// vector, the flat gradient vector (every layer's weights and biases are views into both, at
// the offsets compute.Model uses), the optimizer's buffers, and the activations and backward
// scratch of the largest batch seen so far. Per step only these cross the bus: the batch's
// inputs and labels up and the gradient (plus a 16-byte loss and accuracy total) down in
// TrainBatch; the averaged gradient up in Step (and an 8-byte norm down when clipping).
//
// The gradient's host side is page-locked memory the backend allocates (GradientBuffer), which
// the Worker trains into and steps from, so those copies go by DMA; a caller that passes
// memory of its own (the batch's inputs always) gets the driver's staged copy of pageable
// memory. Every copy is synchronous.
type backend struct {
	dev     *Device
	ordinal int
	q       *Queue

	inSize, outSize, numParams int
	maxWidth                   int // the widest activation, input included: the backward scratch's row
	layers                     []*devLayer

	cfg      optim.Config // defaults filled in
	step     int64
	params   *Buffer
	grads    *Buffer
	optBufs  []*Buffer // in optim.State's order
	scalars  *Buffer   // [0:2] a float64 sum (loss, squared norm), [2] the correct count
	partials *Buffer   // SumSquares' scratch

	// Per batch, sized for capN samples and grown when a larger batch comes.
	capN         int
	x, labels    *Buffer
	rowLoss      *Buffer // float64 per sample
	rowCorrect   *Buffer
	gradA, gradB *Buffer // backward's ping-pong: the gradient of the current layer's output and input

	stats [4]float32 // the scalars' host copy
	// pinned is page-locked host memory for the gradient: GradientBuffer hands it to the
	// Worker, which trains into it and steps from it, so those copies go by DMA.
	pinned []float32
	closed bool
}

var _ compute.HostGradients = (*backend)(nil)

// GradientBuffer implements compute.HostGradients.
func (b *backend) GradientBuffer() []float32 { return b.pinned }

// devLayer is one layer of the chain. Activation layers work in place on the backward pass,
// so only dense layers move the gradient from one scratch buffer to the other.
type devLayer struct {
	kind    string
	in, out int // per-sample widths
	// dense: views of the weights [out, in] and biases [out], and of their gradients.
	w, b, dw, db *Buffer
	// reluFused is set on a dense layer that a ReLU follows: its bias and the ReLU are one
	// pass forward, and backward masks its output gradient in place. folded is set on that ReLU.
	reluFused, folded bool
	y                 *Buffer // output, capN×out: dense, relu (unfolded), tanh
	input             *Buffer // the last forward's input view (dense)
}

// Open is the opener of the "cuda" and "cuda:N" devices (N from 0; "cuda" is "cuda:0"): the
// model of spec with params, and the optimizer opt, in that GPU's memory. It refuses, with an
// error wrapping compute.ErrUnsupported that names the layer, a spec with a layer or loss this
// backend has no kernels for: it runs dense, relu, tanh and flatten layers with the softmax
// cross-entropy loss.
func Open(device string, spec compute.ModelSpec, params []float32, opt optim.Config) (compute.Backend, error) {
	ordinal, err := parseDevice(device)
	if err != nil {
		return nil, err
	}
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	numParams, err := spec.NumParams()
	if err != nil {
		return nil, err
	}
	layers, inSize, outSize, maxWidth, err := planLayers(spec)
	if err != nil {
		return nil, err
	}
	cfg := opt
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := compute.CheckVector("the parameters", params, numParams); err != nil {
		return nil, err
	}
	dev, err := acquire(ordinal)
	if err != nil {
		if errors.Is(err, ErrNoDevice) {
			return nil, fmt.Errorf("%w %q: %w", compute.ErrUnknownDevice, device, err)
		}
		return nil, err
	}
	b := &backend{
		dev: dev, ordinal: ordinal, q: dev.NewQueue(),
		inSize: inSize, outSize: outSize, numParams: numParams, maxWidth: maxWidth,
		layers: layers, cfg: cfg,
	}
	if err := b.allocate(params); err != nil {
		return nil, errors.Join(err, b.Close())
	}
	return b, nil
}

// parseDevice returns the ordinal of "cuda" (0) or "cuda:N".
func parseDevice(device string) (int, error) {
	kind, num, hasNum := strings.Cut(device, ":")
	if kind != "cuda" {
		return 0, fmt.Errorf("%w %q: the CUDA backend serves cuda and cuda:N", compute.ErrUnknownDevice, device)
	}
	if !hasNum {
		return 0, nil
	}
	n, err := strconv.Atoi(num)
	if err != nil || n < 0 || strconv.Itoa(n) != num {
		return 0, fmt.Errorf("%w %q: a GPU is named cuda:N, N its ordinal from 0", compute.ErrUnknownDevice, device)
	}
	return n, nil
}

// planLayers maps a validated spec onto the layers this backend runs, with the parameter
// offsets compute.Model uses: each dense layer's weights [out, in], then its biases, in layer
// order. Views into the device buffers are bound later (allocate).
func planLayers(spec compute.ModelSpec) (layers []*devLayer, inSize, outSize, maxWidth int, err error) {
	switch spec.Loss {
	case "", compute.LossSoftmaxCrossEntropy:
	default:
		return nil, 0, 0, 0, fmt.Errorf("%w: loss %s: the CUDA backend trains with %s only", compute.ErrUnsupported, spec.Loss, compute.LossSoftmaxCrossEntropy)
	}
	if spec.GPT != nil {
		return nil, 0, 0, 0, fmt.Errorf("%w: gpt (embedding, layernorm, causal attention): the CUDA backend runs dense, relu, tanh and flatten layers", compute.ErrUnsupported)
	}
	inSize = 1
	for _, d := range spec.Input {
		inSize *= d
	}
	width, maxWidth := inSize, inSize
	for i, ls := range spec.Layers {
		l := &devLayer{kind: ls.Type, in: width, out: width}
		switch ls.Type {
		case compute.LayerDense:
			l.out = ls.Units
		case compute.LayerReLU:
			if i > 0 && layers[i-1].kind == compute.LayerDense {
				layers[i-1].reluFused, l.folded = true, true
			}
		case compute.LayerTanh, compute.LayerFlatten:
		default:
			return nil, 0, 0, 0, fmt.Errorf("%w: layer %d (%s): the CUDA backend runs dense, relu, tanh and flatten layers", compute.ErrUnsupported, i, ls.Type)
		}
		layers = append(layers, l)
		width = l.out
		maxWidth = max(maxWidth, width)
	}
	return layers, inSize, width, maxWidth, nil
}

// allocator returns an Alloc that records its first error in *err and, after one, allocates
// nothing more: a run of allocations checked once at its end.
func (d *Device) allocator(err *error) func(n int) *Buffer {
	return func(n int) *Buffer {
		if *err != nil {
			return nil
		}
		var buf *Buffer
		buf, *err = d.Alloc(n)
		return buf
	}
}

// allocate creates the model's device buffers, binds the layers' views and uploads params.
func (b *backend) allocate(params []float32) error {
	var err error
	alloc := b.dev.allocator(&err)
	b.params, b.grads = alloc(b.numParams), alloc(b.numParams)
	for range numOptBuffers(b.cfg) {
		b.optBufs = append(b.optBufs, alloc(b.numParams))
	}
	b.scalars, b.partials = alloc(4), alloc(SumSquaresPartials)
	if err != nil {
		return err
	}
	if b.pinned, err = b.dev.AllocPinned(b.numParams); err != nil {
		return err
	}
	offset := 0
	for _, l := range b.layers {
		if l.kind != compute.LayerDense {
			continue
		}
		nw := l.in * l.out
		l.w, l.dw = b.params.Slice(offset, nw), b.grads.Slice(offset, nw)
		l.b, l.db = b.params.Slice(offset+nw, l.out), b.grads.Slice(offset+nw, l.out)
		offset += nw + l.out
	}
	if offset != b.numParams {
		return fmt.Errorf("cuda: the layers hold %d parameters, the spec %d", offset, b.numParams)
	}
	q := b.q.Reset()
	q.Upload(b.params, params)
	for _, buf := range b.optBufs {
		q.Zero(buf)
	}
	return q.Run()
}

// numOptBuffers is how many per-parameter buffers cfg's optimizer keeps, as compute/optim's.
func numOptBuffers(cfg optim.Config) int {
	switch cfg.Name {
	case optim.Adam, optim.AdamW:
		return 2
	case optim.RMSprop:
		if cfg.Momentum > 0 {
			return 2
		}
		return 1
	default: // sgd
		if cfg.Momentum > 0 {
			return 1
		}
		return 0
	}
}

var errClosed = errors.New("cuda: the backend is closed")

func (b *backend) Device() string { return "cuda:" + strconv.Itoa(b.ordinal) }
func (b *backend) NumParams() int { return b.numParams }

// reserve grows the per-batch buffers to hold n samples. They only grow: a smaller batch
// uses views of them.
func (b *backend) reserve(n int) error {
	if n <= b.capN {
		return nil
	}
	if err := b.freeBatchBuffers(); err != nil {
		return err
	}
	var err error
	alloc := b.dev.allocator(&err)
	b.x, b.labels = alloc(n*b.inSize), alloc(n)
	b.rowLoss, b.rowCorrect = alloc(2*n), alloc(n)
	b.gradA, b.gradB = alloc(n*b.maxWidth), alloc(n*b.maxWidth)
	for _, l := range b.layers {
		if l.kind == compute.LayerDense || l.kind == compute.LayerTanh || (l.kind == compute.LayerReLU && !l.folded) {
			l.y = alloc(n * l.out)
		}
	}
	if err != nil {
		return errors.Join(err, b.freeBatchBuffers())
	}
	b.capN = n
	return nil
}

func (b *backend) freeBatchBuffers() error {
	var errs []error
	free := func(p **Buffer) {
		if *p != nil {
			errs = append(errs, b.dev.Free(*p))
			*p = nil
		}
	}
	free(&b.x)
	free(&b.labels)
	free(&b.rowLoss)
	free(&b.rowCorrect)
	free(&b.gradA)
	free(&b.gradB)
	for _, l := range b.layers {
		free(&l.y)
		l.input = nil
	}
	b.capN = 0
	return errors.Join(errs...)
}

// TrainBatch is compute.Model.TrainBatch on the GPU: the forward pass, the loss and the
// backward pass as one queue, ending in the copies of the gradient and the totals.
func (b *backend) TrainBatch(batch compute.Batch, lossScale float32, dropoutSeed uint64, grads []float32) (float64, int, error) {
	if b.closed {
		return 0, 0, errClosed
	}
	if err := compute.CheckVector("the gradient buffer", grads, b.numParams); err != nil {
		return 0, 0, err
	}
	if err := batch.Check(b.inSize, b.outSize, compute.LossSoftmaxCrossEntropy); err != nil {
		return 0, 0, err
	}
	n := batch.N
	if n == 0 {
		clear(grads)
		return 0, 0, nil
	}
	if err := b.reserve(n); err != nil {
		return 0, 0, err
	}
	q := b.q.Reset()
	x := b.x.Slice(0, n*b.inSize)
	q.Upload(x, batch.X)
	labels := b.labels.Slice(0, n)
	q.UploadInt32(labels, batch.Labels)

	act := x
	for _, l := range b.layers {
		switch l.kind {
		case compute.LayerDense:
			y := l.y.Slice(0, n*l.out)
			q.Gemm(false, true, n, l.out, l.in, 1, act, l.in, l.w, l.in, 0, y, l.out)
			if l.reluFused {
				q.BiasRelu(y, l.b)
			} else {
				q.AddRowVector(y, l.b)
			}
			l.input, act = act, y
		case compute.LayerReLU:
			if !l.folded {
				y := l.y.Slice(0, n*l.out)
				q.Relu(y, act)
				act = y
			}
		case compute.LayerTanh:
			y := l.y.Slice(0, n*l.out)
			q.Tanh(y, act)
			act = y
		}
	}

	// dy is the gradient of the current layer's output, in cur; spare takes its input's.
	cur, spare := b.gradA, b.gradB
	dy := cur.Slice(0, n*b.outSize)
	q.SoftmaxCrossEntropy(b.rowLoss, b.rowCorrect, dy, act, labels, b.outSize, lossScale)
	q.LossStats(b.scalars, b.rowLoss, b.rowCorrect, n)

	for i := len(b.layers) - 1; i >= 0; i-- {
		l := b.layers[i]
		switch l.kind {
		case compute.LayerDense:
			if l.reluFused {
				q.ReluGrad(dy, dy, l.y.Slice(0, n*l.out))
			}
			q.ColSums(l.db, dy)
			q.Gemm(true, false, l.out, l.in, n, 1, dy, l.out, l.input, l.in, 0, l.dw, l.in)
			if i > 0 {
				dx := spare.Slice(0, n*l.in)
				q.Gemm(false, false, n, l.in, l.out, 1, dy, l.out, l.w, l.in, 0, dx, l.in)
				cur, spare, dy = spare, cur, dx
			}
		case compute.LayerReLU:
			if !l.folded && i > 0 {
				q.ReluGrad(dy, dy, l.y.Slice(0, n*l.out))
			}
		case compute.LayerTanh:
			if i > 0 {
				q.TanhGrad(dy, dy, l.y.Slice(0, n*l.out))
			}
		}
	}

	q.Download(grads, b.grads)
	q.Download(b.stats[:], b.scalars)
	if err := q.Run(); err != nil {
		return 0, 0, err
	}
	return Float64At(b.stats[:], 0), int(int32(math.Float32bits(b.stats[2]))), nil
}

// Step is compute/optim's Step on the device: clip by the global norm (when configured), then
// the optimizer's update in one pass over the flat buffers.
func (b *backend) Step(grads []float32, lr float64) error {
	if b.closed {
		return errClosed
	}
	if err := compute.CheckVector("the gradient", grads, b.numParams); err != nil {
		return err
	}
	q := b.q.Reset()
	q.Upload(b.grads, grads)
	if b.cfg.ClipNorm > 0 {
		q.SumSquares(b.scalars, b.partials, b.grads)
		q.Download(b.stats[:2], b.scalars)
		if err := q.Run(); err != nil {
			return err
		}
		if s := optim.ClipScale(math.Sqrt(Float64At(b.stats[:], 0)), b.cfg.ClipNorm); s != 1 {
			q.Scale(b.grads, s)
		}
	}
	t := b.step + 1
	c := b.cfg
	switch c.Name {
	case optim.Adam, optim.AdamW:
		q.AdamStep(b.params, b.grads, b.optBufs[0], b.optBufs[1], int(t), lr, c.Beta1, c.Beta2, c.Epsilon, c.WeightDecay, c.Name == optim.AdamW)
	case optim.RMSprop:
		var vel *Buffer
		if len(b.optBufs) == 2 {
			vel = b.optBufs[1]
		}
		q.RMSpropStep(b.params, b.grads, b.optBufs[0], vel, lr, c.WeightDecay, c.Alpha, c.Momentum, c.Epsilon)
	default: // sgd
		var vel *Buffer
		if len(b.optBufs) == 1 {
			vel = b.optBufs[0]
		}
		q.SGDStep(b.params, b.grads, vel, lr, c.WeightDecay, c.Momentum, c.Nesterov)
	}
	if err := q.Run(); err != nil {
		return err
	}
	b.step = t
	return nil
}

func (b *backend) ReadParams(dst []float32) error {
	if b.closed {
		return errClosed
	}
	if err := compute.CheckVector("the parameter buffer", dst, b.numParams); err != nil {
		return err
	}
	return b.dev.Download(dst, b.params)
}

func (b *backend) WriteParams(src []float32) error {
	if b.closed {
		return errClosed
	}
	if err := compute.CheckVector("the parameters", src, b.numParams); err != nil {
		return err
	}
	return b.dev.Upload(b.params, src)
}

func (b *backend) OptimizerState() (optim.State, error) {
	if b.closed {
		return optim.State{}, errClosed
	}
	st := optim.State{Name: b.cfg.Name, Step: b.step, Buffers: make([][]float32, len(b.optBufs))}
	q := b.q.Reset()
	for i, buf := range b.optBufs {
		st.Buffers[i] = make([]float32, b.numParams)
		q.Download(st.Buffers[i], buf)
	}
	if err := q.Run(); err != nil {
		return optim.State{}, err
	}
	return st, nil
}

// SetOptimizerState checks st as optim.Optimizer.SetState does, changing nothing when it does
// not fit, then uploads it.
func (b *backend) SetOptimizerState(st optim.State) error {
	if b.closed {
		return errClosed
	}
	switch {
	case st.Name != b.cfg.Name:
		return fmt.Errorf("%w: state is for %q, optimizer is %q", optim.ErrStateMismatch, st.Name, b.cfg.Name)
	case st.Step < 0:
		return fmt.Errorf("%w: negative step %d", optim.ErrStateMismatch, st.Step)
	case len(st.Buffers) != len(b.optBufs):
		return fmt.Errorf("%w: %s has %d buffers, state has %d", optim.ErrStateMismatch, b.cfg.Name, len(b.optBufs), len(st.Buffers))
	}
	for i, buf := range st.Buffers {
		if len(buf) != b.numParams {
			return fmt.Errorf("%w: buffer %d has %d values, want %d", optim.ErrStateMismatch, i, len(buf), b.numParams)
		}
	}
	q := b.q.Reset()
	for i, buf := range st.Buffers {
		q.Upload(b.optBufs[i], buf)
	}
	if err := q.Run(); err != nil {
		return err
	}
	b.step = st.Step
	return nil
}

// Close frees the backend's buffers and lets go of the device (its context closes with the
// last backend on it).
func (b *backend) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	errs := []error{b.freeBatchBuffers()}
	for _, p := range []**Buffer{&b.params, &b.grads, &b.scalars, &b.partials} {
		if *p != nil {
			errs = append(errs, b.dev.Free(*p))
			*p = nil
		}
	}
	for _, buf := range b.optBufs {
		if buf != nil {
			errs = append(errs, b.dev.Free(buf))
		}
	}
	b.optBufs = nil
	errs = append(errs, b.dev.FreePinned(b.pinned))
	b.pinned = nil
	errs = append(errs, release(b.ordinal))
	return errors.Join(errs...)
}

// Backends on one GPU share its Device: one context and one loaded module per GPU, as CUDA
// advises, closed with the last backend.
var shared = struct {
	sync.Mutex
	devs map[int]*sharedDevice
}{devs: map[int]*sharedDevice{}}

type sharedDevice struct {
	dev  *Device
	refs int
}

func acquire(ordinal int) (*Device, error) {
	shared.Lock()
	defer shared.Unlock()
	if s, ok := shared.devs[ordinal]; ok {
		s.refs++
		return s.dev, nil
	}
	d, err := OpenDevice(ordinal)
	if err != nil {
		return nil, err
	}
	shared.devs[ordinal] = &sharedDevice{dev: d, refs: 1}
	return d, nil
}

func release(ordinal int) error {
	shared.Lock()
	defer shared.Unlock()
	s, ok := shared.devs[ordinal]
	if !ok {
		return nil
	}
	if s.refs--; s.refs > 0 {
		return nil
	}
	delete(shared.devs, ordinal)
	return s.dev.Close()
}
