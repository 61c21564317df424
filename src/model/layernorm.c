/* layernorm.c - see layernorm.h */
#include "layernorm.h"

#include <math.h>
#include <omp.h>
#include <string.h>

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias,
                       int N, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int i = 0; i < N; i++) {
        const float *x = inp + (size_t)i * C;
        float *y = out + (size_t)i * C;
        float m = 0.0f;
        for (int c = 0; c < C; c++) m += x[c];
        m /= (float)C;
        float v = 0.0f; /* two-pass variance: no cancellation */
        for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
        v /= (float)C;
        float s = 1.0f / sqrtf(v + eps);
        for (int c = 0; c < C; c++) y[c] = (x[c] - m) * s * weight[c] + bias[c];
        mean[i] = m;
        rstd[i] = s;
    }
}

/* With xhat = (x - mean) * rstd and g = dout * weight:
 *     dx = rstd * (g - mean(g) - xhat * mean(g * xhat))
 *     dweight = sum_rows dout * xhat,  dbias = sum_rows dout */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C, bool accumulate,
                        float *scratch) {
    int nt = omp_get_max_threads();
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        float *pw = scratch + (size_t)t * 2 * C, *pb = pw + C;
        memset(pw, 0, 2 * (size_t)C * sizeof(float));
        int lo = (int)((long)N * t / n), hi = (int)((long)N * (t + 1) / n);
        for (int i = lo; i < hi; i++) {
            const float *x = inp + (size_t)i * C, *dy = dout + (size_t)i * C;
            float *dx = dinp + (size_t)i * C;
            float m = mean[i], s = rstd[i];
            float gmean = 0.0f, gxmean = 0.0f;
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
                for (int c = 0; c < C; c++) dx[c] += s * (dy[c] * weight[c] - gmean - (x[c] - m) * s * gxmean);
            } else {
                for (int c = 0; c < C; c++) dx[c] = s * (dy[c] * weight[c] - gmean - (x[c] - m) * s * gxmean);
            }
        }
#pragma omp barrier
        /* reduce the partials over channels, threads in fixed order */
        int clo = (int)((long)C * t / n), chi = (int)((long)C * (t + 1) / n);
        for (int c = clo; c < chi; c++) {
            float sw = 0.0f, sb = 0.0f;
            for (int k = 0; k < n; k++) {
                sw += scratch[(size_t)k * 2 * C + c];
                sb += scratch[(size_t)k * 2 * C + C + c];
            }
            dweight[c] += sw;
            dbias[c] += sb;
        }
    }
}
