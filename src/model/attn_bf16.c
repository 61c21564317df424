/* attn_bf16.c - see attn_bf16.h
 *
 * The kernel keeps a block of MR x 64 outputs in 24 zmm accumulators: per pair p it loads
 * 64 columns of B (4 vectors) and broadcasts one pair of each of A's MR rows, 24
 * vdpbf16ps for 10 loads. The functions that use AVX-512 carry their own target
 * attribute, so the file builds with -march of an AVX2 machine and the CPU is asked at
 * run time (attn_bf16_on) before any of them runs. */
#include "attn_bf16.h"

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "gemm.h"

#define MR            6 /* rows of C per block */
#define NV            4 /* 16-float vectors of C per block row: 64 columns */
#define PREFETCH_ROWS 4 /* rows ahead that the packing of q, k, v and dO rows fetches */
#define AVX512_BF16   __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

bool attn_bf16_on(void) {
    static int cpu = -1; /* read once: the CPU and the environment do not change */
    if (cpu < 0) {
        const char *e = getenv("PLM_ATTN_BF16");
        __builtin_cpu_init();
        cpu = __builtin_cpu_supports("avx512bf16") && !(e && strcmp(e, "0") == 0);
    }
    return cpu && plm_gemm_bf16();
}

/* x rounded to bf16 in the high 16 bits of each lane (plm_to_bf16's sum, 16 at once). */
AVX512_BF16 static inline __m512i round_hi(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    return _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
}

static inline __mmask16 first(int n) { return n >= 16 ? 0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

AVX512_BF16 void attn_bf16_pack_rows(uint32_t *dst, int ldd, const float *x, int ld, int n, int k) {
    int kp = (k + 1) / 2;
    for (int r = 0; r < n; r++) {
        const float *xr = x + (size_t)r * ld;
        uint32_t *d = dst + (size_t)r * ldd;
        /* rows of q, k, v lie 3C floats apart, often in another page: the hardware
         * prefetcher does not follow, so fetch a few rows ahead */
        if (r + PREFETCH_ROWS < n)
            for (int f = 0; f < k; f += 16)
                _mm_prefetch((const char *)(xr + (size_t)PREFETCH_ROWS * ld + f), _MM_HINT_T0);
        for (int f = 0; f < k; f += 32) { /* floats f .. f + 31 -> words f/2 .. f/2 + 15 */
            __m512 lo = _mm512_maskz_loadu_ps(first(k - f), xr + f);
            __m512 hi = _mm512_maskz_loadu_ps(first(k - f - 16), xr + f + 16);
            __m256i l16 = _mm512_cvtepi32_epi16(_mm512_srli_epi32(round_hi(lo), 16));
            __m256i h16 = _mm512_cvtepi32_epi16(_mm512_srli_epi32(round_hi(hi), 16));
            __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(l16), h16, 1);
            _mm512_mask_storeu_epi32(d + f / 2, first(kp - f / 2), w);
        }
    }
}

AVX512_BF16 void attn_bf16_pack_cols(uint32_t *dst, int ldd, const float *x, int ld, int k, int n) {
    int kp = (k + 1) / 2, npad = attn_bf16_ld(n);
    __m512i himask = _mm512_set1_epi32((int)0xffff0000u);
    for (int p = 0; p < kp; p++) {
        const float *x0 = x + (size_t)(2 * p) * ld, *x1 = 2 * p + 1 < k ? x0 + ld : NULL;
        uint32_t *d = dst + (size_t)p * ldd;
        if (2 * p + PREFETCH_ROWS + 1 < k)
            for (int c = 0; c < n; c += 16) {
                _mm_prefetch((const char *)(x0 + (size_t)PREFETCH_ROWS * ld + c), _MM_HINT_T0);
                _mm_prefetch((const char *)(x0 + (size_t)(PREFETCH_ROWS + 1) * ld + c), _MM_HINT_T0);
            }
        for (int c = 0; c < npad; c += 16) {
            __mmask16 m = first(n - c);
            __m512i a = _mm512_srli_epi32(round_hi(_mm512_maskz_loadu_ps(m, x0 + c)), 16);
            __m512i b =
                x1 ? _mm512_and_si512(round_hi(_mm512_maskz_loadu_ps(m, x1 + c)), himask) : _mm512_setzero_si512();
            /* masked-off lanes loaded 0.0f, which rounds to 0: the padding is 0 */
            _mm512_storeu_si512(d + c, _mm512_or_si512(a, b));
        }
    }
}

AVX512_BF16 void attn_bf16_transpose(uint32_t *dst, int ldd, const uint32_t *src, int lds, int n, int kp) {
    int npad = attn_bf16_ld(n);
    __m512i rows = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                      _mm512_set1_epi32(lds));
    for (int r0 = 0; r0 < npad; r0 += 16) {
        __mmask16 m = first(n - r0);
        const uint32_t *s = src + (size_t)r0 * lds;
        for (int p = 0; p < kp; p++) {
            __m512i w = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), m, rows, s + p, 4);
            _mm512_storeu_si512(dst + (size_t)p * ldd + r0, w);
        }
    }
}

/* One block of mr (<= MR) rows and 64 columns, of which ncols are written. */
AVX512_BF16 static inline __attribute__((always_inline)) void block(const int mr, int ncols, int kp, float alpha,
                                                                    const uint32_t *A, size_t a_rs, size_t a_ks,
                                                                    const uint32_t *B, int ldb, float beta, float *C,
                                                                    int ldc) {
    __m512 acc[MR][NV];
#pragma GCC unroll 6
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) acc[r][v] = _mm512_setzero_ps();
    for (int p = 0; p < kp; p++) {
        const uint32_t *bp = B + (size_t)p * ldb;
        __m512bh b[NV];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) b[v] = (__m512bh)_mm512_loadu_si512(bp + 16 * v);
        const uint32_t *ap = A + (size_t)p * a_ks;
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            __m512bh a = (__m512bh)_mm512_set1_epi32((int)ap[(size_t)r * a_rs]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
        }
    }
    __m512 al = _mm512_set1_ps(alpha);
#pragma GCC unroll 4
    for (int v = 0; v < NV; v++) {
        __mmask16 m = first(ncols - 16 * v);
        if (!m) break;
#pragma GCC unroll 6
        for (int r = 0; r < mr; r++) {
            float *c = C + (size_t)r * ldc + 16 * v;
            __m512 y = _mm512_mul_ps(al, acc[r][v]);
            if (beta != 0.0f) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(m, c));
            _mm512_mask_storeu_ps(c, m, y);
        }
    }
}

/* block with mr a constant, so that its loops unroll into registers: one per row count */
#define BLOCK_ROWS(R)                                                                                                  \
    AVX512_BF16 static void block_##R(int ncols, int kp, float alpha, const uint32_t *A, size_t a_rs, size_t a_ks,     \
                                      const uint32_t *B, int ldb, float beta, float *C, int ldc) {                     \
        block(R, ncols, kp, alpha, A, a_rs, a_ks, B, ldb, beta, C, ldc);                                               \
    }
BLOCK_ROWS(1)
BLOCK_ROWS(2)
BLOCK_ROWS(3)
BLOCK_ROWS(4)
BLOCK_ROWS(5)
BLOCK_ROWS(6)

typedef void (*block_fn)(int, int, float, const uint32_t *, size_t, size_t, const uint32_t *, int, float, float *, int);
static const block_fn blocks[MR + 1] = {NULL, block_1, block_2, block_3, block_4, block_5, block_6};

AVX512_BF16 void attn_bf16_gemm(int M, int N, int kp, float alpha, const uint32_t *A, size_t a_rs, size_t a_ks,
                                const uint32_t *B, int ldb, float beta, float *C, int ldc) {
    for (int n0 = 0; n0 < N; n0 += 16 * NV)
        for (int m0 = 0; m0 < M; m0 += MR)
            blocks[M - m0 >= MR ? MR : M - m0](N - n0, kp, alpha, A + (size_t)m0 * a_rs, a_rs, a_ks, B + n0, ldb, beta,
                                               C + (size_t)m0 * ldc + n0, ldc);
}
