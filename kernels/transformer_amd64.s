//go:build !purego

#include "textflag.h"

// Exp, GELU and GELUGrad over n values (a multiple of 16, or of 8 for AVX2), as expf and
// geluSigmoid compute them (see transformer_amd64.go). k points at elemConsts, one constant
// per 32 bytes:
//
//	0 log2e, 1 1/2, 2 1, 3 ln2Hi, 4 ln2Lo, 5-10 1/8! ... 1/3!, 11 expMin, 12 expMax,
//	13 +Inf, 14 the integer 127, 15 0.044715, 16 √(2/π), 17 -40, 18 40, 19 -2, 20 3·0.044715.
//
// The exponential, in both widths:
//   - n = floor(x·log2e + 1/2): rounded to nearest even, then one up where that went down
//     from a tie (t - n, exact, is 1/2), as expf's floor does;
//   - r = x - n·ln2Hi - n·ln2Lo with two FMAs (n·ln2Hi is exact; the second rounds once);
//   - p = 1 + r(1 + r(1/2 + ... r/8!)) by Horner's rule, an FMA a step;
//   - p·2^n with 2^n made from n's bits: (n + 127) << 23; for n = 128, out of the exponent's
//     range, p is doubled and 2^127 used, as expf does.
// Exp then puts 0 below expMin (and for NaNs), +Inf above expMax, and the NaNs back.
// GELU's argument -2u is within ±80, so its exponential needs none of that: n stays within
// ±116, and NaNs go through the arithmetic as NaNs.

// AVX-512: the exponential's constants live in Z20-Z31, GELU's in Z14-Z19, Exp's limits in
// Z17-Z19.
#define LOADEXP512 \
	VBROADCASTSS 0(R8), Z31 \
	VBROADCASTSS 32(R8), Z30 \
	VBROADCASTSS 64(R8), Z29 \
	VBROADCASTSS 96(R8), Z28 \
	VBROADCASTSS 128(R8), Z27 \
	VBROADCASTSS 160(R8), Z26 \
	VBROADCASTSS 192(R8), Z25 \
	VBROADCASTSS 224(R8), Z24 \
	VBROADCASTSS 256(R8), Z23 \
	VBROADCASTSS 288(R8), Z22 \
	VBROADCASTSS 320(R8), Z21 \
	VPBROADCASTD 448(R8), Z20

#define LOADGELU512 \
	VBROADCASTSS 480(R8), Z19 \
	VBROADCASTSS 512(R8), Z18 \
	VBROADCASTSS 544(R8), Z17 \
	VBROADCASTSS 576(R8), Z16 \
	VBROADCASTSS 608(R8), Z15 \
	VBROADCASTSS 640(R8), Z14

// EXPPOLY512 leaves n in n and e^r in p, using r, t and the mask k.
#define EXPPOLY512(x, n, r, p, t, k) \
	VMULPS       Z31, x, t \
	VRNDSCALEPS  $0, t, n \
	VSUBPS       n, t, t \
	VCMPPS       $0x00, Z30, t, k \
	VADDPS       Z29, n, k, n \
	VMOVAPS      x, r \
	VFNMADD231PS Z28, n, r \
	VFNMADD231PS Z27, n, r \
	VMOVAPS      Z26, p \
	VFMADD213PS  Z25, r, p \
	VFMADD213PS  Z24, r, p \
	VFMADD213PS  Z23, r, p \
	VFMADD213PS  Z22, r, p \
	VFMADD213PS  Z21, r, p \
	VFMADD213PS  Z30, r, p \
	VFMADD213PS  Z29, r, p \
	VFMADD213PS  Z29, r, p

// EXPSCALE512 sets p = p·2^n for n within ±126, using i.
#define EXPSCALE512(n, p, i) \
	VCVTPS2DQ n, i \
	VPADDD    Z20, i, i \
	VPSLLD    $23, i, i \
	VMULPS    i, p, p

// GELU512 leaves e = exp(-2u) in e and s = 1/(1 + e) in s, using u, n and r. u is computed
// product by product as geluSigmoid writes it; VMAXPS and VMINPS return their second source
// (u, the first operand here) when either is a NaN, as Go's max and min return the NaN.
#define GELU512(x, u, n, r, e, s) \
	VMULPS Z19, x, u \
	VMULPS x, u, u \
	VMULPS x, u, u \
	VADDPS u, x, u \
	VMULPS Z18, u, u \
	VMAXPS u, Z17, u \
	VMINPS u, Z16, u \
	VMULPS Z15, u, u \
	EXPPOLY512(u, n, r, e, s, K1) \
	EXPSCALE512(n, e, r) \
	VADDPS Z29, e, s \
	VDIVPS s, Z29, s

// EXP512 sets p = e^x, using n, r, t and i and the masks k, l.
#define EXP512(x, n, r, p, t, i, k, l) \
	EXPPOLY512(x, n, r, p, t, k) \
	VCVTPS2DQ n, i \
	VPCMPGTD  Z20, i, l \
	VADDPS    p, p, l, p \
	VPMINSD   Z20, i, i \
	VPADDD    Z20, i, i \
	VPSLLD    $23, i, i \
	VMULPS    i, p, p \
	VCMPPS    $0x1d, Z19, x, k \
	VMOVAPS.Z p, k, p \
	VCMPPS    $0x1e, Z18, x, l \
	VMOVAPS   Z17, l, p \
	VCMPPS    $0x03, x, x, k \
	VMOVAPS   x, k, p

// func expAVX512(dst, src *float32, n int, k *[21][8]uint32)
TEXT ·expAVX512(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ k+24(FP), R8
	LOADEXP512
	VBROADCASTSS 352(R8), Z19 // expMin
	VBROADCASTSS 384(R8), Z18 // expMax
	VBROADCASTSS 416(R8), Z17 // +Inf
	SHRQ         $4, CX
	JZ           edone512

eloop512:
	VMOVUPS (SI), Z0
	EXP512(Z0, Z1, Z2, Z3, Z4, Z5, K1, K2)
	VMOVUPS Z3, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     eloop512

edone512:
	VZEROUPPER
	RET

// func geluAVX512(y, x *float32, n int, k *[21][8]uint32)
TEXT ·geluAVX512(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ k+24(FP), R8
	LOADEXP512
	LOADGELU512
	SHRQ $4, CX
	JZ   gdone512

gloop512:
	VMOVUPS (SI), Z0
	GELU512(Z0, Z1, Z2, Z3, Z4, Z5)
	VMULPS  Z5, Z0, Z5
	VMOVUPS Z5, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     gloop512

gdone512:
	VZEROUPPER
	RET

// func geluGradAVX512(dx, dy, x *float32, n int, k *[21][8]uint32)
// dx = dy·(s + ((((2x)·s)·(s·e))·√(2/π))·(1 + (3·0.044715·x)·x)), in geluGradGo's order.
TEXT ·geluGradAVX512(SB), NOSPLIT, $0-40
	MOVQ dx+0(FP), DI
	MOVQ dy+8(FP), DX
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ k+32(FP), R8
	LOADEXP512
	LOADGELU512
	SHRQ $4, CX
	JZ   ddone512

dloop512:
	VMOVUPS (SI), Z0
	GELU512(Z0, Z1, Z2, Z3, Z4, Z5)
	VMULPS  Z5, Z4, Z4   // s·e
	VADDPS  Z0, Z0, Z1   // 2x
	VMULPS  Z5, Z1, Z1
	VMULPS  Z4, Z1, Z1
	VMULPS  Z18, Z1, Z1
	VMULPS  Z14, Z0, Z2  // 3·0.044715·x
	VMULPS  Z0, Z2, Z2
	VADDPS  Z29, Z2, Z2
	VMULPS  Z2, Z1, Z1
	VADDPS  Z1, Z5, Z1
	VMULPS  (DX), Z1, Z1
	VMOVUPS Z1, (DI)
	ADDQ    $64, SI
	ADDQ    $64, DX
	ADDQ    $64, DI
	DECQ    CX
	JNZ     dloop512

ddone512:
	VZEROUPPER
	RET

// AVX2: log2e, 1/2, 1, ln2Hi, ln2Lo and 127 live in Y10-Y15, the rest are memory operands
// (and -40 and 40 are in Y8 and Y9 for GELU: VMAXPS takes only its second source from
// memory, and that must be u for the NaNs).
#define LOADEXP256 \
	VBROADCASTSS 0(R8), Y15 \
	VBROADCASTSS 32(R8), Y14 \
	VBROADCASTSS 64(R8), Y13 \
	VBROADCASTSS 96(R8), Y12 \
	VBROADCASTSS 128(R8), Y11 \
	VMOVUPS      448(R8), Y10

#define EXPPOLY256(x, n, r, p, t) \
	VMULPS       Y15, x, t \
	VROUNDPS     $0, t, n \
	VSUBPS       n, t, t \
	VCMPPS       $0x00, Y14, t, t \
	VANDPS       Y13, t, t \
	VADDPS       t, n, n \
	VMOVAPS      x, r \
	VFNMADD231PS Y12, n, r \
	VFNMADD231PS Y11, n, r \
	VMOVUPS      160(R8), p \
	VFMADD213PS  192(R8), r, p \
	VFMADD213PS  224(R8), r, p \
	VFMADD213PS  256(R8), r, p \
	VFMADD213PS  288(R8), r, p \
	VFMADD213PS  320(R8), r, p \
	VFMADD213PS  Y14, r, p \
	VFMADD213PS  Y13, r, p \
	VFMADD213PS  Y13, r, p

#define EXPSCALE256(n, p, i) \
	VCVTPS2DQ n, i \
	VPADDD    Y10, i, i \
	VPSLLD    $23, i, i \
	VMULPS    i, p, p

#define GELU256(x, u, n, r, e, s) \
	VMULPS 480(R8), x, u \
	VMULPS x, u, u \
	VMULPS x, u, u \
	VADDPS u, x, u \
	VMULPS 512(R8), u, u \
	VMAXPS u, Y8, u \
	VMINPS u, Y9, u \
	VMULPS 608(R8), u, u \
	EXPPOLY256(u, n, r, e, s) \
	EXPSCALE256(n, e, r) \
	VADDPS Y13, e, s \
	VDIVPS s, Y13, s

// func expAVX2(dst, src *float32, n int, k *[21][8]uint32)
TEXT ·expAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ k+24(FP), R8
	LOADEXP256
	SHRQ $3, CX
	JZ   edone256

eloop256:
	VMOVUPS (SI), Y0
	EXPPOLY256(Y0, Y1, Y2, Y3, Y4)
	VCVTPS2DQ Y1, Y5
	VPCMPGTD  Y10, Y5, Y4 // n = 128
	VANDPS    Y3, Y4, Y4
	VADDPS    Y4, Y3, Y3
	VPMINSD   Y10, Y5, Y5
	VPADDD    Y10, Y5, Y5
	VPSLLD    $23, Y5, Y5
	VMULPS    Y5, Y3, Y3
	VCMPPS    $0x1d, 352(R8), Y0, Y4 // x >= expMin, false for NaNs
	VANDPS    Y4, Y3, Y3
	VCMPPS    $0x1e, 384(R8), Y0, Y4 // x > expMax
	VBLENDVPS Y4, 416(R8), Y3, Y3
	VCMPPS    $0x03, Y0, Y0, Y4      // NaN
	VBLENDVPS Y4, Y0, Y3, Y3
	VMOVUPS   Y3, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       eloop256

edone256:
	VZEROUPPER
	RET

// func geluAVX2(y, x *float32, n int, k *[21][8]uint32)
TEXT ·geluAVX2(SB), NOSPLIT, $0-32
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	MOVQ k+24(FP), R8
	LOADEXP256
	VBROADCASTSS 544(R8), Y8
	VBROADCASTSS 576(R8), Y9
	SHRQ         $3, CX
	JZ           gdone256

gloop256:
	VMOVUPS (SI), Y0
	GELU256(Y0, Y1, Y2, Y3, Y4, Y5)
	VMULPS  Y5, Y0, Y5
	VMOVUPS Y5, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     gloop256

gdone256:
	VZEROUPPER
	RET

// func geluGradAVX2(dx, dy, x *float32, n int, k *[21][8]uint32)
TEXT ·geluGradAVX2(SB), NOSPLIT, $0-40
	MOVQ dx+0(FP), DI
	MOVQ dy+8(FP), DX
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	MOVQ k+32(FP), R8
	LOADEXP256
	VBROADCASTSS 544(R8), Y8
	VBROADCASTSS 576(R8), Y9
	SHRQ         $3, CX
	JZ           ddone256

dloop256:
	VMOVUPS (SI), Y0
	GELU256(Y0, Y1, Y2, Y3, Y4, Y5)
	VMULPS  Y5, Y4, Y4   // s·e
	VADDPS  Y0, Y0, Y1   // 2x
	VMULPS  Y5, Y1, Y1
	VMULPS  Y4, Y1, Y1
	VMULPS  512(R8), Y1, Y1
	VMULPS  640(R8), Y0, Y2 // 3·0.044715·x
	VMULPS  Y0, Y2, Y2
	VADDPS  Y13, Y2, Y2
	VMULPS  Y2, Y1, Y1
	VADDPS  Y1, Y5, Y1
	VMULPS  (DX), Y1, Y1
	VMOVUPS Y1, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     dloop256

ddone256:
	VZEROUPPER
	RET
