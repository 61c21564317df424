/* linear.h - fully connected layer in nn.Linear's layout: weight is [OC, C],
 *     out[N, OC] = inp[N, C] @ weight^T + bias
 * Both directions are GEMMs (gemm.h); the forward adds the bias inside the GEMM
 * (plm_sgemm_bias: no copy pass before it).
 * Also owns the deterministic column sums of the bias gradient, in two forms: a pass of
 * its own (colsum_accumulate) and the pieces that let the pass producing dout sum its
 * columns on the way (colsum_nchunks ... colsum_finish: fused bias gradients). */
#ifndef PLM_LINEAR_H
#define PLM_LINEAR_H

#include <stdbool.h>
#include <stddef.h>

/* bias may be NULL. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);

/* dinp = (or += when accumulate) dout @ weight; skipped when dinp is NULL.
 * dweight += dout^T @ inp;  dbias += column sums of dout (skipped when NULL). */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC, bool accumulate);

/* dbias += column sums of dout[N, OC], summed in chunks of rows fixed by N: the same
 * bits for any number of threads. */
void colsum_accumulate(float *dbias, const float *dout, int N, int OC);

/* The same sums, fused into the pass that writes dout. Such a pass cuts its N rows into
 * K = colsum_nchunks(N) chunks (colsum_chunk_rows: rows lo..hi-1 of chunk k), runs the
 * chunks under `omp for`, and adds each finished row of dout, in row order, into its
 * chunk's partial row colsum_partials(part, k, OC), zeroed first (part from
 * colsum_scratch). Then, in the same parallel region, colsum_finish adds the partials
 * in chunk order to dbias: the bits of colsum_accumulate on the same dout, for any
 * number of threads. */
int colsum_nchunks(int N);
static inline void colsum_chunk_rows(int N, int K, int k, int *lo, int *hi) {
    *lo = (int)((long)N * k / K);
    *hi = (int)((long)N * (k + 1) / K);
}
/* K x OC partial rows: the calling thread's scratch slot 0 (colsum_accumulate's). */
float *colsum_scratch(int K, int OC);
static inline float *colsum_partials(float *part, int k, int OC) { return part + (size_t)k * OC; }
/* Inside a parallel region, after the chunks' `omp for` (its barrier): an `omp for` over
 * column blocks that adds the partials to dbias. Every thread of the team must call it. */
void colsum_finish(float *dbias, const float *part, int K, int OC);

#endif
