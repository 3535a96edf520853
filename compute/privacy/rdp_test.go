package privacy

import (
	"math"
	"strings"
	"testing"
)

func TestRDPEdgeRates(t *testing.T) {
	orders := []float64{1.5, 2, 7.25, 32, 512}
	s := 1.1
	zero, err := RDP(0, s, orders)
	if err != nil {
		t.Fatal(err)
	}
	full, err := RDP(1, 1.1, orders)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range orders {
		if zero[i] != 0 {
			t.Errorf("q=0 order %v: %v, want 0", a, zero[i])
		}
		if want := a / (2 * s * s); full[i] != want {
			t.Errorf("q=1 order %v: %v, want %v", a, full[i], want)
		}
	}
	// Just inside the ends the general formulas take over and must meet the
	// special cases continuously.
	near1, err := RDP(1-1e-12, 1.1, orders)
	if err != nil {
		t.Fatal(err)
	}
	near0, err := RDP(1e-300, 1.1, orders)
	if err != nil {
		t.Fatal(err)
	}
	for i, a := range orders {
		if math.Abs(near1[i]-full[i]) > 1e-9*full[i] {
			t.Errorf("q=1-1e-12 order %v: %v, q=1 gives %v", a, near1[i], full[i])
		}
		if near0[i] < 0 || near0[i] > 1e-250 {
			t.Errorf("q=1e-300 order %v: %v, want ~0", a, near0[i])
		}
	}
}

// For alpha = 2 the binomial sum has a closed form:
// A = 1 + q^2 (exp(1/s^2) - 1).
func TestRDPOrderTwoClosedForm(t *testing.T) {
	for _, c := range []struct{ q, s float64 }{{0.01, 1}, {0.1, 0.5}, {0.5, 3}, {256.0 / 60000, 1.1}} {
		got, err := RDP(c.q, c.s, []float64{2})
		if err != nil {
			t.Fatal(err)
		}
		want := math.Log1p(c.q * c.q * math.Expm1(1/(c.s*c.s)))
		if math.Abs(got[0]-want) > 1e-10*want {
			t.Errorf("q=%v s=%v: %.16g, want %.16g", c.q, c.s, got[0], want)
		}
	}
}

// The series for fractional orders, evaluated at an integer order, must give
// the binomial sum (the generalised coefficients vanish past the order, and
// the two half-line pieces add up to the whole line); and the RDP is
// continuous in the order across an integer.
func TestSeriesMatchesBinomialAtIntegers(t *testing.T) {
	for _, c := range []struct{ q, s float64 }{{0.01, 1}, {0.1, 2}, {0.3, 0.7}, {256.0 / 60000, 1.12}} {
		for _, a := range []int{2, 3, 5, 10, 33} {
			b := logAInt(c.q, c.s, a)
			f, err := logAFrac(c.q, c.s, float64(a))
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(b-f) > 1e-12*math.Max(1e-3, math.Abs(b)) {
				t.Errorf("q=%v s=%v order %d: binomial %.16g, series %.16g", c.q, c.s, a, b, f)
			}
			r, err := RDP(c.q, c.s, []float64{float64(a) - 1e-7, float64(a), float64(a) + 1e-7})
			if err != nil {
				t.Fatal(err)
			}
			if !(r[0] <= r[1]*(1+1e-9) && r[1] <= r[2]*(1+1e-9)) || math.Abs(r[2]-r[0]) > 1e-5*r[1] {
				t.Errorf("q=%v s=%v around order %d: %v not continuous and increasing", c.q, c.s, a, r)
			}
		}
	}
}

// logHalfErfc switches from math.Erfc to its asymptotic series at 25; both
// sides must agree there, and the function must equal log(erfc/2) where
// erfc is representable.
func TestLogHalfErfc(t *testing.T) {
	below, above := logHalfErfc(math.Nextafter(25, 0)), logHalfErfc(25)
	if math.Abs(below-above) > 1e-12*math.Abs(above) {
		t.Errorf("discontinuity at 25: %.17g vs %.17g", below, above)
	}
	for _, x := range []float64{-30, -3, 0, 0.5, 3, 10, 24} {
		want := math.Log(math.Erfc(x) / 2)
		if got := logHalfErfc(x); math.Abs(got-want) > 1e-14*math.Max(1, math.Abs(want)) {
			t.Errorf("logHalfErfc(%v) = %.17g, want %.17g", x, got, want)
		}
	}
	// Past underflow: erfc(x) ~ exp(-x^2)/(x sqrt(pi)) to leading order.
	x := 100.0
	lead := -x*x - math.Log(x*math.Sqrt(math.Pi)) - math.Ln2
	if got := logHalfErfc(x); math.Abs(got-lead) > 1e-4 || got > lead {
		t.Errorf("logHalfErfc(100) = %v, leading term %v", got, lead)
	}
	if !math.IsInf(logHalfErfc(math.Inf(1)), -1) || logHalfErfc(math.Inf(-1)) != 0 {
		t.Error("infinite arguments")
	}
}

func TestRDPIsMonotone(t *testing.T) {
	orders := DefaultOrders()
	// Non-decreasing in q, non-increasing in sigma, non-decreasing in the order.
	prev, _ := RDP(0, 1, orders)
	for _, q := range []float64{1e-4, 1e-3, 0.01, 0.05, 0.2, 0.5, 0.9, 1} {
		cur, err := RDP(q, 1, orders)
		if err != nil {
			t.Fatal(err)
		}
		for i := range orders {
			if cur[i] < prev[i]*(1-1e-12) {
				t.Errorf("order %v: rdp falls from %v to %v as q rises to %v", orders[i], prev[i], cur[i], q)
			}
			if i > 0 && cur[i] < cur[i-1]*(1-1e-12) {
				t.Errorf("q=%v: rdp falls from %v (order %v) to %v (order %v)", q, cur[i-1], orders[i-1], cur[i], orders[i])
			}
		}
		prev = cur
	}
	prev = nil
	for _, s := range []float64{0.3, 0.5, 0.8, 1, 1.5, 3, 10, 50} {
		cur, err := RDP(0.02, s, orders)
		if err != nil {
			t.Fatal(err)
		}
		for i := range prev {
			if cur[i] > prev[i]*(1+1e-12) {
				t.Errorf("order %v: rdp rises from %v to %v as sigma rises to %v", orders[i], prev[i], cur[i], s)
			}
		}
		prev = cur
	}
	// Subsampling never costs more than the full-batch Gaussian.
	sub, _ := RDP(0.3, 0.9, orders)
	full, _ := RDP(1, 0.9, orders)
	for i := range orders {
		if sub[i] > full[i] {
			t.Errorf("order %v: subsampled %v above full %v", orders[i], sub[i], full[i])
		}
	}
}

func TestValidation(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	for _, c := range []struct {
		q, s float64
		want string
	}{
		{-0.1, 1, "sampling rate"}, {1.1, 1, "sampling rate"}, {nan, 1, "sampling rate"},
		{0.1, 0, "noise multiplier"}, {0.1, -1, "noise multiplier"}, {0.1, nan, "noise multiplier"}, {0.1, inf, "noise multiplier"},
	} {
		if _, err := RDP(c.q, c.s, []float64{2}); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("RDP(%v, %v): err %v, want one naming %q", c.q, c.s, err, c.want)
		}
		a, _ := NewAccountant()
		if err := a.Step(c.q, c.s, 1); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Step(%v, %v): err %v, want one naming %q", c.q, c.s, err, c.want)
		}
		if a.Steps() != 0 {
			t.Error("a rejected step was recorded")
		}
	}
	for _, orders := range [][]float64{{1}, {0.5}, {nan}, {inf}, {2, MaxOrder + 1}} {
		if _, err := NewAccountant(orders...); err == nil {
			t.Errorf("NewAccountant(%v) accepted", orders)
		}
		if _, err := RDP(0.1, 1, orders); err == nil {
			t.Errorf("RDP orders %v accepted", orders)
		}
	}
	if _, err := RDP(0.1, 1, nil); err == nil {
		t.Error("RDP with no orders accepted")
	}
	a, _ := NewAccountant()
	if err := a.Step(0.1, 1, -1); err == nil {
		t.Error("negative step count accepted")
	}
	_ = a.Step(0.01, 1, 10)
	for _, d := range []float64{0, 1, -1e-5, 2, nan, inf} {
		if _, _, err := a.Epsilon(d); err == nil || !strings.Contains(err.Error(), "delta") {
			t.Errorf("Epsilon(%v): err %v", d, err)
		}
	}
	if _, _, err := a.EpsilonWith(1e-5, Conversion(7)); err == nil {
		t.Error("unknown conversion accepted")
	}
	if _, _, err := EpsilonFromRDP([]float64{2, 3}, []float64{1}, 1e-5, Improved); err == nil {
		t.Error("length mismatch accepted")
	}
	if _, _, err := EpsilonFromRDP([]float64{2}, []float64{nan}, 1e-5, Improved); err == nil {
		t.Error("NaN rdp accepted")
	}
	if _, _, err := EpsilonFromRDP([]float64{2}, []float64{-1}, 1e-5, Improved); err == nil {
		t.Error("negative rdp accepted")
	}
	for _, c := range []struct {
		eps, q float64
		steps  int
		delta  float64
	}{{0, 0.01, 10, 1e-5}, {nan, 0.01, 10, 1e-5}, {inf, 0.01, 10, 1e-5}, {1, 0, 10, 1e-5}, {1, 1.5, 10, 1e-5}, {1, 0.01, 0, 1e-5}, {1, 0.01, 10, 0}} {
		if _, err := NoiseMultiplier(c.eps, c.q, c.steps, c.delta); err == nil {
			t.Errorf("NoiseMultiplier(%v, %v, %v, %v) accepted", c.eps, c.q, c.steps, c.delta)
		}
	}
}

// Extreme but valid inputs give numbers or +Inf, never NaN.
func TestExtremeInputsStayFiniteOrInf(t *testing.T) {
	orders := DefaultOrders()
	for _, q := range []float64{5e-324, 1e-200, 1e-9, 0.5, 1 - 1e-16, 1} {
		for _, s := range []float64{1e-160, 1e-3, 0.05, 1, 1e3, 1e150} {
			r, err := RDP(q, s, orders)
			if err != nil {
				t.Errorf("q=%v s=%v: %v", q, s, err)
				continue
			}
			for i, v := range r {
				if math.IsNaN(v) || v < 0 {
					t.Errorf("q=%v s=%v order %v: %v", q, s, orders[i], v)
				}
			}
			a, _ := NewAccountant()
			if err := a.Step(q, s, 1<<40); err != nil {
				t.Fatal(err)
			}
			eps, order, err := a.Epsilon(1e-5)
			if err != nil || math.IsNaN(eps) || math.IsNaN(order) || eps < 0 {
				t.Errorf("q=%v s=%v: eps %v order %v err %v", q, s, eps, order, err)
			}
		}
	}
}
