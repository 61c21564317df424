/* bf16_rate.c - see bf16_rate.h
 *
 * Each loop keeps 12 independent accumulators, more than latency x issue width, so it
 * measures how many instructions a core retires per second, not their latency. A
 * vdpbf16ps on zmm is 32 multiply-adds (64 flops), an FMA 16 (32 flops). */
#include "bf16_rate.h"

#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "gemm.h"

#define ITERS 32768 /* x 12 instructions: 0.15-0.3 ms a loop, 2-3 ms in all */

static double seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Twelve accumulators in named registers: an array would live in memory, and its stores
 * would set the pace. The empty asm keeps each one live, so nothing is folded away. */
#define ACCS(OP) OP(a0) OP(a1) OP(a2) OP(a3) OP(a4) OP(a5) OP(a6) OP(a7) OP(a8) OP(a9) OP(a10) OP(a11)
#define ZERO(a)  __m512 a = _mm512_setzero_ps();
#define KEEP(a)  __asm__ volatile("" : "+v"(a));
#define DOT(a)   a = _mm512_dpbf16_ps(a, x, x);
#define FMA(a)   a = _mm512_fmadd_ps(y, y, a);

__attribute__((target("avx512f,avx512bf16"))) static double dot_flops(void) {
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3f803f80); /* bf16 pairs (1, 1) */
    ACCS(ZERO)
    double t = seconds();
    for (int n = 0; n < ITERS; n++) {
        ACCS(DOT)
        ACCS(KEEP)
    }
    return (double)ITERS * 12 * 64 / (seconds() - t);
}

__attribute__((target("avx512f,fma"))) static double fma_flops(void) {
    __m512 y = _mm512_set1_ps(1.0f);
    ACCS(ZERO)
    double t = seconds();
    for (int n = 0; n < ITERS; n++) {
        ACCS(FMA)
        ACCS(KEEP)
    }
    return (double)ITERS * 12 * 32 / (seconds() - t);
}

double plm_bf16_dot_ratio(void) {
    static double ratio = -1;
    if (ratio >= 0) return ratio;
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) return ratio = 0;
    /* Interleaved, best of each: the first rounds also wake the 512-bit units. */
    double dot = 0, fma = 0;
    for (int r = 0; r < 5; r++) {
        double d = dot_flops(), f = fma_flops();
        if (d > dot) dot = d;
        if (f > fma) fma = f;
    }
    return ratio = dot / fma;
}

void plm_bf16_training_note(void) {
    static bool said;
    const char *isa = plm_bf16_isa();
    if (said || !plm_gemm_bf16() || !isa || strstr(isa, "amx")) return;
    double r = plm_bf16_dot_ratio();
    if (r > 0 && r < 0.8)
        fprintf(stderr,
                "plm: note: this CPU's bf16 dot product (AVX512_BF16, no AMX) runs at %.2fx its fp32 rate, so "
                "--bf16 training is slower than fp32 here\n",
                r);
    said = true;
}
