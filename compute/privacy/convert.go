package privacy

import (
	"fmt"
	"math"
)

// Conversion names a way to turn an RDP curve into an (epsilon, delta) pair.
type Conversion int

const (
	// Improved is the conversion of Balle et al. 2020, "Hypothesis testing
	// interpretations and Rényi differential privacy" (Theorem 21 of the
	// arXiv version; the same bound is Proposition 12 of Canonne, Kamath and
	// Steinke 2020): at order a, eps = rdp + log((a-1)/a) - (log(delta) +
	// log(a))/(a-1). It is never looser than Classic and is what Opacus and
	// current TensorFlow Privacy report, so it is the default.
	Improved Conversion = iota
	// Classic is Mironov 2017, "Rényi differential privacy", Proposition 3:
	// eps = rdp + log(1/delta)/(a-1). Older TensorFlow Privacy and Opacus
	// releases (and the moments accountant of Abadi et al. 2016) report this
	// one; it is kept so their published figures can be compared.
	Classic
)

func (c Conversion) String() string {
	switch c {
	case Improved:
		return "improved"
	case Classic:
		return "classic"
	}
	return fmt.Sprintf("Conversion(%d)", int(c))
}

// EpsilonFromRDP converts an RDP curve (rdp[i] at orders[i], already composed
// over all steps) into the smallest epsilon any order certifies for delta,
// and the order that certifies it. A curve that is zero everywhere (nothing
// released, or only q = 0 steps) gives eps 0 and order 0; one that is +Inf
// everywhere gives eps +Inf and order 0. Epsilon is never negative: a
// negative bound means (0, delta) holds.
func EpsilonFromRDP(orders, rdp []float64, delta float64, conv Conversion) (eps, order float64, err error) {
	if err := checkDelta(delta); err != nil {
		return 0, 0, err
	}
	if err := checkOrders(orders); err != nil {
		return 0, 0, err
	}
	if len(orders) != len(rdp) {
		return 0, 0, fmt.Errorf("privacy: %d orders but %d RDP values", len(orders), len(rdp))
	}
	if conv != Improved && conv != Classic {
		return 0, 0, fmt.Errorf("privacy: unknown conversion %v", conv)
	}
	allZero := true
	for _, r := range rdp {
		if math.IsNaN(r) || r < 0 {
			return 0, 0, fmt.Errorf("privacy: RDP value %v must be >= 0", r)
		}
		if r != 0 {
			allZero = false
		}
	}
	if allZero {
		return 0, 0, nil
	}
	logDelta := math.Log(delta)
	best, bestOrder := math.Inf(1), 0.0
	for i, a := range orders {
		var e float64
		switch conv {
		case Improved:
			e = rdp[i] + math.Log1p(-1/a) - (logDelta+math.Log(a))/(a-1)
		case Classic:
			e = rdp[i] - logDelta/(a-1)
		}
		if e < best {
			best, bestOrder = e, a
		}
	}
	if best < 0 {
		best = 0
	}
	return best, bestOrder, nil
}
