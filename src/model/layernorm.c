/* layernorm.c - see layernorm.h */
#include "layernorm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/profile.h"

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias,
                       int N, int C, float eps) {
    double prof_t0 = plm_prof_begin();
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        /* the row sums run in vector lanes (omp simd reductions: a fixed order for a
         * given build, so the same bits every run and for any number of threads) */
        float m = 0.0f;
#pragma omp simd reduction(+ : m)
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float v = 0.0f; /* two-pass variance: no cancellation */
#pragma omp simd reduction(+ : v)
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
#pragma omp simd
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[i] = m;
        rstd[i] = s;
    }
    plm_prof_end("layernorm", prof_t0);
}

/* With xhat = (x - mean) * rstd and g = dout * weight:
 *     dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
 *     dweight = sum_rows dout * xhat,  dbias = sum_rows dout
 * The rows are cut into a number of chunks that depends on N alone (at most 64, at
 * least 32 rows each); each chunk computes its rows' dx and sums its rows' dweight and
 * dbias terms into its own partial rows, which are then added per channel in chunk
 * order. No buffer depends on the team size (the partials are this thread's grow-only scratch), and the
 * results have the same bits for any number of threads. */
#define RED_CHUNKS    64
#define RED_MIN_ROWS  32
#define RED_COL_BLOCK 256

void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C, bool accumulate) {
    double prof_t0 = plm_prof_begin();
    if (N <= 0) return;
    int K = (N + RED_MIN_ROWS - 1) / RED_MIN_ROWS;
    K = K < RED_CHUNKS ? K : RED_CHUNKS;
    int nblk = (C + RED_COL_BLOCK - 1) / RED_COL_BLOCK;
    float *part = plm_thread_scratch(1, (size_t)K * 2 * C); /* per chunk: dweight | dbias */
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) {
            float *pw = part + (size_t)k * 2 * C, *pb = pw + C;
            memset(pw, 0, 2 * (size_t)C * sizeof(float));
            int lo = (int)((long)N * k / K), hi = (int)((long)N * (k + 1) / K);
            for (int i = lo; i < hi; i++) {
                const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
                float *dx = dinp + (size_t)i * C;
                float m = mean[i], s = rstd[i];
                float gmean = 0.0f, gxmean = 0.0f;
#pragma omp simd reduction(+ : gmean, gxmean)
                for (int c = 0; c < C; c++) {
                    float xhat = (x[c] - m) * s, g = dy[c] * weight[c];
                    gmean += g;
                    gxmean += g * xhat;
                    pw[c] += dy[c] * xhat;
                    pb[c] += dy[c];
                }
                gmean /= (float)C;
                gxmean /= (float)C;
                if (accumulate) {
#pragma omp simd
                    for (int c = 0; c < C; c++) dx[c] += s * (dy[c] * weight[c] - gmean - (x[c] - m) * s * gxmean);
                } else {
#pragma omp simd
                    for (int c = 0; c < C; c++) dx[c] = s * (dy[c] * weight[c] - gmean - (x[c] - m) * s * gxmean);
                }
            }
        }
#pragma omp for schedule(static)
        for (int b = 0; b < nblk; b++) {
            int c0 = b * RED_COL_BLOCK, w = C - c0 < RED_COL_BLOCK ? C - c0 : RED_COL_BLOCK;
            float sw[RED_COL_BLOCK], sb[RED_COL_BLOCK];
            memcpy(sw, part + c0, (size_t)w * sizeof(float));
            memcpy(sb, part + C + c0, (size_t)w * sizeof(float));
            for (int k = 1; k < K; k++) {
                const float *pw = part + (size_t)k * 2 * C + c0, *pb = pw + C;
                for (int c = 0; c < w; c++) {
                    sw[c] += pw[c];
                    sb[c] += pb[c];
                }
            }
            for (int c = 0; c < w; c++) {
                dweight[c0 + c] += sw[c];
                dbias[c0 + c] += sb[c];
            }
        }
    }
    plm_prof_end("layernorm", prof_t0);
}
