package compute

import (
	"math"
	"math/rand/v2"
	"runtime"
	"sync"

	"github.com/troupe-ml/troupe/internal/parallel"
	"github.com/troupe-ml/troupe/kernels"
)

// block is one pre-norm transformer block of a GPT, over rows of width values (n samples of
// seq positions each):
//
//	x2 = x + dropout(attention(LN₁(x))·W_projᵀ + b_proj)
//	y  = x2 + dropout(GELU(LN₂(x2)·W_fcᵀ + b_fc)·W_mprojᵀ + b_mproj)
//
// with attention(h) the causal multi-head self-attention of the rows of h·W_attnᵀ + b_attn,
// split into queries, keys and values. Its forward activations live in acts: the block's own,
// or, with recomputation on, a set shared by every block that the block's backward pass fills
// again by repeating its forward pass (dropout masks are a function of the call's seed, so
// the repeat computes the same bits).
type block struct {
	k                      kernels.Set
	width, heads, seq      int
	ln1g, ln1b, ln2g, ln2b []float32
	attnW, attnB, projW    []float32
	projB, fcW, fcB        []float32
	mprojW, mprojB         []float32
	dln1g, dln1b, dln2g    []float32
	dln2b, dattnW, dattnB  []float32
	dprojW, dprojB, dfcW   []float32
	dfcB, dmprojW, dmprojB []float32
	layers                 int // of the model, for the initialization of the residual projections
	drop1, drop2           *dropout
	acts                   *blockActs
	grads                  *blockGrads // shared by the blocks of a model
	recompute              bool
	x, y, dx               []float32
}

// blockActs are what a block's backward pass reads of its forward pass.
type blockActs struct {
	h1, mean1, rstd1 []float32 // LN₁(x) and its row statistics
	qkv              []float32 // rows of [q | k | v]
	att, lse         []float32 // attention output; log-sum-exp per (sample, head, query)
	a                []float32 // attention branch before dropout
	x2               []float32
	h2, mean2, rstd2 []float32
	f, g             []float32 // MLP pre-activation and GELU(f)
	m                []float32 // MLP branch before dropout
}

// blockGrads is the backward pass's scratch, reused block after block.
type blockGrads struct {
	dx2, dh, dqkv, datt, dh1 []float32
}

func newBlock(k kernels.Set, g GPTSpec) *block {
	return &block{
		k: k, width: g.Embedding, heads: g.Heads, seq: g.BlockSize, layers: g.Layers,
		drop1: &dropout{k: k, rate: g.Dropout}, drop2: &dropout{k: k, rate: g.Dropout},
		acts: &blockActs{},
	}
}

func (b *block) bind(params, grads []float32) {
	c := b.width
	sizes := []int{c, c, 3 * c * c, 3 * c, c * c, c, c, c, 4 * c * c, 4 * c, 4 * c * c, c}
	p := cut(params, sizes)
	g := cut(grads, sizes)
	b.ln1g, b.ln1b, b.attnW, b.attnB, b.projW, b.projB = p[0], p[1], p[2], p[3], p[4], p[5]
	b.ln2g, b.ln2b, b.fcW, b.fcB, b.mprojW, b.mprojB = p[6], p[7], p[8], p[9], p[10], p[11]
	b.dln1g, b.dln1b, b.dattnW, b.dattnB, b.dprojW, b.dprojB = g[0], g[1], g[2], g[3], g[4], g[5]
	b.dln2g, b.dln2b, b.dfcW, b.dfcB, b.dmprojW, b.dmprojB = g[6], g[7], g[8], g[9], g[10], g[11]
}

// cut splits v into consecutive pieces of the sizes given.
func cut(v []float32, sizes []int) [][]float32 {
	out := make([][]float32, len(sizes))
	for i, n := range sizes {
		out[i], v = v[:n:n], v[n:]
	}
	return out
}

func (b *block) tensors() []tensorShape {
	c := b.width
	return []tensorShape{
		{name: "ln_1.weight", shape: []int{c}}, {name: "ln_1.bias", shape: []int{c}},
		{name: "attn.c_attn.weight", shape: []int{3 * c, c}, decay: true}, {name: "attn.c_attn.bias", shape: []int{3 * c}},
		{name: "attn.c_proj.weight", shape: []int{c, c}, decay: true}, {name: "attn.c_proj.bias", shape: []int{c}},
		{name: "ln_2.weight", shape: []int{c}}, {name: "ln_2.bias", shape: []int{c}},
		{name: "mlp.c_fc.weight", shape: []int{4 * c, c}, decay: true}, {name: "mlp.c_fc.bias", shape: []int{4 * c}},
		{name: "mlp.c_proj.weight", shape: []int{c, 4 * c}, decay: true}, {name: "mlp.c_proj.bias", shape: []int{c}},
	}
}

func (b *block) initialize(rng *rand.Rand, _ string) {
	for _, g := range [][]float32{b.ln1g, b.ln2g} {
		for i := range g {
			g[i] = 1
		}
	}
	for _, z := range [][]float32{b.ln1b, b.ln2b, b.attnB, b.projB, b.fcB, b.mprojB} {
		clear(z)
	}
	normalInit(b.attnW, rng, gptInitStd)
	normalInit(b.fcW, rng, gptInitStd)
	residual := gptInitStd / math.Sqrt(2*float64(b.layers))
	normalInit(b.projW, rng, residual)
	normalInit(b.mprojW, rng, residual)
}

func (b *block) dropouts() []*dropout { return []*dropout{b.drop1, b.drop2} }

func (b *block) forward(x []float32, n int, train bool) []float32 {
	b.run(x, n, train)
	if train {
		b.x = x
	}
	return b.y
}

// run is the forward pass into b.acts and b.y.
func (b *block) run(x []float32, n int, train bool) {
	c, rows := b.width, n*b.seq
	a := b.acts
	a.grow(rows, c, n*b.heads*b.seq)
	b.y = grow(b.y, rows*c)
	kernels.LayerNorm(a.h1, a.mean1, a.rstd1, x, b.ln1g, b.ln1b, c)
	b.linear(a.qkv, a.h1, b.attnW, b.attnB, rows, 3*c, c)
	attentionForward(b.k, a.att, a.lse, a.qkv, n, b.seq, b.heads, c)
	b.linear(a.a, a.att, b.projW, b.projB, rows, c, c)
	add(a.x2, x, b.drop1.forward(a.a, n, train))
	kernels.LayerNorm(a.h2, a.mean2, a.rstd2, a.x2, b.ln2g, b.ln2b, c)
	b.linear(a.f, a.h2, b.fcW, b.fcB, rows, 4*c, c)
	kernels.GELU(a.g, a.f)
	b.linear(a.m, a.g, b.mprojW, b.mprojB, rows, c, 4*c)
	add(b.y, a.x2, b.drop2.forward(a.m, n, train))
}

// linear sets y (rows×out) = x·Wᵀ + bias, W stored out×in.
func (b *block) linear(y, x, w, bias []float32, rows, out, in int) {
	b.k.Gemm(false, true, rows, out, in, 1, x, in, w, in, 0, y, out)
	b.k.AddRowVector(y, bias)
}

// linearBackward adds nothing: it overwrites dW = dyᵀ·x and dbias = Σ rows of dy, and sets
// dx = dy·W when dx is not nil.
func (b *block) linearBackward(dx, dw, dbias, dy, x, w []float32, rows, out, in int) {
	b.k.ColSums(dbias, dy)
	b.k.Gemm(true, false, out, in, rows, 1, dy, out, x, in, 0, dw, in)
	if dx != nil {
		b.k.Gemm(false, false, rows, in, out, 1, dy, out, w, in, 0, dx, in)
	}
}

func add(dst, x, y []float32) {
	for i := range dst {
		dst[i] = x[i] + y[i]
	}
}

func (b *block) backward(dy []float32, n int, needDx bool) []float32 {
	c, rows := b.width, n*b.seq
	if b.recompute {
		b.run(b.x, n, true)
	}
	a, g := b.acts, b.grads
	g.grow(rows, c)
	// y = x2 + dropout(m)
	dm := b.drop2.backward(dy, n, true)
	b.linearBackward(g.dh, b.dmprojW, b.dmprojB, dm, a.g, b.mprojW, rows, c, 4*c)
	kernels.GELUGrad(g.dh, g.dh, a.f)
	b.linearBackward(g.dh1, b.dfcW, b.dfcB, g.dh, a.h2, b.fcW, rows, 4*c, c)
	copy(g.dx2, dy)
	clear(b.dln2g)
	clear(b.dln2b)
	kernels.LayerNormGrad(g.dx2, b.dln2g, b.dln2b, g.dh1, a.x2, a.mean2, a.rstd2, b.ln2g, c)
	// x2 = x + dropout(a)
	da := b.drop1.backward(g.dx2, n, true)
	b.linearBackward(g.datt, b.dprojW, b.dprojB, da, a.att, b.projW, rows, c, c)
	attentionBackward(b.k, g.dqkv, g.datt, a.qkv, a.lse, n, b.seq, b.heads, c)
	b.linearBackward(g.dh1, b.dattnW, b.dattnB, g.dqkv, a.h1, b.attnW, rows, 3*c, c)
	b.dx = grow(b.dx, rows*c)
	copy(b.dx, g.dx2)
	clear(b.dln1g)
	clear(b.dln1b)
	kernels.LayerNormGrad(b.dx, b.dln1g, b.dln1b, g.dh1, b.x, a.mean1, a.rstd1, b.ln1g, c)
	return b.dx
}

func (a *blockActs) grow(rows, c, lse int) {
	a.h1, a.x2, a.h2, a.att, a.a, a.m = grow(a.h1, rows*c), grow(a.x2, rows*c), grow(a.h2, rows*c), grow(a.att, rows*c), grow(a.a, rows*c), grow(a.m, rows*c)
	a.mean1, a.rstd1, a.mean2, a.rstd2 = grow(a.mean1, rows), grow(a.rstd1, rows), grow(a.mean2, rows), grow(a.rstd2, rows)
	a.qkv, a.f, a.g = grow(a.qkv, rows*3*c), grow(a.f, rows*4*c), grow(a.g, rows*4*c)
	a.lse = grow(a.lse, lse)
}

func (g *blockGrads) grow(rows, c int) {
	g.dx2, g.datt, g.dh1 = grow(g.dx2, rows*c), grow(g.datt, rows*c), grow(g.dh1, rows*c)
	g.dh, g.dqkv = grow(g.dh, rows*4*c), grow(g.dqkv, rows*3*c)
}

// attentionScratch holds one goroutine's T×T score and gradient matrices.
var attentionScratch sync.Pool

func scratchOf(n int) *[]float32 {
	if s, ok := attentionScratch.Get().(*[]float32); ok && cap(*s) >= n {
		*s = (*s)[:n]
		return s
	}
	s := make([]float32, n)
	return &s
}

// attentionForward computes causal softmax attention for every (sample, head) of qkv (rows
// of [q | k | v], width values each, heads of width/heads values): out = softmax(q·kᵀ/√d,
// future masked)·v, written into the head's columns of out. One pass per (sample, head)
// forms the T×T scores in scratch, masks and normalizes them and takes the weighted sum; only
// each row's log-sum-exp is kept (lse, samples×heads×seq), from which the backward pass
// rebuilds the probabilities instead of storing every head's T×T matrix.
func attentionForward(k kernels.Set, out, lse, qkv []float32, n, seq, heads, width int) {
	d := width / heads
	scale := float32(1 / math.Sqrt(float64(d)))
	parallel.For(n*heads, runtime.GOMAXPROCS(0)-1, func(job int) {
		s, h := job/heads, job%heads
		q := qkv[s*seq*3*width+h*d:]
		kk, v := q[width:], q[2*width:]
		buf := scratchOf(seq * seq)
		p := *buf
		causalScores(k, p, q, kk, seq, d, 3*width, scale)
		rowLSE := lse[job*seq : (job+1)*seq]
		for i := range seq {
			row := p[i*seq : (i+1)*seq]
			rowLSE[i] = softmaxCausal(row, i)
		}
		o := out[s*seq*width+h*d:]
		for i0 := 0; i0 < seq; i0 += causalBlock {
			i1 := min(i0+causalBlock, seq) // rows i0..i1 weigh the values of positions before i1
			k.Gemm(false, false, i1-i0, d, i1, 1, p[i0*seq:], seq, v, 3*width, 0, o[i0*width:], width)
		}
		attentionScratch.Put(buf)
	})
}

// causalBlock is the height of the row blocks in which attention's products skip the future:
// the block of rows i0..i1 needs the scores of the columns before i1 only, so the products
// cover about (1 + causalBlock/T)/2 of each T×T matrix instead of all of it. Smaller blocks
// skip more but make more, smaller products: at T = 256 (1 thread), 64 measured 9% more
// tokens/s than no blocks and 32 4%; at T = 128 no block size measured faster.
const causalBlock = 64

// causalScores writes scale·q·kᵀ into the T×T matrix p (row stride seq) for every row i and
// column j < the end of i's row block; what lies further right in a row is left as it was, and
// no reader looks at it (softmaxCausal and expCausal read row[:i+1] only). q and k are rows of
// d values at stride ld.
func causalScores(k kernels.Set, p, q, kk []float32, seq, d, ld int, scale float32) {
	for i0 := 0; i0 < seq; i0 += causalBlock {
		i1 := min(i0+causalBlock, seq)
		k.Gemm(false, true, i1-i0, i1, d, scale, q[i0*ld:], ld, kk, ld, 0, p[i0*seq:], seq)
	}
}

// softmaxCausal replaces row[:i+1] by its softmax and zeroes row[i+1:] (the future), and
// returns the log-sum-exp of row[:i+1].
func softmaxCausal(row []float32, i int) float32 {
	live := row[:i+1]
	hi := live[0]
	for _, v := range live {
		if v > hi {
			hi = v
		}
	}
	expCausal(row, i, hi)
	var sum float32
	for _, v := range live {
		sum += v
	}
	inv := 1 / sum
	for j := range live {
		live[j] *= inv
	}
	return hi + float32(math.Log(float64(sum)))
}

// expCausal sets row[j] = e^(row[j] - shift) for j <= i and 0 after. The exponentials run over
// whole vectors: the masked values up to the next multiple of 16 are set to -∞ first (e^-∞ is
// 0), so no row leaves a short tail to the scalar loop.
func expCausal(row []float32, i int, shift float32) {
	n := i + 1
	padded := min(len(row), (n+15)&^15)
	for j, v := range row[:n] {
		row[j] = v - shift
	}
	for j := n; j < padded; j++ {
		row[j] = float32(math.Inf(-1))
	}
	kernels.Exp(row[:padded], row[:padded])
	clear(row[padded:])
}

// attentionBackward back-propagates dout through attentionForward into dqkv (overwritten):
// with P rebuilt from the scores and lse, dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP - rowsum(P∘dP)),
// dQ = dS·K/√d and dK = dSᵀ·Q/√d.
func attentionBackward(k kernels.Set, dqkv, dout, qkv, lse []float32, n, seq, heads, width int) {
	d := width / heads
	scale := float32(1 / math.Sqrt(float64(d)))
	parallel.For(n*heads, runtime.GOMAXPROCS(0)-1, func(job int) {
		s, h := job/heads, job%heads
		base := s*seq*3*width + h*d
		q := qkv[base:]
		kk, v := q[width:], q[2*width:]
		dq := dqkv[base:]
		dk, dv := dq[width:], dq[2*width:]
		do := dout[s*seq*width+h*d:]
		buf := scratchOf(2 * seq * seq)
		p, dp := (*buf)[:seq*seq], (*buf)[seq*seq:]
		causalScores(k, p, q, kk, seq, d, 3*width, scale)
		rowLSE := lse[job*seq : (job+1)*seq]
		for i := range seq {
			expCausal(p[i*seq:(i+1)*seq], i, rowLSE[i])
		}
		// Both P and dS are zero right of the diagonal (expCausal and the loop below zero
		// them): a column block j0..j1 of dV and dK sums over the rows from j0 on, and a row
		// block of dP and dQ over the columns before its end.
		for j0 := 0; j0 < seq; j0 += causalBlock {
			j1 := min(j0+causalBlock, seq)
			k.Gemm(true, false, j1-j0, d, seq-j0, 1, p[j0*seq+j0:], seq, do[j0*width:], width, 0, dv[j0*3*width:], 3*width)
			k.Gemm(false, true, j1-j0, j1, d, 1, do[j0*width:], width, v, 3*width, 0, dp[j0*seq:], seq)
		}
		for i := range seq {
			pr, dr := p[i*seq:i*seq+i+1], dp[i*seq:(i+1)*seq]
			var dot float32
			for j, pv := range pr {
				dot += pv * dr[j]
			}
			for j, pv := range pr {
				dr[j] = pv * (dr[j] - dot)
			}
			clear(dr[i+1:])
		}
		for b0 := 0; b0 < seq; b0 += causalBlock {
			b1 := min(b0+causalBlock, seq)
			k.Gemm(false, false, b1-b0, d, b1, scale, dp[b0*seq:], seq, kk, 3*width, 0, dq[b0*3*width:], 3*width)
			k.Gemm(true, false, b1-b0, d, seq-b0, scale, dp[b0*seq+b0:], seq, q[b0*3*width:], 3*width, 0, dk[b0*3*width:], 3*width)
		}
		attentionScratch.Put(buf)
	})
}

// blocksOf returns the transformer blocks among layers, sharing one backward scratch.
func blocksOf(layers []layer) []*block {
	var blocks []*block
	grads := &blockGrads{}
	for _, l := range layers {
		if b, ok := l.(*block); ok {
			b.grads = grads
			blocks = append(blocks, b)
		}
	}
	return blocks
}

// SetRecompute turns activation recomputation on or off for a GPT's blocks (other models
// have nothing to recompute, and ignore it). With it on, the blocks share one set of
// activation buffers and each block's backward pass runs its forward pass again to fill
// them: a block then keeps only its input and output between the passes, so activation
// memory grows with one block rather than with the depth, for about a third more compute.
// Gradients are the same bits either way.
func (m *Model) SetRecompute(on bool) {
	shared := &blockActs{}
	for _, b := range m.blocks {
		b.recompute = on
		if on {
			b.acts = shared
		} else {
			b.acts = &blockActs{}
		}
	}
}
