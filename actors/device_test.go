package actors

import (
	"context"
	"errors"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/optim"
	"github.com/troupe-ml/troupe/compute/prune"
)

// testDevice stands for a GPU in these tests: the CPU backend reached through the device path
// of the Worker (gradients copied out into the backend's own host buffer, as into a GPU's
// page-locked memory, averaged gradients handed back, parameters read from the device only
// when the host needs them). The CPU backend computes what the Worker's own CPU path does, bit
// for bit, so every difference is the path's.
const testDevice = "hostdev"

// ownGradients is a Backend with a gradient buffer of its own, as the GPU backend has.
type ownGradients struct {
	compute.Backend
	buf []float32
}

func (o ownGradients) GradientBuffer() []float32 { return o.buf }

func init() {
	compute.RegisterDevice(testDevice, func(_ string, spec compute.ModelSpec, params []float32, opt optim.Config) (compute.Backend, error) {
		b, err := compute.OpenCPU("cpu", spec, params, opt)
		if err != nil {
			return nil, err
		}
		return ownGradients{b, make([]float32, b.NumParams())}, nil
	})
}

// A job trained through a device backend follows the CPU run bit for bit: every loss, the
// final parameters, the validation figures and the test accuracy.
func TestDeviceBackendTrainsLikeTheCPU(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Checkpoint.Dir = ""
	job.Data.Validation = 200
	var val [2][]float64
	run := func(i int) *Result {
		return mustRun(t, context.Background(), job, Options{OnEpoch: func(e *EpochDone) { val[i] = append(val[i], e.ValLoss, e.ValAccuracy) }})
	}
	cpu := run(0)
	job.Train.Device = testDevice + ":0"
	dev := run(1)
	if len(cpu.Losses) == 0 || !sameBits(cpu.Losses, dev.Losses) {
		t.Fatal("the device path's losses differ from the CPU's")
	}
	if dev.ParamsSHA256 != cpu.ParamsSHA256 || dev.TestAccuracy != cpu.TestAccuracy {
		t.Fatalf("device: params %s accuracy %v; cpu: %s %v", dev.ParamsSHA256, dev.TestAccuracy, cpu.ParamsSHA256, cpu.TestAccuracy)
	}
	if len(val[0]) == 0 || !sameBits(val[0], val[1]) {
		t.Fatal("validation on the device path differs from the CPU's")
	}
}

// A device run interrupted and resumed from its checkpoint ends where the uninterrupted CPU run
// does: snapshots read the device's parameters and optimizer state, and restores write them.
func TestDeviceRunResumesLikeTheCPU(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Train.Epochs = 20 // room for the cancellation to land before the end (see TestInterruptAndResumeMatchUninterrupted)
	full := mustRun(t, context.Background(), job, Options{})

	job.Train.Device = testDevice
	job.Checkpoint.Dir = t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := mustRun(t, ctx, job, Options{OnStep: func(s *StepDone) {
		if s.Step == 31 {
			cancel()
		}
	}})
	if !first.Interrupted {
		t.Fatal("the run was not interrupted")
	}
	job.Checkpoint.Resume = true
	second := mustRun(t, context.Background(), job, Options{})
	if second.StartStep != first.Steps || !sameBits(second.Losses, full.Losses[second.StartStep:]) {
		t.Fatalf("resumed at %d (interrupted at %d); losses follow the CPU run: %v", second.StartStep, first.Steps,
			sameBits(second.Losses, full.Losses[second.StartStep:]))
	}
	if second.ParamsSHA256 != full.ParamsSHA256 {
		t.Fatal("the resumed device run ends with other parameters than the CPU run")
	}
}

// Devices mix in one world: a rank on the device path and a rank on the CPU agree on every
// step and end with the same parameters.
func TestDeviceAndCPURanksShareAWorld(t *testing.T) {
	defer goleak.VerifyNone(t)
	job := smallJob(t)
	job.Model = compute.MLP(784, []int{32}, 10) // no dropout: each rank would draw its own masks
	job.Checkpoint.Dir = ""
	job.Train.Epochs = 1
	dev := job
	dev.Train.Device = testDevice
	res := runWorldOf(t, []Job{job, dev}, Options{})
	if res[0].ParamsSHA256 != res[1].ParamsSHA256 || !sameBits(res[0].Losses, res[1].Losses) {
		t.Fatal("a CPU rank and a device rank disagree")
	}
}

func TestDeviceJobsAreRefusedClearly(t *testing.T) {
	job := smallJob(t)
	job.Train.Device = "cuda:0"
	err := job.Validate()
	if !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), "-tags cuda") {
		t.Fatalf("a GPU in a binary without CUDA: %v", err)
	}
	job = smallJob(t)
	job.Train.Device = testDevice
	job.Prune = &prune.Config{Target: 0.5, EndStep: 10}
	if err := job.Validate(); !errors.Is(err, ErrBadJob) || !strings.Contains(err.Error(), "prune runs on the CPU backend only") {
		t.Fatalf("pruning on a device: %v", err)
	}
}
