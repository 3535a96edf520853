package compute

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/troupe-ml/troupe/kernels"
)

// attentionReference is causal softmax attention and its backward pass in float64, by the
// definition: S = q·kᵀ/√d with the future masked, P = softmax(S) by rows, out = P·v; from dout,
// dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P∘(dP - rowsum(P∘dP)), dQ = dS·K/√d, dK = dSᵀ·Q/√d.
func attentionReference(qkv, dout []float32, n, seq, heads, width int) (out, dqkv []float64) {
	d := width / heads
	scale := 1 / math.Sqrt(float64(d))
	out, dqkv = make([]float64, n*seq*width), make([]float64, len(qkv))
	at := func(s, t, part, h, c int) int { return (s*seq+t)*3*width + part*width + h*d + c }
	for s := range n {
		for h := range heads {
			p := make([][]float64, seq)
			for i := range seq {
				p[i] = make([]float64, i+1)
				hi := math.Inf(-1)
				for j := range i + 1 {
					var dot float64
					for c := range d {
						dot += float64(qkv[at(s, i, 0, h, c)]) * float64(qkv[at(s, j, 1, h, c)])
					}
					p[i][j] = dot * scale
					hi = math.Max(hi, p[i][j])
				}
				var sum float64
				for j := range p[i] {
					p[i][j] = math.Exp(p[i][j] - hi)
					sum += p[i][j]
				}
				for j := range p[i] {
					p[i][j] /= sum
					for c := range d {
						out[(s*seq+i)*width+h*d+c] += p[i][j] * float64(qkv[at(s, j, 2, h, c)])
					}
				}
			}
			for i := range seq {
				do := func(c int) float64 { return float64(dout[(s*seq+i)*width+h*d+c]) }
				dp := make([]float64, i+1)
				var rowDot float64
				for j := range i + 1 {
					for c := range d {
						dqkv[at(s, j, 2, h, c)] += p[i][j] * do(c)
						dp[j] += do(c) * float64(qkv[at(s, j, 2, h, c)])
					}
					rowDot += p[i][j] * dp[j]
				}
				for j := range i + 1 {
					ds := p[i][j] * (dp[j] - rowDot) * scale
					for c := range d {
						dqkv[at(s, i, 0, h, c)] += ds * float64(qkv[at(s, j, 1, h, c)])
						dqkv[at(s, j, 1, h, c)] += ds * float64(qkv[at(s, i, 0, h, c)])
					}
				}
			}
		}
	}
	return out, dqkv
}

// The blocked attention (row blocks of causalBlock skipping the future) computes what the
// definition says, for windows of one, several and a partial block, forward and backward.
func TestAttentionMatchesTheDefinition(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	for _, seq := range []int{1, 7, causalBlock, 2*causalBlock + 9} {
		const n, heads, width = 2, 2, 16
		qkv := make([]float32, n*seq*3*width)
		dout := make([]float32, n*seq*width)
		for i := range qkv {
			qkv[i] = float32(rng.NormFloat64())
		}
		for i := range dout {
			dout[i] = float32(rng.NormFloat64())
		}
		out, lse := make([]float32, len(dout)), make([]float32, n*heads*seq)
		dqkv := make([]float32, len(qkv))
		for i := range dqkv {
			dqkv[i] = float32(math.NaN()) // overwritten, every value
		}
		attentionForward(kernels.Default, out, lse, qkv, n, seq, heads, width)
		attentionBackward(kernels.Default, dqkv, dout, qkv, lse, n, seq, heads, width)
		wantOut, wantD := attentionReference(qkv, dout, n, seq, heads, width)
		check := func(what string, got []float32, want []float64) {
			for i, w := range want {
				if d := math.Abs(float64(got[i]) - w); !(d <= 1e-4*math.Max(1, math.Abs(w))) {
					t.Fatalf("seq %d: %s[%d] = %v, want %v", seq, what, i, got[i], w)
				}
			}
		}
		check("out", out, wantOut)
		check("dqkv", dqkv, wantD)
	}
}
