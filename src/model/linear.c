/* linear.c - see linear.h */
#include "linear.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "gemm.h"
#include "core/profile.h"

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    /* under bf16 in a pass with backward: inp's bf16 copy, read here and by dW (gemm.h) */
    plm_gemm_bf16_keep(inp, (size_t)N * C);
    if (bias)
        plm_sgemm_bias(N, OC, C, inp, C, weight, C, bias, out, OC);
    else
        plm_sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, 0.0f, out, OC);
}

/* dbias[o] += sum_i dout[i, o]. The rows are cut into a number of chunks that depends
 * on N alone (at most 64, at least 32 rows each): each chunk sums its rows into its own
 * partial row, streaming contiguous memory, then the partials are added per column in
 * chunk order. No buffer depends on the team size (the partials are this thread's grow-only scratch), and
 * the result has the same bits for any number of threads. */
#define RED_CHUNKS    64
#define RED_MIN_ROWS  32
#define RED_COL_BLOCK 256

int colsum_nchunks(int N) {
    int K = (N + RED_MIN_ROWS - 1) / RED_MIN_ROWS;
    return K < RED_CHUNKS ? K : RED_CHUNKS;
}

float *colsum_scratch(int K, int OC) { return plm_thread_scratch(0, (size_t)K * OC); }

void colsum_finish(float *dbias, const float *part, int K, int OC) {
    int nblk = (OC + RED_COL_BLOCK - 1) / RED_COL_BLOCK;
#pragma omp for schedule(static)
    for (int b = 0; b < nblk; b++) {
        int c0 = b * RED_COL_BLOCK, w = OC - c0 < RED_COL_BLOCK ? OC - c0 : RED_COL_BLOCK;
        float acc[RED_COL_BLOCK];
        memcpy(acc, part + c0, (size_t)w * sizeof(float));
        for (int k = 1; k < K; k++) {
            const float *p = part + (size_t)k * OC + c0;
            for (int c = 0; c < w; c++) acc[c] += p[c];
        }
        for (int c = 0; c < w; c++) dbias[c0 + c] += acc[c];
    }
}

void colsum_accumulate(float *dbias, const float *dout, int N, int OC) {
    double prof_t0 = plm_prof_begin();
    if (N <= 0) return;
    int K = colsum_nchunks(N);
    float *part = colsum_scratch(K, OC);
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) {
            float *p = colsum_partials(part, k, OC);
            memset(p, 0, (size_t)OC * sizeof(float));
            int lo, hi;
            colsum_chunk_rows(N, K, k, &lo, &hi);
            for (int i = lo; i < hi; i++) {
                const float *d = dout + (size_t)i * OC;
                for (int o = 0; o < OC; o++) p[o] += d[o];
            }
        }
        colsum_finish(dbias, part, K, OC);
    }
    plm_prof_end("bias grad (column sums)", prof_t0);
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC, bool accumulate) {
    /* Under bf16 both products read dout: round it once for both (gemm.h hold). The
     * weight's copy comes from AdamW (model.h params16), inp's from linear_forward when
     * this pass has a backward (gemm.h keeps), so a step after the first rounds no GEMM
     * operand twice. Cost of the keeps: 7 N C bf16 per layer (ln1, attention output,
     * ln2: N C each; GELU output 4 N C), 59 MB on bench's small config (4 layers, C 256,
     * N 4096); its peak RSS went from 663 to 708 MB (mlm) and 713 to 759 MB (clm), +7%,
     * tiny +8 MB (328 to 336). Saved: one rounding pass over every linear input, 7 of
     * the 23 N C elements per layer still rounded with the weights' copy and the hold
     * (a pass reading 4 and writing 2 bytes each). Worth the memory. */
    bool held = plm_gemm_bf16_hold(dout, (size_t)N * OC);
    if (dinp) plm_sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, accumulate ? 1.0f : 0.0f, dinp, C);
    plm_sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (held) plm_gemm_bf16_release();
    if (dbias) colsum_accumulate(dbias, dout, N, OC);
}
