package safetensors

import (
	"encoding/json"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
)

// python returns an interpreter with numpy: $TROUPE_PYTHON, else the system's python3. Without
// one the test is skipped, unless $TROUPE_REQUIRE_TORCH asks for the Python checks to run.
func python(t *testing.T) string {
	t.Helper()
	py := os.Getenv("TROUPE_PYTHON")
	if py == "" {
		py = "/usr/bin/python3"
	}
	if out, err := exec.Command(py, "-c", "import numpy").CombinedOutput(); err != nil {
		if os.Getenv("TROUPE_REQUIRE_TORCH") != "" {
			t.Fatalf("%s cannot import numpy: %v\n%s", py, err, out)
		}
		t.Skipf("no Python with numpy (%s: %v); set TROUPE_PYTHON, or TROUPE_REQUIRE_TORCH to make this fail", py, err)
	}
	return py
}

func runPython(t *testing.T, py string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(py, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %v: %v", py, args, err)
	}
	return out
}

type pyTensor struct {
	Name        string   `json:"name"`
	Shape       []int    `json:"shape"`
	DataOffsets []uint64 `json:"data_offsets"`
	Bits        []uint32 `json:"bits"`
}

func bitsOf(v []float32) []uint32 {
	out := make([]uint32, len(v))
	for i, f := range v {
		out[i] = math.Float32bits(f)
	}
	return out
}

// TestNumpyReadsEncodedFile has a reader written in Python from the format's description
// read what Encode wrote.
func TestNumpyReadsEncodedFile(t *testing.T) {
	py := python(t)
	meta := map[string]string{"format": "pt", "troupe.step": "12", "quote\"and\\slash": "ü"}
	raw, err := Encode(sampleTensors(), meta)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "w.safetensors")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	var got struct {
		HeaderLen      int               `json:"header_len"`
		JSONThenSpaces bool              `json:"json_then_spaces"`
		Tiles          bool              `json:"tiles"`
		Metadata       map[string]string `json:"metadata"`
		Tensors        []pyTensor        `json:"tensors"`
		Package        *string           `json:"safetensors_package"`
	}
	if err := json.Unmarshal(runPython(t, py, "testdata/read_safetensors.py", path), &got); err != nil {
		t.Fatal(err)
	}
	if got.HeaderLen%8 != 0 || !got.JSONThenSpaces || !got.Tiles {
		t.Errorf("header length %d, JSON then spaces %v, data tiles %v", got.HeaderLen, got.JSONThenSpaces, got.Tiles)
	}
	if len(got.Metadata) != len(meta) {
		t.Errorf("metadata %v, want %v", got.Metadata, meta)
	}
	for k, v := range meta {
		if got.Metadata[k] != v {
			t.Errorf("metadata %q = %q, want %q", k, got.Metadata[k], v)
		}
	}
	want := sampleTensors()
	if len(got.Tensors) != len(want) {
		t.Fatalf("Python found %d tensors, want %d", len(got.Tensors), len(want))
	}
	var at uint64
	for i, w := range want {
		g := got.Tensors[i]
		if g.Name != w.Name || !slices.Equal(g.Shape, w.Shape) || !slices.Equal(g.Bits, bitsOf(w.Data)) {
			t.Errorf("tensor %d: Python reads %q %v %x, want %q %v %x", i, g.Name, g.Shape, g.Bits, w.Name, w.Shape, bitsOf(w.Data))
		}
		if g.DataOffsets[0] != at {
			t.Errorf("tensor %q starts at %d, want %d: not laid out in the given order", w.Name, g.DataOffsets[0], at)
		}
		at = g.DataOffsets[1]
	}
	if got.Package != nil {
		t.Logf("the safetensors package %s read the file too", *got.Package)
	}
}

// TestDecodeReadsNumpyFile reads a file that Python wrote as the reference writer lays it out.
func TestDecodeReadsNumpyFile(t *testing.T) {
	py := python(t)
	dir := t.TempDir()
	path, expPath := filepath.Join(dir, "w.safetensors"), filepath.Join(dir, "expected.json")
	runPython(t, py, "testdata/write_safetensors.py", path, expPath)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	expRaw, err := os.ReadFile(expPath)
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Metadata map[string]string `json:"metadata"`
		Tensors  []pyTensor        `json:"tensors"`
	}
	if err := json.Unmarshal(expRaw, &exp); err != nil {
		t.Fatal(err)
	}
	got, meta, err := Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(meta) != len(exp.Metadata) || meta["format"] != "pt" || meta["written_by"] != "numpy" {
		t.Errorf("metadata %v, want %v", meta, exp.Metadata)
	}
	if len(got) != len(exp.Tensors) {
		t.Fatalf("%d tensors, want %d", len(got), len(exp.Tensors))
	}
	for i, w := range exp.Tensors {
		g := got[i]
		if g.Name != w.Name || !slices.Equal(g.Shape, w.Shape) || !slices.Equal(bitsOf(g.Data), w.Bits) {
			t.Errorf("tensor %d: %q %v %x, want %q %v %x", i, g.Name, g.Shape, bitsOf(g.Data), w.Name, w.Shape, w.Bits)
		}
	}
}
