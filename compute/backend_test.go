package compute_test

import (
	"errors"
	"testing"

	"github.com/troupe-ml/troupe/compute"
	"github.com/troupe-ml/troupe/compute/backendtest"
	"github.com/troupe-ml/troupe/compute/optim"
)

func TestCPUBackendConforms(t *testing.T) {
	backendtest.Run(t, "cpu", compute.OpenCPU)
}

func TestUnknownDeviceIsRefusedByName(t *testing.T) {
	spec := compute.MLP(4, []int{3}, 2)
	m, err := compute.NewModel(spec, 1)
	if err != nil {
		t.Fatal(err)
	}
	_, err = compute.OpenBackend("cuda:0", spec, m.Params(), optim.Config{Name: optim.SGD, LR: 0.1})
	if !errors.Is(err, compute.ErrUnknownDevice) {
		t.Fatalf("a device no backend serves: %v, want ErrUnknownDevice", err)
	}
	b, err := compute.OpenBackend("cpu", spec, m.Params(), optim.Config{Name: optim.SGD, LR: 0.1})
	if err != nil || b.Device() != "cpu" {
		t.Fatalf("cpu: %v, %v", b, err)
	}
}
