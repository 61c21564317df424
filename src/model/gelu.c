/* gelu.c - see gelu.h */
#include "gelu.h"

#include <math.h>

#include "fastmath.h"
#include "core/profile.h"

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2     0.7071067811865476f
#define INV_SQRT_2PI   0.3989422804014327f

void gelu_forward(float *out, const float *inp, size_t n, plm_gelu_kind kind) {
    double prof_t0 = plm_prof_begin();
    if (kind == PLM_GELU_ERF) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + plm_erff(inp[i] * INV_SQRT_2));
    } else {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + plm_tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
        }
    }
    plm_prof_end("gelu", prof_t0);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, plm_gelu_kind kind) {
    double prof_t0 = plm_prof_begin();
    if (kind == PLM_GELU_ERF) {
        /* d/dx x Phi(x) = Phi(x) + x phi(x) */
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            float cdf = 0.5f * (1.0f + plm_erff(x * INV_SQRT_2));
            float pdf = INV_SQRT_2PI * plm_expf(-0.5f * x * x);
            dinp[i] = dout[i] * (cdf + x * pdf);
        }
    } else {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            float u = SQRT_2_OVER_PI * (x + 0.044715f * x * x * x);
            float th = plm_tanhf(u);
            float sech2 = 1.0f - th * th;
            float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
            dinp[i] = dout[i] * (0.5f * (1.0f + th) + 0.5f * x * sech2 * du);
        }
    }
    plm_prof_end("gelu", prof_t0);
}
