#include "textflag.h"

// func adamAVX2(params, grads, m, v *float32, n int, gradScale float32, writeBack bool, c *adamCoeffs)
//
// adamUpdate's loop, eight values at a time and n a multiple of 8, with the
// operations of the Go loop in its order and no fused multiply-add, so each
// value comes out bit for bit as the Go loop computes it. c points at an
// adamCoeffs: beta1 0, oneMinusBeta1 4, beta2 8, oneMinusBeta2 12,
// stepSize 16, invSqrtCorrection2 20, epsilon 24, decay 28, l2 32
// (TestAdamCoeffsLayout checks these offsets).
TEXT ·adamAVX2(SB), NOSPLIT, $0-56
	MOVQ params+0(FP), DI
	MOVQ grads+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), CX
	MOVQ c+48(FP), AX
	VBROADCASTSS gradScale+40(FP), Y6
	VBROADCASTSS 0(AX), Y7   // beta1
	VBROADCASTSS 4(AX), Y8   // 1-beta1
	VBROADCASTSS 8(AX), Y9   // beta2
	VBROADCASTSS 12(AX), Y10 // 1-beta2
	VBROADCASTSS 16(AX), Y11 // stepSize
	VBROADCASTSS 20(AX), Y12 // 1/sqrt(1-beta2^t)
	VBROADCASTSS 24(AX), Y13 // epsilon
	VBROADCASTSS 28(AX), Y14 // decay
	VBROADCASTSS 32(AX), Y15 // l2
	MOVBLZX writeBack+44(FP), DX

loop:
	CMPQ    CX, $8
	JLT     done
	VMULPS  (SI), Y6, Y0     // g = gradScale*grad
	TESTL   DX, DX
	JZ      kept
	VMOVUPS Y0, (SI)         // the clipped gradient, written back

kept:
	VMOVUPS (DI), Y1         // p
	VMULPS  Y1, Y15, Y2
	VADDPS  Y2, Y0, Y0       // g += l2*p
	VMULPS  (R8), Y7, Y3
	VMULPS  Y0, Y8, Y2
	VADDPS  Y2, Y3, Y3       // m = beta1*m + (1-beta1)*g
	VMOVUPS Y3, (R8)
	VMULPS  (R9), Y9, Y5
	VMULPS  Y0, Y10, Y2
	VMULPS  Y0, Y2, Y2
	VADDPS  Y2, Y5, Y5       // v = beta2*v + (1-beta2)*g*g
	VMOVUPS Y5, (R9)
	VSQRTPS Y5, Y2
	VMULPS  Y12, Y2, Y2
	VADDPS  Y13, Y2, Y2      // denom = sqrt(v)*inv2 + eps
	VMULPS  Y3, Y11, Y4
	VDIVPS  Y2, Y4, Y4       // stepSize*m / denom
	VMULPS  Y14, Y1, Y1
	VSUBPS  Y4, Y1, Y1       // p = p*decay - stepSize*m/denom
	VMOVUPS Y1, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	SUBQ    $8, CX
	JMP     loop

done:
	VZEROUPPER
	RET
