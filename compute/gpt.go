package compute

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/troupe-ml/troupe/compute/optim"
	"github.com/troupe-ml/troupe/kernels"
)

// GPTSpec describes a decoder-only transformer language model in GPT-2's shape: token and
// learned position embeddings, Layers pre-norm blocks (LayerNorm, causal multi-head
// self-attention, residual; LayerNorm, a GELU MLP four times as wide, residual), a final
// LayerNorm, and an output projection tied to the token embedding. A sample is a window of
// BlockSize token ids (as float32 values) and the model predicts the next token at every
// position: its labels are BlockSize ids per sample and its loss the mean cross-entropy over
// the positions.
//
// The parameters carry the names and layouts of nanoGPT's model.py (transformer.wte.weight,
// transformer.h.<i>.attn.c_attn.weight [3·n_embd, n_embd], ...), so an exported model loads
// into that definition unchanged.
type GPTSpec struct {
	Layers    int `yaml:"n_layer" json:"n_layer"`
	Heads     int `yaml:"n_head" json:"n_head"`
	Embedding int `yaml:"n_embd" json:"n_embd"`
	BlockSize int `yaml:"block_size" json:"block_size"`
	Vocab     int `yaml:"vocab" json:"vocab"`
	// Dropout is applied to the embeddings' sum and to each residual branch before it is
	// added (not to the attention probabilities, which the fused attention never stores).
	Dropout float64 `yaml:"dropout,omitempty" json:"dropout,omitempty"`
}

// gptMaxDim bounds each size of a GPT so that the products of sizes below cannot overflow;
// maxParams bounds the whole. Token ids travel as float32, exact up to 2^24.
const (
	gptMaxDim   = 1 << 20
	gptMaxVocab = 1 << 24
)

// Internal layer types of a GPT's plan; a job file cannot name them.
const (
	layerEmbedding = "embedding"
	layerBlock     = "transformer_block"
	layerNorm      = "layernorm"
	layerTiedHead  = "tied_lm_head"
)

// planGPT validates g and lays the model out as a chain: embedding, dropout, the blocks, the
// final LayerNorm and the tied head.
func planGPT(s ModelSpec) (modelPlan, error) {
	g := *s.GPT
	p := modelPlan{spec: ModelSpec{Loss: s.Loss, GPT: &g}}
	if len(s.Input) != 0 || len(s.Layers) != 0 {
		return modelPlan{}, invalidf("gpt: input and layers must not be set, the gpt section describes the whole model")
	}
	switch p.spec.Loss {
	case "":
		p.spec.Loss = LossSoftmaxCrossEntropy
	case LossSoftmaxCrossEntropy:
	default:
		return modelPlan{}, invalidf("gpt: loss %q: a language model trains with %s", s.Loss, LossSoftmaxCrossEntropy)
	}
	sizes := []struct {
		name  string
		value int
		limit int
	}{
		{"n_layer", g.Layers, 1 << 10}, {"n_head", g.Heads, gptMaxDim}, {"n_embd", g.Embedding, gptMaxDim},
		{"block_size", g.BlockSize, gptMaxDim}, {"vocab", g.Vocab, gptMaxVocab},
	}
	for _, d := range sizes {
		if d.value <= 0 || d.value > d.limit {
			return modelPlan{}, invalidf("gpt: %s must be in 1..%d, got %d", d.name, d.limit, d.value)
		}
	}
	if g.Vocab < 2 {
		return modelPlan{}, invalidf("gpt: vocab must be at least 2, got %d", g.Vocab)
	}
	if g.Embedding%g.Heads != 0 {
		return modelPlan{}, invalidf("gpt: n_embd %d is not a multiple of n_head %d", g.Embedding, g.Heads)
	}
	if !(g.Dropout >= 0 && g.Dropout < 1) {
		return modelPlan{}, invalidf("gpt: dropout must be in [0, 1), got %v", g.Dropout)
	}
	c, t, v := g.Embedding, g.BlockSize, g.Vocab
	total := float64(v+t)*float64(c) + float64(g.Layers)*(12*float64(c)*float64(c)+13*float64(c)) + 2*float64(c)
	if total > maxParams {
		return modelPlan{}, invalidf("gpt: the model would hold %.0f parameters, more than %d", total, maxParams)
	}
	tokens := []int{t}
	hidden := []int{t, c}
	add := func(typ, prefix string, in, out []int, params int) {
		p.layers = append(p.layers, layerPlan{spec: LayerSpec{Type: typ}, in: in, out: out, numParams: params, prefix: prefix})
		p.numParams += params
	}
	add(layerEmbedding, "transformer.", tokens, hidden, v*c+t*c)
	add(LayerDropout, "", hidden, hidden, 0)
	p.layers[len(p.layers)-1].spec.Rate = g.Dropout
	for i := range g.Layers {
		add(layerBlock, fmt.Sprintf("transformer.h.%d.", i), hidden, hidden, 12*c*c+13*c)
	}
	add(layerNorm, "transformer.ln_f.", hidden, hidden, 2*c)
	add(layerTiedHead, "", hidden, []int{t, v}, 0)
	p.inSize, p.outSize, p.rows = t, v, t
	return p, nil
}

// newGPTLayer builds the layer of a GPT's plan; emb is the model's embedding, which
// the tied head shares.
func newGPTLayer(lp layerPlan, g GPTSpec, k kernels.Set, emb *embedding) layer {
	c := g.Embedding
	switch lp.spec.Type {
	case layerEmbedding:
		return &embedding{vocab: g.Vocab, seq: g.BlockSize, width: c}
	case layerBlock:
		return newBlock(k, g)
	case layerNorm:
		return &layerNormLayer{width: c}
	case layerTiedHead:
		return &tiedHead{k: k, emb: emb, width: c, vocab: g.Vocab}
	}
	return nil
}

// normalInit fills w from N(0, std²), GPT-2's initialization of its matrices and embeddings.
func normalInit(w []float32, rng *rand.Rand, std float64) {
	for i := range w {
		w[i] = float32(rng.NormFloat64() * std)
	}
}

// gptInitStd is the standard deviation of GPT-2's weights; the projections back into the
// residual stream get gptInitStd/√(2·n_layer), so that the stream's variance does not grow
// with depth.
const gptInitStd = 0.02

// embedding is y[s, t] = wte[token(s, t)] + wpe[t]. Its backward pass adds the token
// embedding's gradient to what the tied head wrote there (the head runs after it forward, so
// before it backward) and overwrites the position embedding's.
type embedding struct {
	vocab, seq, width int
	wte, wpe          []float32
	dwte, dwpe        []float32
	x                 []float32 // token ids of the last training forward
	y                 []float32
}

func (e *embedding) bind(params, grads []float32) {
	nt := e.vocab * e.width
	e.wte, e.wpe = params[:nt], params[nt:nt+e.seq*e.width]
	e.dwte, e.dwpe = grads[:nt], grads[nt:nt+e.seq*e.width]
}

func (e *embedding) initialize(rng *rand.Rand, _ string) {
	normalInit(e.wte, rng, gptInitStd)
	normalInit(e.wpe, rng, gptInitStd)
}

func (e *embedding) tensors() []tensorShape {
	return []tensorShape{
		{name: "wte.weight", shape: []int{e.vocab, e.width}},
		{name: "wpe.weight", shape: []int{e.seq, e.width}},
	}
}

func (e *embedding) forward(x []float32, n int, train bool) []float32 {
	c := e.width
	e.y = grow(e.y, n*e.seq*c)
	for r, id := range x {
		tok, pos := int(id), r%e.seq
		dst, te, pe := e.y[r*c:(r+1)*c], e.wte[tok*c:(tok+1)*c], e.wpe[pos*c:(pos+1)*c]
		for j := range dst {
			dst[j] = te[j] + pe[j]
		}
	}
	if train {
		e.x = x
	}
	return e.y
}

func (e *embedding) backward(dy []float32, n int, needDx bool) []float32 {
	c := e.width
	clear(e.dwpe)
	for r, id := range e.x[:n*e.seq] {
		tok, pos := int(id), r%e.seq
		g, dte, dpe := dy[r*c:(r+1)*c], e.dwte[tok*c:(tok+1)*c], e.dwpe[pos*c:(pos+1)*c]
		for j, v := range g {
			dte[j] += v
			dpe[j] += v
		}
	}
	return nil // token ids have no gradient
}

// tiedHead is logits = x·wteᵀ with the embedding's own matrix (GPT-2's weight tying). It owns
// no parameters; its backward pass overwrites the token embedding's gradient, which the
// embedding's backward then adds to.
type tiedHead struct {
	k            kernels.Set
	emb          *embedding
	width, vocab int
	x, y, dx     []float32
}

func (h *tiedHead) forward(x []float32, n int, train bool) []float32 {
	rows := len(x) / h.width
	h.y = grow(h.y, rows*h.vocab)
	h.k.Gemm(false, true, rows, h.vocab, h.width, 1, x, h.width, h.emb.wte, h.width, 0, h.y, h.vocab)
	if train {
		h.x = x
	}
	return h.y
}

func (h *tiedHead) backward(dy []float32, n int, needDx bool) []float32 {
	rows := len(dy) / h.vocab
	h.k.Gemm(true, false, h.vocab, h.width, rows, 1, dy, h.vocab, h.x, h.width, 0, h.emb.dwte, h.width)
	if !needDx {
		return nil
	}
	h.dx = grow(h.dx, rows*h.width)
	h.k.Gemm(false, false, rows, h.width, h.vocab, 1, dy, h.vocab, h.emb.wte, h.width, 0, h.dx, h.width)
	return h.dx
}

// layerNormLayer is a LayerNorm over the last dimension (the final one of a GPT).
type layerNormLayer struct {
	width        int
	gain, bias   []float32
	dgain, dbias []float32
	x, y, dx     []float32
	mean, rstd   []float32
}

func (l *layerNormLayer) bind(params, grads []float32) {
	l.gain, l.bias = params[:l.width], params[l.width:2*l.width]
	l.dgain, l.dbias = grads[:l.width], grads[l.width:2*l.width]
}

func (l *layerNormLayer) initialize(*rand.Rand, string) {
	for i := range l.gain {
		l.gain[i] = 1
	}
	clear(l.bias)
}

func (l *layerNormLayer) tensors() []tensorShape {
	return []tensorShape{{name: "weight", shape: []int{l.width}}, {name: "bias", shape: []int{l.width}}}
}

func (l *layerNormLayer) forward(x []float32, n int, train bool) []float32 {
	rows := len(x) / l.width
	l.y, l.mean, l.rstd = grow(l.y, len(x)), grow(l.mean, rows), grow(l.rstd, rows)
	kernels.LayerNorm(l.y, l.mean, l.rstd, x, l.gain, l.bias, l.width)
	l.x = x
	return l.y
}

func (l *layerNormLayer) backward(dy []float32, n int, needDx bool) []float32 {
	l.dx = grow(l.dx, len(dy))
	clear(l.dx)
	clear(l.dgain)
	clear(l.dbias)
	kernels.LayerNormGrad(l.dx, l.dgain, l.dbias, dy, l.x, l.mean, l.rstd, l.gain, l.width)
	return l.dx
}

// validTokens reports the first value of x that is not a token id below vocab.
func validTokens(x []float32, vocab int) error {
	for i, v := range x {
		if !(v >= 0 && v < float32(vocab)) || v != float32(math.Trunc(float64(v))) {
			return fmt.Errorf("value %d of X is %v, not a token id in 0..%d", i, v, vocab-1)
		}
	}
	return nil
}

// NoDecay lists the parameter ranges that weight decay should spare, for optim.New: a
// GPT's biases, LayerNorm gains and embeddings, as nanoGPT's recipe decays only the matrices
// of its linear layers. Other models decay every value (nil).
func (m *Model) NoDecay() []optim.Range {
	if m.plan.spec.GPT == nil {
		return nil
	}
	var out []optim.Range
	for _, v := range m.views {
		if v.decay {
			continue
		}
		lo, hi := v.Offset, v.Offset+product(v.Shape)
		if n := len(out); n > 0 && out[n-1].Hi == lo {
			out[n-1].Hi = hi
		} else {
			out = append(out, optim.Range{Lo: lo, Hi: hi})
		}
	}
	return out
}

// NextToken samples the token that follows context under a GPT: the logits at the last
// position of the context's final block_size tokens, divided by temperature, cut to the topK
// largest (all when topK <= 0), softmaxed and drawn from by rng. Temperature 0 takes the most
// likely token. A context shorter than the block is padded after its end, which the causal
// mask hides from the positions that read it.
func (m *Model) NextToken(context []int32, temperature float64, topK int, rng *rand.Rand) (int32, error) {
	g := m.plan.spec.GPT
	if g == nil {
		return 0, fmt.Errorf("compute: NextToken needs a gpt model")
	}
	if len(context) == 0 {
		return 0, fmt.Errorf("compute: NextToken needs at least one token of context")
	}
	if !(temperature >= 0) || math.IsInf(temperature, 0) {
		return 0, fmt.Errorf("compute: temperature must be >= 0 and finite, got %v", temperature)
	}
	if len(context) > g.BlockSize {
		context = context[len(context)-g.BlockSize:]
	}
	x := make([]float32, g.BlockSize)
	for i, id := range context {
		if id < 0 || int(id) >= g.Vocab {
			return 0, fmt.Errorf("compute: context token %d is %d, outside the vocabulary of %d", i, id, g.Vocab)
		}
		x[i] = float32(id)
	}
	logits := m.forward(x, 1, false)
	last := logits[(len(context)-1)*g.Vocab : len(context)*g.Vocab]
	if temperature == 0 {
		return int32(Argmax(last)), nil
	}
	order := make([]int, len(last))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(last[b], last[a]) })
	if topK > 0 && topK < len(order) {
		order = order[:topK]
	}
	weights := make([]float64, len(order))
	var sum float64
	for i, id := range order {
		weights[i] = math.Exp((float64(last[id]) - float64(last[order[0]])) / temperature)
		sum += weights[i]
	}
	u := rng.Float64() * sum
	for i, w := range weights {
		if u < w {
			return int32(order[i]), nil
		}
		u -= w
	}
	return int32(order[len(order)-1]), nil
}
