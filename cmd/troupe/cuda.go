//go:build cuda

package main

// The build with -tags cuda trains on GPUs: compute/cuda registers the cuda device. Such a
// binary needs libcuda.so.1 and a GPU at start-up (gorgonia.org/cu exits without one).
import _ "github.com/troupe-ml/troupe/compute/cuda"
