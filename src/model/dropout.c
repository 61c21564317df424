/* dropout.c - see dropout.h */
#include "dropout.h"

#include <string.h>

#include "core/profile.h"
#include "core/rng.h"

void dropout_forward(float *out, const float *x, size_t n, float p, uint64_t key) {
    double prof_t0 = plm_prof_begin();
    if (p <= 0.0f) {
        if (out != x) memcpy(out, x, n * sizeof(float));
    } else {
        float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = plm_hash_uniform(key, i) >= p ? x[i] * scale : 0.0f;
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
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = res[i] + (plm_hash_uniform(key, i) >= p ? x[i] * scale : 0.0f);
    }
    plm_prof_end("residual + dropout", prof_t0);
}
