/* linear.c - see linear.h */
#include "linear.h"

#include <omp.h>
#include <string.h>

#include "gemm.h"

void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC) {
    float beta = 0.0f;
    if (bias) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < N; i++) memcpy(out + (size_t)i * OC, bias, (size_t)OC * sizeof(float));
        beta = 1.0f;
    }
    plm_sgemm(false, true, N, OC, C, 1.0f, inp, C, weight, C, beta, out, OC);
}

void colsum_accumulate(float *dbias, const float *dout, int N, int OC, float *scratch) {
#pragma omp parallel
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        float *part = scratch + (size_t)t * OC;
        memset(part, 0, (size_t)OC * sizeof(float));
        int lo = (int)((long)N * t / n), hi = (int)((long)N * (t + 1) / n);
        for (int i = lo; i < hi; i++) {
            const float *d = dout + (size_t)i * OC;
            for (int o = 0; o < OC; o++) part[o] += d[o];
        }
#pragma omp barrier
        int olo = (int)((long)OC * t / n), ohi = (int)((long)OC * (t + 1) / n);
        for (int o = olo; o < ohi; o++) {
            float s = 0.0f;
            for (int k = 0; k < n; k++) s += scratch[(size_t)k * OC + o];
            dbias[o] += s;
        }
    }
}

void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC, bool accumulate, float *scratch) {
    if (dinp) plm_sgemm(false, false, N, C, OC, 1.0f, dout, OC, weight, C, accumulate ? 1.0f : 0.0f, dinp, C);
    plm_sgemm(true, false, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f, dweight, C);
    if (dbias) colsum_accumulate(dbias, dout, N, OC, scratch);
}
