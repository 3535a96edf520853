package privacy

import (
	"math"
	"testing"
)

// Whatever floats arrive, the accountant answers with an error or with
// non-negative, non-NaN figures; it never panics.
func FuzzAccountant(f *testing.F) {
	f.Add(0.01, 1.1, 2.5, uint32(1000), 1e-5)
	f.Add(256.0/60000, 0.6, 1.1, uint32(7020), 1e-5)
	f.Add(0.5, 10.0, 1.05, uint32(1), 0.5)
	f.Add(1.0, 1e-3, 512.0, uint32(1<<30), 1e-12)
	f.Add(1e-300, 1e-150, 63.5, uint32(5), 1e-300)
	f.Fuzz(func(t *testing.T, q, sigma, order float64, steps uint32, delta float64) {
		r, err := RDP(q, sigma, []float64{order})
		if err == nil && (math.IsNaN(r[0]) || r[0] < 0) {
			t.Fatalf("RDP(%v, %v, %v) = %v", q, sigma, order, r[0])
		}
		a, err := NewAccountant(order, 2, 32)
		if err != nil {
			return
		}
		if err := a.Step(q, sigma, int(steps)); err != nil {
			return
		}
		for _, conv := range []Conversion{Improved, Classic} {
			eps, ord, err := a.EpsilonWith(delta, conv)
			if err != nil {
				continue
			}
			if math.IsNaN(eps) || eps < 0 || math.IsNaN(ord) {
				t.Fatalf("q=%v sigma=%v order=%v steps=%d delta=%v %v: eps %v order %v", q, sigma, order, steps, delta, conv, eps, ord)
			}
		}
	})
}
