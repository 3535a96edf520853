package synthetic

import (
	"math"
	"os"
	"testing"

	"github.com/troupe-ml/troupe/data"
)

// loadMNIST returns the MNIST sets, skipping the test when they cannot be found unless
// TROUPE_REQUIRE_MNIST is set, as the data package's own tests do.
func loadMNIST(t testing.TB) (train, test *data.Dataset) {
	t.Helper()
	dir, err := data.FindMNIST("")
	if err != nil {
		if os.Getenv("TROUPE_REQUIRE_MNIST") == "" {
			t.Skipf("MNIST not available (set TROUPE_REQUIRE_MNIST=1 to make this fail): %v", err)
		}
		t.Fatal(err)
	}
	train, test, err = data.LoadMNIST(dir)
	if err != nil {
		t.Fatal(err)
	}
	return train, test
}

// batch is a gathered set: x row-major [n][size], labels [n].
type batch struct {
	x      []float32
	labels []int32
	size   int
}

func (b batch) n() int { return len(b.labels) }

// gatherAll gathers indices [0, n) of src with the [0, 1] scaling.
func gatherAll(t testing.TB, g interface {
	SampleSize() int
	Gather([]int32, []float32, []int32, data.Normalize) error
}, n int) batch {
	t.Helper()
	size := g.SampleSize()
	idx := make([]int32, n)
	for i := range idx {
		idx[i] = int32(i)
	}
	b := batch{x: make([]float32, n*size), labels: make([]int32, n), size: size}
	if err := g.Gather(idx, b.x, b.labels, data.Normalize{}); err != nil {
		t.Fatal(err)
	}
	return b
}

// nearestMean is the nearest-class-mean classifier.
type nearestMean struct{ means [][]float64 }

func fitNearestMean(b batch, classes int) nearestMean {
	m := nearestMean{means: make([][]float64, classes)}
	counts := make([]int, classes)
	for c := range m.means {
		m.means[c] = make([]float64, b.size)
	}
	for i, l := range b.labels {
		counts[l]++
		for j, v := range b.x[i*b.size : (i+1)*b.size] {
			m.means[l][j] += float64(v)
		}
	}
	for c, mean := range m.means {
		for j := range mean {
			if counts[c] > 0 {
				mean[j] /= float64(counts[c])
			} else {
				mean[j] = math.Inf(1) // never the nearest
			}
		}
	}
	return m
}

func (m nearestMean) predict(x []float32) int {
	best, bestD := 0, math.Inf(1)
	for c, mean := range m.means {
		var d float64
		for j, v := range x {
			e := float64(v) - mean[j]
			d += e * e
		}
		if d < bestD {
			best, bestD = c, d
		}
	}
	return best
}

// softmaxReg is multinomial logistic regression trained by plain SGD.
type softmaxReg struct {
	w       []float64 // [classes][size]
	b       []float64
	classes int
	size    int
}

// fitSoftmax runs epochs of SGD over b in an order drawn from seed, with a step size that
// decays as 1/sqrt(epoch) and a small L2 penalty.
func fitSoftmax(b batch, classes, epochs int, seed uint64) softmaxReg {
	m := softmaxReg{w: make([]float64, classes*b.size), b: make([]float64, classes), classes: classes, size: b.size}
	order := make([]int, b.n())
	for i := range order {
		order[i] = i
	}
	s := stream{seed}
	p := make([]float64, classes)
	for e := range epochs {
		for i := len(order) - 1; i > 0; i-- {
			j := s.intn(i + 1)
			order[i], order[j] = order[j], order[i]
		}
		lr := 0.05 / math.Sqrt(float64(e+1))
		for _, i := range order {
			x := b.x[i*b.size : (i+1)*b.size]
			m.probs(x, p)
			p[b.labels[i]] -= 1
			for c := range classes {
				g := lr * p[c]
				m.b[c] -= g
				w := m.w[c*b.size : (c+1)*b.size]
				for j, v := range x {
					w[j] -= g*float64(v) + lr*1e-5*w[j]
				}
			}
		}
	}
	return m
}

func (m softmaxReg) probs(x []float32, p []float64) {
	hi := math.Inf(-1)
	for c := range m.classes {
		z := m.b[c]
		for j, v := range m.w[c*m.size : (c+1)*m.size] {
			z += v * float64(x[j])
		}
		p[c] = z
		hi = max(hi, z)
	}
	var sum float64
	for c := range p {
		p[c] = math.Exp(p[c] - hi)
		sum += p[c]
	}
	for c := range p {
		p[c] /= sum
	}
}

func (m softmaxReg) predict(x []float32) int {
	p := make([]float64, m.classes)
	m.probs(x, p)
	best := 0
	for c := range p {
		if p[c] > p[best] {
			best = c
		}
	}
	return best
}

// accuracy is the fraction of b that predict labels correctly.
func accuracy(b batch, predict func([]float32) int) float64 {
	right := 0
	for i, l := range b.labels {
		if predict(b.x[i*b.size:(i+1)*b.size]) == int(l) {
			right++
		}
	}
	return float64(right) / float64(b.n())
}
