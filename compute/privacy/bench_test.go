package privacy

import "testing"

// The per-log cost: Epsilon on an accountant that has composed a run.
func BenchmarkEpsilon(b *testing.B) {
	a, _ := NewAccountant()
	if err := a.Step(256.0/60000, 1.1, 14040); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := a.Epsilon(1e-5); err != nil {
			b.Fatal(err)
		}
	}
}

// The per-step cost when (q, sigma) repeats: the cached RDP is added.
func BenchmarkStepRepeated(b *testing.B) {
	a, _ := NewAccountant()
	b.ReportAllocs()
	for b.Loop() {
		if err := a.Step(256.0/60000, 1.1, 1); err != nil {
			b.Fatal(err)
		}
	}
}

// The per-step cost when sigma changes every step (a noise schedule): one
// full RDP evaluation over DefaultOrders, for a few typical settings.
func BenchmarkRDPDefaultOrders(b *testing.B) {
	orders := DefaultOrders()
	for _, c := range []struct {
		name     string
		q, sigma float64
	}{
		{"mnist_q0.0043_s1.1", 256.0 / 60000, 1.1},
		{"q0.04_s1.5", 0.04, 1.5},
		{"q0.01_s4", 0.01, 4},
		{"q0.5_s10", 0.5, 10},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := RDP(c.q, c.sigma, orders); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkNoiseMultiplier(b *testing.B) {
	for b.Loop() {
		if _, err := NoiseMultiplier(3, 256.0/60000, 14040, 1e-5); err != nil {
			b.Fatal(err)
		}
	}
}
