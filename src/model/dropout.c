/* dropout.c - see dropout.h */
#include "dropout.h"

#include <string.h>

#include "core/profile.h"
#include "linear.h"
#include "core/rng.h"

void dropout_forward(float *out, const float *x, size_t n, float p, uint64_t key) {
    double prof_t0 = plm_prof_begin();
    if (p <= 0.0f) {
        if (out != x) memcpy(out, x, n * sizeof(float));
    } else {
        float scale = 1.0f / (1.0f - p);
        uint32_t thr = plm_keep_threshold(p);
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = plm_hash_bits24(key, i) >= thr ? x[i] * scale : 0.0f;
    }
    plm_prof_end("dropout", prof_t0);
}

void dropout_backward(float *dx, const float *dout, size_t n, float p, uint64_t key) {
    dropout_forward(dx, dout, n, p, key); /* the mask is its own transpose */
}

void residual_dropout_forward(float *out, const float *res, const float *x, size_t n, float p, uint64_t key) {
    double prof_t0 = plm_prof_begin();
    if (p <= 0.0f) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = res[i] + x[i];
    } else {
        float scale = 1.0f / (1.0f - p);
        uint32_t thr = plm_keep_threshold(p);
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = res[i] + (plm_hash_bits24(key, i) >= thr ? x[i] * scale : 0.0f);
    }
    plm_prof_end("residual + dropout", prof_t0);
}

void dropout_backward_colsum(float *dx, const float *dout, int N, int C, float p, uint64_t key, float *dbias) {
    double prof_t0 = plm_prof_begin();
    if (N <= 0) return;
    float scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    uint32_t thr = plm_keep_threshold(p);
    int K = colsum_nchunks(N);
    float *part = colsum_scratch(K, C);
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) {
            float *ps = colsum_partials(part, k, C);
            memset(ps, 0, (size_t)C * sizeof(float));
            int lo, hi;
            colsum_chunk_rows(N, K, k, &lo, &hi);
            for (int i = lo; i < hi; i++) {
                const float *d = dout + (size_t)i * C;
                float *o = dx + (size_t)i * C;
                if (p <= 0.0f) {
                    if (o != d) memcpy(o, d, (size_t)C * sizeof(float));
                    for (int c = 0; c < C; c++) ps[c] += d[c];
                } else {
                    size_t base = (size_t)i * C;
#pragma omp simd
                    for (int c = 0; c < C; c++) {
                        float v = plm_hash_bits24(key, base + c) >= thr ? d[c] * scale : 0.0f;
                        o[c] = v;
                        ps[c] += v;
                    }
                }
            }
        }
        colsum_finish(dbias, part, K, C);
    }
    plm_prof_end("dropout + bias grad", prof_t0);
}
