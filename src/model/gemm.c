/* gemm.c - see gemm.h */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/profile.h"

/* Measured on this 2-core machine (bench/README.md, "Linear-layer GEMMs"): oneDNN's
 * sgemm is the fastest for Y = X W^T (NT), dX = dY W (NN) and for the per-head
 * attention products inside an OpenMP loop; its weight-gradient product
 * dW = dY^T X (TN) drops to 64-100 GFLOP/s when the output is wide and the input
 * narrow (ffn-up, LM head of small models), where OpenBLAS keeps 100-150. */
static int gemm_choice = -1; /* PLM_GEMM=openblas|dnnl|auto (default), for benchmarking */

static bool use_openblas(bool trans_a, bool trans_b, int M, int N) {
    if (gemm_choice < 0) {
        const char *e = getenv("PLM_GEMM");
        gemm_choice = e && strcmp(e, "openblas") == 0 ? 1 : e && strcmp(e, "dnnl") == 0 ? 2 : 0;
    }
    if (gemm_choice) return gemm_choice == 1;
    return trans_a && !trans_b && N <= 256 && M >= 512 && !omp_in_parallel();
}

void plm_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    /* profile slots per route: [library][trans_a][trans_b] */
    static const char *const route[2][2][2] = {
        {{"gemm NN (oneDNN)", "gemm NT (oneDNN)"}, {"gemm TN (oneDNN)", "gemm TT (oneDNN)"}},
        {{"gemm NN (OpenBLAS)", "gemm NT (OpenBLAS)"}, {"gemm TN (OpenBLAS)", "gemm TT (OpenBLAS)"}}};
    double prof_t0 = plm_prof_begin();
    bool blas = use_openblas(trans_a, trans_b, M, N);
    if (blas) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                    alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        dnnl_status_t st =
            dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        if (st != dnnl_success) plm_die("dnnl_sgemm failed (status %d) for M=%d N=%d K=%d", (int)st, M, N, K);
    }
    plm_prof_end(route[blas][trans_a][trans_b], prof_t0);
}
