package actors

import (
	crand "crypto/rand"
	"fmt"
	"math/rand/v2"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/privacy"
)

// dpState is a replica's share of DP-SGD: the source of the noise it adds when it is rank 0,
// and the accountant of the privacy the steps applied so far have spent.
type dpState struct {
	spec PrivacySpec
	// noise is seeded from the operating system's random source: noise that someone could
	// predict from the job file would protect nothing. So noisy steps do not replay bit for
	// bit after a restart (the clipping does).
	noise     *rand.Rand
	acct      *privacy.Accountant
	accounted int64 // the steps acct holds
	// redone is how many of the replica's steps thrown away by world changes acct holds:
	// their noisy gradients may have been reduced, so they count too.
	redone  int64
	clipped int64 // samples whose gradient was scaled down, in this run
}

func newDPState(spec PrivacySpec, model *compute.Model) (*dpState, error) {
	if err := model.CanClipPerSample(); err != nil {
		return nil, fmt.Errorf("%w: privacy: %w", ErrBadJob, err)
	}
	var seed [32]byte
	if _, err := crand.Read(seed[:]); err != nil {
		return nil, fmt.Errorf("privacy: seeding the noise: %w", err)
	}
	acct, err := privacy.NewAccountant()
	if err != nil {
		return nil, err
	}
	return &dpState{spec: spec, noise: rand.New(rand.NewChaCha8(seed)), acct: acct}, nil
}

// addNoise adds to g, a part of the world's gradient scaled by scale, Gaussian noise of
// standard deviation NoiseMultiplier·ClipNorm·scale.
func (d *dpState) addNoise(g []float32, scale float64) {
	std := d.spec.NoiseMultiplier * d.spec.ClipNorm * scale
	for i := range g {
		g[i] += float32(std * d.noise.NormFloat64())
	}
}

// accountUpTo brings the accountant to steps steps applied, each the sampled Gaussian at rate
// (its global batch) / (training samples), plus the replica's steps thrown away by world
// changes, at the full batch's rate; a replica restored to an earlier step starts it over.
func (d *dpState) accountUpTo(r *replica, steps int64) {
	if steps < d.accounted {
		d.acct, _ = privacy.NewAccountant() // the default orders always build
		d.accounted, d.redone = 0, 0
	}
	// q is in (0, 1] and sigma > 0 (validated): Step cannot fail.
	for ; d.accounted < steps; d.accounted++ {
		q := float64(r.globalBatchLen(d.accounted)) / float64(r.plan.NumSamples)
		_ = d.acct.Step(q, d.spec.NoiseMultiplier, 1)
	}
	if extra := r.redone - d.redone; extra > 0 {
		q := float64(min(r.plan.GlobalBatch, r.plan.NumSamples)) / float64(r.plan.NumSamples)
		_ = d.acct.Step(q, d.spec.NoiseMultiplier, int(extra))
		d.redone = r.redone
	}
}

// epsilon is the privacy spent so far at the job's delta.
func (d *dpState) epsilon() float64 {
	eps, _, err := d.acct.Epsilon(d.spec.Delta)
	if err != nil {
		return 0
	}
	return eps
}
