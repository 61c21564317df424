/* fastmath.h - exp, tanh and erf for float, written so that the compiler vectorises
 * loops that call them (AVX-512: 16 lanes), unlike libm's scalar calls. Accuracy:
 * exp and tanh within ~2 ulp over the range training meets; erf within 5e-7
 * absolute (Abramowitz & Stegun 7.1.26). These dominate softmax, cross-entropy and
 * GELU, the non-GEMM work of a training step. */
#ifndef PLM_FASTMATH_H
#define PLM_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* e^x = 2^n * e^r with n = round(x / ln 2), |r| <= ln(2)/2; e^r by a degree-6
 * polynomial (Taylor, error < 2e-8 on that interval); 2^n built in the exponent bits.
 * Saturates: x < -87 gives e^-87 (~1.6e-38, for -inf too), x > 88 gives e^88 (~1.7e38,
 * for +inf too). NaN gives NaN: the comparisons below are false for NaN, so the clamps
 * pass it through to r and the polynomial; only the integer exponent is forced into
 * range, because converting NaN (or anything outside int32) to an int is undefined. */
static inline float plm_expf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* round to nearest by the 1.5 * 2^23 trick: plain arithmetic, so it vectorises */
    float n = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    /* finite x already gives n in [-126, 127]; NaN becomes -126 here (NaN > a is false) */
    float ni = n > -126.0f ? n : -126.0f;
    ni = ni < 127.0f ? ni : 127.0f;
    float r = x - n * 0.693145751953125f; /* ln 2 split in two for an exact product */
    r = r - n * 1.428606765330187045e-06f;
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)ni + 127) << 23; /* biased exponent in [1, 254] */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* tanh(x) = sign(x) (1 - 2 / (e^{2|x|} + 1)); for tiny |x| the odd Taylor series,
 * which avoids the cancellation of 1 - (1 - 2x). */
static inline float plm_tanhf(float x) {
    float a = __builtin_fabsf(x);
    float big = 1.0f - 2.0f / (plm_expf(2.0f * a) + 1.0f);
    float x2 = a * a;
    float small = a * (1.0f + x2 * (-1.0f / 3.0f + x2 * (2.0f / 15.0f + x2 * (-17.0f / 315.0f))));
    float t = a < 0.0625f ? small : big;
    return __builtin_copysignf(t, x);
}

/* erf(x) = 1 - (a1 k + a2 k^2 + ... + a5 k^5) e^{-x^2},  k = 1 / (1 + p |x|); also
 * returns its e^{-x^2} in *e (GELU's backward needs it: the normal density). */
static inline float plm_erff_exp(float x, float *e) {
    float a = __builtin_fabsf(x);
    float k = 1.0f / (1.0f + 0.3275911f * a);
    float poly = k * (0.254829592f + k * (-0.284496736f + k * (1.421413741f + k * (-1.453152027f + k * 1.061405429f))));
    *e = plm_expf(-a * a);
    float y = 1.0f - poly * *e;
    return __builtin_copysignf(y, x);
}

static inline float plm_erff(float x) {
    float e;
    return plm_erff_exp(x, &e);
}

#endif
