/* rmsnorm.c - see rmsnorm.h */
#include "rmsnorm.h"

#include <math.h>
#include <string.h>

#include "core/common.h"

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float ss = 0.0f;
        for (int c = 0; c < C; c++) ss += x[c] * x[c];
        float s = 1.0f / sqrtf(ss / (float)C + eps);
        for (int c = 0; c < C; c++) y[c] = x[c] * s * weight[c];
        rstd[i] = s;
    }
}

/* With g = dout * weight and r = rstd:  y_c = w_c x_c r,  dr/dx_c = -r^3 x_c / C, so
 *     dx = r * g - x * r^3 * mean(g * x),   dweight = sum_rows dout * x * r
 * Rows are cut into chunks by N alone (as layernorm_backward): each chunk sums its rows'
 * dweight terms into its own partial row; the partials are added in chunk order. */
#define RED_CHUNKS   64
#define RED_MIN_ROWS 32

void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C, bool accumulate) {
    if (N <= 0) return;
    int K = (N + RED_MIN_ROWS - 1) / RED_MIN_ROWS;
    K = K < RED_CHUNKS ? K : RED_CHUNKS;
    float *part = plm_thread_scratch(1, (size_t)K * C);
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) {
            float *pw = part + (size_t)k * C;
            memset(pw, 0, (size_t)C * sizeof(float));
            int lo = (int)((long)N * k / K), hi = (int)((long)N * (k + 1) / K);
            for (int i = lo; i < hi; i++) {
                const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
                float *dx = dinp + (size_t)i * C;
                float r = rstd[i], gx = 0.0f;
                for (int c = 0; c < C; c++) {
                    gx += dy[c] * weight[c] * x[c];
                    pw[c] += dy[c] * x[c] * r;
                }
                float k3 = r * r * r * gx / (float)C;
                if (accumulate) {
                    for (int c = 0; c < C; c++) dx[c] += r * dy[c] * weight[c] - x[c] * k3;
                } else {
                    for (int c = 0; c < C; c++) dx[c] = r * dy[c] * weight[c] - x[c] * k3;
                }
            }
        }
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += part[(size_t)k * C + c];
            dweight[c] += s;
        }
    }
}
