package privacy

import (
	"math"
	"testing"

	"gonum.org/v1/gonum/integrate/quad"
)

// quadRDP computes the Rényi divergence D_alpha(mu || mu0) of
// mu = (1-q)N(0,s^2) + qN(1,s^2) from mu0 = N(0,s^2) by integrating
// E_mu0[(mu/mu0)^alpha] numerically: composite Gauss-Legendre over panels
// covering both modes with 25 sigma to spare. It shares no code with the
// series: it is the definition, integrated.
//
// When A stays moderate it integrates A-1 directly (expm1 form), which keeps
// relative precision in a small divergence; otherwise it integrates A scaled
// by its largest integrand so nothing overflows.
func quadRDP(q, sigma, alpha float64, panels int) float64 {
	s2 := sigma * sigma
	lo, hi := -25*sigma-1, math.Max(alpha, 1)+25*sigma+1
	logNorm := -math.Log(sigma * math.Sqrt(2*math.Pi))
	// log of (mu/mu0)^alpha at z.
	logRatioPow := func(z float64) float64 {
		u := (2*z - 1) / (2 * s2)
		return alpha * logAddExp(math.Log1p(-q), math.Log(q)+u)
	}
	maxPow, maxLog := math.Inf(-1), math.Inf(-1)
	const grid = 20000
	for k := 0; k <= grid; k++ {
		z := lo + (hi-lo)*float64(k)/grid
		p := logRatioPow(z)
		maxPow = math.Max(maxPow, p)
		maxLog = math.Max(maxLog, p+logNorm-z*z/(2*s2))
	}
	width := (hi - lo) / float64(panels)
	integrate := func(f func(float64) float64) float64 {
		sum := 0.0
		for k := 0; k < panels; k++ {
			a := lo + width*float64(k)
			sum += quad.Fixed(f, a, a+width, 20, quad.Legendre{}, 0)
		}
		return sum
	}
	if maxPow < 600 {
		am1 := integrate(func(z float64) float64 {
			u := (2*z - 1) / (2 * s2)
			inner := alpha * math.Log1p(q*math.Expm1(u))
			return math.Exp(logNorm-z*z/(2*s2)) * math.Expm1(inner)
		})
		return math.Log1p(am1) / (alpha - 1)
	}
	scaled := integrate(func(z float64) float64 {
		return math.Exp(logNorm - z*z/(2*s2) + logRatioPow(z) - maxLog)
	})
	return (maxLog + math.Log(scaled)) / (alpha - 1)
}

// The closed form (integer orders) and the series (fractional orders) agree
// with the integrated definition, for integer and fractional orders, small
// and large sampling rates and noise. Two panel counts bound the quadrature's own
// error; the deviations are logged so the figures can be reported.
func TestRDPMatchesNumericalIntegration(t *testing.T) {
	cases := []struct{ q, sigma, alpha float64 }{
		{0.01, 4, 2},
		{0.01, 4, 2.5},
		{0.01, 1, 1.5},
		{0.01, 1, 20},
		{0.01, 1, 20.5},
		{256.0 / 60000, 1.12, 9.1},
		{256.0 / 60000, 0.6, 2.9},
		{0.04, 1.5, 3.9},
		{0.1, 2, 1.1},
		{0.2, 0.8, 7.3},
		{0.5, 4, 1.25},
		{0.5, 10, 1.1}, // z0 = 0.5: polynomially decaying tail, Euler remainder
		{0.5, 30, 1.5},
		{0.5, 300, 1.05},
		{0.2, 3, 1.1},
		{0.001, 0.5, 32},
		{0.05, 0.7, 63},
		{0.9, 1, 3.5},
		{0.3, 0.3, 12.75},
	}
	worst := 0.0
	for _, c := range cases {
		got, err := RDP(c.q, c.sigma, []float64{c.alpha})
		if err != nil {
			t.Fatalf("RDP(%v,%v,%v): %v", c.q, c.sigma, c.alpha, err)
		}
		coarse := quadRDP(c.q, c.sigma, c.alpha, 400)
		fine := quadRDP(c.q, c.sigma, c.alpha, 1600)
		quadErr := math.Abs(fine-coarse) / fine
		dev := math.Abs(got[0]-fine) / fine
		t.Logf("q=%-9.6g sigma=%-5g alpha=%-6g rdp=%.15g quad=%.15g rel.dev=%.2e (quad self-check %.1e)",
			c.q, c.sigma, c.alpha, got[0], fine, dev, quadErr)
		if quadErr > 1e-11 {
			t.Errorf("quadrature not converged for %+v: %.3g", c, quadErr)
		}
		// The closed forms build log A from terms of order one, so log A
		// carries a few ulps of absolute error whatever its size: allow
		// 1e-15/(alpha-1) absolute on top of 1e-9 relative.
		if math.Abs(got[0]-fine) > 1e-9*fine+1e-15/(c.alpha-1) {
			t.Errorf("q=%v sigma=%v alpha=%v: rdp %.15g, integral %.15g (rel %.3g)", c.q, c.sigma, c.alpha, got[0], fine, dev)
		}
		worst = math.Max(worst, dev)
	}
	t.Logf("largest relative deviation: %.2e", worst)
}
