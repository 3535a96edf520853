package optim

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// mlpParams is the parameter count of a 784-512-512-10 MLP.
const mlpParams = 784*512 + 512 + 512*512 + 512 + 512*10 + 10

// TestStepAllocatesNothingAtModelSize runs every optimizer at the size of
// the MLP, with a gradient whose norm is above any clip bound on every
// call, so that the clipping path runs each time too.
func TestStepAllocatesNothingAtModelSize(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	params, pristine := randomSlice(rng, mlpParams), randomSlice(rng, mlpParams)
	grads := make([]float32, mlpParams)
	for _, tc := range optimizerCases {
		t.Run(tc.name, func(t *testing.T) {
			opt := mustNew(t, tc.cfg, mlpParams)
			copy(grads, pristine)
			opt.Step(params, grads, 1e-6)
			if clipped := !slices.Equal(grads, pristine); clipped != (tc.cfg.ClipNorm > 0) {
				t.Fatalf("grads clipped = %v with clip_norm %v", clipped, tc.cfg.ClipNorm)
			}
			if allocs := testing.AllocsPerRun(3, func() {
				copy(grads, pristine)
				opt.Step(params, grads, 1e-6)
			}); allocs != 0 {
				t.Errorf("Step allocates %.1f times per call", allocs)
			}
		})
	}
}
