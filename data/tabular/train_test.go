package tabular

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// trainSoftmax fits a multinomial logistic regression by mini-batch SGD with momentum,
// drawing its batches through Gather as a training loop would, and returns the accuracy on
// test. It exists only to measure what anonymization costs; real training uses troupe's
// trainer.
func trainSoftmax(t *testing.T, train, test *Matrix, seed uint64) float64 {
	t.Helper()
	const (
		epochs   = 60
		batch    = 32
		lr       = 0.05
		momentum = 0.9
		l2       = 1e-4
	)
	d, c := train.Dim, train.NumClasses
	w := make([]float64, (d+1)*c) // row j of w: weights of input j, last row the biases
	vel := make([]float64, len(w))
	grad := make([]float64, len(w))
	x := make([]float32, batch*d)
	labels := make([]int32, batch)
	logits := make([]float64, c)
	rng := rand.New(rand.NewPCG(seed, 99))
	order := make([]int32, train.Len())
	for i := range order {
		order[i] = int32(i)
	}
	for range epochs {
		rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for start := 0; start < len(order); start += batch {
			idx := order[start:min(start+batch, len(order))]
			n := len(idx)
			if err := train.Gather(idx, x[:n*d], labels[:n]); err != nil {
				t.Fatal(err)
			}
			clear(grad)
			for k := range n {
				row := x[k*d : (k+1)*d]
				probs(w, row, logits)
				logits[labels[k]] -= 1 // d loss / d logit = p - onehot
				for j, v := range row {
					for cl := range c {
						grad[j*c+cl] += float64(v) * logits[cl]
					}
				}
				for cl := range c {
					grad[d*c+cl] += logits[cl]
				}
			}
			for i := range w {
				g := grad[i]/float64(n) + l2*w[i]
				vel[i] = momentum*vel[i] - lr*g
				w[i] += vel[i]
			}
		}
	}
	return accuracy(w, test, logits)
}

// probs writes the softmax of the logits of row into p.
func probs(w []float64, row []float32, p []float64) {
	c := len(p)
	d := len(row)
	for cl := range c {
		p[cl] = w[d*c+cl]
	}
	for j, v := range row {
		if v != 0 {
			for cl := range c {
				p[cl] += float64(v) * w[j*c+cl]
			}
		}
	}
	top := slices.Max(p)
	sum := 0.0
	for cl := range p {
		p[cl] = math.Exp(p[cl] - top)
		sum += p[cl]
	}
	for cl := range p {
		p[cl] /= sum
	}
}

func accuracy(w []float64, m *Matrix, scratch []float64) float64 {
	right := 0
	for i := range m.Len() {
		probs(w, m.X[i*m.Dim:(i+1)*m.Dim], scratch)
		if int32(slices.Index(scratch, slices.Max(scratch))) == m.Labels[i] {
			right++
		}
	}
	return float64(right) / float64(m.Len())
}

// TestTrainerLearns checks the measuring tool itself on a separable problem: class 1 when
// x0 + category b > threshold.
func TestTrainerLearns(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var rows []string
	for range 400 {
		v := rng.Float64()*4 - 2
		cat := []string{"a", "b"}[rng.IntN(2)]
		shift := map[string]float64{"a": 0, "b": 1}[cat]
		y := "0"
		if v+shift > 0.5 {
			y = "1"
		}
		rows = append(rows, formatNum(v)+","+cat+","+y)
	}
	tab := mustRead(t, "v,c,y\n"+joinLines(rows), Schema{Header: true, Columns: []Column{
		{Name: "v", Kind: Numeric, Role: Feature},
		{Name: "c", Kind: Categorical, Role: Feature},
		{Name: "y", Kind: Categorical, Role: Label, Classes: []string{"0", "1"}},
	}})
	train, test, _, err := EncodeSplit(tab, 0.25, 1)
	if err != nil {
		t.Fatal(err)
	}
	if acc := trainSoftmax(t, train, test, 1); acc < 0.95 {
		t.Errorf("accuracy %.3f on a separable problem, want >= 0.95", acc)
	}
}

func joinLines(rows []string) string {
	s := ""
	for _, r := range rows {
		s += r + "\n"
	}
	return s
}

// accuracyOver trains on splits of t by each seed and returns the test accuracies.
func accuracyOver(t *testing.T, tab *Table, seeds []uint64) []float64 {
	t.Helper()
	var accs []float64
	for _, seed := range seeds {
		train, test, _, err := EncodeSplit(tab, 0.2, seed)
		if err != nil {
			t.Fatal(err)
		}
		accs = append(accs, trainSoftmax(t, train, test, seed))
	}
	return accs
}

// spread is the median, minimum and maximum.
func spread(v []float64) (med, lo, hi float64) {
	s := slices.Sorted(slices.Values(v))
	return median(s), s[0], s[len(s)-1]
}
