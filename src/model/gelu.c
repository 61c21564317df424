/* gelu.c - see gelu.h */
#include "gelu.h"

#include <math.h>
#include <string.h>

#include "core/common.h"
#include "fastmath.h"
#include "gemm.h"
#include "core/profile.h"
#include "linear.h"

#define SQRT_2_OVER_PI 0.7978845608028654f
#define INV_SQRT_2     0.7071067811865476f
#define INV_SQRT_2PI   0.3989422804014327f

/* The activation over n elements (one thread's block). */
static void act_block(float *out, const float *inp, size_t n, plm_gelu_kind kind) {
    if (kind == PLM_ACT_RELU) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
    } else if (kind == PLM_GELU_ERF) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) out[i] = 0.5f * inp[i] * (1.0f + plm_erff(inp[i] * INV_SQRT_2));
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float x = inp[i];
            out[i] = 0.5f * x * (1.0f + plm_tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
        }
    }
}

#define ACT_BLOCK 4096 /* elements per block: the fp32 result is rounded while in L1 */

/* GELU's derivatives, shared by gelu_backward and the forward pass that stores them (the
 * same bits). erf: d/dx x Phi(x) = Phi(x) + x phi(x), from y = erf(x / sqrt 2) and its
 * e^{-x^2/2}, which is phi's exponential: one exp per element. */
static inline float gelu_erf_grad_at(float x, float y, float e) { return 0.5f * (1.0f + y) + x * (INV_SQRT_2PI * e); }

static inline float gelu_erf_grad(float x) {
    float e, y = plm_erff_exp(x * INV_SQRT_2, &e);
    return gelu_erf_grad_at(x, y, e);
}

/* tanh: u = sqrt(2/pi) (x + 0.044715 x^3), d/dx 0.5 x (1 + tanh u), from th = tanh u */
static inline float gelu_tanh_grad_at(float x, float th) {
    float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
    return 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
}

static inline float gelu_tanh_grad(float x) {
    return gelu_tanh_grad_at(x, plm_tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x)));
}

/* act(x) and act'(x) over n elements (one thread's block), x overwritten by act'(x):
 * act_block's expressions and the gelu_*_grad_at above, so the same bits. */
static void act_dact_block(float *out, float *x, size_t n, plm_gelu_kind kind) {
    if (kind == PLM_ACT_RELU) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            out[i] = v > 0.0f ? v : 0.0f;
            x[i] = v > 0.0f ? 1.0f : 0.0f;
        }
    } else if (kind == PLM_GELU_ERF) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float v = x[i], e;
            float y = plm_erff_exp(v * INV_SQRT_2, &e);
            out[i] = 0.5f * v * (1.0f + y);
            x[i] = gelu_erf_grad_at(v, y, e);
        }
    } else {
#pragma omp simd
        for (size_t i = 0; i < n; i++) {
            float v = x[i];
            float th = plm_tanhf(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v));
            out[i] = 0.5f * v * (1.0f + th);
            x[i] = gelu_tanh_grad_at(v, th);
        }
    }
}

/* out = act(inp) block by block, each block rounded into out16 (when not NULL) while in
 * L1; with dact (which is inp) the block pass also leaves act'(inp) in place of inp. */
static void act_pass(float *out, uint16_t *out16, const float *inp, float *dact, size_t n, plm_gelu_kind kind) {
    double prof_t0 = plm_prof_begin();
    size_t nb = (n + ACT_BLOCK - 1) / ACT_BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t lo = b * ACT_BLOCK, len = PLM_MIN((size_t)ACT_BLOCK, n - lo);
        if (dact)
            act_dact_block(out + lo, dact + lo, len, kind);
        else
            act_block(out + lo, inp + lo, len, kind);
        if (out16) {
#pragma omp simd
            for (size_t i = lo; i < lo + len; i++) out16[i] = plm_to_bf16(out[i]);
        }
    }
    plm_prof_end("gelu", prof_t0);
}

void gelu_forward_bf16(float *out, uint16_t *out16, const float *inp, size_t n, plm_gelu_kind kind) {
    act_pass(out, out16, inp, NULL, n, kind);
}

void gelu_forward_dact(float *out, uint16_t *out16, float *x, size_t n, plm_gelu_kind kind) {
    act_pass(out, out16, x, x, n, kind);
}

void gelu_forward(float *out, const float *inp, size_t n, plm_gelu_kind kind) {
    gelu_forward_bf16(out, NULL, inp, n, kind);
}

void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, plm_gelu_kind kind) {
    double prof_t0 = plm_prof_begin();
    if (kind == PLM_ACT_RELU) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) dinp[i] = inp[i] > 0.0f ? dout[i] : 0.0f;
    } else if (kind == PLM_GELU_ERF) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_erf_grad(inp[i]);
    } else {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) dinp[i] = dout[i] * gelu_tanh_grad(inp[i]);
    }
    plm_prof_end("gelu", prof_t0);
}

/* dinp = dout * dact over one row, and psum += dinp. ReLU selects, as gelu_backward does,
 * so a zero gradient is +0 whatever the sign of dout. */
static inline void dact_row(float *dinp, const float *dact, const float *dout, float *psum, int n, plm_gelu_kind kind) {
    if (kind == PLM_ACT_RELU) {
#pragma omp simd
        for (int i = 0; i < n; i++) {
            float d = dact[i] > 0.0f ? dout[i] : 0.0f;
            dinp[i] = d;
            psum[i] += d;
        }
    } else {
#pragma omp simd
        for (int i = 0; i < n; i++) {
            float d = dout[i] * dact[i];
            dinp[i] = d;
            psum[i] += d;
        }
    }
}

void gelu_backward_dact_colsum(float *dinp, uint16_t *dinp16, const float *dact, const float *dout, int N, int I,
                               plm_gelu_kind kind, float *dbias) {
    double prof_t0 = plm_prof_begin();
    if (N <= 0) return;
    int K = colsum_nchunks(N);
    float *part = colsum_scratch(K, I);
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int k = 0; k < K; k++) {
            float *ps = colsum_partials(part, k, I);
            memset(ps, 0, (size_t)I * sizeof(float));
            int lo, hi;
            colsum_chunk_rows(N, K, k, &lo, &hi);
            for (int r = lo; r < hi; r++) {
                size_t o = (size_t)r * I;
                dact_row(dinp + o, dact + o, dout + o, ps, I, kind);
                if (dinp16) {
#pragma omp simd
                    for (int i = 0; i < I; i++) dinp16[o + i] = plm_to_bf16(dinp[o + i]);
                }
            }
        }
        colsum_finish(dbias, part, K, I);
    }
    plm_prof_end("gelu + bias grad", prof_t0);
}

/* One element: act(x) and act'(x). */
static inline float act_grad(float x, plm_gelu_kind kind, float *d) {
    if (kind == PLM_ACT_RELU) {
        *d = x > 0.0f ? 1.0f : 0.0f;
        return x > 0.0f ? x : 0.0f;
    }
    if (kind == PLM_GELU_ERF) {
        float cdf = 0.5f * (1.0f + plm_erff(x * INV_SQRT_2));
        *d = cdf + x * INV_SQRT_2PI * plm_expf(-0.5f * x * x);
        return x * cdf;
    }
    float th = plm_tanhf(SQRT_2_OVER_PI * (x + 0.044715f * x * x * x));
    float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * x * x);
    *d = 0.5f * (1.0f + th) + 0.5f * x * (1.0f - th * th) * du;
    return 0.5f * x * (1.0f + th);
}

void gated_act_forward(float *out, const float *inp, int N, int I, plm_gelu_kind kind) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x0 = inp + (size_t)n * 2 * I, *x1 = x0 + I;
        float *o = out + (size_t)n * I, d;
        for (int i = 0; i < I; i++) o[i] = act_grad(x0[i], kind, &d) * x1[i];
    }
}

void gated_act_backward(float *dinp, const float *inp, const float *dout, int N, int I, plm_gelu_kind kind) {
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *x0 = inp + (size_t)n * 2 * I, *x1 = x0 + I, *dy = dout + (size_t)n * I;
        float *d0 = dinp + (size_t)n * 2 * I, *d1 = d0 + I, d;
        for (int i = 0; i < I; i++) {
            float a = act_grad(x0[i], kind, &d);
            d0[i] = dy[i] * x1[i] * d;
            d1[i] = dy[i] * a;
        }
    }
}
