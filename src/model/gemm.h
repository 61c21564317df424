/* gemm.h - the one matrix product every layer goes through, row-major:
 *     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * with op(X) = X or X^T. Backed by oneDNN's sgemm, chosen by measurement
 * (bench/README.md): it keeps 190-215 GFLOP/s on 2 cores for the NT and TN layouts
 * of linear layers, where OpenBLAS drops to 145-170. Called inside an OpenMP
 * parallel region it runs single-threaded, which attention uses per (batch, head). */
#ifndef PLM_GEMM_H
#define PLM_GEMM_H

#include <stdbool.h>

void plm_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

#endif
