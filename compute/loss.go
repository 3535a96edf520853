package compute

import "github.com/troupe-ml/troupe/kernels"

// lossRows computes the loss of n rows of logits against the batch rows
// starting at first, and, when grad is non-nil, writes
// scale·d(loss_i)/d(logits) into grad (n×outputs). It returns the summed
// per-sample loss and the number of rows whose argmax is the label.
func (m *Model) lossRows(logits []float32, b Batch, first, n int, scale float32, grad []float32) (lossSum float64, correct int) {
	out := m.outSize
	for i := range n {
		row := logits[i*out : (i+1)*out]
		var g []float32
		if grad != nil {
			g = grad[i*out : (i+1)*out]
		}
		label := -1
		if b.Labels != nil {
			label = int(b.Labels[first+i])
			if Argmax(row) == label {
				correct++
			}
		}
		if m.plan.spec.Loss == LossMSE {
			var target []float32
			if b.Targets != nil {
				target = b.Targets[(first+i)*out : (first+i+1)*out]
			}
			lossSum += mseRow(row, target, label, scale, g)
		} else {
			lossSum += softmaxCrossEntropyRow(row, label, scale, g)
		}
	}
	return lossSum, correct
}

// softmaxCrossEntropyRow returns -log softmax(z)[label] and, when g is
// non-nil, sets g to scale·(softmax(z) - onehot(label)): one call that
// computes each exponential once (kernels.SoftmaxCrossEntropy: the
// maximum subtracted first, accumulated in float64).
func softmaxCrossEntropyRow(z []float32, label int, scale float32, g []float32) float64 {
	return kernels.SoftmaxCrossEntropy(z, label, scale, g)
}

// mseRow returns mean_j (y_j - t_j)², t being target or, when target is
// nil, the one-hot vector of label. When g is non-nil it gets
// scale·2(y - t)/len(y).
func mseRow(y, target []float32, label int, scale float32, g []float32) float64 {
	var sum float64
	k := 2 * float64(scale) / float64(len(y))
	for j, v := range y {
		var t float64
		switch {
		case target != nil:
			t = float64(target[j])
		case j == label:
			t = 1
		}
		d := float64(v) - t
		sum += d * d
		if g != nil {
			g[j] = float32(k * d)
		}
	}
	return sum / float64(len(y))
}
