package compute

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/troupe-ml/troupe/compute/optim"
)

// Backend is a model replica and its optimizer on one device: what a Worker drives to train.
// Parameters, gradients and optimizer state live where the device keeps them (host memory for
// the CPU, device memory for a GPU); the host sees them only through the copies below, which a
// data-parallel step needs anyway: the gradient crosses to the host for the all-reduce, and the
// averaged gradient comes back for the update.
//
// A Backend is not safe for concurrent use. Errors are the device's: a malformed batch or a
// buffer of the wrong length returns an error wrapping ErrBadBatch (CPU Model methods panic
// instead, their callers having checked already).
type Backend interface {
	// Device names where the replica lives: "cpu", "cuda:0".
	Device() string
	// NumParams is the length of the flat parameter and gradient vectors.
	NumParams() int
	// TrainBatch runs forward and backward over b, as Model.TrainBatch does, and copies the
	// gradient of the loss into grads (NumParams values).
	TrainBatch(b Batch, lossScale float32, dropoutSeed uint64, grads []float32) (lossSum float64, correct int, err error)
	// Step applies one optimizer update with the (averaged) gradient grads and learning rate lr.
	Step(grads []float32, lr float64) error
	// ReadParams copies the parameters into dst (NumParams values).
	ReadParams(dst []float32) error
	// WriteParams replaces the parameters with src (NumParams values): a restore, or a
	// world's state transfer.
	WriteParams(src []float32) error
	// OptimizerState returns a host copy of the optimizer's state, owned by the caller.
	OptimizerState() (optim.State, error)
	// SetOptimizerState restores a state, as optim.Optimizer.SetState does.
	SetOptimizerState(optim.State) error
	// Close releases the device's memory. The Backend is unusable afterwards.
	Close() error
}

// HostGradients is implemented by a Backend whose gradient copies run fastest to and from host
// memory of its own: a GPU's page-locked memory, which it copies by DMA without the staging
// copy the driver makes for ordinary memory. A Worker then trains into GradientBuffer (NumParams
// values, valid until Close), hands it to the all-reduce and steps from it.
type HostGradients interface {
	GradientBuffer() []float32
}

// ErrUnsupported is wrapped by the errors of a device that cannot run a model or optimizer
// (a layer type it has no kernel for, say): the job is refused before it starts.
var ErrUnsupported = errors.New("compute: not supported on this device")

// ErrUnknownDevice is wrapped by OpenBackend's error for a device no backend in this binary
// serves: a GPU named in a binary built without the cuda tag.
var ErrUnknownDevice = errors.New("compute: unknown device")

// BackendOpener builds a Backend on device for a model of spec with the given initial
// parameters (NumParams values, copied) and optimizer.
type BackendOpener func(device string, spec ModelSpec, params []float32, opt optim.Config) (Backend, error)

var (
	openersMu sync.Mutex
	openers   = map[string]BackendOpener{"cpu": OpenCPU}
)

// RegisterDevice makes OpenBackend serve devices named kind or kind:N with open. A backend
// package that needs a build tag (the CUDA one) registers itself from its init, so that the
// binaries built with the tag know the device and the others refuse it by name.
func RegisterDevice(kind string, open BackendOpener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[kind] = open
}

// Devices lists the device kinds this binary can open, sorted.
func Devices() []string {
	openersMu.Lock()
	defer openersMu.Unlock()
	var kinds []string
	for k := range openers {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	return kinds
}

// DeviceKind is the kind of a device name: "cuda" for "cuda:1", "cpu" for "cpu".
func DeviceKind(device string) string {
	kind, _, _ := strings.Cut(device, ":")
	return kind
}

// OpenBackend opens device ("cpu", "cuda", "cuda:1") for a model of spec with the initial
// parameters params and the optimizer opt.
func OpenBackend(device string, spec ModelSpec, params []float32, opt optim.Config) (Backend, error) {
	openersMu.Lock()
	open, ok := openers[DeviceKind(device)]
	openersMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("%w %q: this binary knows %s (a GPU needs the build with -tags cuda)", ErrUnknownDevice, device, strings.Join(Devices(), ", "))
	}
	return open(device, spec, params, opt)
}

// cpuBackend is the CPU backend: a Model and an optimizer over host slices.
type cpuBackend struct {
	model *Model
	opt   optim.Optimizer
}

// OpenCPU is the CPU backend's opener. Its TrainBatch and Step are Model.TrainBatch and
// optim.Optimizer.Step, bit for bit.
func OpenCPU(device string, spec ModelSpec, params []float32, opt optim.Config) (Backend, error) {
	if device != "cpu" {
		return nil, fmt.Errorf("%w %q: the CPU backend is named cpu", ErrUnknownDevice, device)
	}
	m, err := NewModel(spec, 0)
	if err != nil {
		return nil, err
	}
	o, err := optim.New(opt, m.NumParams(), m.NoDecay()...)
	if err != nil {
		return nil, err
	}
	b := &cpuBackend{model: m, opt: o}
	if err := b.WriteParams(params); err != nil {
		return nil, err
	}
	return b, nil
}

// CheckVector returns an error wrapping ErrBadBatch unless v holds n values.
func CheckVector(what string, v []float32, n int) error {
	if len(v) != n {
		return fmt.Errorf("%w: %s holds %d values, the model has %d parameters", ErrBadBatch, what, len(v), n)
	}
	return nil
}

func (b *cpuBackend) Device() string { return "cpu" }
func (b *cpuBackend) NumParams() int { return b.model.NumParams() }
func (b *cpuBackend) Close() error   { return nil }

func (b *cpuBackend) TrainBatch(batch Batch, lossScale float32, dropoutSeed uint64, grads []float32) (float64, int, error) {
	if err := CheckVector("the gradient buffer", grads, b.NumParams()); err != nil {
		return 0, 0, err
	}
	if err := b.model.CheckBatch(batch); err != nil {
		return 0, 0, err
	}
	loss, correct := b.model.TrainBatch(batch, lossScale, dropoutSeed)
	copy(grads, b.model.grads)
	return loss, correct, nil
}

func (b *cpuBackend) Step(grads []float32, lr float64) error {
	if err := CheckVector("the gradient", grads, b.NumParams()); err != nil {
		return err
	}
	b.opt.Step(b.model.params, grads, lr)
	return nil
}

func (b *cpuBackend) ReadParams(dst []float32) error {
	if err := CheckVector("the parameter buffer", dst, b.NumParams()); err != nil {
		return err
	}
	copy(dst, b.model.params)
	return nil
}

func (b *cpuBackend) WriteParams(src []float32) error {
	if err := CheckVector("the parameters", src, b.NumParams()); err != nil {
		return err
	}
	copy(b.model.params, src)
	return nil
}

func (b *cpuBackend) OptimizerState() (optim.State, error) {
	st := b.opt.State()
	bufs := make([][]float32, len(st.Buffers))
	for i, buf := range st.Buffers {
		bufs[i] = slices.Clone(buf)
	}
	st.Buffers = bufs
	return st, nil
}

func (b *cpuBackend) SetOptimizerState(st optim.State) error { return b.opt.SetState(st) }
