/* gemm.c - see gemm.h */
#include "gemm.h"

#include <cblas.h>
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "core/profile.h"
#include "skinny.h"

/* Routes, measured (bench/README.md, "Linear-layer GEMMs" and "Zen 4 again"): oneDNN's
 * sgemm is the fastest for Y = X W^T (NT), dX = dY W (NN) and for the per-head attention
 * products inside an OpenMP loop. Its weight-gradient product dW = dY^T X (TN) drops to
 * 64-100 GFLOP/s when the output is wide and the input narrow (ffn-up, qkv, LM head of
 * small models); OpenBLAS kept 100-150 there on the first machine, but on a Zen 4 it
 * swung between 105 and 185 from run to run, and oneDNN's matmul primitive (brgemm, with
 * A transposed through its strides) ran those shapes at 170-205 every time, so they go
 * to the primitive. The route depends on the shape alone, never on a timing, so a run's
 * bits do not depend on the machine's load. */
static int gemm_choice = -1; /* PLM_GEMM=openblas|dnnl|auto (default), for benchmarking */

static int gemm_forced(void) {
    if (gemm_choice < 0) {
        const char *e = getenv("PLM_GEMM");
        gemm_choice = e && strcmp(e, "openblas") == 0 ? 1 : e && strcmp(e, "dnnl") == 0 ? 2 : 0;
    }
    return gemm_choice;
}

/* Whether oneDNN runs its AVX-512 kernels here (brgemm; read once, at run time). */
static bool dnnl_avx512(void) {
    static int known = -1;
    if (known < 0) {
        dnnl_cpu_isa_t e = dnnl_get_effective_cpu_isa();
        known = (e & dnnl_cpu_isa_avx512_core) == dnnl_cpu_isa_avx512_core;
    }
    return known;
}

/* OpenBLAS's own API: its cblas.h declares it, but which cblas.h a machine's include path
 * has depends on Debian's alternatives (BLIS ships one too) */
char *openblas_get_corename(void);

/* Debian's OpenBLAS (0.3.21, DYNAMIC_ARCH) picks its kernels by CPU model when it loads,
 * and on a model newer than itself it falls back to "Prescott", SSE3 code: on an Intel
 * Xeon of 2024 (family 6 model 207) its sgemm ran at 48 GFLOP/s against oneDNN's 278
 * (bench/README.md, "Xeon: training"). So on a CPU with AVX2 and FMA, only the kernels
 * written for them count. */
bool plm_openblas_fits_cpu(void) {
    static const char *avx2_cores[] = {"haswell", "excavator", "zen", "skylakex", "cooperlake", "sapphirerapids"};
    static int fits = -1;
    if (fits < 0) {
        const char *core = openblas_get_corename();
        __builtin_cpu_init();
        fits = !(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
        for (size_t i = 0; !fits && core && i < PLM_ARRAY_LEN(avx2_cores); i++) fits = !strcasecmp(core, avx2_cores[i]);
    }
    return fits;
}

/* Every weight gradient goes to OpenBLAS on CPUs without AVX-512 (an AVX2 Zen 3, bench/
 * README.md "Zen 3"): dnnl_sgemm's TN kernel ran the small config's dW products at 60-120
 * GFLOP/s there, OpenBLAS's at 85-136; oneDNN stays faster on NN and NT. Not when OpenBLAS
 * does not know the CPU (above). PLM_GEMM_TN=openblas|onednn overrides the CPU's default,
 * for benchmarking and for the tests. */
static bool tn_on_openblas(void) {
    static int tn_choice = -1;
    if (tn_choice < 0) {
        const char *e = getenv("PLM_GEMM_TN");
        tn_choice = e && strcmp(e, "openblas") == 0 ? 1
                    : e && strcmp(e, "onednn") == 0 ? 0
                                                    : !dnnl_avx512() && plm_openblas_fits_cpu();
    }
    return tn_choice;
}

/* dW of a layer with a narrow input and a wide output (see above), on the oneDNN side,
 * where oneDNN has brgemm: without AVX-512 its matmul primitive falls back to the same
 * gemm:jit */
static bool use_tn_matmul(bool trans_a, bool trans_b, int M, int N) {
    return trans_a && !trans_b && N <= 256 && M >= 512 && !gemm_forced() && !omp_in_parallel() && dnnl_avx512() &&
           !tn_on_openblas();
}

/* The OpenBLAS side. Inside parallel regions (attention's per-head products) oneDNN
 * keeps them, even in a region of one thread, so that their bits do not depend on the
 * number of threads. */
static bool use_tn_openblas(bool trans_a, bool trans_b) {
    return trans_a && !trans_b && tn_on_openblas() && !gemm_forced() && omp_get_level() == 0;
}

/* ---------------------------------------------------------------- bf16 */

static bool bf16_on;
static dnnl_engine_t eng;
static dnnl_stream_t stream;

#define to_bf16 plm_to_bf16 /* round to nearest, ties to even (gemm.h) */

float plm_round_bf16(float x) {
    uint32_t u = (uint32_t)to_bf16(x) << 16;
    float y;
    memcpy(&y, &u, sizeof y);
    return y;
}

/* One oneDNN matmul primitive: C (f32, ldc) = alpha op(A) op(B) (+ an f32 bias [N] on
 * every row) + beta C, with A and B of type dt (bf16 or f32) in their stored layout with
 * row strides lda, ldb (op = transpose through the strides). The bf16 GEMMs read dense
 * copies made here (lda = the stored row length) or mirrors in place with the fp32
 * operand's strides; the f32 ones (skinny products, the bias inside the product) read
 * the fp32 operands themselves. */
typedef struct {
    dnnl_data_type_t dt;
    int M, N, K, lda, ldb, ldc;
    bool ta, tb, bias;
    float alpha, beta;
    dnnl_primitive_t prim; /* NULL: oneDNN has no non-reference kernel; remembered */
    dnnl_memory_t a, b, c, bias_m;
} mm_prim;

static bool dnnl_ready(void) {
    if (!eng && dnnl_engine_create(&eng, dnnl_cpu, 0) != dnnl_success) return false;
    if (!stream && dnnl_stream_create(&stream, eng, dnnl_stream_default_flags) != dnnl_success) return false;
    return true;
}

static void mm_destroy(mm_prim *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->a) dnnl_memory_destroy(p->a);
    if (p->b) dnnl_memory_destroy(p->b);
    if (p->c) dnnl_memory_destroy(p->c);
    if (p->bias_m) dnnl_memory_destroy(p->bias_m);
    p->prim = NULL, p->a = p->b = p->c = p->bias_m = NULL;
}

/* Creates p's primitive from its shape fields; false (and nothing held) when oneDNN
 * offers only its reference kernel, which is slower than the fp32 sgemm it replaces. */
static bool mm_create(mm_prim *p) {
    p->prim = NULL, p->a = p->b = p->c = p->bias_m = NULL;
    if (!dnnl_ready()) return false;
    dnnl_memory_desc_t a_md, b_md, c_md, bias_md;
    dnnl_dims_t ad = {p->M, p->K}, bd = {p->K, p->N}, cd = {p->M, p->N}, biasd = {1, p->N}, biass = {p->N, 1};
    dnnl_dims_t as = {p->ta ? 1 : p->lda, p->ta ? p->lda : 1}, bs = {p->tb ? 1 : p->ldb, p->tb ? p->ldb : 1};
    dnnl_dims_t cs = {p->ldc, 1};
    dnnl_matmul_desc_t md;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    dnnl_primitive_desc_t pd = NULL;
    bool ok = dnnl_memory_desc_init_by_strides(&a_md, 2, ad, p->dt, as) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&b_md, 2, bd, p->dt, bs) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&c_md, 2, cd, dnnl_f32, cs) == dnnl_success &&
              dnnl_memory_desc_init_by_strides(&bias_md, 2, biasd, dnnl_f32, biass) == dnnl_success &&
              dnnl_matmul_desc_init(&md, &a_md, &b_md, p->bias ? &bias_md : NULL, &c_md) == dnnl_success &&
              dnnl_primitive_attr_create(&attr) == dnnl_success;
    if (ok && p->alpha != 1.0f) ok = dnnl_primitive_attr_set_output_scales(attr, 1, 0, &p->alpha) == dnnl_success;
    if (ok && p->beta != 0.0f)
        ok = dnnl_post_ops_create(&po) == dnnl_success && dnnl_post_ops_append_sum(po, p->beta) == dnnl_success &&
             dnnl_primitive_attr_set_post_ops(attr, po) == dnnl_success;
    ok = ok && dnnl_primitive_desc_create(&pd, &md, attr, eng, NULL) == dnnl_success;
    const char *name = "ref";
    if (ok) dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    ok = ok && !strstr(name, "ref") && dnnl_primitive_create(&p->prim, pd) == dnnl_success &&
         dnnl_memory_create(&p->a, &a_md, eng, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->b, &b_md, eng, DNNL_MEMORY_NONE) == dnnl_success &&
         dnnl_memory_create(&p->c, &c_md, eng, DNNL_MEMORY_NONE) == dnnl_success &&
         (!p->bias || dnnl_memory_create(&p->bias_m, &bias_md, eng, DNNL_MEMORY_NONE) == dnnl_success);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (po) dnnl_post_ops_destroy(po);
    if (!ok) mm_destroy(p);
    return ok;
}

/* The cache of every shape met (a training run has ~20 bf16 shapes, decoding a few f32
 * ones; test suites more): when full, entries are replaced round robin. */
#define MM_CACHE 160
static mm_prim mm_cache[MM_CACHE];
static int mm_n, mm_victim;

/* key's primitive, created on first use; NULL when that shape has none (the caller
 * keeps its fp32 route). A full cache never evicts keep (the other half of a split
 * product, still to run). */
static mm_prim *mm_get_keep(const mm_prim *key, const mm_prim *keep) {
    for (int i = 0; i < mm_n; i++) {
        mm_prim *e = &mm_cache[i];
        if (e->dt == key->dt && e->M == key->M && e->N == key->N && e->K == key->K && e->lda == key->lda &&
            e->ldb == key->ldb && e->ldc == key->ldc && e->ta == key->ta && e->tb == key->tb && e->bias == key->bias &&
            e->alpha == key->alpha && e->beta == key->beta)
            return e->prim ? e : NULL;
    }
    mm_prim *p = mm_n < MM_CACHE ? &mm_cache[mm_n++] : &mm_cache[mm_victim++ % MM_CACHE];
    if (p == keep) p = &mm_cache[mm_victim++ % MM_CACHE];
    mm_destroy(p);
    *p = *key;
    return mm_create(p) ? p : NULL;
}

static mm_prim *mm_get(const mm_prim *key) { return mm_get_keep(key, NULL); }

/* C = the product of p's shape, on these operands. */
static void mm_exec(mm_prim *p, const void *A, const void *B, const float *bias, float *C) {
    /* oneDNN takes a non-const handle; the primitive only reads src, weights and bias */
    dnnl_memory_set_data_handle(p->a, (void *)(uintptr_t)A);
    dnnl_memory_set_data_handle(p->b, (void *)(uintptr_t)B);
    dnnl_memory_set_data_handle(p->c, C);
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b}, {DNNL_ARG_DST, p->c}};
    int nargs = 3;
    if (p->bias) {
        dnnl_memory_set_data_handle(p->bias_m, (void *)(uintptr_t)bias);
        args[nargs++] = (dnnl_exec_arg_t){DNNL_ARG_BIAS, p->bias_m};
    }
    if (dnnl_primitive_execute(p->prim, stream, nargs, args) != dnnl_success)
        plm_die("oneDNN matmul failed (M=%d N=%d K=%d)", p->M, p->N, p->K);
    dnnl_stream_wait(stream);
}

const char *plm_bf16_isa(void) {
    static int known = -1;
    static const char *isa;
    if (known >= 0) return isa;
    known = 0;
    if (!dnnl_ready()) return NULL;
    dnnl_cpu_isa_t e = dnnl_get_effective_cpu_isa();
    mm_prim probe = {.dt = dnnl_bf16, .M = 32, .N = 32, .K = 32, .ldc = 32, .lda = 32, .ldb = 32, .alpha = 1.0f};
    if ((e & dnnl_cpu_isa_avx512_core_bf16) == dnnl_cpu_isa_avx512_core_bf16 && mm_create(&probe)) {
        isa = (e & dnnl_cpu_isa_avx512_core_amx) == dnnl_cpu_isa_avx512_core_amx ? "avx512_core_amx (AMX-BF16)"
                                                                                 : "avx512_core_bf16 (AVX512_BF16)";
        mm_destroy(&probe);
    }
    known = 1;
    return isa;
}

bool plm_gemm_set_bf16(bool on) {
    if (on && !plm_bf16_isa()) {
        static bool said;
        if (!said)
            fprintf(stderr,
                    "plm: this CPU has no bf16 matmul in oneDNN (needs AVX512_BF16 or AMX-BF16): running fp32\n");
        said = true;
        on = false;
    }
    bf16_on = on;
    return on;
}

bool plm_gemm_bf16(void) { return bf16_on; }

/* A grow-only bf16 buffer (one per operand, one for the hold; the master thread only). */
static uint16_t *bf16_buf(int which, size_t n) {
    static uint16_t *buf[3];
    static size_t cap[3];
    if (n > cap[which]) {
        free(buf[which]);
        buf[which] = plm_aligned_alloc(n * sizeof(uint16_t));
        cap[which] = n;
    }
    return buf[which];
}

/* Dense bf16 copy of a rows x cols matrix with row stride ld. */
static uint16_t *convert(int which, const float *x, int rows, int cols, int ld) {
    uint16_t *y = bf16_buf(which, (size_t)rows * cols);
#pragma omp parallel for schedule(static) if ((size_t)rows * cols > 16384)
    for (int r = 0; r < rows; r++) {
        const float *s = x + (size_t)r * ld;
        uint16_t *d = y + (size_t)r * cols;
#pragma omp simd
        for (int c = 0; c < cols; c++) d[c] = to_bf16(s[c]);
    }
    return y;
}

/* ---------------------------------------------------------------- mirrors */

/* Why: converting costs a read of 4 and a write of 2 bytes per element, comparable to
 * the bf16 product itself at these widths (30% of a tiny bf16 step in the profile), and
 * the same matrices were converted again and again: each weight in forward and in
 * backward, each output gradient for dX and again for dW, each linear input in forward
 * and again for dW. AdamW now writes the weights' bf16 copy in its pass (model.h
 * params16), a layer's backward holds its output gradient's copy for both products and
 * its forward keeps its input's for dW (linear.c), and here every operand looks for
 * them. */

#define MIRRORS 64
static plm_bf16_mirror *mirrors[MIRRORS];
static int num_mirrors;
static plm_bf16_mirror held; /* plm_gemm_bf16_hold's: fresh while base != NULL */
static bool held_prefilled;  /* held was filled by plm_gemm_bf16_hold_begin's caller */
static int reuse_on = -1;    /* -1: PLM_BF16_REUSE not read yet */
static long count_reused, count_converted;

void plm_gemm_mirror_add(plm_bf16_mirror *s) {
    /* a full table only costs speed: an unregistered mirror is never filled nor read */
    if (num_mirrors < MIRRORS && !plm_gemm_mirror_registered(s)) mirrors[num_mirrors++] = s;
}

void plm_gemm_mirror_remove(plm_bf16_mirror *s) {
    for (int i = 0; i < num_mirrors; i++)
        if (mirrors[i] == s) {
            mirrors[i] = mirrors[--num_mirrors];
            return;
        }
}

bool plm_gemm_mirror_registered(const plm_bf16_mirror *s) {
    for (int i = 0; i < num_mirrors; i++)
        if (mirrors[i] == s) return s->base != NULL;
    return false;
}

bool plm_gemm_bf16_reuse(void) {
    if (reuse_on < 0) {
        const char *e = getenv("PLM_BF16_REUSE");
        reuse_on = !(e && strcmp(e, "0") == 0);
    }
    return reuse_on;
}

void plm_gemm_set_bf16_reuse(bool on) { reuse_on = on; }

void plm_gemm_bf16_counts(long *reused, long *converted) {
    *reused = count_reused;
    *converted = count_converted;
}

uint16_t *plm_gemm_bf16_hold_begin(const float *x, size_t n) {
    if (!bf16_on || !plm_gemm_bf16_reuse() || n == 0 || held.base || omp_in_parallel()) return NULL;
    held = (plm_bf16_mirror){.base = x, .n = n, .w = bf16_buf(2, n)};
    held_prefilled = true;
    return held.w;
}

bool plm_gemm_bf16_hold(const float *x, size_t n) {
    if (held_prefilled && held.base == x && held.n == n) { /* rounded by hold_begin's caller */
        held_prefilled = false;
        return true;
    }
    if (!bf16_on || !plm_gemm_bf16_reuse() || n == 0 || held.base || omp_in_parallel()) return false;
    double prof_t0 = plm_prof_begin();
    uint16_t *w = bf16_buf(2, n);
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) w[i] = to_bf16(x[i]);
    plm_prof_end("bf16 conversion", prof_t0);
    held = (plm_bf16_mirror){.base = x, .n = n, .w = w};
    return true;
}

void plm_gemm_bf16_release(void) {
    held = (plm_bf16_mirror){0};
    held_prefilled = false;
}

/* Keeps: one slot per linear input pointer, fresh from plm_gemm_bf16_keep until
 * plm_gemm_bf16_keep_inputs(false). */
#define KEEPS 256
static struct keep_slot {
    plm_bf16_mirror m;
    size_t cap;
    bool prefilled; /* filled by plm_gemm_bf16_keep_begin's caller, not yet kept */
} keeps[KEEPS];
static int num_keeps;
static bool keeping;

void plm_gemm_bf16_keep_inputs(bool on) {
    keeping = on;
    if (!on)
        for (int i = 0; i < num_keeps; i++) plm_bf16_mirror_stale(&keeps[i].m), keeps[i].prefilled = false;
}

/* x's slot, made fresh for n elements (its buffer not yet written), or NULL when x is
 * not kept. */
static struct keep_slot *keep_slot(const float *x, size_t n) {
    if (!keeping || !bf16_on || !plm_gemm_bf16_reuse() || n == 0 || omp_in_parallel()) return NULL;
    struct keep_slot *k = NULL;
    for (int i = 0; i < num_keeps && !k; i++)
        if (keeps[i].m.base == x) k = &keeps[i];
    if (!k) {
        if (num_keeps == KEEPS) return NULL; /* the GEMMs round x themselves */
        k = &keeps[num_keeps++];
    }
    if (k->cap < n) { /* grow-only: once per input after the first step */
        free(k->m.w);
        k->m.w = plm_aligned_alloc(n * sizeof(uint16_t));
        k->cap = n;
    }
    k->m.base = x;
    k->m.n = n;
    k->m.w_gen = k->m.gen;
    k->prefilled = false;
    return k;
}

uint16_t *plm_gemm_bf16_keep_begin(const float *x, size_t n) {
    struct keep_slot *k = keep_slot(x, n);
    if (!k) return NULL;
    k->prefilled = true;
    return k->m.w;
}

bool plm_gemm_bf16_keep(const float *x, size_t n) {
    for (int i = 0; i < num_keeps; i++) /* rounded by keep_begin's caller */
        if (keeps[i].prefilled && keeps[i].m.base == x && keeps[i].m.n == n && keeps[i].m.w_gen == keeps[i].m.gen) {
            keeps[i].prefilled = false;
            return true;
        }
    struct keep_slot *k = keep_slot(x, n);
    if (!k) return false;
    double prof_t0 = plm_prof_begin();
    uint16_t *w = k->m.w;
#pragma omp parallel for simd schedule(static) if (n > 16384)
    for (size_t i = 0; i < n; i++) w[i] = to_bf16(x[i]);
    plm_prof_end("bf16 conversion", prof_t0);
    return true;
}

/* Candidate i of mirrored's search: the hold, the keeps, the registered mirrors. */
static const plm_bf16_mirror *candidate(int i) {
    if (i == 0) return &held;
    if (i <= num_keeps) return &keeps[i - 1].m;
    return mirrors[i - 1 - num_keeps];
}

/* The bf16 operand already made for x (rows x cols, row stride ld): from a fresh copy
 * (held, kept or a registered mirror) containing every element read, at x's offset;
 * else NULL. The check against writes behind the copy's back reads the first and last
 * element of at most 17 rows (the first, the last and 15 between): checking every row
 * read 2 cache lines per row of a vocabulary head's fp32 weight, per decoding step,
 * 8% of a gpt2-mini --bf16 decode (perf). */
static const uint16_t *mirrored(const float *x, int rows, int cols, int ld) {
    if (!plm_gemm_bf16_reuse()) return NULL;
    uintptr_t lo = (uintptr_t)x, hi = (uintptr_t)(x + (size_t)(rows - 1) * ld + cols);
    for (int i = 0; i < 1 + num_keeps + num_mirrors; i++) {
        const plm_bf16_mirror *s = candidate(i);
        if (!s->base || !s->w || lo < (uintptr_t)s->base || hi > (uintptr_t)(s->base + s->n)) continue;
        if (s->w_gen != s->gen) continue; /* stale: written since */
        const uint16_t *w = s->w + (x - s->base);
        int step = rows > 16 ? rows / 16 : 1;
        for (int r = 0; r < rows; r = r + step < rows - 1 || r == rows - 1 ? r + step : rows - 1) {
            const float *xr = x + (size_t)r * ld;
            const uint16_t *wr = w + (size_t)r * ld;
            if (wr[0] != to_bf16(xr[0]) || wr[cols - 1] != to_bf16(xr[cols - 1]))
                plm_die("internal error: the bf16 copy of a GEMM operand is stale (row %d of a %d x %d operand): "
                        "something wrote it behind the copy's back (the weights: without "
                        "plm_model_params_written(); a linear input: between forward and backward)",
                        r, rows, cols);
        }
        return w;
    }
    return NULL;
}

static bool sgemm_bf16(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                       int ldb, float beta, const float *bias, float *C, int ldc) {
    /* the operands as stored: A is [ar, ac] with row stride lda, B [br, bc] with ldb */
    int ar = ta ? K : M, ac = ta ? M : K, br = tb ? N : K, bc = tb ? K : N;
    const uint16_t *am = mirrored(A, ar, ac, lda), *bm = mirrored(B, br, bc, ldb);
    int lda16 = am ? lda : ac, ldb16 = bm ? ldb : bc; /* copies made here are dense */
    mm_prim key = {.dt = dnnl_bf16,
                   .M = M,
                   .N = N,
                   .K = K,
                   .lda = lda16,
                   .ldb = ldb16,
                   .ldc = ldc,
                   .ta = ta,
                   .tb = tb,
                   .bias = bias != NULL,
                   .alpha = alpha,
                   .beta = beta};
    /* oneDNN 2.6's AMX kernels lose up to 5x at some M that are not a multiple of 16
     * (an MLM head's 610 or 620 selected rows: ~300 GFLOP/s, against ~1600 at 608 or
     * 624), so the rows past the last multiple of 16 run as a second, small product */
    int M16 = M > 16 ? M & ~15 : M;
    key.M = M16;
    mm_prim *p = mm_get(&key), *tail = NULL;
    if (p && M16 < M) {
        key.M = M - M16;
        tail = mm_get_keep(&key, p);
        if (!tail) p = NULL;
    }
    if (!p) return false; /* this shape runs fp32 */
    count_reused += (am != NULL) + (bm != NULL);
    count_converted += (am == NULL) + (bm == NULL);
    double prof_t0 = plm_prof_begin();
    const uint16_t *a16 = am ? am : convert(0, A, ar, ac, lda);
    const uint16_t *b16 = bm ? bm : convert(1, B, br, bc, ldb);
    plm_prof_end("bf16 conversion", prof_t0);
    mm_exec(p, a16, b16, bias, C);
    if (tail) /* row M16 of op(A): row M16 of A, or its column M16 when A is transposed */
        mm_exec(tail, a16 + (ta ? (size_t)M16 : (size_t)M16 * lda16), b16, bias, C + (size_t)M16 * ldc);
    return true;
}

/* ---------------------------------------------------------------- fp32 */

/* Skinny products. Decoding runs each linear layer with M = the number of running
 * sequences. From M = 3 on, dnnl_sgemm packs the whole weight on every call, which for
 * a large weight costs more than the product; oneDNN's matmul primitive (brgemm) streams
 * it instead: measured 1.5-2x faster for an LM head of 50257 x 512 at M 4-32 and for
 * 3072 x 768 at M 8, slower on weights that fit in cache. M 1-2 stay on sgemm's GEMV. */
static bool use_skinny(bool ta, bool tb, int M, int N, int K) {
    return !ta && tb && M >= 3 && M <= 64 && N >= 2048 && (long)N * K >= (1L << 21) && !gemm_forced() &&
           !omp_in_parallel();
}

/* 2-8 rows against a weight of 2^19 floats or more go to skinny.h's kernel, which reads
 * the weight once, on every CPU with AVX2 and FMA. Measured on an AVX2 Zen 3 (where the
 * matmul primitive packs B like sgemm) and on an AVX-512 Xeon (where it is brgemm):
 * bench/README.md, "Zen 3: decoding" and "Xeon: decoding". On the Zen 3 1.2-2.1x faster
 * than oneDNN for M 2-8 on GPT-2 shapes (LM head 50257 x 512: 4.9 ms against 9.7 at M 2,
 * 7.6 against 12.3 at M 8); on the Xeon gpt2-mini decoded 1.25-1.3x faster at 4 and 8
 * sequences. Even at M 1, where sgemm's GEMV already streams the weight, and slower
 * from M 12-16 on or on smaller weights, which stay in cache.
 * PLM_GEMM_SKINNY=avx2|onednn chooses (tests, benchmarks); the default is avx2. */
static bool skinny_on_avx2(void) {
    static int choice = -1;
    if (choice < 0) {
        const char *e = getenv("PLM_GEMM_SKINNY");
        choice = !(e && strcmp(e, "onednn") == 0) && skinny_cpu_ok();
    }
    return choice;
}

static bool use_skinny_avx2(bool ta, bool tb, int M, int N, int K) {
    return !ta && tb && M >= 2 && M <= 8 && K > 0 && (long)N * K >= (1L << 19) && !gemm_forced() &&
           omp_get_level() == 0 && skinny_on_avx2();
}

/* C = A B^T (+ bias[N] on every row) + beta C through a cached f32 matmul primitive;
 * false if oneDNN has none. */
static bool sgemm_f32_matmul_t(bool ta, bool tb, int M, int N, int K, float alpha, const float *A, int lda,
                               const float *B, int ldb, float beta, const float *bias, float *C, int ldc) {
    mm_prim key = {.dt = dnnl_f32,
                   .M = M,
                   .N = N,
                   .K = K,
                   .lda = lda,
                   .ldb = ldb,
                   .ldc = ldc,
                   .ta = ta,
                   .tb = tb,
                   .bias = bias != NULL,
                   .alpha = alpha,
                   .beta = beta};
    mm_prim *p = mm_get(&key);
    if (!p) return false; /* this shape stays on sgemm */
    mm_exec(p, A, B, bias, C);
    return true;
}

/* Decoding under --bf16: 1-8 rows against a weight of 2^12 floats or more run on
 * skinny.h's bf16 kernel, which streams the weight's bf16 copy (half the bytes of the
 * fp32 weight). oneDNN's bf16 matmul streamed it slower than sgemm's fp32 GEMV, and paid
 * a fixed cost per call on small weights. Every such product takes this route, copy or
 * not (without one, both operands are rounded here), so a result never depends on
 * whether a copy was fresh. PLM_GEMM_SKINNY_BF16=0 turns it off (A/B runs). Measured in
 * bench/README.md, "Xeon: decoding". */
static bool skinny16_on(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("PLM_GEMM_SKINNY_BF16");
        on = !(e && strcmp(e, "0") == 0) && skinny_bf16_cpu_ok();
    }
    return on;
}

static bool use_skinny_bf16(bool ta, bool tb, int M, int N, int K, float alpha) {
    return bf16_on && !ta && tb && M <= 8 && K > 0 && alpha == 1.0f && (long)N * K >= (1L << 12) && !gemm_forced() &&
           omp_get_level() == 0 && skinny16_on();
}

/* C = A B^T (+ bias) + beta C in bf16, each operand from its fresh copy or rounded here. */
static void sgemm_skinny_bf16(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                              const float *bias, float *C, int ldc) {
    const uint16_t *am = mirrored(A, M, K, lda), *bm = mirrored(B, N, K, ldb);
    count_reused += (am != NULL) + (bm != NULL);
    count_converted += (am == NULL) + (bm == NULL);
    double prof_t0 = plm_prof_begin();
    const uint16_t *a16 = am ? am : convert(0, A, M, K, lda), *b16 = bm ? bm : convert(1, B, N, K, ldb);
    plm_prof_end("bf16 conversion", prof_t0);
    prof_t0 = plm_prof_begin();
    skinny_nt_bf16(M, N, K, a16, am ? lda : K, b16, bm ? ldb : K, beta, bias, C, ldc);
    plm_prof_end_flops(bias ? "gemm NT + bias skinny (bf16)" : "gemm NT skinny (bf16)", prof_t0, 2.0 * M * N * K);
}

static bool sgemm_f32_matmul(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta,
                             const float *bias, float *C, int ldc) {
    return sgemm_f32_matmul_t(false, true, M, N, K, 1.0f, A, lda, B, ldb, beta, bias, C, ldc);
}

void plm_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    /* bf16 except a GEMV on a large weight (decoding one or two sequences): sgemm's fp32
     * GEMV streams the weight at ~40 GB/s here, oneDNN's bf16 matmul at M 1 at ~13 */
    bool gemv = !trans_a && trans_b && M <= 2 && (long)N * K >= (1L << 18);
    if (use_skinny_bf16(trans_a, trans_b, M, N, K, alpha)) {
        sgemm_skinny_bf16(M, N, K, A, lda, B, ldb, beta, NULL, C, ldc);
        return;
    }
    if (bf16_on && K > 0 && !gemv && !omp_in_parallel()) {
        static const char *const route16[2][2] = {{"gemm NN (bf16)", "gemm NT (bf16)"},
                                                  {"gemm TN (bf16)", "gemm TT (bf16)"}};
        double prof_t0 = plm_prof_begin();
        bool done = sgemm_bf16(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
        plm_prof_end_flops(route16[trans_a][trans_b], prof_t0, done ? 2.0 * M * N * K : 0.0);
        if (done) return;
    }
    /* profile slots per route: [library][trans_a][trans_b] */
    static const char *const route[2][2][2] = {
        {{"gemm NN (oneDNN)", "gemm NT (oneDNN)"}, {"gemm TN (oneDNN)", "gemm TT (oneDNN)"}},
        {{"gemm NN (OpenBLAS)", "gemm NT (OpenBLAS)"}, {"gemm TN (OpenBLAS)", "gemm TT (OpenBLAS)"}}};
    if (alpha == 1.0f && use_skinny_avx2(trans_a, trans_b, M, N, K)) {
        double prof_t0 = plm_prof_begin();
        skinny_nt(M, N, K, A, lda, B, ldb, beta, NULL, C, ldc);
        plm_prof_end_flops("gemm NT skinny (AVX2)", prof_t0, 2.0 * M * N * K);
        return;
    }
    if (alpha == 1.0f && K > 0 && use_skinny(trans_a, trans_b, M, N, K)) {
        double prof_t0 = plm_prof_begin();
        bool done = sgemm_f32_matmul(M, N, K, A, lda, B, ldb, beta, NULL, C, ldc);
        plm_prof_end_flops("gemm NT skinny (oneDNN matmul)", prof_t0, done ? 2.0 * M * N * K : 0.0);
        if (done) return;
    }
    if (K > 0 && use_tn_matmul(trans_a, trans_b, M, N)) {
        double prof_t0 = plm_prof_begin();
        bool done = sgemm_f32_matmul_t(true, false, M, N, K, alpha, A, lda, B, ldb, beta, NULL, C, ldc);
        plm_prof_end_flops("gemm TN (oneDNN matmul)", prof_t0, done ? 2.0 * M * N * K : 0.0);
        if (done) return;
    }
    double prof_t0 = plm_prof_begin();
    bool blas = gemm_forced() == 1 || use_tn_openblas(trans_a, trans_b); /* PLM_GEMM=openblas */
    if (blas) {
        cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, M, N, K,
                    alpha, A, lda, B, ldb, beta, C, ldc);
    } else {
        dnnl_status_t st =
            dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        if (st != dnnl_success) plm_die("dnnl_sgemm failed (status %d) for M=%d N=%d K=%d", (int)st, M, N, K);
    }
    plm_prof_end_flops(route[blas][trans_a][trans_b], prof_t0, 2.0 * M * N * K);
}

/* PLM_GEMM_BIAS=copy|matmul: how plm_sgemm_bias runs in fp32 (default matmul), for
 * benchmarking. */
static int bias_choice = -1;

void plm_sgemm_bias(int M, int N, int K, const float *A, int lda, const float *B, int ldb, const float *bias, float *C,
                    int ldc) {
    if (M <= 0 || N <= 0) return;
    if (bias_choice < 0) {
        const char *e = getenv("PLM_GEMM_BIAS");
        bias_choice = e && strcmp(e, "copy") == 0 ? 0 : 1;
    }
    if (use_skinny_bf16(false, true, M, N, K, 1.0f)) {
        sgemm_skinny_bf16(M, N, K, A, lda, B, ldb, 0.0f, bias, C, ldc);
        return;
    }
    /* bf16 outside parallel regions: the bf16 matmul adds the bias as it writes C */
    if (bias_choice == 1 && bf16_on && K > 0 && !(M <= 2 && (long)N * K >= (1L << 18)) && !omp_in_parallel()) {
        double prof_t0 = plm_prof_begin();
        bool done = sgemm_bf16(false, true, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, bias, C, ldc);
        plm_prof_end_flops("gemm NT + bias (bf16)", prof_t0, done ? 2.0 * M * N * K : 0.0);
        if (done) return;
    }
    if (!bf16_on && use_skinny_avx2(false, true, M, N, K)) {
        double prof_t0 = plm_prof_begin();
        skinny_nt(M, N, K, A, lda, B, ldb, 0.0f, bias, C, ldc);
        plm_prof_end_flops("gemm NT skinny (AVX2)", prof_t0, 2.0 * M * N * K);
        return;
    }
    /* fp32 outside parallel regions: the matmul primitive adds the bias as it writes C.
     * M 1-2 stay on sgemm's GEMV, and M 3-64 on the route plm_sgemm picks (use_skinny) */
    bool skinny_rows = M <= 64 && !use_skinny(false, true, M, N, K);
    if (bias_choice == 1 && !bf16_on && K > 0 && M >= 3 && !skinny_rows && !gemm_forced() && !omp_in_parallel()) {
        double prof_t0 = plm_prof_begin();
        bool done = sgemm_f32_matmul(M, N, K, A, lda, B, ldb, 0.0f, bias, C, ldc);
        plm_prof_end_flops("gemm NT + bias (oneDNN matmul)", prof_t0, done ? 2.0 * M * N * K : 0.0);
        if (done) return;
    }
    /* the bias copied into every row of C, then C += A B^T */
    double prof_t0 = plm_prof_begin();
#pragma omp parallel for schedule(static) if (!omp_in_parallel())
    for (int i = 0; i < M; i++) memcpy(C + (size_t)i * ldc, bias, (size_t)N * sizeof(float));
    plm_prof_end("bias copy", prof_t0);
    plm_sgemm(false, true, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
}

/* ---------------------------------------------------------------- warm-up */

/* One product of 64 rows: from 16 on, dnnl_sgemm leaves its small-matrix path and
 * generates the kernels. oneDNN generates them once per process. */
static void *warm_up(void *arg) {
    (void)arg;
    static float a[64 * 64], b[64 * 64], c[64 * 64];
    omp_set_num_threads(1); /* this thread's setting only: the cores stay the loader's */
    dnnl_sgemm('N', 'T', 64, 64, 64, 1.0f, a, 64, b, 64, 0.0f, c, 64);
    return NULL;
}

static pthread_t warm_up_thread;
static bool warm_up_running;

void plm_gemm_warm_up_begin(void) {
    static atomic_flag started = ATOMIC_FLAG_INIT;
    if (atomic_flag_test_and_set(&started)) return;
    const char *e = getenv("PLM_GEMM_WARM_UP"); /* 0: off, for benchmarking */
    if (e && strcmp(e, "0") == 0) return;
    warm_up_running = pthread_create(&warm_up_thread, NULL, warm_up, NULL) == 0; /* else the first product pays */
}

void plm_gemm_warm_up_end(void) {
    if (!warm_up_running) return;
    pthread_join(warm_up_thread, NULL);
    warm_up_running = false;
}
