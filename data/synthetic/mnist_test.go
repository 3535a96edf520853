package synthetic

import (
	"bytes"
	"os"
	"testing"
	"time"
)

// TestMNISTSynthetic fits the model to MNIST's training set and measures what it is for:
// classifiers trained on N samples of the model against the same classifiers trained on the
// first N real training samples, both scored on the real test set. Fit seed 1, stream seed 2,
// SGD order seed 3. Set TROUPE_SYNTHETIC_MIXTURE=1 to fit three Gaussians per class instead
// of one (slower).
func TestMNISTSynthetic(t *testing.T) {
	train, test := loadMNIST(t)
	fit := FitConfig{Rank: 30, Components: 1, Seed: 1}
	n, epochs := 10000, 5
	minNCM, minSoft := 0.7, 0.8
	if raceEnabled {
		train, test = train.Subset(3000), test.Subset(1000)
		fit.Rank = 10
		n, epochs = 1000, 2
		minNCM, minSoft = 0.5, 0.5
	}
	if os.Getenv("TROUPE_SYNTHETIC_MIXTURE") != "" {
		fit.Components = 3
	}
	start := time.Now()
	m, err := Fit(train, fit)
	if err != nil {
		t.Fatal(err)
	}
	fitTime := time.Since(start)
	counts := make([]int, 10)
	for _, l := range train.Labels {
		counts[l]++
	}
	for c, k := range counts {
		if p := float64(k) / float64(train.Len()); m.Prior(c) != p {
			t.Errorf("prior of class %d is %v, training frequency %v", c, m.Prior(c), p)
		}
	}
	enc, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ReadModel(bytes.NewReader(enc))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := back.WithStream(2, n)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	syn := gatherAll(t, stream, n)
	perSample := time.Since(start) / time.Duration(n)
	real := gatherAll(t, train, n)
	held := gatherAll(t, test, test.Len())

	synNCM := accuracy(held, fitNearestMean(syn, 10).predict)
	realNCM := accuracy(held, fitNearestMean(real, 10).predict)
	synSoft := accuracy(held, fitSoftmax(syn, 10, epochs, 3).predict)
	realSoft := accuracy(held, fitSoftmax(real, 10, epochs, 3).predict)
	t.Logf("fit on %d samples, rank %d, %d Gaussians: %v; model %d bytes; sampling %v per sample",
		train.Len(), fit.Rank, m.Components(), fitTime.Round(time.Millisecond), len(enc), perSample)
	t.Logf("real test set (%d): nearest class mean %.4f trained on %d synthetic, %.4f on %d real (gap %+.4f)",
		test.Len(), synNCM, n, realNCM, n, synNCM-realNCM)
	t.Logf("real test set (%d): softmax regression (%d epochs) %.4f trained on %d synthetic, %.4f on %d real (gap %+.4f)",
		test.Len(), epochs, synSoft, n, realSoft, n, synSoft-realSoft)
	if synNCM < minNCM || synSoft < minSoft {
		t.Errorf("classifiers trained on the model score %.3f and %.3f on real digits, want at least %.2f and %.2f", synNCM, synSoft, minNCM, minSoft)
	}
}
