//go:build !purego

#include "textflag.h"

// The fused element-wise kernels' loops, eight columns at a time, over the
// first vcols columns (a multiple of 8) of rows rows of cols columns; the
// Go loops do the remaining columns. Each value comes out bit for bit as
// the Go loop computes it, NaNs and signed zeros included.

// func biasReluAVX2(c, bias *float32, rows, cols, vcols int)
// c[i][j] = max(c[i][j]+bias[j], 0): the sum is taken with c first (a NaN
// in both comes out as c's), VMAXPS returns the sum itself when it is a
// NaN or a zero, and clearing the sign bit then gives +0 for -0 and a NaN
// of positive sign, as Go's max does.
TEXT ·biasReluAVX2(SB), NOSPLIT, $0-40
	MOVQ c+0(FP), DI
	MOVQ bias+8(FP), SI
	MOVQ rows+16(FP), R8
	MOVQ cols+24(FP), R9
	MOVQ vcols+32(FP), R10
	SHLQ $2, R9
	SHLQ $2, R10
	VXORPS  Y15, Y15, Y15
	VPCMPEQD Y14, Y14, Y14
	VPSRLD  $1, Y14, Y14 // 0x7fffffff: all but the sign

row:
	TESTQ R8, R8
	JZ    done
	XORQ  AX, AX

col:
	CMPQ    AX, R10
	JGE     nextrow
	VMOVUPS (DI)(AX*1), Y0
	VADDPS  (SI)(AX*1), Y0, Y0
	VMAXPS  Y0, Y15, Y0
	VANDPS  Y14, Y0, Y0
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	JMP     col

nextrow:
	ADDQ R9, DI
	DECQ R8
	JMP  row

done:
	VZEROUPPER
	RET

// func reluBiasGradAVX2(dz, db, dy, y *float32, rows, cols, vcols int)
// dz[i][j] = dy[i][j] where y[i][j] > 0, else +0 (the bits of dy under an
// all-ones or all-zeros mask: y > 0 is false for NaNs and zeros, true for
// +Inf and subnormals); db[j] += dz[i][j], row by row, db first.
TEXT ·reluBiasGradAVX2(SB), NOSPLIT, $0-56
	MOVQ dz+0(FP), DI
	MOVQ db+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ y+24(FP), R11
	MOVQ rows+32(FP), R8
	MOVQ cols+40(FP), R9
	MOVQ vcols+48(FP), R10
	SHLQ $2, R9
	SHLQ $2, R10
	VXORPS Y15, Y15, Y15

grow:
	TESTQ R8, R8
	JZ    gdone
	XORQ  AX, AX

gcol:
	CMPQ    AX, R10
	JGE     gnextrow
	VMOVUPS (R11)(AX*1), Y1
	VCMPPS  $0x1e, Y15, Y1, Y2 // y > 0, ordered, quiet
	VANDPS  (DX)(AX*1), Y2, Y0
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS (SI)(AX*1), Y3
	VADDPS  Y0, Y3, Y3
	VMOVUPS Y3, (SI)(AX*1)
	ADDQ    $32, AX
	JMP     gcol

gnextrow:
	ADDQ R9, DI
	ADDQ R9, DX
	ADDQ R9, R11
	DECQ R8
	JMP  grow

gdone:
	VZEROUPPER
	RET
