/* gemm.h - the one matrix product every layer goes through, row-major:
 *     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * with op(X) = X or X^T. Routed per layout to the library measured fastest for it
 * (gemm.c, bench/README.md): oneDNN's sgemm for most shapes, OpenBLAS (OpenMP build)
 * for the wide weight gradients of small models. Both thread with the same OpenMP
 * runtime; called inside an OpenMP parallel region the product runs on the calling
 * thread, which attention uses per (batch, head).
 *
 * bf16 mixed precision (plm_gemm_set_bf16): the products outside parallel regions (the
 * linear layers and heads) round A and B to bf16 and run oneDNN's matmul primitive with
 * an f32 destination (fp32 accumulation); master weights, gradients and everything
 * else stay fp32. Attention's per-head products stay fp32. Owns the primitive cache
 * (keyed by shape, transposes, strides, alpha and beta) and the bf16 copies. */
#ifndef PLM_GEMM_H
#define PLM_GEMM_H

#include <stdbool.h>

void plm_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

/* The CPU's bf16 capability as oneDNN sees it at run time: "avx512_core_amx" (AMX-BF16),
 * "avx512_core_bf16" (AVX512_BF16), or NULL when oneDNN has no bf16 matmul here
 * (checked by creating one). */
const char *plm_bf16_isa(void);
/* Turns bf16 GEMMs on or off for this process. Returns true if they are on: asking
 * on a CPU without bf16 prints one line on stderr and keeps fp32. */
bool plm_gemm_set_bf16(bool on);
bool plm_gemm_bf16(void);

/* x rounded to the nearest bf16 (ties to even), back as a float: what the bf16 GEMM
 * inputs hold (tests use it for their reference). */
float plm_round_bf16(float x);

#endif
