//go:build !purego

package kernels

import (
	"math"

	"golang.org/x/sys/cpu"
)

// The vector code of Exp, GELU and GELUGrad (transformer_amd64.s) computes what expf and
// geluSigmoid do, step for step, 16 values to a zmm register or 8 to a ymm one. It uses FMAs
// where expf reduces its argument and evaluates its polynomial, which rounds once where the
// Go code rounds twice; everything else (GELU's u, the division, the derivative's products)
// is the same operations in the same order, so the results are those of the Go code or next
// to them (transformer_test.go bounds how far).

func init() {
	switch {
	case cpu.X86.HasAVX512F:
		elemLevelMax = elemAVX512
	case cpu.X86.HasAVX2 && cpu.X86.HasFMA:
		elemLevelMax = elemAVX2
	}
	elemLevel = elemLevelMax
}

// elemConsts are the assembly's constants, each repeated over 32 bytes so that the AVX2 code
// can take them as memory operands (the AVX-512 code broadcasts them into registers). They
// are made here, by the conversions to float32 that the Go code's expressions make, so that
// both use the same values; the row numbers are the assembly's offsets / 32.
var elemConsts = func() (t [21][8]uint32) {
	f := [...]float32{
		log2e, 0.5, 1, ln2Hi, ln2Lo,
		1.0 / 40320, 1.0 / 5040, 1.0 / 720, 1.0 / 120, 1.0 / 24, 1.0 / 6,
		expMin, expMax, float32(math.Inf(1)), 0, // row 14 is the integer 127, set below
		0.044715, geluC, -40, 40, -2, 3 * 0.044715,
	}
	for i, v := range f {
		for j := range t[i] {
			t[i][j] = math.Float32bits(v)
		}
	}
	for j := range t[14] {
		t[14][j] = 127
	}
	return t
}()

//go:noescape
func expAVX512(dst, src *float32, n int, k *[21][8]uint32)

//go:noescape
func expAVX2(dst, src *float32, n int, k *[21][8]uint32)

//go:noescape
func geluAVX512(y, x *float32, n int, k *[21][8]uint32)

//go:noescape
func geluAVX2(y, x *float32, n int, k *[21][8]uint32)

//go:noescape
func geluGradAVX512(dx, dy, x *float32, n int, k *[21][8]uint32)

//go:noescape
func geluGradAVX2(dx, dy, x *float32, n int, k *[21][8]uint32)

// expVector runs Exp's vector code of level over the longest prefix it can and returns that
// prefix's length.
func expVector(level int, dst, src []float32) int {
	w := elemWidth(level)
	if w == 0 || len(src) < w {
		return 0
	}
	n := len(src) &^ (w - 1)
	if w == 16 {
		expAVX512(&dst[0], &src[0], n, &elemConsts)
	} else {
		expAVX2(&dst[0], &src[0], n, &elemConsts)
	}
	return n
}

func geluVector(level int, y, x []float32) int {
	w := elemWidth(level)
	if w == 0 || len(x) < w {
		return 0
	}
	n := len(x) &^ (w - 1)
	if w == 16 {
		geluAVX512(&y[0], &x[0], n, &elemConsts)
	} else {
		geluAVX2(&y[0], &x[0], n, &elemConsts)
	}
	return n
}

func geluGradVector(level int, dx, dy, x []float32) int {
	w := elemWidth(level)
	if w == 0 || len(x) < w {
		return 0
	}
	n := len(x) &^ (w - 1)
	if w == 16 {
		geluGradAVX512(&dx[0], &dy[0], &x[0], n, &elemConsts)
	} else {
		geluGradAVX2(&dx[0], &dy[0], &x[0], n, &elemConsts)
	}
	return n
}
