/* gemm.h - the one matrix product every layer goes through, row-major:
 *     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * with op(X) = X or X^T. Backed by OpenBLAS (OpenMP build), chosen by measurement
 * (bench/README.md): on the skinny shapes of small models (K or N = 128..512, M = 4096
 * tokens) it runs 2-9x faster than oneDNN's dnnl_sgemm and ahead of BLIS. Called
 * inside an OpenMP parallel region it runs single-threaded, which attention uses per
 * (batch, head). Build with -DPLM_USE_DNNL to use oneDNN's sgemm instead. */
#ifndef PLM_GEMM_H
#define PLM_GEMM_H

#include <stdbool.h>

void plm_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

#endif
