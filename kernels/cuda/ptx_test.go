package cuda

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// The module declares exactly the kernels the loader asks for.
func TestPTXDeclaresEveryKernel(t *testing.T) {
	var entries []string
	for _, m := range regexp.MustCompile(`(?m)^\.visible \.entry (\w+)\(`).FindAllStringSubmatch(ptx, -1) {
		entries = append(entries, m[1])
	}
	slices.Sort(entries)
	want := slices.Sorted(slices.Values(Kernels))
	if !slices.Equal(entries, want) {
		t.Fatalf("the PTX declares %v, the loader wants %v", entries, want)
	}
	if p := PTX(); p[len(p)-1] != 0 {
		t.Fatal("PTX() is not NUL-terminated")
	}
}

// The checked-in PTX is what troupe.cu compiles to: regenerated with ptx.go's go:generate
// command, it comes out byte for byte the same. It needs nvcc; CI installs it and sets
// TROUPE_REQUIRE_NVCC=1 so that this test cannot skip there.
func TestPTXIsUpToDate(t *testing.T) {
	nvcc, err := exec.LookPath("nvcc")
	if err != nil {
		if os.Getenv("TROUPE_REQUIRE_NVCC") == "1" {
			t.Fatal("nvcc not found (install Debian's nvidia-cuda-toolkit: .ci/install-cuda)")
		}
		t.Skip("nvcc not found")
	}
	src, err := os.ReadFile("ptx.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^//go:generate nvcc (.*) -o troupe\.ptx troupe\.cu$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("ptx.go has no go:generate line of the form nvcc FLAGS -o troupe.ptx troupe.cu")
	}
	out := filepath.Join(t.TempDir(), "troupe.ptx")
	args := append(strings.Fields(string(m[1])), "-o", out, "troupe.cu")
	cmd := exec.Command(nvcc, args...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nvcc: %v\n%s", err, msg)
	}
	fresh, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(fresh, []byte(ptx)) {
		t.Fatal("troupe.ptx is stale: run go generate ./kernels/cuda and commit it")
	}
}
