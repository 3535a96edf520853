package actors

import (
	"math"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/privacy"
)

// dpJob is smallJob with DP-SGD (no dropout: ranks would draw their own masks).
func dpJob(t *testing.T) Job {
	job := smallJob(t)
	job.Model = compute.MLP(784, []int{32}, 10)
	job.Checkpoint.Dir = ""
	job.Optimizer.LR = 0.005
	job.Privacy = &PrivacySpec{NoiseMultiplier: 1.0, ClipNorm: 1.0, Delta: 1e-5}
	if err := job.Validate(); err != nil {
		t.Fatal(err)
	}
	return job
}

// TestDPSGDAccountsEveryStep trains with DP-SGD on two ranks: both end with the same
// parameters (the noise is in the reduced sum once, added by rank 0), clipping scaled some
// gradients down, the model still learns, and the reported epsilon is what an accountant fed
// the run's steps by hand gives (24 steps of 50 of 1,200 samples per epoch, 3 epochs).
func TestDPSGDAccountsEveryStep(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := dpJob(t)
	res := runWorld(t, job, 2, Options{bucketValues: 1})
	if res[0].ParamsSHA256 != res[1].ParamsSHA256 {
		t.Fatal("the ranks end with different parameters")
	}
	if res[0].SamplesClipped+res[1].SamplesClipped == 0 {
		t.Fatal("no gradient was clipped at clip_norm 1")
	}
	if res[0].TestAccuracy < 0.3 { // chance is 0.1; 72 noisy steps on 1,200 samples learn little more
		t.Fatalf("test accuracy %v: DP-SGD learnt nothing", res[0].TestAccuracy)
	}
	acct, err := privacy.NewAccountant()
	if err != nil {
		t.Fatal(err)
	}
	if err := acct.Step(50.0/1200, 1.0, 72); err != nil {
		t.Fatal(err)
	}
	want, _, err := acct.Epsilon(1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Delta != 1e-5 || math.Abs(res[0].Epsilon-want) > 1e-9*want {
		t.Fatalf("epsilon %v at delta %v, an accountant of 72 steps at q=50/1200 gives %v", res[0].Epsilon, res[0].Delta, want)
	}
}
