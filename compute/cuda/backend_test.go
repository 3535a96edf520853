//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/backendtest"
	"github.com/troupe-ml/troupe/compute/optim"
)

func TestBackendConforms(t *testing.T) {
	backendtest.Run(t, "cuda:0", Open)
}

func refModel(t testing.TB, spec compute.ModelSpec, seed uint64) *compute.Model {
	t.Helper()
	m, err := compute.NewModel(spec, seed)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestUnsupportedModelsAreRefusedByLayer(t *testing.T) {
	conv := compute.ModelSpec{Input: []int{1, 8, 8}, Layers: []compute.LayerSpec{
		{Type: compute.LayerConv2D, Filters: 4, Kernel: 3}, {Type: compute.LayerFlatten}, {Type: compute.LayerDense, Units: 3},
	}}
	dropout := compute.MLP(6, []int{5}, 3)
	dropout.Layers = slices.Insert(dropout.Layers, 2, compute.LayerSpec{Type: compute.LayerDropout, Rate: 0.5})
	gelu := compute.MLP(6, []int{5}, 3)
	gelu.Layers[1].Type = compute.LayerGELU
	mse := compute.MLP(6, []int{5}, 3)
	mse.Loss = compute.LossMSE
	for name, spec := range map[string]compute.ModelSpec{"conv2d": conv, "dropout": dropout, "gelu": gelu, "mse": mse} {
		_, err := Open("cuda:0", spec, refModel(t, spec, 1).Params(), optim.Config{Name: optim.SGD, LR: 0.1})
		if !errors.Is(err, compute.ErrUnsupported) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v, want an error wrapping ErrUnsupported that names %s", name, err, name)
		}
	}
}

func TestDeviceNames(t *testing.T) {
	spec := compute.MLP(4, []int{3}, 2)
	params := refModel(t, spec, 1).Params()
	cfg := optim.Config{Name: optim.SGD, LR: 0.1}
	b, err := compute.OpenBackend("cuda", spec, params, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.Device() != "cuda:0" {
		t.Errorf("cuda opened as %q, want cuda:0", b.Device())
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	if err := b.ReadParams(make([]float32, len(params))); err == nil {
		t.Error("ReadParams after Close succeeded")
	}
	for _, name := range []string{"cuda:x", "cuda:-1", "cuda:01", "cuda:99", "gpu:0"} {
		if _, err := Open(name, spec, params, cfg); !errors.Is(err, compute.ErrUnknownDevice) {
			t.Errorf("%s: %v, want ErrUnknownDevice", name, err)
		}
	}
}

// A chain the conformance MLP does not have: a 3-d input flattened, tanh, a ReLU that follows
// a ReLU (not folded into a dense layer), and batches that grow and shrink the activations.
func TestOtherChainsAndBatchSizesFollowTheCPU(t *testing.T) {
	spec := compute.ModelSpec{Input: []int{2, 3, 4}, Loss: compute.LossSoftmaxCrossEntropy, Layers: []compute.LayerSpec{
		{Type: compute.LayerFlatten},
		{Type: compute.LayerDense, Units: 16},
		{Type: compute.LayerTanh},
		{Type: compute.LayerDense, Units: 12},
		{Type: compute.LayerReLU},
		{Type: compute.LayerReLU},
		{Type: compute.LayerDense, Units: 5},
		{Type: compute.LayerTanh},
	}}
	ref := refModel(t, spec, 3)
	cfg := optim.Config{Name: optim.SGD, LR: 0.1, Momentum: 0.9}
	refOpt, err := optim.New(cfg, ref.NumParams())
	if err != nil {
		t.Fatal(err)
	}
	b, err := Open("cuda:0", spec, ref.Params(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rng := rand.New(rand.NewPCG(3, 3))
	grads := make([]float32, b.NumParams())
	got := make([]float32, b.NumParams())
	for step, n := range []int{8, 33, 5, 33, 1, 64} {
		batch := backendtest.RandomBatch(rng, n, 24, 5)
		scale := float32(1) / float32(n)
		wantLoss, wantCorrect := ref.TrainBatch(batch, scale, 0)
		loss, correct, err := b.TrainBatch(batch, scale, 0, grads)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(loss-wantLoss) > backendtest.Tolerance*math.Abs(wantLoss) || correct < wantCorrect-1 || correct > wantCorrect+1 {
			t.Fatalf("step %d (batch %d): loss %v, %d correct; the CPU %v, %d", step, n, loss, correct, wantLoss, wantCorrect)
		}
		if d := backendtest.Deviation(grads, ref.Grads()); !(d <= backendtest.Tolerance) {
			t.Fatalf("step %d (batch %d): gradient deviates by %.3g of scale", step, n, d)
		}
		refOpt.Step(ref.Params(), slices.Clone(ref.Grads()), cfg.LR)
		if err := b.Step(slices.Clone(ref.Grads()), cfg.LR); err != nil {
			t.Fatal(err)
		}
		if err := b.ReadParams(got); err != nil {
			t.Fatal(err)
		}
		if d := backendtest.Deviation(got, ref.Params()); !(d <= backendtest.Tolerance) {
			t.Fatalf("step %d (batch %d): parameters deviate by %.3g of scale", step, n, d)
		}
	}
}

// Replicas of a world apply the same averaged gradient and must stay identical; with clipping
// that needs the norm summed in the same order every time.
// twoReplicas opens two backends on cuda:0 with the same parameters, closed when t ends.
func twoReplicas(t *testing.T, spec compute.ModelSpec, params []float32, cfg optim.Config) [2]compute.Backend {
	t.Helper()
	var replicas [2]compute.Backend
	for i := range replicas {
		b, err := Open("cuda:0", spec, params, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		replicas[i] = b
	}
	return replicas
}

// sameParams fails t with why unless both replicas hold the same parameters, bit for bit.
func sameParams(t *testing.T, replicas [2]compute.Backend, why string) {
	t.Helper()
	n := replicas[0].NumParams()
	a, b := make([]float32, n), make([]float32, n)
	if err := errors.Join(replicas[0].ReadParams(a), replicas[1].ReadParams(b)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a, b) {
		t.Fatal(why)
	}
}

func TestClippedStepsAreDeterministic(t *testing.T) {
	spec := compute.MLP(300, []int{256}, 10)
	params := refModel(t, spec, 5).Params()
	cfg := optim.Config{Name: optim.Adam, LR: 1e-3, ClipNorm: 0.01}
	replicas := twoReplicas(t, spec, params, cfg)
	rng := rand.New(rand.NewPCG(5, 5))
	grads := make([]float32, len(params))
	for range 5 {
		for i := range grads {
			grads[i] = float32(rng.NormFloat64())
		}
		for _, b := range replicas {
			if err := b.Step(slices.Clone(grads), cfg.LR); err != nil {
				t.Fatal(err)
			}
		}
	}
	sameParams(t, replicas, "two replicas given the same gradients took different clipped steps")
}

// The page-locked gradient buffer the Worker trains into and steps from gives what a Go slice
// gives, bit for bit: the gradient, and the parameters after the step.
func TestPinnedGradientBufferActsAsAGoSlice(t *testing.T) {
	spec := compute.MLP(64, []int{32}, 10)
	params := refModel(t, spec, 9).Params()
	cfg := optim.Config{Name: optim.SGD, LR: 0.1, Momentum: 0.9}
	replicas := twoReplicas(t, spec, params, cfg)
	pinned := replicas[0].(compute.HostGradients).GradientBuffer()
	if len(pinned) != len(params) {
		t.Fatalf("GradientBuffer holds %d values, the model %d", len(pinned), len(params))
	}
	own := make([]float32, len(params))
	batch := backendtest.RandomBatch(rand.New(rand.NewPCG(9, 9)), 16, 64, 10)
	for range 3 {
		for i, g := range [][]float32{pinned, own} {
			if _, _, err := replicas[i].TrainBatch(batch, 1.0/16, 0, g); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(pinned, own) {
			t.Fatal("the gradient in page-locked memory differs")
		}
		for i, g := range [][]float32{pinned, own} {
			if err := replicas[i].Step(g, cfg.LR); err != nil {
				t.Fatal(err)
			}
		}
	}
	sameParams(t, replicas, "stepping from page-locked memory gave other parameters")
}

// BenchmarkTrainStepMLP is one data-parallel step of the default MNIST model at batch 128 with
// Adam: TrainBatch (inputs up, gradient down) and Step (gradient up, update), on the GPU and,
// for the ratio, on the CPU backend of the same binary.
func BenchmarkTrainStepMLP(b *testing.B) {
	const n = 128
	spec := compute.MLP(784, []int{512, 512}, 10)
	params := refModel(b, spec, 1).Params()
	cfg := optim.Config{Name: optim.Adam, LR: 1e-3}
	batch := backendtest.RandomBatch(rand.New(rand.NewPCG(1, 1)), n, 784, 10)
	for _, device := range []string{"cuda:0", "cpu"} {
		b.Run(strings.ReplaceAll(device, ":", ""), func(b *testing.B) {
			backend, err := compute.OpenBackend(device, spec, params, cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer backend.Close()
			grads, out := make([]float32, backend.NumParams()), make([]float32, backend.NumParams())
			if h, ok := backend.(compute.HostGradients); ok {
				grads = h.GradientBuffer() // as the Worker does
			}
			step := func() {
				if _, _, err := backend.TrainBatch(batch, 1.0/n, 0, grads); err != nil {
					b.Fatal(err)
				}
				if err := backend.Step(grads, cfg.LR); err != nil {
					b.Fatal(err)
				}
			}
			step() // sizes the activations and loads the kernels
			b.ResetTimer()
			for range b.N {
				step()
			}
			// The last Step's update may still run: reading the parameters waits for it.
			if err := backend.ReadParams(out); err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "samples/s")
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/step")
		})
	}
}

func ExampleOpen() {
	spec := compute.MLP(784, []int{512, 512}, 10)
	m, _ := compute.NewModel(spec, 1)
	b, err := compute.OpenBackend("cuda:0", spec, m.Params(), optim.Config{Name: optim.Adam, LR: 1e-3})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()
	fmt.Println(b.Device(), b.NumParams())
	// Output: cuda:0 669706
}
