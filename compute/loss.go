package compute

import (
	"math"

	"github.com/troupe-ml/troupe/kernels"
)

// lossRows computes the loss of n samples' logits against the batch's samples
// starting at first, and, when grad is non-nil, writes
// scale·d(loss_i)/d(logits) into grad. A sample with several rows (a GPT's
// positions) has the mean of its rows' losses as its loss. It returns the summed
// per-sample loss and the number of rows whose argmax is the label.
func (m *Model) lossRows(logits []float32, b Batch, first, n int, scale float32, grad []float32) (lossSum float64, correct int) {
	out, per := m.outSize, m.plan.rows
	if per > 1 {
		scale /= float32(per)
	}
	for i := range n * per {
		row := logits[i*out : (i+1)*out]
		var g []float32
		if grad != nil {
			g = grad[i*out : (i+1)*out]
		}
		label := -1
		if b.Labels != nil {
			label = int(b.Labels[first*per+i])
			if Argmax(row) == label {
				correct++
			}
		}
		if m.distill != nil && b.Teacher != nil && g != nil && label >= 0 {
			teacher := b.Teacher[(first+i)*out : (first+i+1)*out]
			lossSum += distillRow(row, teacher, label, *m.distill, scale, g)
		} else if m.plan.spec.Loss == LossMSE {
			var target []float32
			if b.Targets != nil {
				target = b.Targets[(first+i)*out : (first+i+1)*out]
			}
			lossSum += mseRow(row, target, label, scale, g)
		} else {
			lossSum += softmaxCrossEntropyRow(row, label, scale, g)
		}
	}
	if per > 1 {
		lossSum /= float64(per)
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

// distillRow returns the distillation loss of one sample (see Distillation) and sets g to
// scale times its gradient with respect to the student's logits z:
// Alpha·T·(softmax(z/T) - softmax(t/T)) + (1-Alpha)·(softmax(z) - onehot(label)).
func distillRow(z, t []float32, label int, d Distillation, scale float32, g []float32) float64 {
	temp := d.Temperature
	ls, lt, l1 := logSoftmax(z, temp), logSoftmax(t, temp), logSoftmax(z, 1)
	var kl float64
	for j := range z {
		pt := math.Exp(lt(j))
		if pt > 0 {
			kl += pt * (lt(j) - ls(j))
		}
		hard := math.Exp(l1(j))
		if j == label {
			hard--
		}
		g[j] = float32(float64(scale) * (d.Alpha*temp*(math.Exp(ls(j))-pt) + (1-d.Alpha)*hard))
	}
	return d.Alpha*temp*temp*kl - (1-d.Alpha)*l1(label)
}

// logSoftmax returns j -> log softmax(z/temp)_j, computed in float64 with the maximum
// subtracted first.
func logSoftmax(z []float32, temp float64) func(j int) float64 {
	hi := math.Inf(-1)
	for _, v := range z {
		hi = max(hi, float64(v)/temp)
	}
	var sum float64
	for _, v := range z {
		sum += math.Exp(float64(v)/temp - hi)
	}
	logZ := hi + math.Log(sum)
	return func(j int) float64 { return float64(z[j])/temp - logZ }
}
