package kernels

import (
	"math"
	"math/rand/v2"
	"testing"
)

// ulps is the distance between a float32 result and the float64 truth in units of the
// float32 spacing at the truth.
func ulps(got float32, want float64) float64 {
	if want == 0 {
		return math.Abs(float64(got)) / math.SmallestNonzeroFloat32
	}
	f := float32(want)
	spacing := float64(math.Nextafter32(f, float32(math.Inf(1))) - f)
	return math.Abs(float64(got)-want) / spacing
}

func TestExpAccuracy(t *testing.T) {
	var worst float64
	var at float32
	for x := float32(-87); x < 88.5; x += 0.000917 {
		u := ulps(expf(x), math.Exp(float64(x)))
		if u > worst {
			worst, at = u, x
		}
	}
	t.Logf("worst error %.2f ulps at %v", worst, at)
	if worst > 2 {
		t.Errorf("exp is %.2f ulps off at %v, want <= 2", worst, at)
	}
	for _, c := range []struct{ x, want float32 }{
		{-100, 0}, {0, 1}, {float32(math.Inf(-1)), 0}, {89, float32(math.Inf(1))}, {float32(math.Inf(1)), float32(math.Inf(1))},
	} {
		if got := expf(c.x); got != c.want {
			t.Errorf("exp(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if nan := float32(math.NaN()); expf(nan) == expf(nan) {
		t.Errorf("exp(NaN) is not NaN")
	}
}

func geluRef(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(geluC*(x+0.044715*x*x*x)))
}

func TestGELUAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, 20000)
	for i := range x {
		x[i] = float32(rng.NormFloat64() * 4)
	}
	x[0], x[1], x[2] = 0, -30, 30
	y := make([]float32, len(x))
	GELU(y, x)
	dy := make([]float32, len(x))
	for i := range dy {
		dy[i] = 1
	}
	dx := make([]float32, len(x))
	GELUGrad(dx, dy, x)
	for i, v := range x {
		xv := float64(v)
		want := geluRef(xv)
		if d := math.Abs(float64(y[i]) - want); d > 2e-7*max(1, math.Abs(want)) {
			t.Fatalf("gelu(%v) = %v, want %v", v, y[i], want)
		}
		h := 1e-4 * max(1, math.Abs(xv))
		wantD := (geluRef(xv+h) - geluRef(xv-h)) / (2 * h)
		if d := math.Abs(float64(dx[i]) - wantD); d > 1e-5 {
			t.Fatalf("gelu'(%v) = %v, want %v", v, dx[i], wantD)
		}
	}
}

func TestLayerNormAgainstFloat64(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const rows, cols = 7, 48
	x, gain, bias := make([]float32, rows*cols), make([]float32, cols), make([]float32, cols)
	for i := range x {
		x[i] = float32(100 + rng.NormFloat64()) // a large mean: the moments must keep precision
	}
	for j := range gain {
		gain[j], bias[j] = float32(1+rng.NormFloat64()/4), float32(rng.NormFloat64()/4)
	}
	y, mean, rstd := make([]float32, len(x)), make([]float32, rows), make([]float32, rows)
	LayerNorm(y, mean, rstd, x, gain, bias, cols)
	for r := range rows {
		var mu, v float64
		for _, xv := range x[r*cols : (r+1)*cols] {
			mu += float64(xv)
		}
		mu /= cols
		for _, xv := range x[r*cols : (r+1)*cols] {
			v += (float64(xv) - mu) * (float64(xv) - mu)
		}
		rs := 1 / math.Sqrt(v/cols+LayerNormEps)
		for j := range cols {
			want := (float64(x[r*cols+j])-mu)*rs*float64(gain[j]) + float64(bias[j])
			if d := math.Abs(float64(y[r*cols+j]) - want); d > 2e-5 {
				t.Fatalf("row %d col %d: %v, want %v", r, j, y[r*cols+j], want)
			}
		}
	}

	// The gradient against central differences of Σ y·w, in float64 around the float32 forward.
	w := make([]float32, len(x))
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	dx, dgain, dbias := make([]float32, len(x)), make([]float32, cols), make([]float32, cols)
	LayerNormGrad(dx, dgain, dbias, w, x, mean, rstd, gain, cols)
	loss := func() float64 {
		LayerNorm(y, mean, rstd, x, gain, bias, cols)
		var s float64
		for i, v := range y {
			s += float64(v) * float64(w[i])
		}
		return s
	}
	check := func(what string, v *float32, analytic float32) {
		orig := *v
		const h = 1e-2
		*v = orig + h
		plus := loss()
		*v = orig - h
		minus := loss()
		*v = orig
		numeric := (plus - minus) / (2 * h)
		if math.Abs(float64(analytic)-numeric) > 2e-2*max(1, math.Abs(numeric)) {
			t.Errorf("%s: analytic %v, numeric %v", what, analytic, numeric)
		}
	}
	for i := range 3 * cols {
		check("dx", &x[i], dx[i])
	}
	for j := range cols {
		check("dgain", &gain[j], dgain[j])
		check("dbias", &bias[j], dbias[j])
	}
}
