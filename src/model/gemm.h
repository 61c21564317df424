/* gemm.h - the one matrix product every layer goes through, row-major:
 *     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * with op(X) = X or X^T. Routed per layout to the library measured fastest for it
 * (gemm.c, bench/README.md): oneDNN's sgemm for most shapes, OpenBLAS (OpenMP build)
 * for the wide weight gradients of small models. Both thread with the same OpenMP
 * runtime; called inside an OpenMP parallel region the product runs on the calling
 * thread, which attention uses per (batch, head). */
#ifndef PLM_GEMM_H
#define PLM_GEMM_H

#include <stdbool.h>

void plm_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

#endif
