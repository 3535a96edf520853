package privacy

import (
	"fmt"
	"math"
	"slices"
	"sync"
)

// Segment is a run of consecutive steps with one sampling rate and noise
// multiplier. An accountant's segments are its whole history: replaying them
// into a fresh accountant with the same orders rebuilds it exactly, which is
// how a resumed job restores its spent budget.
type Segment struct {
	Q     float64 // Poisson sampling rate: expected batch size / dataset size
	Sigma float64 // noise standard deviation / clipping norm
	Steps int
}

// Accountant composes the RDP of Poisson-subsampled Gaussian steps, possibly
// with different (q, sigma), over a fixed set of orders, and converts the
// total to (epsilon, delta) on demand. Stepping costs one RDP evaluation per
// distinct (q, sigma) in a row; Epsilon is a scan over the orders. It is safe
// for concurrent use.
type Accountant struct {
	mu       sync.Mutex
	orders   []float64
	total    []float64 // composed RDP per order
	segments []Segment

	// The per-step RDP of the last (q, sigma), since a run mostly repeats it.
	lastQ, lastSigma float64
	lastRDP          []float64
}

// NewAccountant returns an empty accountant over the given orders, or over
// DefaultOrders when none are given. Each order must lie in (1, MaxOrder].
func NewAccountant(orders ...float64) (*Accountant, error) {
	if len(orders) == 0 {
		orders = DefaultOrders()
	} else {
		orders = slices.Clone(orders)
	}
	if err := checkOrders(orders); err != nil {
		return nil, err
	}
	return &Accountant{orders: orders, total: make([]float64, len(orders))}, nil
}

// Step records n steps with sampling rate q in [0, 1] and noise multiplier
// sigma > 0. n = 0 records nothing. On error nothing is recorded.
func (a *Accountant) Step(q, sigma float64, n int) error {
	if err := checkQSigma(q, sigma); err != nil {
		return err
	}
	if n < 0 {
		return fmt.Errorf("privacy: step count %d must be >= 0", n)
	}
	if n == 0 {
		return nil
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	per := a.lastRDP
	if per == nil || q != a.lastQ || sigma != a.lastSigma {
		var err error
		if per, err = RDP(q, sigma, a.orders); err != nil {
			return err
		}
		a.lastQ, a.lastSigma, a.lastRDP = q, sigma, per
	}
	fn := float64(n)
	for i, r := range per {
		if r != 0 {
			a.total[i] += fn * r
		}
	}
	if k := len(a.segments) - 1; k >= 0 && a.segments[k].Q == q && a.segments[k].Sigma == sigma && a.segments[k].Steps <= math.MaxInt-n {
		a.segments[k].Steps += n
	} else {
		a.segments = append(a.segments, Segment{Q: q, Sigma: sigma, Steps: n})
	}
	return nil
}

// Epsilon returns the epsilon spent so far at delta, with the Improved
// conversion, and the order that gives it.
func (a *Accountant) Epsilon(delta float64) (eps, order float64, err error) {
	return a.EpsilonWith(delta, Improved)
}

// EpsilonWith is Epsilon with a chosen conversion.
func (a *Accountant) EpsilonWith(delta float64, conv Conversion) (eps, order float64, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return EpsilonFromRDP(a.orders, a.total, delta, conv)
}

// RDP returns copies of the orders and of the composed RDP at each.
func (a *Accountant) RDP() (orders, rdp []float64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.orders), slices.Clone(a.total)
}

// Segments returns a copy of the history, consecutive steps with equal
// (q, sigma) merged.
func (a *Accountant) Segments() []Segment {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.segments)
}

// Steps returns the number of steps recorded.
func (a *Accountant) Steps() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, s := range a.segments {
		n += s.Steps
	}
	return n
}
