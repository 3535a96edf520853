package privacy

import (
	"math"
	"slices"
	"sync"
	"testing"
)

func TestDefaultOrders(t *testing.T) {
	o := DefaultOrders()
	if !slices.IsSorted(o) {
		t.Fatal("not sorted")
	}
	if len(slices.Compact(slices.Clone(o))) != len(o) {
		t.Fatal("duplicates")
	}
	for _, want := range append(tfComputeDPSGDOrders(), fineOrders()...) {
		if !slices.Contains(o, want) {
			t.Errorf("missing order %v", want)
		}
	}
	o[0] = 99 // a copy: the next call is unaffected
	if DefaultOrders()[0] == 99 {
		t.Error("DefaultOrders shares its slice")
	}
	if err := checkOrders(o); err != nil {
		t.Error(err)
	}
}

// Composition adds: n steps at once, n single steps, and any split give the
// same RDP, and a heterogeneous run is the sum of its parts.
func TestCompositionIsAdditive(t *testing.T) {
	const q, s = 0.01, 1.1
	one, _ := NewAccountant()
	many, _ := NewAccountant()
	split, _ := NewAccountant()
	if err := one.Step(q, s, 1000); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		if err := many.Step(q, s, 1); err != nil {
			t.Fatal(err)
		}
	}
	_ = split.Step(q, s, 300)
	_ = split.Step(q, s, 700)
	orders, r1 := one.RDP()
	_, r2 := many.RDP()
	_, r3 := split.RDP()
	per, _ := RDP(q, s, orders)
	for i := range orders {
		if math.Abs(r1[i]-1000*per[i]) > 1e-12*r1[i] || math.Abs(r2[i]-r1[i]) > 1e-10*r1[i] || math.Abs(r3[i]-r1[i]) > 1e-12*r1[i] {
			t.Errorf("order %v: %v %v %v, want %v", orders[i], r1[i], r2[i], r3[i], 1000*per[i])
		}
	}
	if many.Steps() != 1000 || len(many.Segments()) != 1 {
		t.Errorf("steps %d segments %v", many.Steps(), many.Segments())
	}

	het, _ := NewAccountant()
	parts := []Segment{{0.01, 1.1, 200}, {0.02, 0.9, 50}, {0, 1, 10}, {1, 5, 3}, {0.01, 1.1, 100}}
	want := make([]float64, len(orders))
	for _, p := range parts {
		if err := het.Step(p.Q, p.Sigma, p.Steps); err != nil {
			t.Fatal(err)
		}
		r, _ := RDP(p.Q, p.Sigma, orders)
		for i := range want {
			want[i] += float64(p.Steps) * r[i]
		}
	}
	_, got := het.RDP()
	for i := range orders {
		if math.Abs(got[i]-want[i]) > 1e-12*want[i] {
			t.Errorf("heterogeneous order %v: %v, want %v", orders[i], got[i], want[i])
		}
	}
	// The history replays into the same state: what a resumed job does.
	if segs := het.Segments(); !slices.Equal(segs, parts) {
		t.Errorf("segments %v, want %v", segs, parts)
	}
	replay, _ := NewAccountant()
	for _, p := range het.Segments() {
		_ = replay.Step(p.Q, p.Sigma, p.Steps)
	}
	e1, o1, _ := het.Epsilon(1e-5)
	e2, o2, _ := replay.Epsilon(1e-5)
	if e1 != e2 || o1 != o2 {
		t.Errorf("replay gives %v@%v, original %v@%v", e2, o2, e1, o1)
	}
}

func TestEpsilonIsMonotone(t *testing.T) {
	eps := func(q, s float64, n int) float64 {
		a, _ := NewAccountant()
		if err := a.Step(q, s, n); err != nil {
			t.Fatal(err)
		}
		e, _, err := a.Epsilon(1e-5)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	prev := 0.0
	for _, n := range []int{1, 10, 100, 1000, 10000, 100000} {
		e := eps(0.01, 1.1, n)
		if e < prev {
			t.Errorf("eps falls from %v to %v at %d steps", prev, e, n)
		}
		prev = e
	}
	prev = 0
	for _, q := range []float64{1e-4, 1e-3, 0.01, 0.1, 0.5, 1} {
		e := eps(q, 1.1, 1000)
		if e < prev {
			t.Errorf("eps falls from %v to %v at q=%v", prev, e, q)
		}
		prev = e
	}
	prev = math.Inf(1)
	for _, s := range []float64{0.5, 0.8, 1, 1.5, 3, 10} {
		e := eps(0.01, s, 1000)
		if e > prev {
			t.Errorf("eps rises from %v to %v at sigma=%v", prev, e, s)
		}
		prev = e
	}
	// The improved conversion is never looser than the classic one.
	a, _ := NewAccountant()
	_ = a.Step(0.01, 1.1, 5000)
	for _, d := range []float64{1e-3, 1e-5, 1e-9} {
		ei, _, _ := a.EpsilonWith(d, Improved)
		ec, _, _ := a.EpsilonWith(d, Classic)
		if ei > ec {
			t.Errorf("delta %v: improved %v above classic %v", d, ei, ec)
		}
	}
}

func TestEpsilonOfNothingIsZero(t *testing.T) {
	a, _ := NewAccountant()
	if e, o, err := a.Epsilon(1e-5); e != 0 || o != 0 || err != nil {
		t.Errorf("empty: %v %v %v", e, o, err)
	}
	_ = a.Step(0, 1, 1000)
	_ = a.Step(0.5, 1, 0)
	if e, _, err := a.Epsilon(1e-5); e != 0 || err != nil {
		t.Errorf("q=0 only: %v %v", e, err)
	}
	// A single step at huge noise certifies a small epsilon; the conversion
	// never reports a negative one.
	_ = a.Step(1e-6, 1000, 1)
	if e, _, err := a.Epsilon(0.5); e < 0 || err != nil {
		t.Errorf("tiny: %v %v", e, err)
	}
}

func TestNoiseMultiplierMeetsTarget(t *testing.T) {
	for _, c := range []struct {
		eps, q float64
		steps  int
	}{{3, 256.0 / 60000, 14040}, {1, 0.01, 10000}, {8, 0.1, 500}, {0.5, 1, 1}, {2, 0.001, 1000000}} {
		s, err := NoiseMultiplier(c.eps, c.q, c.steps, 1e-5)
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		at := func(sigma float64) float64 {
			a, _ := NewAccountant()
			_ = a.Step(c.q, sigma, c.steps)
			e, _, _ := a.Epsilon(1e-5)
			return e
		}
		got, below := at(s), at(s*(1-1e-5))
		if got > c.eps || below <= c.eps {
			t.Errorf("%+v: sigma %v gives eps %v; sigma*(1-1e-5) gives %v", c, s, got, below)
		}
	}
	if _, err := NoiseMultiplier(1e-4, 0.01, 100, 1e-5); err == nil {
		t.Error("a target below the grid's floor was accepted")
	}
}

// Steps and reads from several goroutines: run under -race.
func TestAccountantConcurrentUse(t *testing.T) {
	a, _ := NewAccountant(2, 4, 8, 16, 32)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 200 {
				_ = a.Step(0.01, 1+float64(g%2), 1)
				if _, _, err := a.Epsilon(1e-5); err != nil {
					t.Error(err)
				}
				_ = a.Segments()
			}
		})
	}
	wg.Wait()
	if a.Steps() != 800 {
		t.Errorf("steps %d, want 800", a.Steps())
	}
}
