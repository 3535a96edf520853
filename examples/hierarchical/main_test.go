package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The example as a user runs it: 3 hosts of 2 processes (6 processes on loopback), an odd
// vector length; every process must end with the exact sum, hierarchically and flat.
func TestHierarchicalSum(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 6 processes")
	}
	bin := filepath.Join(t.TempDir(), "hierarchical")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "--hosts", "3", "--per-host", "2", "--floats", "100003", "--rounds", "3").CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(string(out), "every process holds the exact sum (1800054 values checked)") {
		t.Fatalf("output:\n%s", out)
	}
	t.Logf("%s", out)
}

// check holds a result to the exact sum, and catches a value off by one.
func TestCheck(t *testing.T) {
	const n, size = 4, 50
	sum := make([]float32, size)
	part := make([]float32, size)
	for me := range n {
		fill(part, me)
		for j, v := range part {
			sum[j] += v
		}
	}
	if _, err := check(sum, n); err != nil {
		t.Fatal(err)
	}
	sum[17]++
	if _, err := check(sum, n); err == nil {
		t.Fatal("a wrong value passed")
	}
}
