package privacy

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// MaxOrder bounds the Rényi orders accepted: an integer order costs one term
// per unit of order, and orders past a few hundred never give the best bound
// for a DP-SGD run.
const MaxOrder = 10000

// DefaultOrders returns the orders an Accountant uses when given none: every
// order of the grid TensorFlow Privacy's compute_dp_sgd_privacy uses
// (1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, the integers 5..63, and 128,
// 256, 512) merged with the finer grid Opacus uses (1.1, 1.2, ..., 10.9 and
// 12..63). Any order gives a valid bound, so the union is never looser than
// either; the large orders matter for small epsilons, the fine ones below 11
// for the usual DP-SGD range of a few units. The slice is a fresh copy.
func DefaultOrders() []float64 {
	seen := map[float64]bool{}
	var out []float64
	add := func(a float64) {
		if !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	for _, a := range []float64{1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5} {
		add(a)
	}
	for x := 1; x < 100; x++ {
		add(1 + float64(x)/10) // 1.1 .. 10.9, the same floats as Opacus' 1 + x/10
	}
	for a := 5; a < 64; a++ {
		add(float64(a))
	}
	for _, a := range []float64{128, 256, 512} {
		add(a)
	}
	slices.Sort(out)
	return out
}

// checkQSigma rejects a sampling rate or noise multiplier that has no meaning,
// so that no NaN can reach a reported epsilon.
func checkQSigma(q, sigma float64) error {
	if math.IsNaN(q) || q < 0 || q > 1 {
		return fmt.Errorf("privacy: sampling rate q=%v must lie in [0, 1]", q)
	}
	if math.IsNaN(sigma) || math.IsInf(sigma, 0) || sigma <= 0 {
		return fmt.Errorf("privacy: noise multiplier sigma=%v must be finite and > 0", sigma)
	}
	return nil
}

func checkOrders(orders []float64) error {
	if len(orders) == 0 {
		return errors.New("privacy: no Rényi orders given")
	}
	for _, a := range orders {
		if math.IsNaN(a) || a <= 1 || a > MaxOrder {
			return fmt.Errorf("privacy: Rényi order %v must lie in (1, %d]", a, MaxOrder)
		}
	}
	return nil
}

func checkDelta(delta float64) error {
	if math.IsNaN(delta) || delta <= 0 || delta >= 1 {
		return fmt.Errorf("privacy: delta=%v must lie in (0, 1)", delta)
	}
	return nil
}

// RDP returns, for each order, the Rényi differential privacy of one step of
// the Poisson-subsampled Gaussian mechanism: each record joins the batch with
// probability q and Gaussian noise of standard deviation sigma (in units of
// the clipping norm) is added to the sum. Steps compose by adding these
// values. An entry may be +Inf (no finite guarantee at that order), never NaN.
func RDP(q, sigma float64, orders []float64) ([]float64, error) {
	if err := checkQSigma(q, sigma); err != nil {
		return nil, err
	}
	if err := checkOrders(orders); err != nil {
		return nil, err
	}
	out := make([]float64, len(orders))
	for i, a := range orders {
		r, err := rdpAt(q, sigma, a)
		if err != nil {
			return nil, err
		}
		out[i] = r
	}
	return out, nil
}

// rdpAt is the RDP of one subsampled Gaussian step at order alpha, from
// Mironov, Talwar and Zhang (2019): D_alpha = log(A_alpha)/(alpha-1) with
// A_alpha = E_{z~N(0,s^2)}[((1-q) + q*exp((2z-1)/(2s^2)))^alpha].
func rdpAt(q, sigma, alpha float64) (float64, error) {
	switch {
	case q == 0:
		return 0, nil
	case q == 1:
		// Plain Gaussian mechanism with sensitivity 1.
		return alpha / (2 * sigma * sigma), nil
	case alpha*alpha*(1/(2*sigma*sigma)) > 1e300:
		// Past this the terms overflow; the RDP exceeds alpha/(2 sigma^2) +
		// alpha log(q)/(alpha-1) > 1e290, which is no privacy at all.
		return math.Inf(1), nil
	}
	var logA float64
	var err error
	if alpha == math.Trunc(alpha) {
		logA = logAInt(q, sigma, int(alpha))
	} else {
		logA, err = logAFrac(q, sigma, alpha)
		if err != nil {
			return 0, err
		}
	}
	r := logA / (alpha - 1)
	if r < 0 {
		// A_alpha >= 1 exactly; a hair below is rounding.
		r = 0
	}
	return r, nil
}

// logAInt evaluates log A_alpha for an integer order by expanding the power
// binomially: with r = q*exp((2z-1)/(2s^2)),
//
//	A = sum_k C(alpha,k) (1-q)^(alpha-k) q^k E[exp(k(2z-1)/(2s^2))]
//	  = sum_k C(alpha,k) (1-q)^(alpha-k) q^k exp((k^2-k)/(2s^2)),
//
// the last step being the Gaussian moment generating function. All terms are
// positive, so a log-sum-exp is exact to rounding.
func logAInt(q, sigma float64, alpha int) float64 {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	inv2s2 := 1 / (2 * sigma * sigma)
	acc := math.Inf(-1)
	logC := 0.0 // log C(alpha,k), built up term by term
	for k := 0; k <= alpha; k++ {
		kf := float64(k)
		t := logC + float64(alpha-k)*log1mQ + kf*logQ + (kf*kf-kf)*inv2s2
		acc = logAddExp(acc, t)
		logC += math.Log(float64(alpha-k)) - math.Log(kf+1)
	}
	return acc
}

// Series limits for fractional orders. Past i = alpha+1 the terms alternate
// in sign with decreasing, smooth magnitudes b_i, so the remainder after
// term N is estimated by Euler's transform of its first three terms,
// b_0/2 + (b_0-b_1)/4 + (b_0-2b_1+b_2)/8 (b_k = |term N+1+k|), whose error is
// about |third difference|/16. The sum stops once either the first left-out
// term or that error estimate is seriesLogTol (natural log) below the sum;
// where terms decay only polynomially (q near 1/2, large sigma) the second
// test stops the sum after hundreds of terms instead of millions.
// seriesMaxTerms is a backstop no realistic (q, sigma) reaches.
const (
	seriesLogTol   = 36 // e^-36 ≈ 2e-16
	seriesMaxTerms = 200000
)

// logAFrac evaluates log A_alpha for a fractional order. Split the line at
// z0, where q*N(1,s^2) and (1-q)*N(0,s^2) have equal density:
//
//	z0 = s^2 log(1/q - 1) + 1/2.
//
// With r(z) = q/(1-q) * exp((2z-1)/(2s^2)), the integrand is
// (1-q)^alpha (1+r)^alpha times the N(0,s^2) density; r < 1 left of z0 and
// r > 1 right of it. Expanding (1+r)^alpha = sum_i C(alpha,i) r^i on the
// left and r^alpha (1+1/r)^alpha = sum_i C(alpha,i) r^(alpha-i) on the right
// (generalised binomial coefficients, both series convergent there) and
// integrating each power of r against the Gaussian over its half-line gives
//
//	A = sum_i C(alpha,i) [ (1-q)^(alpha-i) q^i exp((i^2-i)/(2s^2)) Phi((z0-i)/s)
//	                     + (1-q)^i q^(alpha-i) exp((j^2-j)/(2s^2)) Phi((j-z0)/s) ],  j = alpha-i,
//
// since exp(m(2z-1)/(2s^2)) N(z;0,s^2) = exp((m^2-m)/(2s^2)) N(z;m,s^2).
// Both parts of a term carry the sign of C(alpha,i), and each part decreases
// in magnitude once i > alpha+1.
func logAFrac(q, sigma, alpha float64) (float64, error) {
	logQ, log1mQ := math.Log(q), math.Log1p(-q)
	s2 := sigma * sigma
	inv2s2 := 1 / (2 * s2)
	z0 := s2*(log1mQ-logQ) + 0.5
	invSqrt2S := 1 / (math.Sqrt2 * sigma)

	// Terms are produced in order into a small ring, four ahead of the sum.
	const ring = 8
	var lb, sg [ring]float64 // log|term i| and its sign, at i % ring
	logC, sign := 0.0, 1.0   // log|C(alpha,i)| and sign for the next term made
	made := 0
	produce := func() {
		fi := float64(made)
		j := alpha - fi
		t1 := logC + j*log1mQ + fi*logQ + (fi*fi-fi)*inv2s2 + logHalfErfc((fi-z0)*invSqrt2S)
		t2 := logC + fi*log1mQ + j*logQ + (j*j-j)*inv2s2 + logHalfErfc((z0-j)*invSqrt2S)
		lb[made%ring], sg[made%ring] = logAddExp(t1, t2), sign
		d := alpha - fi // C(alpha,i+1) = C(alpha,i) (alpha-i)/(i+1)
		if d < 0 {
			sign = -sign
		}
		logC += math.Log(math.Abs(d)) - math.Log(fi+1)
		made++
	}

	pos, neg := math.Inf(-1), math.Inf(-1) // log of the positive and negative parts
	add := func(t, sign float64) {
		if sign > 0 {
			pos = logAddExp(pos, t)
		} else {
			neg = logAddExp(neg, t)
		}
	}
	for n := 0; ; n++ {
		for made <= n+4 {
			produce()
		}
		add(lb[n%ring], sg[n%ring])
		if float64(n) <= alpha+1 {
			continue
		}
		b0 := lb[(n+1)%ring]
		if math.IsInf(b0, -1) {
			break
		}
		r1 := math.Exp(lb[(n+2)%ring] - b0)
		r2 := math.Exp(lb[(n+3)%ring] - b0)
		r3 := math.Exp(lb[(n+4)%ring] - b0)
		third := math.Abs(1-3*r1+3*r2-r3) / 16
		if b0 < pos-seriesLogTol || b0+math.Log(third) < pos-seriesLogTol || n >= seriesMaxTerms {
			if rest := 0.5 + (1-r1)/4 + (1-2*r1+r2)/8; rest > 0 {
				add(b0+math.Log(rest), sg[(n+1)%ring])
			}
			break
		}
	}
	if math.IsNaN(pos) || math.IsNaN(neg) || !(neg < pos) {
		return 0, fmt.Errorf("privacy: series for order %v failed (q=%v, sigma=%v)", alpha, q, sigma)
	}
	return pos + math.Log1p(-math.Exp(neg-pos)), nil
}

// logAddExp returns log(exp(a)+exp(b)) without overflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	if math.IsInf(b, -1) || math.IsInf(a, 1) {
		return a
	}
	return a + math.Log1p(math.Exp(b-a))
}

// logHalfErfc returns log(erfc(x)/2) = log Phi(-x*sqrt2), accurate where
// erfc underflows: math.Erfc is used up to x = 25 (erfc(25) ~ 8e-274) and an
// asymptotic series beyond, whose ten terms are exact to rounding there.
func logHalfErfc(x float64) float64 {
	if math.IsNaN(x) {
		return math.NaN()
	}
	if x < 25 {
		return math.Log(math.Erfc(x)) - math.Ln2
	}
	if math.IsInf(x, 1) {
		return math.Inf(-1)
	}
	// erfc(x) = exp(-x^2)/(x sqrt(pi)) * sum_k (-1)^k (2k-1)!! / (2x^2)^k
	u := 1 / (2 * x * x)
	sum, t := 1.0, 1.0
	for k := 1; k <= 10; k++ {
		t *= -float64(2*k-1) * u
		sum += t
	}
	return -x*x - math.Log(x) - 0.5*math.Log(math.Pi) + math.Log(sum) - math.Ln2
}
