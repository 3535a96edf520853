package compute

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/troupe-ml/troupe/kernels"
)

// ErrBadBatch is wrapped by CheckBatch's errors, and is the error value
// TrainBatch, Evaluate and Predict panic with on a malformed batch.
var ErrBadBatch = errors.New("compute: bad batch")

// Batch is one (sub-)batch of samples for the model.
type Batch struct {
	X       []float32 // N rows of the model's input size, row-major; owned by the caller, never modified
	N       int
	Labels  []int32   // class index per sample (classification); len N
	Targets []float32 // optional regression targets, N×outputs; if nil and the loss is MSE, the one-hot of Labels is used
	// Teacher, for TrainBatch with a Distillation set, holds a teacher model's logits for
	// the same samples, N×outputs: the soft targets.
	Teacher []float32
}

// ParamView names one parameter tensor inside the flat vectors:
// Params()[Offset : Offset+product(Shape)].
type ParamView struct {
	// Name is "layers.<index>.weight" or "layers.<index>.bias", index into ModelSpec.Layers;
	// a GPT's are nanoGPT's names (transformer.wte.weight, transformer.h.0.ln_1.weight, ...).
	Name   string
	Shape  []int // dense: [out, in]; conv2d: [filters, channels, kernel, kernel]; biases: [out]
	Offset int
	decay  bool // a matrix that weight decay applies to where the model restricts it
}

// Model is a chain of layers with one flat parameter vector and one flat
// gradient vector that every layer views into. It is not safe for
// concurrent use.
type Model struct {
	plan     modelPlan
	layers   []layer
	dropouts []*dropout
	views    []ParamView
	params   []float32
	grads    []float32
	inSize   int
	outSize  int
	dlogits  []float32

	// keepInputGrad makes TrainBatch also compute the loss gradient with
	// respect to the input, left in inputGrad (tests check it).
	keepInputGrad bool
	inputGrad     []float32
	// gradFrom[i] is where layer i's gradients start in grads, -1 for a
	// layer without parameters.
	gradFrom []int
	normsSq  []float64 // per-sample squared gradient norms (TrainBatchClipped)
	distill  *Distillation
	blocks   []*block // a GPT's transformer blocks, for recomputation
}

// Distillation is the loss of a student learning from a teacher's logits (Hinton et al.,
// "Distilling the knowledge in a neural network", 2015): Alpha·T²·KL(softmax(t/T) ‖ softmax(s/T))
// + (1-Alpha)·cross-entropy(softmax(s), label), s the student's logits and t the teacher's, T
// the temperature. The T² keeps the soft term's gradient, which softening divides by T², on the
// scale of the hard term's whatever the temperature.
type Distillation struct {
	Temperature float64 `yaml:"temperature" json:"temperature"`
	Alpha       float64 `yaml:"alpha" json:"alpha"`
}

// Validate checks that the temperature is positive and Alpha in [0, 1].
func (d Distillation) Validate() error {
	if !(d.Temperature > 0) || math.IsInf(d.Temperature, 0) {
		return fmt.Errorf("temperature must be > 0, got %v", d.Temperature)
	}
	if !(d.Alpha >= 0 && d.Alpha <= 1) {
		return fmt.Errorf("alpha must be in [0, 1], got %v", d.Alpha)
	}
	return nil
}

// SetDistillation makes TrainBatch's loss the distillation loss for batches that carry Teacher
// logits (nil: plain cross-entropy again). It needs the softmax cross-entropy loss.
func (m *Model) SetDistillation(d *Distillation) error {
	if d != nil {
		if err := d.Validate(); err != nil {
			return err
		}
		if m.plan.rows != 1 {
			return fmt.Errorf("compute: distillation is for classifiers, not for models of %d rows per sample", m.plan.rows)
		}
		if m.plan.spec.Loss != LossSoftmaxCrossEntropy {
			return fmt.Errorf("compute: distillation needs the %s loss, the model has %s", LossSoftmaxCrossEntropy, m.plan.spec.Loss)
		}
	}
	m.distill = d
	return nil
}

// NewModel validates spec and builds the model: it allocates the flat
// parameter and gradient vectors and initializes the weights from seed
// (layer i draws from PCG(seed, i), so a layer's initial weights do not
// depend on the layers after it). Errors wrap ErrInvalidSpec.
func NewModel(spec ModelSpec, seed uint64) (*Model, error) {
	return newModel(spec, seed, defaultKernels())
}

// newModel is NewModel on the kernel set k.
func newModel(spec ModelSpec, seed uint64, k kernels.Set) (*Model, error) {
	p, err := spec.plan()
	if err != nil {
		return nil, err
	}
	m := &Model{
		plan:    p,
		params:  make([]float32, p.numParams),
		grads:   make([]float32, p.numParams),
		inSize:  p.inSize,
		outSize: p.outSize,
	}
	var emb *embedding
	offset := 0
	for i, lp := range p.layers {
		var l layer
		if p.spec.GPT != nil && lp.spec.Type != LayerDropout {
			l = newGPTLayer(lp, *p.spec.GPT, k, emb)
		} else {
			l = newLayer(lp, k)
		}
		if e, ok := l.(*embedding); ok {
			emb = e
		}
		m.layers = append(m.layers, l)
		m.gradFrom = append(m.gradFrom, -1)
		switch d := l.(type) {
		case *dropout:
			m.dropouts = append(m.dropouts, d)
		case interface{ dropouts() []*dropout }:
			m.dropouts = append(m.dropouts, d.dropouts()...)
		}
		pl, ok := l.(paramLayer)
		if !ok {
			continue
		}
		end := offset + lp.numParams
		m.gradFrom[i] = offset
		pl.bind(m.params[offset:end], m.grads[offset:end])
		pl.initialize(rand.New(rand.NewPCG(seed, uint64(i))), lp.spec.Init)
		at := offset
		for _, t := range pl.tensors() {
			m.views = append(m.views, ParamView{Name: lp.prefix + t.name, Shape: t.shape, Offset: at, decay: t.decay})
			at += product(t.shape)
		}
		if at != end {
			panic(fmt.Sprintf("compute: layer %d's tensors hold %d values, its plan %d", i, at-offset, lp.numParams))
		}
		offset = end
	}
	m.blocks = blocksOf(m.layers)
	fuseActivations(m.layers)
	return m, nil
}

// Params returns the flat parameter vector. It is owned by the model and
// stays the same slice for the model's life; callers may read and write it
// in place (optimizers, checkpoints, broadcasts).
func (m *Model) Params() []float32 { return m.params }

// Grads returns the flat gradient vector, laid out like Params and
// overwritten by each TrainBatch. Owned by the model; callers may read and
// write it in place (an all-reduce averages into it).
func (m *Model) Grads() []float32 { return m.grads }

// NumParams returns len(Params()).
func (m *Model) NumParams() int { return len(m.params) }

// ParamViews lists the parameter tensors in Params order, for exporters.
// The caller owns the returned slice.
func (m *Model) ParamViews() []ParamView {
	out := make([]ParamView, len(m.views))
	for i, v := range m.views {
		v.Shape = append([]int(nil), v.Shape...)
		out[i] = v
	}
	return out
}

// Spec returns a copy of the model's spec with defaults filled in (loss,
// strides, initializers).
func (m *Model) Spec() ModelSpec {
	s := m.plan.spec
	s.Input = append([]int(nil), s.Input...)
	s.Layers = append([]LayerSpec(nil), s.Layers...)
	if s.GPT != nil {
		g := *s.GPT
		s.GPT = &g
	}
	return s
}

// InputSize returns the number of values per input sample.
func (m *Model) InputSize() int { return m.inSize }

// OutputSize returns the number of outputs (logits) per row: the classes, or a GPT's vocabulary.
func (m *Model) OutputSize() int { return m.outSize }

// RowsPerSample is how many rows of OutputSize logits, and so labels, a sample has: 1, or a
// GPT's block size (a prediction at every position). Losses are means over a sample's rows.
func (m *Model) RowsPerSample() int { return m.plan.rows }

// CheckBatch reports whether b fits the model: X holds N samples, every
// label names an output, targets (MSE only) hold N rows of outputs, and the
// loss has what it needs (labels for softmax cross-entropy; labels or
// targets for MSE). Batches from outside the process must pass it before
// TrainBatch or Evaluate, which panic on a malformed batch. Errors wrap
// ErrBadBatch.
func (m *Model) CheckBatch(b Batch) error {
	if err := b.check(m.inSize, m.outSize, m.plan.rows, m.plan.spec.Loss); err != nil {
		return err
	}
	if g := m.plan.spec.GPT; g != nil {
		if err := validTokens(b.X, g.Vocab); err != nil {
			return fmt.Errorf("%w: %v", ErrBadBatch, err)
		}
	}
	return nil
}

// Check is CheckBatch for a model of inputs values per sample, outputs outputs and the loss
// named: what every backend checks before it computes.
func (b Batch) Check(inputs, outputs int, loss string) error {
	return b.check(inputs, outputs, 1, loss)
}

// check is Check for rows rows of labels per sample.
func (b Batch) check(inputs, outputs, rows int, loss string) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadBatch, fmt.Sprintf(format, args...))
	}
	if b.N < 0 {
		return bad("N = %d is negative", b.N)
	}
	if len(b.X) != b.N*inputs {
		return bad("X holds %d values, want N×input = %d×%d", len(b.X), b.N, inputs)
	}
	if b.Labels != nil {
		if len(b.Labels) != b.N*rows {
			return bad("%d labels for %d samples of %d rows", len(b.Labels), b.N, rows)
		}
		for i, l := range b.Labels {
			if l < 0 || int(l) >= outputs {
				return bad("label %d of sample %d is outside 0..%d", l, i, outputs-1)
			}
		}
	}
	if b.Targets != nil {
		if loss != LossMSE {
			return bad("targets given, but the loss is %s", loss)
		}
		if len(b.Targets) != b.N*outputs {
			return bad("targets hold %d values, want N×outputs = %d×%d", len(b.Targets), b.N, outputs)
		}
	}
	if b.Teacher != nil && rows != 1 {
		return bad("teacher logits given for a model of %d rows per sample", rows)
	}
	if b.Teacher != nil && len(b.Teacher) != b.N*outputs {
		return bad("teacher logits hold %d values, want N×outputs = %d×%d", len(b.Teacher), b.N, outputs)
	}
	if b.Labels == nil && b.Targets == nil && b.N > 0 {
		if loss == LossMSE {
			return bad("neither labels nor targets given")
		}
		return bad("no labels given")
	}
	return nil
}

func (m *Model) mustCheck(b Batch) {
	if err := m.CheckBatch(b); err != nil {
		panic(err)
	}
}

// forward runs the chain on n samples and returns the logits (owned by the
// last layer).
func (m *Model) forward(x []float32, n int, train bool) []float32 {
	for _, l := range m.layers {
		x = l.forward(x, n, train)
	}
	return x
}

// TrainBatch runs forward and backward on b in training mode and
// overwrites Grads() with d(lossScale · Σᵢ lossᵢ)/d params. It returns the
// sum of the per-sample losses (unscaled) and the number of samples whose
// argmax output is their label.
//
// lossScale is 1/(global batch size): data-parallel ranks each pass their
// sub-batch with the same scale and sum their gradients, so the result
// does not depend on how the global batch was split. dropoutSeed fixes the
// dropout masks of this call (the i-th dropout layer draws from
// PCG(dropoutSeed, i)),
// so a step replays bit for bit after a restart.
//
// It panics with an error wrapping ErrBadBatch when CheckBatch(b) fails.
func (m *Model) TrainBatch(b Batch, lossScale float32, dropoutSeed uint64) (lossSum float64, correct int) {
	return m.TrainBatchStreaming(b, lossScale, dropoutSeed, nil)
}

// TrainBatchStreaming is TrainBatch that also calls ready(from), when ready
// is not nil, each time the backward pass has finished a layer with
// parameters: Grads()[from:] then holds its final values and the rest is
// still being written. A data-parallel step hands those trailing gradients
// to its all-reduce while the earlier layers' are computed. from decreases
// from call to call and the last call has from = 0; the sequence depends
// only on the model, never on the batch (an empty batch makes the same
// calls), so every rank of a world cuts the same buckets.
func (m *Model) TrainBatchStreaming(b Batch, lossScale float32, dropoutSeed uint64, ready func(from int)) (lossSum float64, correct int) {
	m.mustCheck(b)
	if b.N == 0 {
		clear(m.grads)
		if ready != nil {
			for i := len(m.layers) - 1; i >= 0; i-- {
				if m.gradFrom[i] >= 0 {
					ready(m.gradFrom[i])
				}
			}
		}
		return 0, 0
	}
	for i, d := range m.dropouts {
		d.seed(dropoutSeed, uint64(i))
	}
	logits := m.forward(b.X, b.N, true)
	m.dlogits = grow(m.dlogits, len(logits))
	lossSum, correct = m.lossRows(logits, b, 0, b.N, lossScale, m.dlogits)
	m.backward(b.N, ready)
	return lossSum, correct
}

// sampleNormer is a layer with parameters that can tell each sample's squared gradient norm
// from its last backward pass: dense layers from what backward keeps, convolutions (whose
// weights are shared over positions) from per-sample products computed when asked.
type sampleNormer interface {
	addSampleNormsSq(n int, acc []float64)
}

// ErrNoPerSampleClipping is returned by CanClipPerSample for models with a layer whose
// per-sample gradient norms are not computed.
var ErrNoPerSampleClipping = errors.New("compute: per-sample gradient clipping is not implemented for a layer of this model")

// CanClipPerSample says whether TrainBatchClipped works on this model.
func (m *Model) CanClipPerSample() error {
	for i, l := range m.layers {
		if _, ok := l.(paramLayer); !ok {
			continue
		}
		if _, ok := l.(sampleNormer); !ok {
			return fmt.Errorf("%w: layer %d is %s", ErrNoPerSampleClipping, i, m.plan.layers[i].spec.Type)
		}
	}
	return nil
}

// TrainBatchClipped is TrainBatchStreaming for DP-SGD: each sample's gradient is scaled down to
// L2 norm at most clip before the samples are summed, so Grads() becomes
// lossScale · Σᵢ min(1, clip/‖gᵢ‖) gᵢ, gᵢ the gradient of sample i's loss. It returns the
// number of samples it scaled down besides the loss sum and the correct count.
//
// It takes two backward passes: the first finds every sample's norm (dense layers compute it
// from what backward keeps, without forming per-sample gradients; convolutions form each
// sample's weight gradient, one small product each); a sample's gradient is
// linear in its loss gradient, so the second pass, run on loss gradients scaled row by row,
// gives the clipped sum. ready sees only the second pass. It panics when CanClipPerSample
// fails or clip is not positive.
func (m *Model) TrainBatchClipped(b Batch, lossScale float32, dropoutSeed uint64, clip float64, ready func(from int)) (lossSum float64, correct, clipped int) {
	if err := m.CanClipPerSample(); err != nil {
		panic(err)
	}
	if !(clip > 0) {
		panic(fmt.Sprintf("compute: clip norm must be > 0, got %v", clip))
	}
	m.mustCheck(b)
	if b.N == 0 {
		lossSum, correct = m.TrainBatchStreaming(b, lossScale, dropoutSeed, ready)
		return lossSum, correct, 0
	}
	for i, d := range m.dropouts {
		d.seed(dropoutSeed, uint64(i))
	}
	logits := m.forward(b.X, b.N, true)
	m.dlogits = grow(m.dlogits, len(logits))
	lossSum, correct = m.lossRows(logits, b, 0, b.N, lossScale, m.dlogits)
	m.keepSampleNorms(true)
	m.backward(b.N, nil)
	m.keepSampleNorms(false)
	m.normsSq = grow(m.normsSq, b.N)
	clear(m.normsSq)
	for _, l := range m.layers {
		if sn, ok := l.(sampleNormer); ok {
			sn.addSampleNormsSq(b.N, m.normsSq)
		}
	}
	out := m.outSize
	for i, sq := range m.normsSq {
		norm := math.Sqrt(sq) / float64(lossScale) // the unscaled loss's gradient norm
		if norm > clip {
			clipped++
			f := float32(clip / norm)
			for j := range m.dlogits[i*out : (i+1)*out] {
				m.dlogits[i*out+j] *= f
			}
		}
	}
	m.backward(b.N, ready)
	return lossSum, correct, clipped
}

// keepSampleNorms turns on or off, in the layers that need to be told, the per-sample norms
// their backward pass computes at an extra cost.
func (m *Model) keepSampleNorms(on bool) {
	for _, l := range m.layers {
		if k, ok := l.(interface{ keepSampleNorms(bool) }); ok {
			k.keepSampleNorms(on)
		}
	}
}

// backward runs the chain backwards from m.dlogits, calling ready as TrainBatchStreaming says.
func (m *Model) backward(n int, ready func(from int)) {
	dy := m.dlogits
	for i := len(m.layers) - 1; i >= 0; i-- {
		dy = m.layers[i].backward(dy, n, i > 0 || m.keepInputGrad)
		if ready != nil && m.gradFrom[i] >= 0 {
			ready(m.gradFrom[i])
		}
	}
	m.inputGrad = dy
}

// Evaluate runs inference (dropout off) over b in chunks of at most chunk
// samples (all at once when chunk <= 0) and returns the summed loss and the
// number of correct predictions. Scratch memory grows with the chunk size
// and is kept for later calls. It leaves Grads() alone and panics like
// TrainBatch on a malformed batch.
func (m *Model) Evaluate(b Batch, chunk int) (lossSum float64, correct int) {
	m.mustCheck(b)
	if chunk <= 0 {
		chunk = max(b.N, 1)
	}
	for first := 0; first < b.N; first += chunk {
		n := min(chunk, b.N-first)
		logits := m.forward(b.X[first*m.inSize:(first+n)*m.inSize], n, false)
		l, c := m.lossRows(logits, b, first, n, 0, nil)
		lossSum += l
		correct += c
	}
	return lossSum, correct
}

// Predict returns the logits of n samples x (n×InputSize) in inference
// mode, as a new (n·RowsPerSample)×OutputSize tensor the caller owns. It panics with an
// error wrapping ErrBadBatch when len(x) != n·InputSize.
func (m *Model) Predict(x []float32, n int) *Tensor {
	if n < 0 || len(x) != n*m.inSize {
		panic(fmt.Errorf("%w: Predict got %d values for %d samples of %d", ErrBadBatch, len(x), n, m.inSize))
	}
	t := NewTensor(n*m.plan.rows, m.outSize)
	if n > 0 {
		copy(t.Data, m.forward(x, n, false))
	}
	return t
}
