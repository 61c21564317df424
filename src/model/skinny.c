/* skinny.c - see skinny.h
 *
 * The micro-kernel takes 3 rows of B and 4 rows of A and keeps their 12 dot products in
 * 12 vector accumulators (12 independent FMA chains: enough to hide the FMA latency on two
 * FMA ports). Per 8 columns of K it loads 3 vectors of B and 4 of A for 12 FMAs. The 3
 * rows of B (3 K floats) stay in L1 while the kernel walks down all M rows of A, so B
 * comes from memory once. Blocks at the edges (fewer than 3 rows of B, M not a
 * multiple of 4) repeat their last row, and the repeated results are dropped; the last
 * K % 8 columns are read with masked loads, so no row is read past its end. */
#include "skinny.h"

#include <immintrin.h>
#include <stddef.h>

#define AVX2_FMA __attribute__((target("avx2,fma")))

bool skinny_cpu_ok(void) {
    static int ok = -1;
    if (ok < 0) ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return ok;
}

/* (sum of c0, sum of c1, sum of c2, sum of c3): three horizontal adds and one add */
AVX2_FMA static inline __m128 hsum4(__m256 c0, __m256 c1, __m256 c2, __m256 c3) {
    __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(c0, c1), _mm256_hadd_ps(c2, c3));
    return _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
}

#define MR 4 /* rows of A per kernel call */
#define NR 3 /* rows of B per block: 12 accumulators, 4 + 3 loads per 12 FMAs */

/* c[r][t] += a_r[k..k+8) . b_t[k..k+8) lane by lane, with x_r and w_t loaded already */
#define FMA_TILE(x, w)                                                                                                 \
    for (int r = 0; r < MR; r++)                                                                                       \
        for (int t = 0; t < NR; t++) c[r][t] = _mm256_fmadd_ps(w[t], x[r], c[r][t])

/* out[r] = (a_r . b_0, a_r . b_1, a_r . b_2, -) over K. While the first rows of A run
 * (prefetch), the same columns of the next block of B are requested from memory, so that
 * streaming B overlaps the arithmetic. */
AVX2_FMA static inline void dot_tile(const float *const a[MR], const float *const b[NR], int K, size_t next,
                                     bool prefetch, __m128 out[MR]) {
    __m256 c[MR][NR];
    for (int r = 0; r < MR; r++)
        for (int t = 0; t < NR; t++) c[r][t] = _mm256_setzero_ps();
    int k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 x[MR], w[NR];
        for (int r = 0; r < MR; r++) x[r] = _mm256_loadu_ps(a[r] + k);
        for (int t = 0; t < NR; t++) w[t] = _mm256_loadu_ps(b[t] + k);
        if (prefetch)
            for (int t = 0; t < NR; t++) _mm_prefetch((const char *)(b[t] + next + k), _MM_HINT_T0);
        FMA_TILE(x, w);
    }
    if (k < K) { /* lanes past K load 0, which adds nothing */
        __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(K - k), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256 x[MR], w[NR];
        for (int r = 0; r < MR; r++) x[r] = _mm256_maskload_ps(a[r] + k, m);
        for (int t = 0; t < NR; t++) w[t] = _mm256_maskload_ps(b[t] + k, m);
        FMA_TILE(x, w);
    }
    for (int r = 0; r < MR; r++) out[r] = hsum4(c[r][0], c[r][1], c[r][2], c[r][2]);
}

AVX2_FMA void skinny_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                        const float *bias, float *C, int ldc) {
    int nb = (N + NR - 1) / NR;
    /* static: each thread streams one contiguous part of B */
#pragma omp parallel for schedule(static)
    for (int jb = 0; jb < nb; jb++) {
        int j0 = jb * NR, nr = N - j0 < NR ? N - j0 : NR;
        const float *b[NR];
        for (int t = 0; t < NR; t++) b[t] = B + (size_t)(j0 + (t < nr ? t : nr - 1)) * ldb;
        /* the next block's rows, NR rows further; the last block prefetches nothing */
        size_t next = (size_t)NR * ldb;
        for (int i0 = 0; i0 < M; i0 += MR) {
            int mr = M - i0 < MR ? M - i0 : MR;
            const float *a[MR];
            for (int r = 0; r < MR; r++) a[r] = A + (size_t)(i0 + (r < mr ? r : mr - 1)) * lda;
            __m128 out[MR];
            dot_tile(a, b, K, next, i0 == 0 && jb + 1 < nb, out);
            for (int r = 0; r < mr; r++) {
                float v[4], *c = C + (size_t)(i0 + r) * ldc + j0;
                _mm_storeu_ps(v, out[r]);
                for (int t = 0; t < nr; t++) {
                    if (bias) v[t] += bias[j0 + t];
                    c[t] = beta == 0.0f ? v[t] : v[t] + beta * c[t];
                }
            }
        }
    }
}

/* ---------------------------------------------------------------- bf16 (AVX512_BF16)
 *
 * The same walk over B with bf16 operands: vdpbf16ps multiplies 32 bf16 pairs of a row of
 * A and a row of B and adds each pair's two products to one of 16 fp32 lanes, so one
 * 64-byte load of B (a cache line) feeds one instruction per row of A. 4 rows of B and up
 * to 4 of A: 16 accumulators. The tile's row count of A is a constant in each copy of the
 * kernel (dot_tile16's switch), so one or two sequences do not pay for four. */

#define AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512bf16")))
#define MR16        4 /* rows of A per kernel call */
#define NR16        4 /* rows of B per block */

bool skinny_bf16_cpu_ok(void) {
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512bf16");
    }
    return ok;
}

/* out[r][t] = a_r . b_t over K for r < mr, t < NR16, in fp32; the lanes' sums are added
 * in _mm512_reduce_add_ps's fixed order. */
AVX512_BF16 static inline __attribute__((always_inline)) void dot_tile16(int mr, const uint16_t *const a[MR16],
                                                                         const uint16_t *const b[NR16], int K,
                                                                         size_t next, bool prefetch,
                                                                         float out[MR16][NR16]) {
    __m512 c[MR16][NR16];
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < NR16; t++) c[r][t] = _mm512_setzero_ps();
    int k = 0;
    for (; k + 32 <= K; k += 32) {
        __m512i x[MR16], w[NR16];
        for (int t = 0; t < NR16; t++) w[t] = _mm512_loadu_si512(b[t] + k);
        for (int r = 0; r < mr; r++) x[r] = _mm512_loadu_si512(a[r] + k);
        if (prefetch)
            for (int t = 0; t < NR16; t++) _mm_prefetch((const char *)(b[t] + next + k), _MM_HINT_T0);
        for (int r = 0; r < mr; r++)
            for (int t = 0; t < NR16; t++) c[r][t] = _mm512_dpbf16_ps(c[r][t], (__m512bh)w[t], (__m512bh)x[r]);
    }
    if (k < K) { /* masked-off elements load as +0, which adds nothing */
        __mmask32 m = (__mmask32)((1ull << (K - k)) - 1);
        __m512i x[MR16], w[NR16];
        for (int t = 0; t < NR16; t++) w[t] = _mm512_maskz_loadu_epi16(m, b[t] + k);
        for (int r = 0; r < mr; r++) x[r] = _mm512_maskz_loadu_epi16(m, a[r] + k);
        for (int r = 0; r < mr; r++)
            for (int t = 0; t < NR16; t++) c[r][t] = _mm512_dpbf16_ps(c[r][t], (__m512bh)w[t], (__m512bh)x[r]);
    }
    for (int r = 0; r < mr; r++)
        for (int t = 0; t < NR16; t++) out[r][t] = _mm512_reduce_add_ps(c[r][t]);
}

AVX512_BF16 void skinny_nt_bf16(int M, int N, int K, const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta,
                                const float *bias, float *C, int ldc) {
    int nb = (N + NR16 - 1) / NR16;
#pragma omp parallel for schedule(static)
    for (int jb = 0; jb < nb; jb++) {
        int j0 = jb * NR16, nr = N - j0 < NR16 ? N - j0 : NR16;
        const uint16_t *b[NR16];
        for (int t = 0; t < NR16; t++) b[t] = B + (size_t)(j0 + (t < nr ? t : nr - 1)) * ldb;
        size_t next = (size_t)NR16 * ldb;
        for (int i0 = 0; i0 < M; i0 += MR16) {
            int mr = M - i0 < MR16 ? M - i0 : MR16;
            const uint16_t *a[MR16];
            for (int r = 0; r < MR16; r++) a[r] = A + (size_t)(i0 + (r < mr ? r : mr - 1)) * lda;
            float out[MR16][NR16];
            bool prefetch = i0 == 0 && jb + 1 < nb;
            switch (mr) {
            case 1:
                dot_tile16(1, a, b, K, next, prefetch, out);
                break;
            case 2:
                dot_tile16(2, a, b, K, next, prefetch, out);
                break;
            case 3:
                dot_tile16(3, a, b, K, next, prefetch, out);
                break;
            default:
                dot_tile16(4, a, b, K, next, prefetch, out);
                break;
            }
            for (int r = 0; r < mr; r++) {
                float *c = C + (size_t)(i0 + r) * ldc + j0;
                for (int t = 0; t < nr; t++) {
                    float v = out[r][t] + (bias ? bias[j0 + t] : 0.0f);
                    c[t] = beta == 0.0f ? v : v + beta * c[t];
                }
            }
        }
    }
}
