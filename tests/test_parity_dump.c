/* test_parity_dump.c - the C half of the gradient-parity suite (tests/parity.sh).
 *
 *   test_parity_dump DIR   runs every op, whole models (a post-LN BERT with MLM, a
 *                          pre-LN GPT-2 with CLM, and BERT / GPT-2 / ELECTRA with task
 *                          heads: NSP, MLM + NSP, sequence classification and regression,
 *                          token classification, QA, RTD, ELECTRA's generator +
 *                          discriminator on shared embeddings, encoder-decoders: a BERT
 *                          encoder with a BERT or GPT-2 decoder that cross-attends to it,
 *                          and their HF EncoderDecoderModel checkpoints) in fp32 and writes one safetensors
 *                          file per case into DIR: inputs, parameters, the upstream
 *                          gradient, the outputs and every gradient. tests/ref/parity.py
 *                          recomputes each case in float64 PyTorch and compares.
 *   test_parity_dump       (no argument, as tests/run.sh runs it) a self-check of the
 *                          same cases: outputs finite and every NaN poison overwritten,
 *                          dropout semantics and statistics, attention masks, determinism,
 *                          the fused self-attention bit for bit the general form,
 *                          and central finite differences in fp32 on several ops.
 *
 * Inputs are fresh uniform random numbers bounded away from zero, from a fixed seed.
 * Outputs are poisoned with NaN before each call, so an element the op forgets to write
 * shows up; accumulating gradients (+=) start at zero, except in the *_acc cases, which
 * start them at random values (dumped as init.*) to check the accumulation itself. */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "model/attention.h"
#include "model/attn_bf16.h"
#include "model/crossentropy.h"
#include "model/dropout.h"
#include "model/embedding.h"
#include "model/gelu.h"
#include "model/gemm.h"
#include "model/layernorm.h"
#include "model/linear.h"
#include "model/model.h"
#include "model/model_io.h"
#include "test.h"
#include "train/adamw.h"
#include "train/electra.h"
#include "train/safetensors.h"
#include "train/dpo.h"
#include "train/reward.h"
#include "train/ppo.h"
#include "train/rloo.h"
#include "train/sft.h"

/* ---------------------------------------------------------------- helpers */

static plm_rng R;
static const char *out_dir; /* dump mode when set */
static bool verbose;        /* self-check mode: print PASS lines too */

#define CHECK(cond, name, ...)                                                                                         \
    do {                                                                                                               \
        if (verbose || !(cond)) TEST_CHECK(cond, name, __VA_ARGS__);                                                   \
    } while (0)

/* Every buffer of a case, freed when the case ends. */
static void *owned[512];
static int num_owned;

static void *keep(void *p) {
    if (num_owned == (int)PLM_ARRAY_LEN(owned)) plm_die("test_parity_dump: too many buffers");
    owned[num_owned++] = p;
    return p;
}

static void release_all(void) {
    for (int i = 0; i < num_owned; i++) free(owned[i]);
    num_owned = 0;
}

/* Uniform in [-scale, scale] with |x| >= scale / 50: no zeros. */
static float rnd1(float scale) {
    float u;
    do u = 2.0f * plm_rng_uniform(&R) - 1.0f;
    while (fabsf(u) < 0.02f);
    return scale * u;
}

static float *frand(size_t n, float scale) {
    float *p = keep(plm_malloc(n * sizeof(float)));
    for (size_t i = 0; i < n; i++) p[i] = rnd1(scale);
    return p;
}

static float *fnan(size_t n) {
    float *p = keep(plm_malloc(n * sizeof(float)));
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static float *fzero(size_t n) { return keep(plm_calloc(n, sizeof(float))); }

static float *fcopy(const float *x, size_t n) {
    float *p = keep(plm_malloc(n * sizeof(float)));
    memcpy(p, x, n * sizeof(float));
    return p;
}

static int32_t *ialloc(size_t n) { return keep(plm_calloc(n, sizeof(int32_t))); }

static bool all_finite(const float *p, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return false;
    return true;
}

static double dot(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

__attribute__((format(printf, 1, 2))) static const char *cname(const char *fmt, ...) {
    static char buf[8][160];
    static int k;
    char *b = buf[k++ & 7];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b, sizeof buf[0], fmt, ap);
    va_end(ap);
    return b;
}

/* Checks a named output: finite everywhere, i.e. the NaN poison was overwritten. */
static void check_written(const char *cas, const char *what, const float *p, size_t n) {
    CHECK(all_finite(p, n), cname("parity_self.%s.%s_written", cas, what), "non-finite value (poison left?)");
}

/* ---------------------------------------------------------------- dump */

static plm_st_writer W;
static char case_name[64];

static void dump_begin(const char *name, const char *op) {
    snprintf(case_name, sizeof case_name, "%s", name);
    plm_st_writer_init(&W);
    plm_st_add_meta(&W, "op", op);
}

static void meta(const char *key, const char *fmt, ...) {
    char v[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v, sizeof v, fmt, ap);
    va_end(ap);
    plm_st_add_meta(&W, key, v);
}

static void put_f32(const char *name, const float *p, int ndim, ...) {
    int64_t shape[8];
    va_list ap;
    va_start(ap, ndim);
    for (int d = 0; d < ndim; d++) shape[d] = va_arg(ap, int);
    va_end(ap);
    plm_st_add_copy_f32(&W, keep(plm_strdup(name)), ndim, shape, p);
}

static void put_i32(const char *name, const int32_t *p, int ndim, ...) {
    int64_t shape[8];
    size_t n = 1;
    va_list ap;
    va_start(ap, ndim);
    for (int d = 0; d < ndim; d++) n *= (size_t)(shape[d] = va_arg(ap, int));
    va_end(ap);
    int32_t *c = keep(plm_malloc(n * sizeof(int32_t)));
    memcpy(c, p, n * sizeof(int32_t));
    plm_st_add(&W, keep(plm_strdup(name)), PLM_DT_I32, ndim, shape, c);
}

static void put_f64(const char *name, double v) {
    double *c = keep(plm_malloc(sizeof(double)));
    *c = v;
    int64_t shape[1] = {1};
    plm_st_add(&W, keep(plm_strdup(name)), PLM_DT_F64, 1, shape, c);
}

static void dump_end(void) {
    if (out_dir) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.safetensors", out_dir, case_name);
        if (plm_st_write(&W, path) != 0) {
            printf("FAIL parity_dump.%s: cannot write %s: %s\n", case_name, path, plm_last_error());
            test_failures++;
        }
    }
    plm_st_writer_free(&W);
    release_all();
}

/* ---------------------------------------------------------------- finite differences */

/* Central differences of the scalar f at `samples` coordinates of x, against the analytic
 * gradient g: passes when ||fd - g|| <= tol * ||g|| over the sampled coordinates. */
typedef double (*objective_fn)(void *ctx);

static void fd_check(const char *name, objective_fn f, void *ctx, float *x, const float *g, size_t n, int samples,
                     float h, double tol) {
    double num = 0.0, den = 0.0;
    for (int s = 0; s < samples; s++) {
        size_t i = plm_rng_below(&R, (uint32_t)n);
        float x0 = x[i];
        x[i] = x0 + h;
        double fp = f(ctx);
        x[i] = x0 - h;
        double fm = f(ctx);
        x[i] = x0;
        double fd = (fp - fm) / (2.0 * ((double)(x0 + h) - (double)x0));
        num += (fd - g[i]) * (fd - g[i]);
        den += (double)g[i] * g[i];
    }
    double rel = sqrt(num) / (sqrt(den) + 1e-30);
    CHECK(rel <= tol, cname("parity_self.fd.%s", name), "finite-difference relerr %.3g > %.3g", rel, tol);
}

/* ---------------------------------------------------------------- ops */

/* with_types: a segment table; pass_types: type ids given (else NULL = all segment 0). */
static void case_embedding(const char *name, bool with_types, bool pass_types, int pos_offset, int padding_idx) {
    int B = 3, T = 7, C = 10, V = 11, P = 12, TT = 2;
    dump_begin(name, "embedding");
    float *wte = frand((size_t)V * C, 1.0f), *wpe = frand((size_t)P * C, 1.0f);
    float *wtt = with_types ? frand((size_t)TT * C, 1.0f) : NULL;
    int32_t *ids = ialloc((size_t)B * T), *tt = with_types && pass_types ? ialloc((size_t)B * T) : NULL;
    for (int i = 0; i < B * T; i++) {
        ids[i] = (int32_t)plm_rng_below(&R, V);
        if (tt) tt[i] = (int32_t)plm_rng_below(&R, TT);
    }
    if (padding_idx >= 0) ids[2] = ids[9] = ids[T * B - 1] = padding_idx; /* some lookups of the padding row */
    float *out = fnan((size_t)B * T * C), *dout = frand((size_t)B * T * C, 1.0f);
    embedding_forward(out, ids, tt, NULL, wte, wpe, wtt, B, T, C, pos_offset);
    float *dwte = fzero((size_t)V * C), *dwpe = fzero((size_t)P * C), *dwtt = with_types ? fzero((size_t)TT * C) : NULL;
    embedding_backward(dwte, dwpe, dwtt, dout, ids, tt, NULL, B, T, C, pos_offset, padding_idx);
    check_written(name, "out", out, (size_t)B * T * C);
    if (padding_idx >= 0) {
        bool zero = true;
        for (int c = 0; c < C; c++) zero &= dwte[(size_t)padding_idx * C + c] == 0.0f;
        CHECK(zero, cname("parity_self.%s.padding_row_no_grad", name), "padding_idx row got a gradient");
    }
    meta("B", "%d", B), meta("T", "%d", T), meta("C", "%d", C);
    meta("pos_offset", "%d", pos_offset), meta("padding_idx", "%d", padding_idx);
    put_f32("wte", wte, 2, V, C), put_f32("wpe", wpe, 2, P, C), put_i32("ids", ids, 2, B, T);
    if (with_types) put_f32("wtt", wtt, 2, TT, C);
    if (tt) put_i32("type_ids", tt, 2, B, T);
    put_f32("out", out, 3, B, T, C), put_f32("dout", dout, 3, B, T, C);
    put_f32("grad.wte", dwte, 2, V, C), put_f32("grad.wpe", dwpe, 2, P, C);
    if (with_types) put_f32("grad.wtt", dwtt, 2, TT, C);
    dump_end();
}

typedef struct {
    float *out, *mean, *rstd, *inp, *w, *b, *dout;
    int N, C;
    float eps;
} ln_ctx;

static double ln_objective(void *p) {
    ln_ctx *c = p;
    layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, c->eps);
    return dot(c->out, c->dout, (size_t)c->N * c->C);
}

static void case_layernorm(const char *name, bool accumulate) {
    int N = 21, C = 24;
    float eps = 1e-5f;
    dump_begin(name, "layernorm");
    /* rows with an offset and a spread, as LayerNorm inputs have */
    float *inp = frand((size_t)N * C, 1.5f);
    for (int i = 0; i < N; i++)
        for (int c = 0; c < C; c++) inp[(size_t)i * C + c] += 0.3f * (float)(i % 5);
    float *w = frand(C, 1.0f), *b = frand(C, 1.0f), *dout = frand((size_t)N * C, 1.0f);
    for (int c = 0; c < C; c++) w[c] += 1.0f;
    float *out = fnan((size_t)N * C), *mean = fnan(N), *rstd = fnan(N);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C, eps);
    float *dinp = accumulate ? frand((size_t)N * C, 1.0f) : fnan((size_t)N * C);
    float *dw = accumulate ? frand(C, 1.0f) : fzero(C), *db = accumulate ? frand(C, 1.0f) : fzero(C);
    if (accumulate)
        put_f32("init.grad.inp", dinp, 2, N, C), put_f32("init.grad.weight", dw, 1, C),
            put_f32("init.grad.bias", db, 1, C);
    layernorm_backward(dinp, dw, db, dout, inp, w, mean, rstd, N, C, accumulate);
    check_written(name, "out", out, (size_t)N * C);
    check_written(name, "mean", mean, N), check_written(name, "rstd", rstd, N);
    check_written(name, "grad_inp", dinp, (size_t)N * C);
    check_written(name, "grad_weight", dw, C);
    meta("N", "%d", N), meta("C", "%d", C), meta("eps", "%.9g", eps), meta("accumulate", "%d", accumulate);
    put_f32("inp", inp, 2, N, C), put_f32("weight", w, 1, C), put_f32("bias", b, 1, C);
    put_f32("out", out, 2, N, C), put_f32("mean", mean, 1, N), put_f32("rstd", rstd, 1, N);
    put_f32("dout", dout, 2, N, C);
    put_f32("grad.inp", dinp, 2, N, C), put_f32("grad.weight", dw, 1, C), put_f32("grad.bias", db, 1, C);
    if (verbose && !accumulate) {
        float *g_inp = fcopy(dinp, (size_t)N * C), *g_w = fcopy(dw, C);
        ln_ctx ctx = {fnan((size_t)N * C), fnan(N), fnan(N), inp, w, b, dout, N, C, eps};
        fd_check("layernorm_inp", ln_objective, &ctx, inp, g_inp, (size_t)N * C, 24, 1e-2f, 2e-2);
        fd_check("layernorm_weight", ln_objective, &ctx, w, g_w, C, 12, 1e-2f, 2e-2);
    }
    dump_end();
}

static void case_linear(const char *name, bool with_bias, bool accumulate) {
    int N = 19, C = 24, OC = 17;
    dump_begin(name, "linear");
    float *inp = frand((size_t)N * C, 1.0f), *w = frand((size_t)OC * C, 0.5f), *b = with_bias ? frand(OC, 1.0f) : NULL;
    float *dout = frand((size_t)N * OC, 1.0f), *out = fnan((size_t)N * OC);
    linear_forward(out, inp, w, b, N, C, OC);
    float *dinp = accumulate ? frand((size_t)N * C, 1.0f) : fnan((size_t)N * C);
    float *dw = accumulate ? frand((size_t)OC * C, 1.0f) : fzero((size_t)OC * C);
    float *db = with_bias ? (accumulate ? frand(OC, 1.0f) : fzero(OC)) : NULL;
    if (accumulate) {
        put_f32("init.grad.inp", dinp, 2, N, C), put_f32("init.grad.weight", dw, 2, OC, C);
        if (with_bias) put_f32("init.grad.bias", db, 1, OC);
    }
    linear_backward(dinp, dw, db, dout, inp, w, N, C, OC, accumulate);
    check_written(name, "out", out, (size_t)N * OC);
    check_written(name, "grad_inp", dinp, (size_t)N * C);
    meta("N", "%d", N), meta("C", "%d", C), meta("OC", "%d", OC), meta("accumulate", "%d", accumulate);
    put_f32("inp", inp, 2, N, C), put_f32("weight", w, 2, OC, C);
    if (with_bias) put_f32("bias", b, 1, OC), put_f32("grad.bias", db, 1, OC);
    put_f32("out", out, 2, N, OC), put_f32("dout", dout, 2, N, OC);
    put_f32("grad.inp", dinp, 2, N, C), put_f32("grad.weight", dw, 2, OC, C);
    dump_end();
}

typedef struct {
    float *out, *inp, *dout;
    size_t n;
    plm_gelu_kind kind;
} gelu_ctx;

static double gelu_objective(void *p) {
    gelu_ctx *c = p;
    gelu_forward(c->out, c->inp, c->n, c->kind);
    return dot(c->out, c->dout, c->n);
}

static void case_gelu(const char *name, plm_gelu_kind kind) {
    size_t n = 301;
    dump_begin(name, "gelu");
    float *inp = frand(n, 5.0f), *dout = frand(n, 1.0f), *out = fnan(n), *dinp = fnan(n);
    gelu_forward(out, inp, n, kind);
    gelu_backward(dinp, inp, dout, n, kind);
    /* dinp may alias dout */
    float *inplace = fcopy(dout, n);
    gelu_backward(inplace, inp, inplace, n, kind);
    check_written(name, "out", out, n), check_written(name, "grad_inp", dinp, n);
    CHECK(memcmp(inplace, dinp, n * sizeof(float)) == 0, cname("parity_self.%s.backward_in_place", name),
          "in-place backward differs");
    meta("kind", "%s", kind == PLM_GELU_ERF ? "erf" : "tanh");
    put_f32("inp", inp, 1, (int)n), put_f32("out", out, 1, (int)n), put_f32("dout", dout, 1, (int)n);
    put_f32("grad.inp", dinp, 1, (int)n);
    if (verbose) {
        float *g = fcopy(dinp, n);
        gelu_ctx ctx = {fnan(n), inp, dout, n, kind};
        fd_check(name, gelu_objective, &ctx, inp, g, n, 40, 1e-2f, 2e-2);
    }
    dump_end();
}

/* The dropout keep-mask with its scale, as attention.c and dropout.c draw it. */
static float *drop_mask(size_t n, float p, uint64_t key, size_t base) {
    float *m = keep(plm_malloc(n * sizeof(float)));
    for (size_t i = 0; i < n; i++) m[i] = plm_hash_uniform(key, base + i) >= p ? 1.0f : 0.0f;
    return m;
}

static void case_residual(const char *name, float p) {
    size_t n = 3 * 13 * 24;
    uint64_t key = 0xabc123;
    dump_begin(name, "residual");
    float *res = frand(n, 1.0f), *x = frand(n, 1.0f), *out = fnan(n), *dout = frand(n, 1.0f);
    residual_dropout_forward(out, res, x, n, p, key);
    /* Backward of out = res + drop(x) as model.c runs it: the upstream gradient buffer
     * g stays in place as dres (identity path) while dropout_backward writes dx into its
     * own buffer (p == 0: dx is g itself). The dumped grad.res is g after that, so a
     * backward that clobbered the residual gradient would show. */
    float *g = fcopy(dout, n), *dx = g;
    if (p > 0.0f) dropout_backward(dx = fnan(n), g, n, p, key);
    check_written(name, "out", out, n), check_written(name, "grad_x", dx, n);
    /* aliasing: out may be res or x */
    float *a = fcopy(res, n), *bx = fcopy(x, n), *ref = fnan(n);
    residual_dropout_forward(a, a, x, n, p, key);
    residual_dropout_forward(bx, res, bx, n, p, key);
    dropout_forward(ref, x, n, p, key);
    for (size_t i = 0; i < n; i++) ref[i] += res[i];
    CHECK(!memcmp(a, out, n * 4) && !memcmp(bx, out, n * 4), cname("parity_self.%s.aliasing", name),
          "in-place results differ");
    CHECK(!memcmp(ref, out, n * 4), cname("parity_self.%s.equals_res_plus_dropout", name),
          "differs from res + dropout_forward(x)");
    meta("p", "%.9g", p);
    put_f32("res", res, 1, (int)n), put_f32("x", x, 1, (int)n), put_f32("out", out, 1, (int)n);
    put_f32("mask", drop_mask(n, p, key, 0), 1, (int)n);
    put_f32("dout", dout, 1, (int)n), put_f32("grad.res", g, 1, (int)n), put_f32("grad.x", dx, 1, (int)n);
    dump_end();
}

static void case_dropout(const char *name, float p) {
    size_t n = 4096;
    uint64_t key = plm_hash_combine(42, 7);
    dump_begin(name, "dropout");
    float *x = frand(n, 1.0f), *out = fnan(n), *dout = frand(n, 1.0f), *dx = fnan(n);
    dropout_forward(out, x, n, p, key);
    dropout_backward(dx, dout, n, p, key);
    check_written(name, "out", out, n), check_written(name, "grad_x", dx, n);
    float scale = p > 0.0f ? 1.0f / (1.0f - p) : 1.0f;
    bool ok = true;
    for (size_t i = 0; i < n; i++) {
        bool kept = p <= 0.0f || plm_hash_uniform(key, i) >= p;
        ok &= out[i] == (kept ? (p > 0.0f ? x[i] * scale : x[i]) : 0.0f);
        ok &= dx[i] == (kept ? (p > 0.0f ? dout[i] * scale : dout[i]) : 0.0f);
    }
    CHECK(ok, cname("parity_self.%s.mask_and_scale", name),
          "forward/backward is not x * mask / (1 - p) with the same mask");
    if (p == 0.0f)
        CHECK(!memcmp(out, x, n * 4) && !memcmp(dx, dout, n * 4), cname("parity_self.%s.identity", name),
              "p = 0 is not the identity");
    meta("p", "%.9g", p);
    put_f32("x", x, 1, (int)n), put_f32("out", out, 1, (int)n), put_f32("mask", drop_mask(n, p, key, 0), 1, (int)n);
    put_f32("dout", dout, 1, (int)n), put_f32("grad.x", dx, 1, (int)n);
    dump_end();
}

/* The bias gradients fused into the backward pass that makes dout (linear.h), with the
 * forward as the backbone runs it (the GEMM adds the bias):
 *   pre = x + bias, out = act(pre);  dx = dout * act'(pre), dbias += sum_rows dx
 * (gelu_forward_dact, gelu_backward_dact_colsum). N = 70 rows is three chunks of the column sums; I odd.
 * Self-check: the bits of gelu_backward then colsum_accumulate. */
static void case_bias_gelu(const char *name, plm_gelu_kind kind) {
    int N = 70, I = 45;
    size_t n = (size_t)N * I;
    dump_begin(name, "bias_gelu");
    float *x = frand(n, 4.0f), *b = frand(I, 1.0f), *dout = frand(n, 1.0f);
    float *pre = fnan(n), *out = fnan(n), *dx = fnan(n), *db = frand(I, 1.0f), *db0 = fcopy(db, I);
    for (int r = 0; r < N; r++)
        for (int i = 0; i < I; i++) pre[(size_t)r * I + i] = x[(size_t)r * I + i] + b[i];
    float *dact = fcopy(pre, n); /* the backbone's buffer: pre, then act'(pre) */
    gelu_forward_dact(out, NULL, dact, n, kind);
    gelu_backward_dact_colsum(dx, NULL, dact, dout, N, I, kind, db);
    check_written(name, "out", out, n), check_written(name, "grad_inp", dx, n);
    float *out2 = fnan(n), *dx2 = fnan(n), *db2 = fcopy(db0, I);
    gelu_forward(out2, pre, n, kind);
    gelu_backward(dx2, pre, dout, n, kind);
    colsum_accumulate(db2, dx2, N, I);
    CHECK(!memcmp(out, out2, n * 4) && !memcmp(dx, dx2, n * 4) && !memcmp(db, db2, I * 4),
          cname("parity_self.%s.fused_equals_unfused", name),
          "differs from gelu_forward, gelu_backward then colsum_accumulate");
    /* dinp may alias dout */
    float *inplace = fcopy(dout, n), *db3 = fcopy(db0, I);
    gelu_backward_dact_colsum(inplace, NULL, dact, inplace, N, I, kind, db3);
    CHECK(!memcmp(inplace, dx, n * 4) && !memcmp(db3, db, I * 4), cname("parity_self.%s.backward_in_place", name),
          "in-place backward differs");
    meta("kind", "%s", kind == PLM_GELU_ERF ? "erf" : "tanh");
    put_f32("inp", x, 2, N, I), put_f32("bias", b, 1, I), put_f32("pre", pre, 2, N, I), put_f32("out", out, 2, N, I);
    put_f32("dout", dout, 2, N, I), put_f32("init.grad.bias", db0, 1, I);
    put_f32("grad.inp", dx, 2, N, I), put_f32("grad.bias", db, 1, I);
    dump_end();
}

/* out = res + dropout(x + bias) (the GEMM adds the bias, then residual_dropout_forward)
 * and its backward as the backbone runs it: g = dout stays as grad.res, dx =
 * dropout_backward(g) (g itself when p == 0) with the bias gradient summed on the way
 * (dropout_backward_colsum). Self-check: the bits of dropout_backward then
 * colsum_accumulate. */
static void case_bias_residual(const char *name, float p) {
    int N = 70, C = 29;
    size_t n = (size_t)N * C;
    uint64_t key = 0x5eed77;
    dump_begin(name, "bias_residual");
    float *res = frand(n, 1.0f), *x = frand(n, 1.0f), *b = frand(C, 1.0f), *dout = frand(n, 1.0f), *out = fnan(n);
    float *db = frand(C, 1.0f), *db0 = fcopy(db, C), *xb = fnan(n);
    for (int r = 0; r < N; r++)
        for (int c = 0; c < C; c++) xb[(size_t)r * C + c] = x[(size_t)r * C + c] + b[c];
    residual_dropout_forward(out, res, xb, n, p, key);
    float *g = fcopy(dout, n), *dx = p > 0.0f ? fnan(n) : g;
    dropout_backward_colsum(dx, g, N, C, p, key, db);
    check_written(name, "out", out, n), check_written(name, "grad_x", dx, n);
    float *dx2 = fnan(n), *db2 = fcopy(db0, C);
    dropout_backward(dx2, dout, n, p, key);
    colsum_accumulate(db2, dx2, N, C);
    CHECK(!memcmp(dx2, dx, n * 4) && !memcmp(db2, db, C * 4) && !memcmp(g, dout, n * 4),
          cname("parity_self.%s.backward_equals_unfused", name),
          "differs from dropout_backward then colsum_accumulate (or the residual gradient changed)");
    meta("p", "%.9g", p);
    put_f32("res", res, 2, N, C), put_f32("x", x, 2, N, C), put_f32("bias", b, 1, C), put_f32("out", out, 2, N, C);
    put_f32("mask", drop_mask(n, p, key, 0), 2, N, C), put_f32("dout", dout, 2, N, C);
    put_f32("init.grad.bias", db0, 1, C);
    put_f32("grad.res", g, 2, N, C), put_f32("grad.x", dx, 2, N, C), put_f32("grad.bias", db, 1, C);
    dump_end();
}

/* Dropout statistics over many elements: the kept fraction is 1 - p within 5 sigma, the
 * mean is preserved (inverted dropout), masks differ between keys and are reproducible. */
static void dropout_statistics(void) {
    size_t n = 1 << 20;
    float p = 0.1f;
    float *ones = keep(plm_malloc(n * sizeof(float))), *o1 = fnan(n), *o2 = fnan(n), *o3 = fnan(n);
    for (size_t i = 0; i < n; i++) ones[i] = 1.0f;
    dropout_forward(o1, ones, n, p, 11);
    dropout_forward(o2, ones, n, p, 11);
    dropout_forward(o3, ones, n, p, 12);
    size_t kept = 0, same = 0;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        kept += o1[i] != 0.0f;
        sum += o1[i];
        same += (o1[i] != 0.0f) == (o3[i] != 0.0f);
    }
    double frac = (double)kept / n, sigma = sqrt(p * (1.0 - p) / n);
    CHECK(fabs(frac - (1.0 - p)) < 5 * sigma, "parity_self.dropout.keep_rate", "kept %.5f, want %.5f +- %.5f", frac,
          1.0 - p, 5 * sigma);
    CHECK(fabs(sum / n - 1.0) < 5 * sigma / (1.0 - p) + 1e-6, "parity_self.dropout.mean_preserved", "mean %.5f, want 1",
          sum / n);
    CHECK(!memcmp(o1, o2, n * 4), "parity_self.dropout.reproducible", "same key gave different masks");
    /* independent masks agree on p^2 + (1-p)^2 of the elements */
    double agree = (double)same / n, want = p * p + (1 - p) * (1 - p);
    CHECK(fabs(agree - want) < 0.01, "parity_self.dropout.keys_independent", "agreement %.4f, want %.4f", agree, want);
    release_all();
}

typedef struct {
    float *out, *att, *qkv, *dout;
    const uint8_t *mask;
    int B, T, C, NH;
    bool causal;
} attn_ctx;

static double attn_objective(void *p) {
    attn_ctx *c = p;
    attention_forward(c->out, c->att, c->qkv, c->mask, c->B, c->T, c->C, c->NH, c->causal, 0.0f, 0);
    return dot(c->out, c->dout, (size_t)c->B * c->T * c->C);
}

/* lens: each sequence's real length as a fraction of T (padding after it). T > 64 and
 * > 128 cross attention.c's query and key blocks. */
static void case_attention_width(const char *name, bool causal, bool padded, float p, int T, int C, int NH) {
    int B = 3;
    int lens[3] = {T, (T * 9 + 12) / 13, (T * 4 + 12) / 13};
    uint64_t key = 0x5eed;
    dump_begin(name, "attention");
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = attention_saved_floats(B, NH, T, T, C / NH);
    size_t nlse = (size_t)B * NH * T;
    float *qkv = frand(nq, 1.5f), *dout = frand(no, 1.0f), *out = fnan(no), *att = fnan(na), *dqkv = fnan(nq);
    uint8_t *mask = NULL;
    int32_t *mask32 = ialloc((size_t)B * T);
    if (padded) {
        mask = keep(plm_malloc((size_t)B * T));
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) mask[b * T + t] = t < lens[b];
    }
    for (int i = 0; i < B * T; i++) mask32[i] = mask ? mask[i] : 1;
    attention_forward(out, att, qkv, mask, B, T, C, NH, causal, p, key);
    attention_backward(dqkv, dout, qkv, att, B, T, C, NH, p, key);
    check_written(name, "out", out, no), check_written(name, "att", att, na);
    check_written(name, "grad_qkv", dqkv, nq);
    /* the qkv bias gradient summed in the same pass (from a random start): dqkv unchanged */
    float *dqkv2 = fnan(nq), *db = frand(3 * (size_t)C, 1.0f), *db0 = fcopy(db, 3 * (size_t)C);
    attention_backward_qkv_bias(dqkv2, dout, qkv, att, B, T, C, NH, p, key, db);
    CHECK(!memcmp(dqkv2, dqkv, nq * 4), cname("parity_self.%s.bias_variant_same_grad", name),
          "attention_backward_qkv_bias changes dqkv");
    /* every row here sees at least key 0: a finite log-sum-exp */
    CHECK(all_finite(att, nlse), cname("parity_self.%s.lse_finite", name), "a row's log-sum-exp is not finite");
    meta("B", "%d", B), meta("T", "%d", T), meta("C", "%d", C), meta("NH", "%d", NH);
    meta("causal", "%d", causal), meta("p", "%.9g", p);
    put_f32("qkv", qkv, 3, B, T, 3 * C), put_i32("attention_mask", mask32, 2, B, T);
    if (p > 0.0f) put_f32("dropmask", drop_mask((size_t)B * NH * T * T, p, key, 0), 4, B, NH, T, T);
    put_f32("out", out, 3, B, T, C), put_f32("lse", att, 3, B, NH, T), put_f32("dout", dout, 3, B, T, C);
    put_f32("grad.qkv", dqkv, 3, B, T, 3 * C);
    put_f32("init.grad.qkv_bias", db0, 1, 3 * C), put_f32("grad.qkv_bias", db, 1, 3 * C);
    if (verbose && p == 0.0f && T < 64) {
        float *g = fcopy(dqkv, nq);
        attn_ctx ctx = {fnan(no), fnan(na), qkv, dout, mask, B, T, C, NH, causal};
        fd_check(name, attn_objective, &ctx, qkv, g, nq, 40, 1e-2f, 2e-2);
    }
    dump_end();
}

static void case_attention(const char *name, bool causal, bool padded, float p, int T) {
    case_attention_width(name, causal, padded, p, T, 24, 3);
}

/* Packed documents (seq_idx, sft --packing): row 0 holds documents of 1, (T - 1) / 2 and
 * the rest of the tokens, row 1 two of T / 3 around one of length 1, then padding. A
 * query sees only its own document's keys; a padding query sees nothing (lse +inf,
 * output and gradients 0). */
static void case_attention_docs(const char *name, bool causal, float p, int T) {
    int B = 2, C = 24, NH = 3;
    int lens[2][4] = {{1, (T - 1) / 2, T - 1 - (T - 1) / 2, 0}, {T / 3, 1, T / 3, 0}};
    uint64_t key = 0xd0c5;
    dump_begin(name, "attention");
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = attention_saved_floats(B, NH, T, T, C / NH);
    float *qkv = frand(nq, 1.5f), *dout = frand(no, 1.0f), *out = fnan(no), *att = fnan(na), *dqkv = fnan(nq);
    uint8_t *mask = keep(plm_malloc((size_t)B * T));
    int32_t *mask32 = ialloc((size_t)B * T), *seq = ialloc((size_t)B * T);
    for (int b = 0; b < B; b++) {
        int t = 0, k = 0;
        for (; lens[b][k] > 0; k++)
            for (int j = 0; j < lens[b][k]; j++, t++) seq[b * T + t] = k, mask[b * T + t] = 1;
        for (; t < T; t++) seq[b * T + t] = k, mask[b * T + t] = 0;
    }
    for (int i = 0; i < B * T; i++) mask32[i] = mask[i];
    attention_forward_docs(out, att, qkv, mask, seq, B, T, C, NH, causal, p, key);
    attention_backward(dqkv, dout, qkv, att, B, T, C, NH, p, key);
    /* past the lse (checked below: a padding row's is +inf) every saved float is finite */
    size_t nlse = (size_t)B * NH * T;
    check_written(name, "out", out, no), check_written(name, "att", att + nlse, na - nlse);
    check_written(name, "grad_qkv", dqkv, nq);
    float *dqkv2 = fnan(nq), *db = frand(3 * (size_t)C, 1.0f), *db0 = fcopy(db, 3 * (size_t)C);
    attention_backward_qkv_bias(dqkv2, dout, qkv, att, B, T, C, NH, p, key, db);
    CHECK(!memcmp(dqkv2, dqkv, nq * 4), cname("parity_self.%s.bias_variant_same_grad", name),
          "attention_backward_qkv_bias changes dqkv");
    /* real rows see their own token: finite; padding rows see nothing: +inf */
    bool lse_ok = true;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                float l = att[((size_t)b * NH + h) * T + t];
                lse_ok &= mask[b * T + t] ? isfinite(l) : l == INFINITY;
            }
    CHECK(lse_ok, cname("parity_self.%s.lse_rows", name), "a real row's lse is not finite or a padding row's not +inf");
    meta("B", "%d", B), meta("T", "%d", T), meta("C", "%d", C), meta("NH", "%d", NH);
    meta("causal", "%d", causal), meta("p", "%.9g", p);
    put_f32("qkv", qkv, 3, B, T, 3 * C), put_i32("attention_mask", mask32, 2, B, T), put_i32("seq_idx", seq, 2, B, T);
    if (p > 0.0f) put_f32("dropmask", drop_mask((size_t)B * NH * T * T, p, key, 0), 4, B, NH, T, T);
    put_f32("out", out, 3, B, T, C), put_f32("lse", att, 3, B, NH, T), put_f32("dout", dout, 3, B, T, C);
    put_f32("grad.qkv", dqkv, 3, B, T, 3 * C);
    put_f32("init.grad.qkv_bias", db0, 1, 3 * C), put_f32("grad.qkv_bias", db, 1, 3 * C);
    dump_end();
}

/* The general form as cross-attention and T5 use it: Tq != Tk, queries, keys and values
 * in separate strided buffers, an additive bias [NH, Tq, Tk] and its gradient dscores
 * [B, NH, Tq, Tk], key padding, optional causality and dropout. */
static void case_attention_ex(const char *name, int Tq, int Tk, bool causal, float p) {
    int B = 2, NH = 2, hs = 9, C = NH * hs, ldq = C + 3, ldkv = 2 * C + 1;
    uint64_t key = 0x7a11;
    dump_begin(name, "attention_ex");
    size_t nq = (size_t)B * Tq * ldq, nkv = (size_t)B * Tk * ldkv, no = (size_t)B * Tq * C;
    size_t na = attention_saved_floats(B, NH, Tq, Tk, hs), nds = (size_t)B * NH * Tq * Tk;
    float *q = frand(nq, 1.5f), *kv = frand(nkv, 1.5f), *bias = frand((size_t)NH * Tq * Tk, 1.0f);
    float *dout = frand(no, 1.0f), *out = fnan(no), *att = fnan(na), *dq = fnan(nq), *dkv = fnan(nkv);
    float *ds = fnan(nds);
    uint8_t *mask = keep(plm_malloc((size_t)B * Tk));
    int32_t *mask32 = ialloc((size_t)B * Tk);
    for (int b = 0; b < B; b++)
        for (int t = 0; t < Tk; t++) mask32[b * Tk + t] = mask[b * Tk + t] = t < Tk - 5 * b;
    attn_shape a = {.B = B,
                    .Tq = Tq,
                    .Tk = Tk,
                    .NH = NH,
                    .hs = hs,
                    .q = q,
                    .k = kv,
                    .v = kv + C,
                    .ldq = ldq,
                    .ldk = ldkv,
                    .ldv = ldkv,
                    .key_mask = mask,
                    .bias = bias,
                    .causal = causal,
                    .scale = 1.0f / sqrtf((float)hs),
                    .dropout_p = p,
                    .dropout_key = key};
    attention_forward_ex(&a, out, att);
    attention_backward_ex(&a, dout, att, dq, dkv, dkv + C, ds);
    /* the bias gradients of the q and k | v projections summed in the same pass */
    float *dq2 = fnan(nq), *dkv2 = fnan(nkv), *ds2 = fnan(nds), *dbq = frand(C, 1.0f),
          *dbkv = frand(2 * (size_t)C, 1.0f);
    float *dbq0 = fcopy(dbq, C), *dbkv0 = fcopy(dbkv, 2 * (size_t)C);
    attention_backward_bias(&a, dout, att, dq2, dkv2, dkv2 + C, ds2, dbq, dbkv, dbkv + C);
    CHECK(!memcmp(dq2, dq, nq * 4) && !memcmp(dkv2, dkv, nkv * 4) && !memcmp(ds2, ds, nds * 4),
          cname("parity_self.%s.bias_variant_same_grad", name), "attention_backward_bias changes the gradients");
    check_written(name, "out", out, no), check_written(name, "dscores", ds, nds);
    /* the gradient goes to the head's columns only; the padding columns stay poisoned */
    bool cols_ok = true;
    for (size_t r = 0; r < (size_t)B * Tq; r++)
        for (int c = 0; c < ldq; c++) cols_ok &= (c < C) == !isnan(dq[r * ldq + c]);
    for (size_t r = 0; r < (size_t)B * Tk; r++)
        for (int c = 0; c < ldkv; c++) cols_ok &= (c < 2 * C) == !isnan(dkv[r * ldkv + c]);
    CHECK(cols_ok, cname("parity_self.%s.strided_writes", name), "a gradient column outside the heads was written");
    for (size_t i = 0; i < nq; i++) dq[i] = isnan(dq[i]) ? 0.0f : dq[i];
    for (size_t i = 0; i < nkv; i++) dkv[i] = isnan(dkv[i]) ? 0.0f : dkv[i];
    meta("B", "%d", B), meta("Tq", "%d", Tq), meta("Tk", "%d", Tk), meta("NH", "%d", NH), meta("hs", "%d", hs);
    meta("causal", "%d", causal), meta("p", "%.9g", p);
    put_f32("q", q, 3, B, Tq, ldq), put_f32("kv", kv, 3, B, Tk, ldkv), put_f32("bias", bias, 3, NH, Tq, Tk);
    put_i32("key_mask", mask32, 2, B, Tk);
    if (p > 0.0f) put_f32("dropmask", drop_mask(nds, p, key, 0), 4, B, NH, Tq, Tk);
    put_f32("out", out, 3, B, Tq, C), put_f32("dout", dout, 3, B, Tq, C);
    put_f32("grad.q", dq, 3, B, Tq, ldq), put_f32("grad.kv", dkv, 3, B, Tk, ldkv);
    put_f32("grad.scores", ds, 4, B, NH, Tq, Tk);
    put_f32("init.grad.q_bias", dbq0, 1, C), put_f32("grad.q_bias", dbq, 1, C);
    put_f32("init.grad.kv_bias", dbkv0, 1, 2 * C), put_f32("grad.kv_bias", dbkv, 1, 2 * C);
    dump_end();
}

typedef struct {
    float *logits, *work;
    const int32_t *targets;
    int M, V;
    float scale;
} ce_ctx;

static double ce_objective(void *p) {
    ce_ctx *c = p;
    memcpy(c->work, c->logits, (size_t)c->M * c->V * sizeof(float));
    plm_ce_result r = crossentropy_forward_backward(c->work, c->targets, c->M, c->V, false, 0.0f);
    return r.loss_sum * c->scale;
}

static void case_crossentropy(const char *name, float logit_scale) {
    int M = 17, V = 29;
    dump_begin(name, "crossentropy");
    float *logits = frand((size_t)M * V, logit_scale);
    int32_t *tg = ialloc(M);
    int ignored[] = {1, 4, 5, 11, 16};
    for (int i = 0; i < M; i++) tg[i] = (int32_t)plm_rng_below(&R, V);
    for (size_t k = 0; k < PLM_ARRAY_LEN(ignored); k++) tg[ignored[k]] = PLM_IGNORE_INDEX;
    float *z = fcopy(logits, (size_t)M * V);
    plm_ce_result r0 = crossentropy_forward_backward(z, tg, M, V, false, 1.0f);
    CHECK(!memcmp(z, logits, (size_t)M * V * 4), cname("parity_self.%s.forward_only_keeps_logits", name),
          "backward=false changed the logits");
    float upstream = 0.73f, gs = upstream / (float)r0.count;
    plm_ce_result r = crossentropy_forward_backward(z, tg, M, V, true, gs);
    CHECK(r.count == M - (int)PLM_ARRAY_LEN(ignored) && r.loss_sum == r0.loss_sum,
          cname("parity_self.%s.count_and_loss", name), "count %d, loss %g vs %g", r.count, r.loss_sum, r0.loss_sum);
    CHECK(isfinite(r.loss_sum) && all_finite(z, (size_t)M * V), cname("parity_self.%s.finite", name),
          "non-finite loss or gradient");
    meta("M", "%d", M), meta("V", "%d", V), meta("grad_scale", "%.9g", gs);
    put_f32("logits", logits, 2, M, V), put_i32("targets", tg, 1, M);
    put_f64("loss_sum", r.loss_sum), put_f64("count", r.count), put_f64("correct", r.correct);
    put_f32("grad.logits", z, 2, M, V);
    if (verbose && logit_scale < 10.0f) {
        ce_ctx ctx = {logits, fnan((size_t)M * V), tg, M, V, gs};
        float *g = fcopy(z, (size_t)M * V);
        fd_check(name, ce_objective, &ctx, logits, g, (size_t)M * V, 40, 1e-2f, 2e-2);
    }
    dump_end();
}

/* ---------------------------------------------------------------- whole models */

static void randomize_params(plm_model *m) {
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        bool ln_w = t->ndim == 1 && strstr(t->name, ".weight");
        float a = t->ndim == 2 ? 1.7f / sqrtf((float)t->shape[1]) : (ln_w ? 0.3f : 0.2f);
        for (size_t k = 0; k < t->numel; k++) p[k] = (ln_w ? 1.0f : 0.0f) + rnd1(a);
    }
    plm_model_params_written(m);
}

static void poison_model_acts(plm_model *m, int B, int T) {
    const plm_config *c = &m->config;
    size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads;
#define POISON(p, n)                                                                                                   \
    for (size_t k_ = 0; k_ < (n); k_++) (p)[k_] = NAN
    plm_backbone *bb = &m->bb[0];
    POISON(bb->emb, N * C);
    POISON(bb->emb_ln, N * C);
    POISON(bb->x0, N * C);
    POISON(bb->lnf, N * C);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        plm_layer_acts *a = &bb->acts[l];
        POISON(a->ln1, N * C);
        POISON(a->qkv, N * 3 * C);
        POISON(a->att, attention_saved_floats(B, (int)NH, T, T, (int)(C / NH)));
        POISON(a->atty, N * C);
        POISON(a->res1, N * C);
        POISON(a->ln2, N * C);
        POISON(a->fch, N * I);
        POISON(a->fch_gelu, N * I);
        POISON(a->res2, N * C);
    }
    for (int h = 0; h < m->num_heads; h++) POISON(m->heads[h].logits, N * (size_t)m->heads[h].K);
#undef POISON
}

/* Writes every parameter (and, with grads, its gradient) under its HF name and in HF's
 * layout (GPT-2's Conv1D weights transposed to [in, out]). */
static void put_model_tensors(const plm_model *m, const float *base, const char *prefix) {
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        const float *p = base + t->offset;
        const char *nm = cname("%s%s", prefix, t->name);
        if (t->nparts > 1) { /* a fused block: HF's separate tensors */
            int r = t->shape[0] / t->nparts;
            for (int k = 0; k < t->nparts; k++) {
                const float *pk = p + (size_t)k * r * (t->ndim == 2 ? t->shape[1] : 1);
                if (t->ndim == 1)
                    put_f32(cname("%s%s", prefix, t->parts[k]), pk, 1, r);
                else
                    put_f32(cname("%s%s", prefix, t->parts[k]), pk, 2, r, t->shape[1]);
            }
        } else if (t->ndim == 1) {
            put_f32(nm, p, 1, t->shape[0]);
        } else if (!t->transpose) {
            put_f32(nm, p, 2, t->shape[0], t->shape[1]);
        } else {
            int r = t->shape[0], cl = t->shape[1];
            float *tr = keep(plm_malloc(t->numel * sizeof(float)));
            for (int a = 0; a < r; a++)
                for (int b = 0; b < cl; b++) tr[(size_t)b * r + a] = p[(size_t)a * cl + b];
            put_f32(nm, tr, 2, cl, r);
        }
    }
}

/* A model configuration to compare: the two standard ones (BERT: post-LN, MLM; GPT-2:
 * pre-LN, CLM) and two swapped ones the engine also supports (one model trained with
 * CLM then MLM, untied heads, segment embeddings on a decoder). */
typedef struct {
    const char *name;
    plm_arch arch;
    bool pre_ln, tied, causal;
    int type_vocab;
    plm_gelu_kind act;
    float p_hidden, p_attn; /* > 0: training with dropout, masks dumped as dropmask.* */
    bool sft;               /* the batch is plm sft's: labels on the response tokens only */
} model_variant;

/* model.c's dropout key of each site: (seed, layer, site), layer -1 = the embeddings,
 * site 0 = attention probabilities (embedding output for layer -1), 1 = the attention
 * output before its residual add, 2 = the MLP output before its residual add. */
static uint64_t model_drop_key(uint64_t seed, int layer, int site) {
    return plm_hash_combine(seed, (uint64_t)(layer + 1) * 16 + (uint64_t)site);
}

static void case_model(const model_variant *mv) {
    const char *name = mv->name;
    plm_arch arch = mv->arch;
    plm_config c;
    plm_config_default(&c, arch);
    c.pre_layernorm = mv->pre_ln;
    c.is_decoder = mv->causal;
    c.tie_word_embeddings = mv->tied;
    c.type_vocab_size = mv->type_vocab;
    c.hidden_act = mv->act;
    c.vocab_size = 97;
    c.hidden_size = 48;
    c.num_attention_heads = 3;
    c.num_hidden_layers = 2;
    c.intermediate_size = 80;
    c.max_position_embeddings = 16;
    c.hidden_dropout_prob = mv->p_hidden;
    c.attention_probs_dropout_prob = mv->p_attn;
    if (arch == PLM_ARCH_BERT) {
        c.pad_token_id = 0;
        c.mask_token_id = 4;
    } else {
        c.eos_token_id = c.vocab_size - 1;
    }
    int B = 3, T = 13, lens[3] = {13, 10, 6}, N = B * T;
    dump_begin(name, "model");
    plm_model *m = plm_model_create(&c, 1234);
    if (!m || plm_model_reserve(m, B, T) != 0) {
        printf("FAIL parity_self.%s.create: %s\n", name, plm_last_error());
        test_failures++;
        plm_model_free(m);
        plm_st_writer_free(&W);
        release_all();
        return;
    }
    randomize_params(m);
    int32_t *ids = ialloc(N), *tt = ialloc(N), *labels = ialloc(N);
    uint8_t *mask = keep(plm_malloc(N));
    int32_t *mask32 = ialloc(N);
    int nlab = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            bool real = t < lens[b];
            mask[i] = real;
            mask32[i] = real;
            if (arch == PLM_ARCH_BERT) {
                ids[i] = real ? 5 + (int32_t)plm_rng_below(&R, c.vocab_size - 5) : c.pad_token_id;
            } else {
                ids[i] = real ? 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 2) : c.eos_token_id;
            }
            tt[i] = real && c.type_vocab_size ? (t * c.type_vocab_size) / lens[b] : 0;
            labels[i] = PLM_IGNORE_INDEX;
        }
    /* BERT: the padding token once at a real position: nn.Embedding(padding_idx) gives
     * its row no gradient from the lookup, but a tied decoder still does */
    if (arch == PLM_ARCH_BERT) ids[5] = c.pad_token_id;
    if (!mv->causal) { /* MLM: ~15% of the real positions carry a label */
        for (int pass = 0; nlab < 5; pass++)
            for (int i = 0; i < N; i++)
                if (mask[i] && labels[i] == PLM_IGNORE_INDEX && plm_rng_uniform(&R) < 0.15f) {
                    labels[i] = (int32_t)plm_rng_below(&R, c.vocab_size);
                    nlab++;
                }
    } else {
        for (int b = 0; b < B; b++)
            for (int t = 0; t + 1 < lens[b]; t++, nlab++) labels[b * T + t] = ids[b * T + t + 1];
    }
    int32_t *response = NULL;
    if (mv->sft) {
        /* plm sft's batch (train/sft.h): examples of prompt (0) and response (1) tokens, a
         * response ending in EOS; the first one cut at T = 13 tokens, the third with two
         * turns; right-padded with EOS by plm_sft_collate. parity.py derives the labels
         * from the ids and the response mask alone and checks the collator's. */
        static const char *segs[3] = {"0000011111111111", "0000000111", "001001"};
        plm_sft_data sd;
        plm_sft_data_init(&sd);
        for (int b = 0; b < B; b++) {
            int n = (int)strlen(segs[b]);
            int32_t tk[16];
            uint8_t tr[16];
            for (int k = 0; k < n; k++) {
                tr[k] = segs[b][k] == '1';
                tk[k] = tr[k] && (k + 1 == n || segs[b][k + 1] == '0')
                            ? c.eos_token_id
                            : 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 2);
            }
            plm_sft_data_add(&sd, tk, tr, n, T, 0);
        }
        CHECK(sd.truncated == 1 && sd.max_len == T, cname("parity_self.%s.sft_truncated", name),
              "truncated %d, longest %d", sd.truncated, sd.max_len);
        int rows[3] = {0, 1, 2};
        plm_sft_batch sb = {0};
        plm_batch sbatch;
        plm_sft_collate(&sd, rows, B, c.eos_token_id, &sb, &sbatch);
        CHECK(sbatch.B == B && sbatch.T == T, cname("parity_self.%s.sft_shape", name), "batch %dx%d", sbatch.B,
              sbatch.T);
        response = ialloc(N);
        nlab = 0;
        for (int b = 0; b < B; b++)
            for (int t = 0; t < T; t++) {
                int i = b * T + t;
                ids[i] = sbatch.input_ids[i];
                mask[i] = sbatch.attention_mask[i];
                mask32[i] = mask[i];
                labels[i] = sbatch.labels[i];
                nlab += labels[i] != PLM_IGNORE_INDEX;
                response[i] = t < lens[b] && sd.train[sd.off[b] + (size_t)t];
            }
        plm_sft_batch_free(&sb);
        plm_sft_data_free(&sd);
    }
    plm_batch batch = {.B = B,
                       .T = T,
                       .input_ids = ids,
                       .token_type_ids = c.type_vocab_size ? tt : NULL,
                       .attention_mask = mask,
                       .labels = labels,
                       .causal = mv->causal,
                       .training = mv->p_hidden > 0.0f || mv->p_attn > 0.0f,
                       .dropout_seed = 99};
    int L = c.num_hidden_layers, C = c.hidden_size, V = c.vocab_size;
    /* forward only: logits and hidden states */
    poison_model_acts(m, B, T);
    plm_ce_result r0 = plm_model_forward(m, &batch, false, 1.0f);
    float *logits = fcopy(m->heads[0].logits, (size_t)m->heads[0].num_rows * V);
    int M = m->heads[0].num_rows;
    /* forward + backward */
    poison_model_acts(m, B, T);
    plm_model_zero_grad(m);
    plm_ce_result r = plm_model_forward(m, &batch, true, 1.0f);
    double loss = r.loss_sum / r.count;
    CHECK(r.count == nlab && M == nlab, cname("parity_self.%s.label_count", name), "count %d rows %d, want %d", r.count,
          M, nlab);
    CHECK(r.loss_sum == r0.loss_sum, cname("parity_self.%s.deterministic_loss", name), "loss %.9g vs %.9g", r.loss_sum,
          r0.loss_sum);
    CHECK(isfinite(loss) && loss > 0.5 * log(V) && loss < 4 * log(V), cname("parity_self.%s.loss_sane", name),
          "loss %g with vocab %d", loss, V);
    check_written(name, "hidden", plm_model_hidden(m), (size_t)N * C);
    check_written(name, "logits", logits, (size_t)M * V);
    check_written(name, "grads", m->grads, m->num_params);
    if (arch == PLM_ARCH_BERT && c.tie_word_embeddings) {
        /* the lookup gives the padding row nothing, the tied decoder does: not all zero */
        bool nz = false;
        for (int k = 0; k < C; k++) nz |= m->bb[0].g.wte[(size_t)c.pad_token_id * C + k] != 0.0f;
        CHECK(nz, cname("parity_self.%s.tied_decoder_grad_on_pad_row", name), "pad row got no decoder gradient");
    }
    if (verbose) {
        /* plm_model_logits_at (fill-mask, generation) on the labelled positions gives the
         * training pass's logits */
        float *la = fnan((size_t)M * V);
        int32_t *pos = ialloc(M);
        for (int i = 0, k = 0; i < N; i++)
            if (labels[i] != PLM_IGNORE_INDEX) pos[k++] = i;
        plm_model_logits_at(m, pos, M, la);
        CHECK(!memcmp(la, logits, (size_t)M * V * sizeof(float)), cname("parity_self.%s.logits_at", name),
              "plm_model_logits_at differs from the forward pass's logits");
        /* gradients accumulate (+=): a second pass doubles them (up to rounding: GEMMs
         * with beta = 1 add their partial sums into the old values); a pass at
         * loss_scale 0.5 gives exactly half (powers of two scale exactly) */
        float *g1 = fcopy(m->grads, m->num_params);
        plm_model_forward(m, &batch, true, 1.0f);
        double e2 = 0.0, n2 = 0.0;
        for (size_t k = 0; k < m->num_params; k++) {
            double dlt = (double)m->grads[k] - 2.0 * g1[k];
            e2 += dlt * dlt;
            n2 += 4.0 * g1[k] * g1[k];
        }
        CHECK(sqrt(e2 / n2) < 1e-6, cname("parity_self.%s.grads_accumulate", name),
              "second pass did not double the gradients: relerr %.3g", sqrt(e2 / n2));
        plm_model_zero_grad(m);
        plm_model_forward(m, &batch, true, 0.5f);
        bool half = true;
        for (size_t k = 0; k < m->num_params; k++) half &= m->grads[k] == 0.5f * g1[k];
        CHECK(half, cname("parity_self.%s.loss_scale", name), "loss_scale 0.5 did not halve the gradients");
        memcpy(m->grads, g1, m->num_params * sizeof(float));
    }
    char *cfg = plm_config_to_json(&c, NULL);
    meta("config", "%s", cfg);
    free(cfg);
    meta("B", "%d", B), meta("T", "%d", T);
    meta("causal", "%d", batch.causal);
    put_i32("input_ids", ids, 2, B, T), put_i32("attention_mask", mask32, 2, B, T), put_i32("labels", labels, 2, B, T);
    if (response) put_i32("response_mask", response, 2, B, T);
    if (batch.token_type_ids) put_i32("token_type_ids", tt, 2, B, T);
    put_f64("loss", loss);
    put_f64("loss_count", r.count);
    put_f32("logits", logits, 2, M, V);
    for (int l = 0; l < L; l++)
        put_f32(cname("hidden.%d", l), c.pre_layernorm ? m->bb[0].acts[l].res2 : m->bb[0].acts[l].ln2, 3, B, T, C);
    put_f32("hidden.final", plm_model_hidden(m), 3, B, T, C);
    if (batch.training) {
        int NH = c.num_attention_heads;
        put_f32("dropmask.emb", drop_mask((size_t)N * C, mv->p_hidden, model_drop_key(batch.dropout_seed, -1, 0), 0), 3,
                B, T, C);
        for (int l = 0; l < L; l++) {
            uint64_t s0 = batch.dropout_seed;
            put_f32(cname("dropmask.%d.attn", l),
                    drop_mask((size_t)B * NH * T * T, mv->p_attn, model_drop_key(s0, l, 0), 0), 4, B, NH, T, T);
            put_f32(cname("dropmask.%d.resid1", l), drop_mask((size_t)N * C, mv->p_hidden, model_drop_key(s0, l, 1), 0),
                    3, B, T, C);
            put_f32(cname("dropmask.%d.resid2", l), drop_mask((size_t)N * C, mv->p_hidden, model_drop_key(s0, l, 2), 0),
                    3, B, T, C);
        }
    }
    put_model_tensors(m, m->params, "");
    put_model_tensors(m, m->grads, "grad.");
    if (out_dir) {
        /* the checkpoint as plm_model_save writes it: parity.py checks it holds exactly
         * the tensors the reference ran on, by the same HF names and layouts */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s.ckpt", out_dir, name);
        if (plm_model_save(m, dir, NULL, 0) != 0) {
            printf("FAIL parity_dump.%s.checkpoint: %s\n", name, plm_last_error());
            test_failures++;
        }
    }
    if (verbose && c.type_vocab_size) {
        /* token_type_ids NULL means all segment 0 (model.h; fill-mask passes NULL) */
        float *h0 = fnan((size_t)N * C);
        memset(tt, 0, (size_t)N * sizeof(int32_t));
        plm_ce_result rz = plm_model_forward(m, &batch, false, 1.0f);
        memcpy(h0, plm_model_hidden(m), (size_t)N * C * sizeof(float));
        batch.token_type_ids = NULL;
        plm_ce_result rn = plm_model_forward(m, &batch, false, 1.0f);
        CHECK(rz.loss_sum == rn.loss_sum && !memcmp(h0, plm_model_hidden(m), (size_t)N * C * sizeof(float)),
              cname("parity_self.%s.type_ids_null_is_segment_0", name),
              "token_type_ids NULL differs from all zeros (loss %.9g vs %.9g)", rn.loss_sum, rz.loss_sum);
    }
    if (verbose && mv->causal) {
        /* generation's KV cache (its own single-position forward) reproduces the batch
         * forward's logits at every position of row 0 (no padding, segment 0) */
        batch.training = false;
        batch.token_type_ids = NULL;
        plm_model_forward(m, &batch, false, 1.0f);
        int32_t pos[16];
        for (int t = 0; t < lens[0]; t++) pos[t] = t;
        float *full = fnan((size_t)lens[0] * V);
        plm_model_logits_at(m, pos, lens[0], full);
        plm_kv_cache kv;
        double e2 = 0.0, n2 = 0.0;
        if (plm_kv_cache_init(&kv, m, T) == 0) {
            for (int t = 0; t < lens[0]; t++) {
                const float *lg = plm_kv_cache_step(&kv, ids[t]);
                for (int v = 0; v < V; v++) {
                    double dd = (double)lg[v] - full[(size_t)t * V + v];
                    e2 += dd * dd;
                    n2 += (double)full[(size_t)t * V + v] * full[(size_t)t * V + v];
                }
            }
            plm_kv_cache_free(&kv);
        } else {
            e2 = INFINITY;
        }
        double rel = sqrt(e2 / n2);
        CHECK(rel <= 1e-5, cname("parity_self.%s.kv_cache_logits", name),
              "KV-cache logits differ from the batch forward: relerr %.3g", rel);
    }
    plm_model_free(m);
    dump_end();
}

/* ---------------------------------------------------------------- heads */

/* A model of backbones and task heads (model.h): BertForPreTraining (MLM + NSP), the
 * *ForSequenceClassification / *ForTokenClassification / *ForQuestionAnswering heads,
 * ELECTRA's discriminator (RTD) and ELECTRA's generator + discriminator sharing their
 * embeddings (two backbones, two runs, one summed gradient). parity.py's check_heads
 * rebuilds each from the dumped spec. */
typedef struct {
    const char *name;
    plm_arch arch;
    int C, E, L, NH, I, V, B, T; /* E 0: = C */
    plm_head_kind kinds[2];
    int num_heads, num_labels;
    float p_hidden, p_attn;
    bool pairs;              /* padded sentence pairs: token_type_ids 0/1 */
    int gen_C;               /* > 0: ELECTRA generator (backbone 1, "generator.electra") of this width */
    float weight;            /* of the first head (ELECTRA's discriminator: 50) */
    bool gelu_new;           /* hidden_act gelu_new (tanh): HF's ELECTRA heads keep erf GELU regardless */
    bool joint;              /* ELECTRA's joint step: the discriminator reads the generator's masked batch
                                corrupted by fixed samples (plm_electra_corrupt); saved as ElectraForPreTraining
                                + generator/ElectraForMaskedLM too */
    bool mask_switch;        /* one backbone, two runs: causal CLM, then bidirectional MLM (clm+mlm) */
    plm_seq_pooling pooling; /* of the sequence-classification heads */
} heads_variant;

static void poison_backbone(plm_backbone *bb, int B, int T) {
    const plm_config *c = &bb->config;
    size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads, E = bb->E;
#define POISON(p, n)                                                                                                   \
    for (size_t k_ = 0; k_ < (n); k_++) (p)[k_] = NAN
    POISON(bb->emb, N * E);
    POISON(bb->emb_ln, N * E);
    POISON(bb->emb_drop, N * E);
    POISON(bb->x0, N * C);
    POISON(bb->lnf, N * C);
    POISON(bb->cls, (size_t)B * C);
    POISON(bb->pooled, (size_t)B * C);
    POISON(bb->dpooled, (size_t)B * C);
    POISON(bb->dhidden, N * C);
    POISON(bb->g_resid, N * C);
    POISON(bb->g_a, N * C);
    POISON(bb->g_b, N * C);
    POISON(bb->g_atty, N * C);
    POISON(bb->g_qkv, N * 3 * C);
    POISON(bb->g_fch, N * I);
    POISON(bb->g_emb, N * E);
    POISON(bb->g_emb2, N * E);
    for (int l = 0; l < c->num_hidden_layers; l++) {
        plm_layer_acts *a = &bb->acts[l];
        POISON(a->ln1, N * C);
        POISON(a->qkv, N * 3 * C);
        POISON(a->att, attention_saved_floats(B, (int)NH, T, T, (int)(C / NH)));
        POISON(a->atty, N * C);
        POISON(a->res1, N * C);
        POISON(a->ln2, N * C);
        POISON(a->fch, N * I);
        POISON(a->fch_gelu, N * I);
        POISON(a->res2, N * C);
    }
}

static void poison_head(plm_head *h, int B, int T) {
    size_t N = (size_t)B * T, w = (size_t)PLM_MAX(h->in_dim, h->hidden);
    POISON(h->logits, N * (size_t)h->K);
    POISON(h->x, N * w);
    POISON(h->d1, N * w);
    POISON(h->d1g, N * w);
    POISON(h->t, N * w);
    POISON(h->dx, N * w);
    POISON(h->dt, N * w);
    POISON(h->dd, N * w);
#undef POISON
}

/* One run: a batch for backbone k with the labels of the heads on it. */
typedef struct {
    int k;
    plm_batch b;
    int32_t *ids, *tt, *mask32, *labels, *seq, *sp, *ep;
    uint8_t *mask;
    float *targets;
} heads_run;

static void make_run(heads_run *r, const plm_model *m, int k, const heads_variant *hv, uint64_t seed) {
    const plm_config *c = &m->bb[k].config;
    int B = hv->B, T = hv->T, N = B * T;
    bool gpt2 = c->arch == PLM_ARCH_GPT2;
    memset(r, 0, sizeof *r);
    r->k = k;
    r->ids = ialloc(N), r->tt = ialloc(N), r->mask32 = ialloc(N), r->labels = ialloc(N);
    r->seq = ialloc(B), r->sp = ialloc(B), r->ep = ialloc(B);
    r->mask = keep(plm_malloc(N));
    r->targets = frand(B, 1.5f);
    int lens[8];
    for (int b = 0; b < B; b++) lens[b] = b == 0 ? T : PLM_MAX(3, T - 2 - 3 * b + (int)plm_rng_below(&R, 2));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            bool real = t < lens[b];
            r->mask[i] = real, r->mask32[i] = real;
            if (gpt2)
                r->ids[i] = real ? 1 + (int32_t)plm_rng_below(&R, c->vocab_size - 2) : c->eos_token_id;
            else
                r->ids[i] = real ? 5 + (int32_t)plm_rng_below(&R, c->vocab_size - 5) : c->pad_token_id;
            r->tt[i] = real && hv->pairs && t >= (lens[b] + 1) / 2;
            r->labels[i] = PLM_IGNORE_INDEX;
        }
    /* the padding token once at a real position: its embedding row gets no lookup gradient */
    if (!gpt2) r->ids[T + 2] = c->pad_token_id;
    for (int i = 0; i < m->num_heads; i++) {
        const plm_head *h = &m->heads[i];
        if (h->spec.backbone != k) continue;
        int K = h->K;
        switch (h->spec.kind) {
        case PLM_HEAD_LM: /* MLM: ~20% of the real positions, at least 4 */
            for (int n = 0; n < 4;)
                for (int j = 0; j < N; j++)
                    if (r->mask[j] && r->labels[j] == PLM_IGNORE_INDEX && plm_rng_uniform(&R) < 0.2f) {
                        r->labels[j] = (int32_t)plm_rng_below(&R, c->vocab_size);
                        n++;
                    }
            break;
        case PLM_HEAD_TOKEN_CLS: /* a class per real token, ~20% of them -100 */
        case PLM_HEAD_RTD:       /* original (0) / replaced (1), padding -100 */
            for (int j = 0; j < N; j++)
                if (r->mask[j]) {
                    if (h->spec.kind == PLM_HEAD_RTD)
                        r->labels[j] = plm_rng_uniform(&R) < 0.3f;
                    else
                        r->labels[j] = plm_rng_uniform(&R) < 0.2f ? PLM_IGNORE_INDEX : (int32_t)plm_rng_below(&R, K);
                }
            break;
        case PLM_HEAD_NSP:
        case PLM_HEAD_SEQ_CLS:
            for (int b = 0; b < B; b++) r->seq[b] = (int32_t)plm_rng_below(&R, K > 1 ? K : 2);
            if (h->spec.kind == PLM_HEAD_SEQ_CLS && B > 2) r->seq[1] = PLM_IGNORE_INDEX; /* ignored sequence */
            break;
        case PLM_HEAD_QA: /* spans inside each sequence; some at T: truncated away, ignored */
            for (int b = 0; b < B; b++) {
                r->sp[b] = (int32_t)plm_rng_below(&R, lens[b]);
                r->ep[b] = r->sp[b] + (int32_t)plm_rng_below(&R, lens[b] - r->sp[b]);
            }
            r->sp[1] = T;
            if (B > 2) r->ep[2] = T;
            break;
        }
    }
    r->b = (plm_batch){.B = B,
                       .T = T,
                       .input_ids = r->ids,
                       .token_type_ids = c->type_vocab_size ? r->tt : NULL,
                       .attention_mask = r->mask,
                       .labels = r->labels,
                       .seq_labels = r->seq,
                       .seq_targets = r->targets,
                       .start_positions = r->sp,
                       .end_positions = r->ep,
                       .causal = c->is_decoder,
                       .training = hv->p_hidden > 0.0f || hv->p_attn > 0.0f,
                       .dropout_seed = seed};
}

/* Rows of a head's logits buffer after a forward pass. */
static int head_rows(const plm_head *h, int B, int T) {
    switch (h->spec.kind) {
    case PLM_HEAD_LM:
        return h->num_rows;
    case PLM_HEAD_NSP:
    case PLM_HEAD_SEQ_CLS:
        return B;
    default:
        return B * T;
    }
}

static void heads_config(plm_config *c, const heads_variant *hv, int C, int NH, int I) {
    plm_config_default(c, hv->arch);
    c->vocab_size = hv->V;
    c->hidden_size = C;
    c->embedding_size = hv->E && hv->E != C ? hv->E : 0;
    c->num_hidden_layers = hv->L;
    c->num_attention_heads = NH;
    c->intermediate_size = I;
    c->max_position_embeddings = hv->T + 4;
    c->hidden_dropout_prob = hv->p_hidden;
    c->attention_probs_dropout_prob = hv->p_attn;
    c->num_labels = hv->num_labels > 0 ? hv->num_labels : 2;
    if (hv->gelu_new) c->hidden_act = PLM_GELU_TANH;
    if (hv->arch == PLM_ARCH_GPT2) {
        c->eos_token_id = c->pad_token_id = c->vocab_size - 1;
    } else {
        c->pad_token_id = 0;
        c->mask_token_id = 4;
    }
}

/* plm_model_load of the saved directory rebuilds the same model: backbones (shared
 * embeddings still shared), heads (kind, backbone, labels, weight), every tensor bit
 * for bit, and the same losses on the same batches. */
static void check_reload(const plm_model *m, const char *dir, const char *name, const heads_run *runs, int nr,
                         const double *loss) {
    plm_model *l = plm_model_load(dir);
    bool ok =
        l && l->num_backbones == m->num_backbones && l->num_heads == m->num_heads && l->num_tensors == m->num_tensors;
    const char *why = !l   ? plm_last_error()
                      : ok ? "tensor, head or loss differs"
                           : "backbone/head/tensor count differs";
    for (int k = 1; ok && k < m->num_backbones; k++)
        ok &= (l->bb[k].w.wte == l->bb[0].w.wte) == (m->bb[k].w.wte == m->bb[0].w.wte);
    for (int r = 0; ok && r < nr; r++) {
        ok &= plm_model_reserve(l, runs[r].b.B, runs[r].b.T) == 0 &&
              plm_model_run(l, runs[r].k, &runs[r].b, false, 1.0f) == 0 && l->loss == loss[r];
    }
    for (int i = 0; ok && i < m->num_heads; i++) {
        const plm_head_spec *a = &m->heads[i].spec, *b = &l->heads[i].spec;
        ok &= a->kind == b->kind && a->backbone == b->backbone && m->heads[i].K == l->heads[i].K &&
              a->weight == b->weight && a->pooling == b->pooling;
    }
    for (int i = 0; ok && i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i], *u = plm_model_find(l, t->name);
        ok &= u && u->numel == t->numel && !memcmp(m->params + t->offset, l->params + u->offset, t->numel * 4);
    }
    TEST_CHECK(ok, cname("parity_dump.%s.checkpoint_reload", name), "%s", why);
    plm_model_free(l);
}

/* ELECTRA's joint step with fixed samples: the generator's run becomes an MLM batch of its
 * own sequences (30% of the real tokens selected, 85% of those shown as [MASK]); each
 * selected position gets a fixed "sample", equal to the original a third of the time; the
 * discriminator's run is plm_electra_corrupt of it, with the generator's padding. */
static void link_electra_runs(heads_run *g, heads_run *d, const plm_model *m, const heads_variant *hv,
                              int32_t **sampled) {
    int N = hv->B * hv->T, V = m->bb[0].config.vocab_size, pad = m->bb[0].config.pad_token_id;
    int32_t *smp = ialloc(N);
    int selected = 0;
    while (selected < 4) {
        selected = 0;
        for (int j = 0; j < N; j++) {
            int32_t orig = g->labels[j] != PLM_IGNORE_INDEX ? g->labels[j] : g->ids[j];
            g->ids[j] = orig;
            g->labels[j] = PLM_IGNORE_INDEX;
            smp[j] = (int32_t)plm_rng_below(&R, (uint32_t)V); /* not read where unselected */
            if (!g->mask[j] || orig == pad || plm_rng_uniform(&R) >= 0.3f) continue;
            selected++;
            g->labels[j] = orig;
            if (plm_rng_uniform(&R) < 0.85f) g->ids[j] = 4; /* [MASK] */
            smp[j] = plm_rng_uniform(&R) < 0.33f ? orig : 5 + (int32_t)plm_rng_below(&R, (uint32_t)(V - 5));
        }
    }
    memcpy(d->mask, g->mask, (size_t)N);
    memcpy(d->mask32, g->mask32, (size_t)N * sizeof(int32_t));
    memcpy(d->tt, g->tt, (size_t)N * sizeof(int32_t));
    plm_electra_corrupt(g->ids, g->labels, smp, g->mask, (size_t)N, d->ids, d->labels);
    *sampled = smp;
}

/* The clm+mlm switch on one backbone: run 0 causal with next-token labels (CLM), run 1
 * bidirectional with MLM labels on the same weights; the gradients add up. */
static void switch_runs(heads_run *clm, heads_run *mlm, const plm_model *m, const heads_variant *hv) {
    int B = hv->B, T = hv->T, V = m->bb[0].config.vocab_size;
    (void)mlm;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            bool next_real = t + 1 < T && clm->mask[i + 1];
            clm->labels[i] = clm->mask[i] && next_real ? clm->ids[i + 1] : PLM_IGNORE_INDEX;
        }
    clm->labels[1] = (int32_t)plm_rng_below(&R, (uint32_t)V); /* a target that is not the next input */
    clm->b.causal = true;
    mlm->b.causal = false;
}

static void case_heads(const heads_variant *hv) {
    const char *name = hv->name;
    int B = hv->B, T = hv->T, N = B * T;
    plm_model_spec s;
    memset(&s, 0, sizeof s);
    heads_config(&s.backbone[0], hv, hv->C, hv->NH, hv->I);
    s.num_backbones = 1;
    for (int i = 0; i < hv->num_heads; i++)
        s.heads[plm_model_spec_add_head(&s, hv->kinds[i], hv->num_labels)].pooling =
            hv->kinds[i] == PLM_HEAD_SEQ_CLS ? hv->pooling : PLM_SEQ_POOL_DEFAULT;
    if (hv->weight > 0.0f) s.heads[0].weight = hv->weight;
    if (hv->gen_C) {
        /* ELECTRA: backbone 0 the discriminator, 1 the generator, sharing the embeddings */
        heads_config(&s.backbone[1], hv, hv->gen_C, 2, 2 * hv->gen_C);
        int E0 = hv->E ? hv->E : hv->C; /* the shared tables' width */
        s.backbone[1].embedding_size = E0 != hv->gen_C ? E0 : 0;
        s.prefix[1] = "generator.electra";
        s.num_backbones = 2;
        s.share_embeddings = true;
        int g = plm_model_spec_add_head(&s, PLM_HEAD_LM, 0);
        s.heads[g].backbone = 1;
    }
    dump_begin(name, "heads");
    plm_model *m = plm_model_create_spec(&s, 4321);
    if (!m || plm_model_reserve(m, B, T) != 0) {
        printf("FAIL parity_self.%s.create: %s\n", name, plm_last_error());
        test_failures++;
        plm_model_free(m);
        plm_st_writer_free(&W);
        release_all();
        return;
    }
    randomize_params(m);
    /* one run per backbone, the generator's first as ELECTRA trains */
    heads_run runs[PLM_MAX_BACKBONES];
    int nr = hv->mask_switch ? 2 : m->num_backbones;
    for (int r = 0; r < nr; r++) make_run(&runs[r], m, hv->mask_switch ? 0 : nr - 1 - r, hv, 99 + (uint64_t)r);
    int32_t *sampled = NULL;
    if (hv->joint) link_electra_runs(&runs[0], &runs[1], m, hv, &sampled);
    if (hv->mask_switch) switch_runs(&runs[0], &runs[1], m, hv);
    /* forward only: logits (QA's become gradients in a training pass), hidden, losses */
    /* per run and head: a head's logits and loss (two runs on one backbone in the switch case) */
    float *logits[PLM_MAX_BACKBONES][PLM_MAX_HEADS] = {{0}}, *hid0[PLM_MAX_BACKBONES];
    int rows[PLM_MAX_BACKBONES][PLM_MAX_HEADS] = {{0}};
    double loss0[PLM_MAX_BACKBONES];
    for (int r = 0; r < nr; r++) {
        plm_backbone *bb = &m->bb[runs[r].k];
        poison_backbone(bb, B, T);
        for (int i = 0; i < m->num_heads; i++) poison_head(&m->heads[i], B, T);
        if (plm_model_run(m, runs[r].k, &runs[r].b, false, 1.0f) != 0) {
            printf("FAIL parity_self.%s.run%d: %s\n", name, r, plm_last_error());
            test_failures++;
            plm_model_free(m);
            dump_end();
            return;
        }
        loss0[r] = m->loss;
        hid0[r] = fcopy(backbone_hidden(bb), (size_t)N * bb->config.hidden_size);
        for (int i = 0; i < m->num_heads; i++) {
            plm_head *h = &m->heads[i];
            if (h->spec.backbone != runs[r].k) continue;
            size_t n = (size_t)head_rows(h, B, T) * h->K;
            logits[r][i] = fcopy(h->logits, n);
            rows[r][i] = head_rows(h, B, T);
            check_written(name, cname("logits%d", i), logits[r][i], n);
        }
    }
    /* forward + backward of every run: the gradients of the sum of the runs' losses */
    plm_model_zero_grad(m);
    double loss[PLM_MAX_BACKBONES], hloss[PLM_MAX_BACKBONES][PLM_MAX_HEADS];
    for (int r = 0; r < nr; r++) {
        plm_backbone *bb = &m->bb[runs[r].k];
        poison_backbone(bb, B, T);
        for (int i = 0; i < m->num_heads; i++)
            if (m->heads[i].spec.backbone == runs[r].k) poison_head(&m->heads[i], B, T);
        plm_model_run(m, runs[r].k, &runs[r].b, true, 1.0f);
        loss[r] = m->loss;
        for (int i = 0; i < m->num_heads; i++)
            if (m->heads[i].spec.backbone == runs[r].k) hloss[r][i] = m->heads[i].loss;
        const float *hid = backbone_hidden(bb);
        size_t nh = (size_t)N * bb->config.hidden_size;
        check_written(name, cname("hidden%d", r), hid, nh);
        CHECK(loss[r] == loss0[r] && !memcmp(hid, hid0[r], nh * sizeof(float)),
              cname("parity_self.%s.run%d_deterministic", name, r), "training pass differs from the forward-only pass");
        CHECK(isfinite(loss[r]) && loss[r] > 0.0, cname("parity_self.%s.run%d_loss_finite", name, r), "loss %g",
              loss[r]);
    }
    check_written(name, "grads", m->grads, m->num_params);

    /* the spec */
    char *cfg = plm_config_to_json(&m->bb[0].config, NULL);
    meta("config", "%s", cfg);
    free(cfg);
    char hs[512] = "[";
    for (int i = 0; i < m->num_heads; i++) {
        const plm_head_spec *sp = &m->heads[i].spec;
        size_t l = strlen(hs);
        snprintf(hs + l, sizeof hs - l,
                 "%s{\"kind\":\"%s\",\"backbone\":%d,\"num_labels\":%d,\"weight\":%.9g,\"pooling\":\"%s\"}",
                 i ? "," : "", head_kind_name(sp->kind), sp->backbone, m->heads[i].K, sp->weight,
                 head_pooling_name(sp->pooling));
    }
    strcat(hs, "]");
    meta("heads", "%s", hs);
    meta("num_backbones", "%d", m->num_backbones), meta("num_runs", "%d", nr);
    meta("share_embeddings", "%d", s.share_embeddings);
    meta("B", "%d", B), meta("T", "%d", T);
    for (int k = 0; k < m->num_backbones; k++) {
        meta(cname("prefix%d", k), "%s", m->bb[k].prefix);
        if (k) {
            cfg = plm_config_to_json(&m->bb[k].config, NULL);
            meta(cname("config%d", k), "%s", cfg);
            free(cfg);
        }
    }
    /* per run: inputs, dropout masks, outputs */
    for (int r = 0; r < nr; r++) {
        heads_run *u = &runs[r];
        plm_backbone *bb = &m->bb[u->k];
        const plm_config *c = &bb->config;
        int C = c->hidden_size, L = c->num_hidden_layers, NH = c->num_attention_heads;
        meta(cname("run%d.backbone", r), "%d", u->k);
        meta(cname("run%d.causal", r), "%d", u->b.causal);
        put_i32(cname("run%d.input_ids", r), u->ids, 2, B, T);
        put_i32(cname("run%d.attention_mask", r), u->mask32, 2, B, T);
        if (u->b.token_type_ids) put_i32(cname("run%d.token_type_ids", r), u->tt, 2, B, T);
        put_i32(cname("run%d.labels", r), u->labels, 2, B, T);
        put_i32(cname("run%d.seq_labels", r), u->seq, 1, B);
        put_f32(cname("run%d.seq_targets", r), u->targets, 1, B);
        put_i32(cname("run%d.start_positions", r), u->sp, 1, B);
        put_i32(cname("run%d.end_positions", r), u->ep, 1, B);
        put_f64(cname("run%d.loss", r), loss[r]);
        put_f32(cname("run%d.hidden.final", r), hid0[r], 3, B, T, C);
        if (u->b.training) {
            float ph = c->hidden_dropout_prob, pa = c->attention_probs_dropout_prob;
            put_f32(cname("run%d.dropmask.emb", r), drop_mask((size_t)N * bb->E, ph, backbone_drop_key(bb, -1, 0), 0),
                    3, B, T, bb->E);
            for (int l = 0; l < L; l++) {
                put_f32(cname("run%d.dropmask.%d.attn", r, l),
                        drop_mask((size_t)B * NH * T * T, pa, backbone_drop_key(bb, l, 0), 0), 4, B, NH, T, T);
                put_f32(cname("run%d.dropmask.%d.resid1", r, l),
                        drop_mask((size_t)N * C, ph, backbone_drop_key(bb, l, 1), 0), 3, B, T, C);
                put_f32(cname("run%d.dropmask.%d.resid2", r, l),
                        drop_mask((size_t)N * C, ph, backbone_drop_key(bb, l, 2), 0), 3, B, T, C);
            }
        }
        for (int i = 0; i < m->num_heads; i++) {
            plm_head *h = &m->heads[i];
            if (h->spec.backbone != u->k) continue;
            /* the switch case's two runs share the head: keys carry the run */
            const char *pre = hv->mask_switch ? cname("run%d.", r) : "";
            put_f64(cname("%shead%d.loss", pre, i), hloss[r][i]);
            put_f32(cname("%shead%d.logits", pre, i), logits[r][i], 2, rows[r][i], h->K);
            if (u->b.training && (r == 0 || !hv->mask_switch)) /* head dropout sites 0 and 1, over [N, C] at most */
                for (int site = 0; site < 2; site++)
                    put_f32(cname("head%d.dropmask.%d", i, site),
                            drop_mask((size_t)N * C, c->hidden_dropout_prob, backbone_drop_key(bb, L + i, site), 0), 2,
                            N, C);
        }
    }
    put_model_tensors(m, m->params, "");
    put_model_tensors(m, m->grads, "grad.");
    if (sampled) put_i32("electra.sampled", sampled, 2, B, T);
    if (out_dir) {
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s.ckpt", out_dir, name);
        if (plm_model_save(m, dir, NULL, 0) != 0) {
            printf("FAIL parity_dump.%s.checkpoint: %s\n", name, plm_last_error());
            test_failures++;
        } else {
            check_reload(m, dir, name, runs, nr, loss);
        }
    }
    if (hv->joint) {
        /* ElectraForPreTraining + generator/ElectraForMaskedLM, read back by plm here and by
         * parity.py's independent HF forward */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s.electra", out_dir ? out_dir : "/tmp", name);
        if (!out_dir) snprintf(dir, sizeof dir, "/tmp/plm_parity_electra_%d", (int)getpid());
        plm_model *l = NULL;
        bool ok = plm_electra_save(m, dir, NULL, 0) == 0 && plm_electra_dir(dir) && (l = plm_electra_load(dir)) &&
                  l->num_params == m->num_params && !memcmp(l->params, m->params, m->num_params * sizeof(float)) &&
                  l->heads[0].spec.weight == m->heads[0].spec.weight;
        TEST_CHECK(ok, cname("parity_dump.%s.electra_checkpoint_roundtrip", name), "%s",
                   l ? "weights differ after ElectraForPreTraining + generator/ round trip" : plm_last_error());
        plm_model_free(l);
        if (!out_dir) {
            char cmd[1200];
            snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
            if (system(cmd) != 0) printf("  (could not remove %s)\n", dir);
        }
    }
    plm_model_free(m);
    dump_end();
}

/* ---------------------------------------------------------------- encoder-decoder */

/* HF's EncoderDecoderModel: a post-LN BERT encoder (backbone 0, "encoder") and a decoder
 * with cross-attention (backbone 1: BertLMHeadModel "decoder.bert" or GPT2LMHeadModel
 * "decoder.transformer") carrying the LM head. Encoder and decoder lengths differ; both
 * batches are padded; the decoder is causal with shifted labels. The encoder gets its
 * gradients only through the decoder's cross-attention. parity.py's check_seq2seq. */
typedef struct {
    const char *name;
    plm_arch dec_arch;
    int C, L, NH, I, V, B, Tk, Tq; /* Tk: encoder length, Tq: decoder length */
    float p;                       /* hidden and attention dropout of both stacks */
    bool tied;                     /* decoder LM head tied to the decoder's word embeddings */
} s2s_variant;

static void poison_cross(plm_backbone *bb, int B, int T) {
    const plm_config *c = &bb->config;
    size_t N = (size_t)B * T, C = c->hidden_size, NH = c->num_attention_heads;
    if (!c->add_cross_attention) return;
#define POISON(p, n)                                                                                                   \
    for (size_t k_ = 0; k_ < (n); k_++) (p)[k_] = NAN
    for (int l = 0; l < c->num_hidden_layers; l++) {
        plm_layer_acts *a = &bb->acts[l];
        POISON(a->lnc, N * C);
        POISON(a->cq, N * C);
        POISON(a->ckv, N * 2 * C);
        POISON(a->catt, attention_saved_floats(B, (int)NH, T, bb->Tk, (int)(C / NH)));
        POISON(a->caty, N * C);
        POISON(a->resc, N * C);
    }
    POISON(bb->g_cq, N * C);
    POISON(bb->g_ckv, N * 2 * C);
    POISON(bb->d_enc, N * C);
#undef POISON
}

/* Builds a padded batch of length T for backbone k: BERT ids above the specials (the
 * padding token once at a real position), GPT-2 ids below eos; with causal, labels are
 * the next real token. */
static void make_s2s_batch(heads_run *r, const plm_config *c, int k, int B, int T, bool causal, bool training,
                           uint64_t seed) {
    int N = B * T;
    bool gpt2 = c->arch == PLM_ARCH_GPT2;
    memset(r, 0, sizeof *r);
    r->k = k;
    r->ids = ialloc(N), r->tt = ialloc(N), r->mask32 = ialloc(N), r->labels = ialloc(N);
    r->seq = ialloc(B), r->sp = ialloc(B), r->ep = ialloc(B);
    r->mask = keep(plm_malloc(N));
    r->targets = fzero(B);
    for (int b = 0; b < B; b++) {
        int len = b == 0 ? T : PLM_MAX(3, T - 2 - 2 * b + (int)plm_rng_below(&R, 2));
        for (int t = 0; t < T; t++) {
            int i = b * T + t;
            bool real = t < len;
            r->mask[i] = real, r->mask32[i] = real;
            if (gpt2)
                r->ids[i] = real ? 1 + (int32_t)plm_rng_below(&R, c->vocab_size - 2) : c->eos_token_id;
            else
                r->ids[i] = real ? 5 + (int32_t)plm_rng_below(&R, c->vocab_size - 5) : c->pad_token_id;
            r->tt[i] = real && !causal && t >= (len + 1) / 2;
            r->labels[i] = PLM_IGNORE_INDEX;
        }
        if (causal)
            for (int t = 0; t + 1 < len; t++) r->labels[b * T + t] = r->ids[b * T + t + 1];
    }
    if (!gpt2) r->ids[T + 2] = c->pad_token_id;
    r->b = (plm_batch){.B = B,
                       .T = T,
                       .input_ids = r->ids,
                       /* the decoder passes NULL: all segment 0 */
                       .token_type_ids = c->type_vocab_size && !causal ? r->tt : NULL,
                       .attention_mask = r->mask,
                       .labels = r->labels,
                       .causal = causal,
                       .training = training,
                       .dropout_seed = seed};
}

/* HF's EncoderDecoderModel files also hold the encoder's pooler (BertModel's default),
 * which its forward never reads: the checkpoint with encoder.pooler.dense.* added (and no
 * plm checksum) still loads, to the same loss. */
static void hf_pooler_file(const plm_model *m, const char *dir, const char *name, double loss, const plm_batch *enc,
                           const plm_batch *dec) {
    char path[1200], hdir[1100];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(hdir, sizeof hdir, "%s.hf", dir);
    plm_safetensors st;
    bool ok = plm_st_load(&st, path) == 0 && plm_mkdirs(hdir) == 0;
    const char *why = "cannot write the HF-style copy";
    if (ok) {
        int C = m->bb[0].config.hidden_size;
        plm_st_writer w;
        plm_st_writer_init(&w);
        for (int i = 0; i < st.num_tensors; i++)
            plm_st_add(&w, st.tensors[i].name, st.tensors[i].dtype, st.tensors[i].ndim, st.tensors[i].shape,
                       st.tensors[i].data);
        int64_t sw[2] = {C, C}, sb[1] = {C};
        plm_st_add(&w, "encoder.pooler.dense.weight", PLM_DT_F32, 2, sw, fzero((size_t)C * C));
        plm_st_add(&w, "encoder.pooler.dense.bias", PLM_DT_F32, 1, sb, fzero(C));
        snprintf(path, sizeof path, "%s/model.safetensors", hdir);
        ok = plm_st_write(&w, path) == 0;
        plm_st_writer_free(&w);
        plm_st_free(&st);
        char src[1200], dst[1200];
        snprintf(src, sizeof src, "%s/config.json", dir);
        snprintf(dst, sizeof dst, "%s/config.json", hdir);
        size_t len;
        char *cfg = ok ? plm_read_file(src, &len) : NULL;
        ok = cfg && plm_write_file_atomic(dst, cfg, len) == 0;
        free(cfg);
    }
    plm_model *l = ok ? plm_model_load(hdir) : NULL;
    if (ok && !l) why = plm_last_error();
    ok = l && plm_model_reserve(l, enc->B, PLM_MAX(enc->T, dec->T)) == 0 &&
         plm_model_run_seq2seq(l, enc, dec, false, 1.0f) == 0 && l->loss == loss;
    TEST_CHECK(ok, cname("parity_dump.%s.hf_file_with_encoder_pooler", name), "%s", l ? "loss differs" : why);
    plm_model_free(l);
}

static void case_seq2seq(const s2s_variant *sv) {
    const char *name = sv->name;
    int B = sv->B, Tk = sv->Tk, Tq = sv->Tq, Tmax = PLM_MAX(Tk, Tq);
    heads_variant hv = {.arch = PLM_ARCH_BERT,
                        .C = sv->C,
                        .L = sv->L,
                        .NH = sv->NH,
                        .I = sv->I,
                        .V = sv->V,
                        .B = B,
                        .T = Tmax,
                        .p_hidden = sv->p,
                        .p_attn = sv->p};
    plm_model_spec s;
    memset(&s, 0, sizeof s);
    heads_config(&s.backbone[0], &hv, sv->C, sv->NH, sv->I);
    hv.arch = sv->dec_arch;
    heads_config(&s.backbone[1], &hv, sv->C, sv->NH, sv->I);
    s.backbone[1].is_decoder = true;
    s.backbone[1].add_cross_attention = true;
    s.backbone[1].tie_word_embeddings = sv->tied;
    if (sv->dec_arch != PLM_ARCH_GPT2) s.backbone[1].cls_token_id = 2;
    s.prefix[0] = "encoder";
    s.prefix[1] = sv->dec_arch == PLM_ARCH_GPT2 ? "decoder.transformer" : "decoder.bert";
    s.num_backbones = 2;
    int hi = plm_model_spec_add_head(&s, PLM_HEAD_LM, 0);
    s.heads[hi].backbone = 1;
    dump_begin(name, "seq2seq");
    plm_model *m = plm_model_create_spec(&s, 4321);
    if (!m || plm_model_reserve(m, B, Tmax) != 0) {
        printf("FAIL parity_self.%s.create: %s\n", name, plm_last_error());
        test_failures++;
        plm_model_free(m);
        plm_st_writer_free(&W);
        release_all();
        return;
    }
    CHECK(plm_model_is_seq2seq(m) && !strcmp(plm_model_architecture(m), "EncoderDecoderModel"),
          cname("parity_self.%s.is_seq2seq", name), "not recognised as an encoder-decoder (%s)",
          plm_model_architecture(m));
    randomize_params(m);
    plm_backbone *eb = &m->bb[0], *db = &m->bb[1];
    plm_head *h = &m->heads[0];
    int C = sv->C, V = sv->V;
    bool training = sv->p > 0.0f;
    heads_run enc, dec; /* the same dropout seed: the stacks' keys differ by backbone index */
    make_s2s_batch(&enc, &eb->config, 0, B, Tk, false, training, 99);
    make_s2s_batch(&dec, &db->config, 1, B, Tq, true, training, 99);
    /* forward only */
    poison_backbone(eb, B, Tmax), poison_backbone(db, B, Tmax), poison_cross(db, B, Tmax), poison_head(h, B, Tmax);
    if (plm_model_run_seq2seq(m, &enc.b, &dec.b, false, 1.0f) != 0) {
        printf("FAIL parity_self.%s.run: %s\n", name, plm_last_error());
        test_failures++;
        plm_model_free(m);
        dump_end();
        return;
    }
    double loss0 = m->loss;
    int M = h->num_rows;
    float *logits = fcopy(h->logits, (size_t)M * V);
    float *henc = fcopy(backbone_hidden(eb), (size_t)B * Tk * C),
          *hdec = fcopy(backbone_hidden(db), (size_t)B * Tq * C);
    check_written(name, "logits", logits, (size_t)M * V);
    check_written(name, "hidden_enc", henc, (size_t)B * Tk * C);
    check_written(name, "hidden_dec", hdec, (size_t)B * Tq * C);
    /* forward + backward */
    plm_model_zero_grad(m);
    poison_backbone(eb, B, Tmax), poison_backbone(db, B, Tmax), poison_cross(db, B, Tmax), poison_head(h, B, Tmax);
    plm_model_run_seq2seq(m, &enc.b, &dec.b, true, 1.0f);
    double loss = m->loss;
    CHECK(loss == loss0 && !memcmp(backbone_hidden(eb), henc, (size_t)B * Tk * C * 4) &&
              !memcmp(backbone_hidden(db), hdec, (size_t)B * Tq * C * 4),
          cname("parity_self.%s.deterministic", name), "training pass differs from the forward-only pass");
    CHECK(isfinite(loss) && loss > 0.5 * log(V) && loss < 4 * log(V), cname("parity_self.%s.loss_sane", name),
          "loss %g with vocab %d", loss, V);
    check_written(name, "grads", m->grads, m->num_params);
    /* the encoder learns only through cross-attention: every encoder tensor has a
     * gradient (the self-attention key bias is zero in theory, softmax shift invariance) */
    int zero = 0;
    const char *first_zero = "";
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        if (strncmp(t->name, "encoder.", 8) != 0) continue;
        double n2 = dot(m->grads + t->offset, m->grads + t->offset, t->numel);
        if (n2 == 0.0 && t->nparts != 3) zero++, first_zero = t->name;
    }
    CHECK(zero == 0, cname("parity_self.%s.encoder_grads_nonzero", name), "%d encoder tensors without gradient (%s)",
          zero, first_zero);
    if (training) {
        uint64_t ke = backbone_drop_key(eb, 0, 0), kd = backbone_drop_key(db, 0, 0);
        CHECK(ke != kd && backbone_drop_key(db, 0, 3) != kd &&
                  backbone_drop_key(db, 0, 4) != backbone_drop_key(db, 0, 1),
              cname("parity_self.%s.dropout_keys_distinct", name), "encoder and decoder share dropout keys");
    }
    if (verbose) {
        /* gradients accumulate; loss_scale 0.5 halves them exactly */
        float *g1 = fcopy(m->grads, m->num_params);
        plm_model_run_seq2seq(m, &enc.b, &dec.b, true, 1.0f);
        double e2 = 0.0, n2 = 0.0;
        for (size_t k = 0; k < m->num_params; k++) {
            double dlt = (double)m->grads[k] - 2.0 * g1[k];
            e2 += dlt * dlt;
            n2 += 4.0 * g1[k] * g1[k];
        }
        CHECK(sqrt(e2 / n2) < 1e-6, cname("parity_self.%s.grads_accumulate", name),
              "second pass did not double the gradients: relerr %.3g", sqrt(e2 / n2));
        plm_model_zero_grad(m);
        plm_model_run_seq2seq(m, &enc.b, &dec.b, true, 0.5f);
        bool half = true;
        for (size_t k = 0; k < m->num_params; k++) half &= m->grads[k] == 0.5f * g1[k];
        CHECK(half, cname("parity_self.%s.loss_scale", name), "loss_scale 0.5 did not halve the gradients");
        memcpy(m->grads, g1, m->num_params * sizeof(float));
        /* refused: unequal batch counts, a model without cross-attention */
        plm_batch bad = dec.b;
        bad.B = B - 1;
        CHECK(plm_model_run_seq2seq(m, &enc.b, &bad, false, 1.0f) != 0, cname("parity_self.%s.batch_mismatch", name),
              "encoder and decoder batches of different sizes accepted");
    }

    /* the spec */
    char *cfg = plm_config_to_json(&eb->config, NULL);
    meta("config", "%s", cfg);
    free(cfg);
    cfg = plm_config_to_json(&db->config, NULL);
    meta("config1", "%s", cfg);
    free(cfg);
    meta("prefix0", "%s", eb->prefix), meta("prefix1", "%s", db->prefix);
    meta("B", "%d", B), meta("Tk", "%d", Tk), meta("Tq", "%d", Tq);
    heads_run *runs[2] = {&enc, &dec};
    for (int r = 0; r < 2; r++) {
        heads_run *u = runs[r];
        plm_backbone *bb = &m->bb[r];
        const plm_config *c = &bb->config;
        int T = u->b.T, N = B * T, L = c->num_hidden_layers, NH = c->num_attention_heads;
        put_i32(cname("run%d.input_ids", r), u->ids, 2, B, T);
        put_i32(cname("run%d.attention_mask", r), u->mask32, 2, B, T);
        if (u->b.token_type_ids) put_i32(cname("run%d.token_type_ids", r), u->tt, 2, B, T);
        if (r == 1) put_i32("run1.labels", u->labels, 2, B, T);
        put_f32(cname("run%d.hidden.final", r), r ? hdec : henc, 3, B, T, C);
        if (!training) continue;
        float ph = c->hidden_dropout_prob, pa = c->attention_probs_dropout_prob;
        put_f32(cname("run%d.dropmask.emb", r), drop_mask((size_t)N * C, ph, backbone_drop_key(bb, -1, 0), 0), 3, B, T,
                C);
        for (int l = 0; l < L; l++) {
            put_f32(cname("run%d.dropmask.%d.attn", r, l),
                    drop_mask((size_t)B * NH * T * T, pa, backbone_drop_key(bb, l, 0), 0), 4, B, NH, T, T);
            put_f32(cname("run%d.dropmask.%d.resid1", r, l),
                    drop_mask((size_t)N * C, ph, backbone_drop_key(bb, l, 1), 0), 3, B, T, C);
            put_f32(cname("run%d.dropmask.%d.resid2", r, l),
                    drop_mask((size_t)N * C, ph, backbone_drop_key(bb, l, 2), 0), 3, B, T, C);
            if (r == 1) {
                put_f32(cname("run1.dropmask.%d.xattn", l),
                        drop_mask((size_t)B * NH * Tq * Tk, pa, backbone_drop_key(bb, l, 3), 0), 4, B, NH, Tq, Tk);
                put_f32(cname("run1.dropmask.%d.residx", l),
                        drop_mask((size_t)N * C, ph, backbone_drop_key(bb, l, 4), 0), 3, B, T, C);
            }
        }
    }
    put_f64("loss", loss);
    put_f32("logits", logits, 2, M, V);
    put_model_tensors(m, m->params, "");
    put_model_tensors(m, m->grads, "grad.");
    if (out_dir) {
        /* plm_model_save's HF EncoderDecoderModel checkpoint: parity.py compares its
         * tensors and configs; plm_model_load must give back the same model and losses */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s/%s.ckpt", out_dir, name);
        if (plm_model_save(m, dir, NULL, 0) != 0) {
            printf("FAIL parity_dump.%s.checkpoint: %s\n", name, plm_last_error());
            test_failures++;
        } else {
            plm_model *l = plm_model_load(dir);
            bool ok = l && plm_model_is_seq2seq(l) && l->num_tensors == m->num_tensors && l->num_heads == 1 &&
                      l->heads[0].spec.backbone == 1 && l->heads[0].spec.kind == PLM_HEAD_LM;
            const char *why = !l ? plm_last_error() : ok ? "tensor or loss differs" : "structure differs";
            for (int i = 0; ok && i < m->num_tensors; i++) {
                const plm_tensor *t = &m->tensors[i], *u = plm_model_find(l, t->name);
                ok &= u && u->numel == t->numel && !memcmp(m->params + t->offset, l->params + u->offset, t->numel * 4);
            }
            for (int k = 0; ok && k < 2; k++) ok &= !strcmp(l->bb[k].prefix, m->bb[k].prefix);
            ok = ok && plm_model_reserve(l, B, Tmax) == 0 && plm_model_run_seq2seq(l, &enc.b, &dec.b, false, 1.0f) == 0;
            double l1 = ok ? l->loss : NAN;
            ok = ok && l1 == loss;
            /* and its gradients */
            ok = ok && plm_model_run_seq2seq(l, &enc.b, &dec.b, true, 1.0f) == 0 && l->loss == loss;
            for (int i = 0; ok && i < m->num_tensors; i++) {
                const plm_tensor *t = &m->tensors[i], *u = plm_model_find(l, t->name);
                ok &= !memcmp(m->grads + t->offset, l->grads + u->offset, t->numel * 4);
            }
            TEST_CHECK(ok, cname("parity_dump.%s.checkpoint_reload", name), "%s (loss %.9g vs %.9g)", why, l1, loss);
            plm_model_free(l);
            hf_pooler_file(m, dir, name, loss, &enc.b, &dec.b);
        }
    }
    plm_model_free(m);
    dump_end();
}

/* Encoder-decoder specs plm_model_create_spec refuses (an encoder of another width: HF
 * would insert enc_to_dec_proj; cross-attention on the encoder, with or without a head
 * on it), and the initialisation of the decoder's head from the decoder's config. */
static void seq2seq_spec_checks(void) {
    plm_model_spec s;
    memset(&s, 0, sizeof s);
    heads_variant hv = {.arch = PLM_ARCH_BERT, .C = 24, .L = 1, .NH = 2, .I = 32, .V = 40, .B = 2, .T = 8};
    heads_config(&s.backbone[0], &hv, 24, 2, 32);
    heads_config(&s.backbone[1], &hv, 24, 2, 32);
    s.backbone[1].is_decoder = s.backbone[1].add_cross_attention = true;
    s.prefix[0] = "encoder", s.prefix[1] = "decoder.bert";
    s.num_backbones = 2;
    int hi = plm_model_spec_add_head(&s, PLM_HEAD_LM, 0);
    s.heads[hi].backbone = 1;
    plm_model_spec w = s;
    w.backbone[1].hidden_size = 12, w.backbone[1].num_attention_heads = 2;
    plm_model *m = plm_model_create_spec(&w, 1);
    CHECK(!m, "parity_self.seq2seq.refuses_other_encoder_width", "a decoder of width 12 on an encoder of 24 accepted");
    plm_model_free(m);
    w = s;
    w.backbone[0].is_decoder = w.backbone[0].add_cross_attention = true;
    m = plm_model_create_spec(&w, 1);
    CHECK(!m, "parity_self.seq2seq.refuses_cross_attention_encoder", "cross-attention on backbone 0 accepted");
    plm_model_free(m);
    /* the decoder's head tensors draw with the decoder's initializer_range */
    w = s;
    w.backbone[1].initializer_range = 0.5f;
    m = plm_model_create_spec(&w, 1);
    const plm_tensor *t = m ? plm_model_find(m, "decoder.cls.predictions.transform.dense.weight") : NULL;
    double sd = t ? sqrt(dot(m->params + t->offset, m->params + t->offset, t->numel) / (double)t->numel) : 0.0;
    CHECK(sd > 0.4 && sd < 0.6, "parity_self.seq2seq.decoder_head_init", "std %.3g, want ~0.5 (decoder's config)", sd);
    plm_model_free(m);
}

/* The fused self-attention is attention_forward_ex / attention_backward_ex on strided
 * views of qkv: the same inputs give the same bits, masks, causality and dropout on. */
static void attention_fused_is_ex(void) {
    int B = 3, T = 11, C = 36, NH = 3, hs = C / NH;
    size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = attention_saved_floats(B, NH, T, T, hs);
    float *qkv = frand(nq, 1.5f), *dout = frand(no, 1.0f);
    uint8_t *mask = keep(plm_malloc((size_t)B * T));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) mask[b * T + t] = t < T - 3 * b;
    for (int v = 0; v < 4; v++) {
        bool causal = v & 1;
        float p = v & 2 ? 0.2f : 0.0f;
        float *o1 = fnan(no), *a1 = fnan(na), *o2 = fnan(no), *a2 = fnan(na), *g1 = fnan(nq), *g2 = fnan(nq);
        attention_forward(o1, a1, qkv, mask, B, T, C, NH, causal, p, 0xabc);
        attn_shape s = {.B = B,
                        .Tq = T,
                        .Tk = T,
                        .NH = NH,
                        .hs = hs,
                        .q = qkv,
                        .k = qkv + C,
                        .v = qkv + 2 * C,
                        .ldq = 3 * C,
                        .ldk = 3 * C,
                        .ldv = 3 * C,
                        .key_mask = mask,
                        .causal = causal,
                        .scale = 1.0f / sqrtf((float)hs),
                        .dropout_p = p,
                        .dropout_key = 0xabc};
        attention_forward_ex(&s, o2, a2);
        CHECK(!memcmp(o1, o2, no * 4) && !memcmp(a1, a2, na * 4),
              cname("parity_self.attention_fused_is_ex.forward%s%s", causal ? "_causal" : "", p > 0 ? "_dropout" : ""),
              "attention_forward differs from attention_forward_ex");
        attention_backward(g1, dout, qkv, a1, B, T, C, NH, p, 0xabc);
        attention_backward_ex(&s, dout, a2, g2, g2 + C, g2 + 2 * C, NULL);
        CHECK(!memcmp(g1, g2, nq * 4),
              cname("parity_self.attention_fused_is_ex.backward%s%s", causal ? "_causal" : "", p > 0 ? "_dropout" : ""),
              "attention_backward differs from attention_backward_ex");
    }
    release_all();
}

/* ---------------------------------------------------------------- optimizer */

/* Gathers the parameter elements of m's tensors (skipping the alignment gaps of the
 * buffer) from base into one flat array, in table order. */
static float *gather(const plm_model *m, const float *base, size_t *n_out) {
    size_t n = 0;
    for (int i = 0; i < m->num_tensors; i++) n += m->tensors[i].numel;
    float *f = keep(plm_malloc(n * sizeof(float)));
    size_t k = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        memcpy(f + k, base + m->tensors[i].offset, m->tensors[i].numel * sizeof(float));
        k += m->tensors[i].numel;
    }
    *n_out = n;
    return f;
}

/* Four AdamW updates of a small BERT (decayed matrices, undecayed biases and LayerNorm
 * weights) with random gradients, warmup then linear decay, and a global-norm clip on
 * the third: parity.py replays them with torch.optim.AdamW and clip_grad_norm_. */
static void case_adamw(void) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = 31, c.hidden_size = 16, c.num_attention_heads = 2, c.num_hidden_layers = 1;
    c.intermediate_size = 24, c.max_position_embeddings = 8;
    dump_begin("adamw", "adamw");
    plm_model *m = plm_model_create(&c, 7);
    randomize_params(m);
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    plm_adamw_hparams h = {.learning_rate = 1e-2f, .beta1 = 0.9f, .beta2 = 0.95f, .eps = 1e-8f, .weight_decay = 0.1f};
    int steps = 4, warmup = 2, total = 6, clip_step = 2;
    size_t n;
    float *flat = gather(m, m->params, &n);
    put_f32("params.init", flat, 1, (int)n);
    float *decay = keep(plm_malloc(n * sizeof(float)));
    for (int i = 0, k = 0; i < m->num_tensors; i++)
        for (size_t e = 0; e < m->tensors[i].numel; e++) decay[k++] = m->tensors[i].no_decay ? 0.0f : 1.0f;
    put_f32("decay", decay, 1, (int)n);
    float lrs[8];
    double norm = 0.0;
    for (int s = 0; s < steps; s++) {
        float gscale = s == clip_step ? 3.0f : 0.05f * (float)(s + 1);
        for (int i = 0; i < m->num_tensors; i++) {
            float *g = m->grads + m->tensors[i].offset;
            for (size_t e = 0; e < m->tensors[i].numel; e++) g[e] = rnd1(gscale);
        }
        flat = gather(m, m->grads, &n);
        put_f32(cname("grad.step%d", s), flat, 1, (int)n);
        if (s == clip_step) {
            norm = plm_clip_grad_norm(m, 1.0);
            put_f64("clip.norm", norm);
        }
        lrs[s] = plm_lr_at(PLM_SCHED_LINEAR, h.learning_rate, s + 1, warmup, total);
        plm_adamw_step(&opt, m, &h, lrs[s]);
    }
    CHECK(norm > 1.0, "parity_self.adamw.clip_engaged", "gradient norm %g does not exceed the clip", norm);
    check_written("adamw", "params", m->params, m->num_params);
    meta("steps", "%d", steps), meta("clip_step", "%d", clip_step), meta("max_norm", "1");
    meta("warmup", "%d", warmup), meta("total", "%d", total);
    meta("lr", "%.9g", h.learning_rate), meta("beta1", "%.9g", h.beta1), meta("beta2", "%.9g", h.beta2);
    meta("eps", "%.9g", h.eps), meta("weight_decay", "%.9g", h.weight_decay);
    put_f32("lr_at", lrs, 1, steps);
    put_f32("params.final", gather(m, m->params, &n), 1, (int)n); /* n is the same for every gather */
    put_f32("exp_avg", gather(m, opt.m, &n), 1, (int)n);
    put_f32("exp_avg_sq", gather(m, opt.v, &n), 1, (int)n);
    plm_adamw_free(&opt);
    plm_model_free(m);
    dump_end();
}

/* ---------------------------------------------------------------- main */

/* ---------------------------------------------------------------- DPO */

/* plm dpo's step (train/dpo.h) on a small GPT-2: two preference pairs (four sequences of
 * prompt and response tokens, padded right), reference log-probs given; the forward pass
 * for the policy's log-probs, the loss, then the LM loss with the per-sequence
 * label_weights through the usual backward pass, for each of TRL's loss types (sigmoid,
 * hinge, ipo on per-token mean log-probs). parity.py recomputes the summed response
 * log-probs, the DPO loss and its gradient with autograd in float64. */
static void case_dpo(const char *name, float beta, bool untied, plm_dpo_loss_type type) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = 61;
    c.hidden_size = 36;
    c.num_attention_heads = 3;
    c.num_hidden_layers = 2;
    c.intermediate_size = 60;
    c.max_position_embeddings = 16;
    c.tie_word_embeddings = !untied;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.eos_token_id = c.vocab_size - 1;
    dump_begin(name, "dpo");
    /* pair 0: a shared prompt, responses of 4 and 2 tokens; pair 1: longer prompt, 3 and 5 */
    static const char *segs[4] = {"00001111", "000011", "000000111", "00000011111"};
    int B = 4, T = 11, N = B * T;
    plm_model *m = plm_model_create(&c, 99);
    if (!m || plm_model_reserve(m, B, T) != 0) {
        printf("FAIL parity_self.%s.create: %s\n", name, plm_last_error());
        test_failures++;
        plm_model_free(m);
        plm_st_writer_free(&W);
        release_all();
        return;
    }
    randomize_params(m);
    plm_dpo_data d = {0};
    plm_sft_data_init(&d.seqs);
    int32_t prompt[2][8];
    for (int p = 0; p < 2; p++)
        for (int k = 0; k < 8; k++) prompt[p][k] = 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 2);
    for (int s = 0; s < B; s++) {
        int n = (int)strlen(segs[s]);
        int32_t tk[16];
        uint8_t tr[16];
        for (int k = 0; k < n; k++) {
            tr[k] = segs[s][k] == '1';
            tk[k] = !tr[k]       ? prompt[s / 2][k]
                    : k + 1 == n ? c.eos_token_id
                                 : 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 2);
        }
        plm_sft_data_add(&d.seqs, tk, tr, n, T, 0);
    }
    d.n = 2;
    d.ref_logp = plm_malloc((size_t)B * sizeof(double));
    for (int s = 0; s < B; s++)
        d.ref_logp[s] = -4.0 * (strchr(segs[s], '1') ? (double)strlen(strchr(segs[s], '1')) : 1) + rnd1(2.0f);
    if (type == PLM_DPO_HINGE) {
        /* references that put pair 0 before the hinge (beta z = 0.5: a gradient) and pair 1
         * past it (beta z = 3: none), whatever the random policy's log-probs are */
        double lp[4];
        plm_dpo_logps(m, &d.seqs, B, c.eos_token_id, lp);
        double off[4] = {0.5 / beta + 0.3, 0.3, 3.0 / beta - 0.2, -0.2};
        for (int s = 0; s < B; s++) d.ref_logp[s] = lp[s] - off[s];
    }
    int pairs[2] = {0, 1};
    plm_dpo_buf buf = {0};
    plm_batch b;
    plm_dpo_stats st;
    poison_model_acts(m, B, T);
    plm_model_zero_grad(m);
    int rc = plm_dpo_batch(m, &d, pairs, 2, beta, type, c.eos_token_id, false, 0, &buf, &b, &st);
    double logp[4];
    memcpy(logp, buf.logp, sizeof logp);
    poison_model_acts(m, B, T);
    if (rc == 0) rc = plm_model_run(m, 0, &b, true, 1.0f);
    CHECK(rc == 0 && b.B == B && b.T == T, cname("parity_self.%s.runs", name), "%s", rc ? plm_last_error() : "shape");
    CHECK(isfinite(st.loss) && st.loss > 0, cname("parity_self.%s.loss_finite", name), "loss %g", st.loss);
    check_written(name, "grads", m->grads, m->num_params);
    /* the weighted LM loss is the surrogate whose gradient is DPO's: sum_t w_t CE_t */
    double surrogate = 0.0;
    for (int s = 0; s < B; s++) surrogate -= buf.seq_w[s] * logp[s];
    CHECK(fabs(m->loss - surrogate) <= 1e-5 * fabs(surrogate) + 1e-9, cname("parity_self.%s.surrogate", name),
          "model loss %.9g, sum w * CE %.9g", m->loss, surrogate);
    if (type == PLM_DPO_HINGE) /* both sides of the hinge: a pair with a gradient, one without */
        CHECK((buf.seq_w[0] == 0.0f) != (buf.seq_w[2] == 0.0f) && buf.seq_w[1] == -buf.seq_w[0],
              cname("parity_self.%s.both_sides_of_the_hinge", name), "weights %g %g", buf.seq_w[0], buf.seq_w[2]);
    int32_t *resp = ialloc(N), *mask32 = ialloc(N);
    for (int s = 0; s < B; s++)
        for (int t = 0; t < T; t++) {
            size_t len = d.seqs.off[s + 1] - d.seqs.off[s];
            resp[s * T + t] = (size_t)t < len && d.seqs.train[d.seqs.off[s] + (size_t)t];
            mask32[s * T + t] = b.attention_mask[s * T + t];
        }
    char *cfg = plm_config_to_json(&c, NULL);
    meta("config", "%s", cfg);
    free(cfg);
    meta("beta", "%.9g", beta), meta("loss_type", "%s", plm_dpo_loss_name(type));
    put_i32("input_ids", b.input_ids, 2, B, T), put_i32("attention_mask", mask32, 2, B, T);
    put_i32("labels", b.labels, 2, B, T), put_i32("response_mask", resp, 2, B, T);
    for (int s = 0; s < B; s++) {
        put_f64(cname("ref_logp.%d", s), d.ref_logp[s]);
        put_f64(cname("logp.%d", s), logp[s]);
    }
    put_f64("loss", st.loss);
    put_f64("rewards_chosen", st.chosen), put_f64("rewards_rejected", st.rejected);
    put_f64("rewards_accuracy", st.accuracy), put_f64("rewards_margin", st.margin);
    put_model_tensors(m, m->params, "");
    put_model_tensors(m, m->grads, "grad.");
    plm_dpo_buf_free(&buf);
    plm_dpo_data_free(&d);
    plm_model_free(m);
    dump_end();
}

/* plm rloo's policy step (train/rloo.h plm_rloo_policy_batch) on a small GPT-2: 2 prompts
 * x k 3 completions of 1-4 tokens (some ending in EOS), rows padded right, the reward
 * model's scores and the reference's log-probs given; the forward pass for the policy's
 * log-probs, the RLOO loss, then the LM loss with the per-sequence label_weights through
 * the usual backward pass. parity.py recomputes the summed completion log-probs, the
 * rewards score - beta (logp - ref), the leave-one-out advantages (without gradient, as
 * TRL) and the gradient of -mean(A logp) with autograd in float64. */
static void case_rloo(const char *name, float beta, bool untied) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = 53;
    c.hidden_size = 30;
    c.num_attention_heads = 3;
    c.num_hidden_layers = 2;
    c.intermediate_size = 44;
    c.max_position_embeddings = 16;
    c.tie_word_embeddings = !untied;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.eos_token_id = c.vocab_size - 1;
    dump_begin(name, "rloo");
    int n = 2, k = 3, N = n * k, T = 9;
    static const int plen[2] = {4, 5}, clen[6] = {1, 4, 2, 3, 4, 1};
    plm_model *m = plm_model_create(&c, 77);
    if (!m || plm_model_reserve(m, N, T) != 0) {
        printf("FAIL parity_self.%s.create: %s\n", name, plm_last_error());
        test_failures++;
        plm_model_free(m);
        plm_st_writer_free(&W);
        release_all();
        return;
    }
    randomize_params(m);
    plm_sft_data seqs;
    plm_sft_data_init(&seqs);
    int32_t prompt[2][8];
    for (int p = 0; p < 2; p++)
        for (int t = 0; t < 8; t++) prompt[p][t] = 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 2);
    int rows[6], len[6];
    for (int q = 0; q < N; q++) {
        int i = q / k, np = plen[i], g = clen[q];
        int32_t tk[16];
        uint8_t tr[16] = {0};
        memcpy(tk, prompt[i], (size_t)np * sizeof *tk);
        for (int t = 0; t < g; t++) {
            tk[np + t] = t + 1 == g && q % 2 == 0 ? c.eos_token_id : 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 2);
            tr[np + t] = 1;
        }
        plm_sft_data_add(&seqs, tk, tr, np + g, T, 0);
        rows[q] = q;
        len[q] = g;
    }
    float score[6];
    double ref[6], logp[6];
    for (int q = 0; q < N; q++) {
        score[q] = rnd1(2.0f);
        ref[q] = -4.0 * clen[q] + rnd1(2.0f);
    }
    plm_sft_batch bb = {0};
    float seq_w[6], *tok_w = plm_malloc((size_t)N * T * sizeof(float));
    plm_batch b;
    plm_rloo_stats st;
    poison_model_acts(m, N, T);
    plm_model_zero_grad(m);
    int rc = plm_rloo_policy_batch(m, &seqs, n, k, score, ref, len, beta, c.eos_token_id, rows, &bb, logp, seq_w, tok_w,
                                   &b, &st);
    poison_model_acts(m, N, T);
    if (rc == 0) rc = plm_model_run(m, 0, &b, true, 1.0f);
    CHECK(rc == 0 && b.B == N && b.T == T, cname("parity_self.%s.runs", name), "%s", rc ? plm_last_error() : "shape");
    CHECK(isfinite(st.loss) && st.n == N, cname("parity_self.%s.loss_finite", name), "loss %g", st.loss);
    check_written(name, "grads", m->grads, m->num_params);
    /* the weighted LM loss is the RLOO loss: sum_t w_t CE_t = -(1/N) sum A_i logp_i */
    CHECK(fabs(m->loss - st.loss) <= 1e-5 * fabs(st.loss) + 1e-7, cname("parity_self.%s.surrogate", name),
          "model loss %.9g, rloo loss %.9g", m->loss, st.loss);
    int32_t *resp = ialloc((size_t)N * T), *mask32 = ialloc((size_t)N * T);
    for (int q = 0; q < N; q++)
        for (int t = 0; t < T; t++) {
            size_t l = seqs.off[q + 1] - seqs.off[q];
            resp[q * T + t] = (size_t)t < l && seqs.train[seqs.off[q] + (size_t)t];
            mask32[q * T + t] = b.attention_mask[q * T + t];
        }
    char *cfg = plm_config_to_json(&c, NULL);
    meta("config", "%s", cfg);
    free(cfg);
    meta("beta", "%.9g", beta), meta("k", "%d", k);
    put_i32("input_ids", b.input_ids, 2, N, T), put_i32("attention_mask", mask32, 2, N, T);
    put_i32("labels", b.labels, 2, N, T), put_i32("response_mask", resp, 2, N, T);
    for (int q = 0; q < N; q++) {
        put_f64(cname("ref_logp.%d", q), ref[q]);
        put_f64(cname("score.%d", q), score[q]);
        put_f64(cname("logp.%d", q), logp[q]);
    }
    put_f64("loss", st.loss), put_f64("reward", st.reward), put_f64("kl", st.kl);
    put_f64("advantage", st.advantage);
    put_model_tensors(m, m->params, "");
    put_model_tensors(m, m->grads, "grad.");
    free(tok_w);
    plm_sft_batch_free(&bb);
    plm_sft_data_free(&seqs);
    plm_model_free(m);
    dump_end();
}

/* plm ppo's minibatch (train/ppo.h) on a small GPT-2 policy and a GPT-2 value model of
 * another width (score head on every position): 4 prompts of 2-5 tokens with responses of
 * 1-4 tokens (some ending in EOS, one filling the width G), rows padded right. The rollout
 * data: ref log-probs and scores drawn at random, the old log-probs the policy's own minus
 * a random shift of up to +-0.45 (ratios on both sides of the clip range), the old values
 * the value model's own plus up to +-0.45 (values clipped and not); plm_ppo_advantages
 * masks them and computes rewards, GAE, returns and whitened advantages; then the update's
 * forward passes, the loss, its per-token gradients and both backward passes. parity.py
 * recomputes GAE and whitening from the raw inputs as TRL does, and the loss and every
 * parameter gradient of both models by autograd in float64 at temperature tau. */
static void case_ppo(const char *name, bool whiten, float gamma, float lam, bool untied) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = 53;
    c.hidden_size = 30;
    c.num_attention_heads = 3;
    c.num_hidden_layers = 2;
    c.intermediate_size = 44;
    c.max_position_embeddings = 16;
    c.tie_word_embeddings = !untied;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.eos_token_id = c.vocab_size - 1;
    plm_model_spec vs;
    memset(&vs, 0, sizeof vs);
    plm_config *vc = &vs.backbone[0];
    *vc = c;
    vc->hidden_size = 24;
    vc->num_attention_heads = 2;
    vc->intermediate_size = 40;
    vc->tie_word_embeddings = true;
    vc->pad_token_id = c.eos_token_id;
    vc->num_labels = 1;
    vs.num_backbones = 1;
    plm_model_spec_add_head(&vs, PLM_HEAD_SEQ_CLS, 1);
    dump_begin(name, "ppo");
    int n = 4, G = 4, T = 9;
    float tau = 0.7f;
    static const int plen[4] = {3, 5, 2, 4}, L[4] = {1, 4, 2, 3};
    plm_model *m = plm_model_create(&c, 77), *vm = plm_model_create_spec(&vs, 78);
    if (!m || !vm || plm_model_reserve(m, n, T) != 0 || plm_model_reserve(vm, n, T) != 0) {
        printf("FAIL parity_self.%s.create: %s\n", name, plm_last_error());
        test_failures++;
        plm_model_free(m);
        plm_model_free(vm);
        plm_st_writer_free(&W);
        release_all();
        return;
    }
    randomize_params(m);
    randomize_params(vm);
    plm_sft_data seqs;
    plm_sft_data_init(&seqs);
    int rows[4];
    for (int q = 0; q < n; q++) {
        int32_t tk[16];
        uint8_t tr[16] = {0};
        for (int t = 0; t < plen[q] + L[q]; t++) {
            tk[t] = 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 2);
            tr[t] = t >= plen[q];
        }
        if (q % 2 == 0) tk[plen[q] + L[q] - 1] = c.eos_token_id;
        plm_sft_data_add(&seqs, tk, tr, plen[q] + L[q], T, 0);
        rows[q] = q;
    }
    plm_sft_batch bb = {0};
    plm_batch b;
    plm_sft_collate(&seqs, rows, n, c.eos_token_id, &bb, &b);
    float *zeros = fzero((size_t)n);
    b.seq_targets = zeros;
    size_t NG = (size_t)n * G;
    float *lp = fnan(NG), *ref = fnan(NG), *vals = fnan(NG), *score = fnan((size_t)n);
    float *rew = fnan(NG), *adv = fnan(NG), *ret = fnan(NG), *newlp = fnan(NG), *newv = fnan(NG);
    float *dlogp = fnan(NG), *dv = fnan(NG), *w = fnan((size_t)n * T), *dh = fnan((size_t)n * T * vc->hidden_size);
    int rc = plm_ppo_logprobs(m, &b, plen, L, n, G, tau, lp);
    if (rc == 0) rc = plm_ppo_values(vm, &b, plen, L, n, G, vals, false);
    for (size_t q = 0; q < NG; q++) {
        lp[q] -= rnd1(0.45f); /* padded entries too: the masking must overwrite them */
        vals[q] += rnd1(0.45f);
        ref[q] = lp[q] + rnd1(0.5f);
    }
    for (int q = 0; q < n; q++) score[q] = rnd1(2.0f);
    float *lp_raw = fcopy(lp, NG), *ref_raw = fcopy(ref, NG), *vals_raw = fcopy(vals, NG);
    plm_ppo_gae_args ga = {.kl_coef = 0.05f, .gamma = gamma, .lam = lam, .whiten_rewards = whiten};
    double kl_sum, nsr_sum;
    plm_ppo_advantages(lp, ref, vals, L, score, n, G, &ga, rew, adv, ret, &kl_sum, &nsr_sum);
    plm_ppo_clip_args ca = {.cliprange = 0.2f, .cliprange_value = 0.2f, .vf_coef = 0.1f};
    plm_ppo_mb_stats st = {0};
    poison_model_acts(m, n, T);
    plm_model_zero_grad(m);
    plm_model_zero_grad(vm);
    if (rc == 0) rc = plm_ppo_logprobs(m, &b, plen, L, n, G, tau, newlp);
    if (rc == 0) rc = plm_ppo_values(vm, &b, plen, L, n, G, newv, true);
    if (rc == 0) {
        plm_ppo_loss(newlp, newv, lp, vals, ret, adv, L, n, G, &ca, &st, dlogp, dv);
        plm_ppo_values_backward(vm, &b, plen, L, n, G, dv, dh);
        poison_model_acts(m, n, T);
        rc = plm_ppo_policy_backward(m, &b, plen, L, n, G, tau, dlogp, w);
    }
    CHECK(rc == 0, cname("parity_self.%s.runs", name), "%s", rc ? plm_last_error() : "");
    CHECK(isfinite(st.loss), cname("parity_self.%s.loss_finite", name), "loss %g", st.loss);
    /* the case covers both branches of both clips */
    CHECK(st.pg_clipfrac > 0 && st.pg_clipfrac < 1 && st.vf_clipfrac > 0 && st.vf_clipfrac < 1,
          cname("parity_self.%s.mixed_clipping", name), "policy clipfrac %g, value clipfrac %g", st.pg_clipfrac,
          st.vf_clipfrac);
    check_written(name, "grads", m->grads, m->num_params);
    check_written(name, "value_grads", vm->grads, vm->num_params);
    int32_t *mask32 = ialloc((size_t)n * T), *resp = ialloc((size_t)n * T);
    for (int q = 0; q < n; q++)
        for (int t = 0; t < T; t++) {
            mask32[q * T + t] = b.attention_mask[q * T + t];
            resp[q * T + t] = t >= plen[q] && t < plen[q] + L[q];
        }
    char *cfg = plm_config_to_json(&c, NULL), *vcfg = plm_config_to_json(vc, NULL);
    meta("config", "%s", cfg);
    meta("value_config", "%s", vcfg);
    free(cfg);
    free(vcfg);
    meta("tau", "%.9g", tau), meta("kl_coef", "%.9g", ga.kl_coef), meta("gamma", "%.9g", gamma);
    meta("lam", "%.9g", lam), meta("whiten_rewards", "%d", whiten ? 1 : 0);
    meta("cliprange", "%.9g", ca.cliprange), meta("cliprange_value", "%.9g", ca.cliprange_value);
    meta("vf_coef", "%.9g", ca.vf_coef);
    put_i32("input_ids", b.input_ids, 2, n, T), put_i32("attention_mask", mask32, 2, n, T);
    put_i32("labels", b.labels, 2, n, T), put_i32("response_mask", resp, 2, n, T);
    put_i32("plen", plen, 1, n), put_i32("L", L, 1, n);
    put_f32("old_logprob_raw", lp_raw, 2, n, G), put_f32("ref_raw", ref_raw, 2, n, G);
    put_f32("values_raw", vals_raw, 2, n, G), put_f32("scores", score, 1, n);
    put_f32("old_logprob", lp, 2, n, G), put_f32("ref_logprob", ref, 2, n, G), put_f32("values", vals, 2, n, G);
    put_f32("rewards", rew, 2, n, G), put_f32("advantages", adv, 2, n, G), put_f32("returns", ret, 2, n, G);
    put_f32("new_logprob", newlp, 2, n, G), put_f32("new_values", newv, 2, n, G);
    put_f64("kl_sum", kl_sum), put_f64("non_score_reward_sum", nsr_sum);
    put_f64("loss", st.loss), put_f64("pg_loss", st.pg_loss), put_f64("vf_loss", st.vf_loss);
    put_f64("pg_clipfrac", st.pg_clipfrac), put_f64("vf_clipfrac", st.vf_clipfrac);
    put_f64("approxkl", st.approxkl), put_f64("ratio", st.ratio);
    put_model_tensors(m, m->params, "");
    put_model_tensors(m, m->grads, "grad.");
    put_model_tensors(vm, vm->params, "value.");
    put_model_tensors(vm, vm->grads, "vgrad.");
    plm_sft_batch_free(&bb);
    plm_sft_data_free(&seqs);
    plm_model_free(m);
    plm_model_free(vm);
    dump_end();
}

/* ---------------------------------------------------------------- reward model */

typedef struct {
    float *r;
    int n;
    float center;
} pairwise_ctx;

static double pairwise_objective(void *p) {
    pairwise_ctx *c = p;
    plm_pairwise_stats st;
    pairwise_forward(c->r, c->n, c->center, &st);
    return st.loss_sum / c->n;
}

/* The Bradley-Terry loss of model/pairwise.h on its own: 7 pairs of rewards, one pair
 * far apart (|r_c - r_r| = 60: no overflow either way), one tied (not counted correct). */
static void case_pairwise(const char *name, float center) {
    int n = 7;
    dump_begin(name, "pairwise");
    float *r = frand((size_t)2 * n, 3.0f);
    r[2] = 30.0f, r[3] = -30.0f; /* pair 1: d = 60 */
    r[6] = -25.0f, r[7] = 35.0f; /* pair 3: d = -60 */
    r[10] = r[11] = 0.7f;        /* pair 5: a tie */
    plm_pairwise_stats st;
    pairwise_forward(r, n, center, &st);
    float gs = 0.61f / (float)n, *g = fnan((size_t)2 * n), *g2 = fcopy(r, (size_t)2 * n);
    pairwise_backward(g, r, n, center, gs);
    pairwise_backward(g2, g2, n, center, gs); /* in place, as the head runs it */
    check_written(name, "grad", g, (size_t)2 * n);
    CHECK(!memcmp(g, g2, (size_t)2 * n * sizeof(float)), cname("parity_self.%s.in_place", name),
          "the in-place gradient differs");
    CHECK(isfinite(st.loss_sum) && st.pairs == n, cname("parity_self.%s.finite", name), "loss %g", st.loss_sum);
    meta("center", "%.9g", center), meta("grad_scale", "%.9g", gs);
    put_f32("rewards", r, 1, 2 * n);
    put_f64("loss_sum", st.loss_sum), put_f64("correct", st.correct), put_f64("margin_sum", st.margin_sum);
    put_f64("min_reward", st.min_reward), put_f64("max_reward", st.max_reward);
    put_f32("grad.rewards", g, 1, 2 * n);
    if (verbose) {
        /* central differences of the mean loss */
        float *gm = fcopy(r, (size_t)2 * n);
        pairwise_backward(gm, r, n, center, 1.0f / (float)n);
        pairwise_ctx ctx = {r, n, center};
        fd_check(name, pairwise_objective, &ctx, r, gm, (size_t)2 * n, 14, 1e-2f, 2e-2);
    }
    dump_end();
}

/* plm reward's step (train/reward.h) on a small GPT-2 with HF's score head (num_labels 1):
 * three preference pairs, six sequences of different lengths that end in EOS as plm's
 * template ends a response (one has an EOS inside too, as a multi-turn conversation does),
 * right-padded with EOS, the pad token; plm_reward_batch's pairwise batch through the
 * usual forward and backward pass, dropout configured but off (TRL's disable_dropout).
 * parity.py reads each reward at HF's token (the rightmost one that is not
 * pad_token_id, from the ids alone), recomputes the Bradley-Terry loss with the
 * centring term and every parameter gradient in float64. */
static void case_reward(const char *name, float center) {
    static const int lens[6] = {7, 4, 11, 9, 5, 13};
    int B = 6, T = 13, N = B * T;
    plm_model_spec s;
    memset(&s, 0, sizeof s);
    plm_config *c = &s.backbone[0];
    plm_config_default(c, PLM_ARCH_GPT2);
    c->vocab_size = 61;
    c->hidden_size = 36;
    c->num_attention_heads = 3;
    c->num_hidden_layers = 2;
    c->intermediate_size = 60;
    c->max_position_embeddings = 16;
    c->hidden_dropout_prob = c->attention_probs_dropout_prob = 0.1f;
    c->eos_token_id = c->pad_token_id = c->vocab_size - 1;
    c->num_labels = 1;
    s.num_backbones = 1;
    plm_model_spec_add_head(&s, PLM_HEAD_SEQ_CLS, 1);
    int32_t eos = c->eos_token_id;
    dump_begin(name, "reward");
    plm_model *m = plm_model_create_spec(&s, 77);
    if (!m || plm_model_reserve(m, B, T) != 0) {
        printf("FAIL parity_self.%s.create: %s\n", name, m ? plm_last_error() : "no model");
        test_failures++;
        plm_model_free(m);
        plm_st_writer_free(&W);
        release_all();
        return;
    }
    randomize_params(m);
    plm_dpo_data d = {0};
    plm_sft_data_init(&d.seqs);
    for (int q = 0; q < B; q++) {
        int32_t tk[16];
        uint8_t tr[16];
        for (int k = 0; k < lens[q]; k++) {
            tk[k] = 1 + (int32_t)plm_rng_below(&R, (uint32_t)c->vocab_size - 2);
            tr[k] = k >= lens[q] / 2;
        }
        tk[lens[q] - 1] = eos;
        if (q == 3) tk[4] = eos; /* HF reads the rightmost token that is not padding, not the one before the first */
        plm_sft_data_add(&d.seqs, tk, tr, lens[q], T, 0);
    }
    d.n = 3;
    int pairs[3] = {0, 1, 2};
    plm_reward_buf buf = {0};
    plm_batch b;
    plm_reward_batch(&d, pairs, 3, eos, center, &buf, &b);
    poison_model_acts(m, B, T);
    poison_head(&m->heads[0], B, T);
    int rc = plm_model_run(m, 0, &b, false, 1.0f);
    float *rewards = fcopy(m->heads[0].logits, (size_t)B);
    double loss0 = m->loss;
    plm_pairwise_stats st = m->heads[0].pairs;
    poison_model_acts(m, B, T);
    poison_head(&m->heads[0], B, T);
    plm_model_zero_grad(m);
    if (rc == 0) rc = plm_model_run(m, 0, &b, true, 1.0f);
    CHECK(rc == 0 && b.B == B && b.T == T && b.pairwise, cname("parity_self.%s.runs", name), "%s",
          rc ? plm_last_error() : "shape");
    check_written(name, "rewards", rewards, (size_t)B);
    check_written(name, "grads", m->grads, m->num_params);
    CHECK(m->loss == loss0 && isfinite(loss0) && loss0 > 0, cname("parity_self.%s.deterministic", name),
          "loss %.9g, forward-only %.9g", m->loss, loss0);
    /* plm_reward_score (plain batches of 4 and 2, other widths) reads the same rewards */
    float sc[6];
    rc = plm_reward_score(m, &d.seqs, 4, eos, NULL, sc);
    double e2 = 0.0, n2 = 0.0;
    for (int q = 0; q < B; q++) e2 += (sc[q] - rewards[q]) * (sc[q] - rewards[q]), n2 += rewards[q] * rewards[q];
    CHECK(rc == 0 && sqrt(e2 / n2) < 1e-5, cname("parity_self.%s.score_same_rewards", name), "rc %d relerr %.3g", rc,
          sqrt(e2 / n2));
    int32_t *mask32 = ialloc(N);
    for (int q = 0; q < B; q++)
        for (int t = 0; t < T; t++) mask32[q * T + t] = t < lens[q]; /* HF's attention mask: every real token */
    char *cfg = plm_config_to_json(&m->config, NULL);
    meta("config", "%s", cfg);
    free(cfg);
    meta("center", "%.9g", center), meta("pad_token_id", "%d", eos);
    put_i32("input_ids", b.input_ids, 2, B, T), put_i32("attention_mask", mask32, 2, B, T);
    put_f32("rewards", rewards, 1, B);
    put_f64("loss", loss0);
    put_f64("accuracy", (double)st.correct / st.pairs), put_f64("margin", st.margin_sum / st.pairs);
    put_model_tensors(m, m->params, "");
    put_model_tensors(m, m->grads, "grad.");
    plm_reward_buf_free(&buf);
    plm_dpo_data_free(&d);
    plm_model_free(m);
    dump_end();
}
int main(int argc, char **argv) {
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: test_parity_dump [DIR]\n"
                        "  with DIR: write one safetensors file per parity case into DIR\n"
                        "  without: run the self-check (PASS/FAIL lines)\n");
        return 2;
    }
    /* Thousands of tiny parallel regions: OpenMP's default spin-waiting makes them 20-50x
     * slower when the machine is busy. Sleeping waits change no result; the setting is
     * read at startup, hence the re-exec. */
    if (!getenv("OMP_WAIT_POLICY")) {
        setenv("OMP_WAIT_POLICY", "passive", 1);
        execv("/proc/self/exe", argv); /* on failure, carry on as we are */
    }
    out_dir = argc == 2 ? argv[1] : NULL;
    verbose = out_dir == NULL;
    plm_rng_seed(&R, 20240601, 3);
    /* PLM_BF16=1 (tests/parity.sh's bf16 route): every linear product in bf16, and
     * attention's tile products where the CPU has AVX512_BF16; parity.py compares with
     * its bf16 tolerance. Without bf16 on this CPU the route runs fp32 (the fallback) and
     * says so. */
    const char *bf = getenv("PLM_BF16");
    if (bf && strcmp(bf, "1") == 0) {
        if (!plm_gemm_set_bf16(true))
            printf("# PLM_BF16=1 but oneDNN has no bf16 matmul on this CPU: the bf16 route ran fp32\n");
        else if (!attn_bf16_on())
            printf("# PLM_BF16=1: no AVX512_BF16 on this CPU (or PLM_ATTN_BF16=0): attention ran fp32\n");
    }

    case_embedding("embedding", true, true, 3, 1);
    case_embedding("embedding_notype", false, false, 0, -1);
    case_embedding("embedding_type_ids_null", true, false, 2, -1);
    case_layernorm("layernorm", false);
    case_layernorm("layernorm_acc", true);
    case_linear("linear", true, false);
    case_linear("linear_nobias", false, false);
    case_linear("linear_acc", true, true);
    case_gelu("gelu_erf", PLM_GELU_ERF);
    case_gelu("gelu_tanh", PLM_GELU_TANH);
    case_residual("residual", 0.0f);
    case_residual("residual_dropout", 0.3f);
    case_dropout("dropout_p0", 0.0f);
    case_dropout("dropout", 0.25f);
    case_bias_gelu("bias_gelu_erf", PLM_GELU_ERF);
    case_bias_gelu("bias_gelu_tanh", PLM_GELU_TANH);
    case_bias_residual("bias_residual", 0.0f);
    case_bias_residual("bias_residual_dropout", 0.2f);
    case_attention("attention_causal", true, true, 0.0f, 13);
    case_attention("attention_bidir", false, true, 0.0f, 13);
    case_attention("attention_nomask", false, false, 0.0f, 13);
    case_attention("attention_causal_nomask", true, false, 0.0f, 13);
    case_attention("attention_dropout", false, true, 0.2f, 13);
    /* several query and key blocks (64 / 128), odd lengths */
    case_attention("attention_long_causal", true, true, 0.0f, 201);
    case_attention("attention_long_bidir", false, true, 0.0f, 150);
    case_attention("attention_long_causal_dropout", true, false, 0.2f, 137);
    case_attention("attention_long_bidir_dropout", false, true, 0.15f, 131);
    /* head widths for the bf16 tile kernel's paths (attn_bf16.c): an odd width (a pair
     * half empty, one partial column vector), 64 (whole 64-column blocks) and 67 (a
     * second block of 3 columns); T 150 and 201 leave partial query and key blocks */
    case_attention_width("attention_hs5", true, true, 0.1f, 150, 15, 3);
    case_attention_width("attention_hs64", false, true, 0.1f, 201, 128, 2);
    case_attention_width("attention_hs67_causal", true, false, 0.0f, 150, 134, 2);
    case_attention_ex("attention_ex_cross", 70, 139, false, 0.0f);
    case_attention_ex("attention_ex_causal_dropout", 133, 133, true, 0.1f);
    case_attention_ex("attention_ex_short", 5, 7, false, 0.2f);
    case_crossentropy("crossentropy", 3.0f);
    case_crossentropy("crossentropy_large", 40.0f);
    static const model_variant models[] = {
        {"bert", PLM_ARCH_BERT, false, true, false, 2, PLM_GELU_ERF, 0.0f, 0.0f, false},
        {"gpt2", PLM_ARCH_GPT2, true, true, true, 0, PLM_GELU_TANH, 0.0f, 0.0f, false},
        /* the same engine the other way round: a pre-LN encoder trained causally with an
         * untied decoder, a post-LN decoder with segments trained bidirectionally (MLM) */
        {"bert_preln_causal_untied", PLM_ARCH_BERT, true, false, true, 3, PLM_GELU_TANH, 0.0f, 0.0f, false},
        {"gpt2_postln_bidir_untied", PLM_ARCH_GPT2, false, false, false, 2, PLM_GELU_ERF, 0.0f, 0.0f, false},
        /* dropout on, every mask reproduced from its key: checks where and how the
         * model applies dropout in both passes (the comparison proper runs without) */
        {"bert_dropout", PLM_ARCH_BERT, false, true, false, 2, PLM_GELU_ERF, 0.1f, 0.15f, false},
        {"gpt2_dropout", PLM_ARCH_GPT2, true, true, true, 0, PLM_GELU_TANH, 0.1f, 0.15f, false},
        /* plm sft: prompt tokens unlabelled, a truncated example, padding on the right */
        {"gpt2_sft", PLM_ARCH_GPT2, true, true, true, 0, PLM_GELU_TANH, 0.0f, 0.0f, true},
        {"gpt2_sft_dropout", PLM_ARCH_GPT2, true, true, true, 0, PLM_GELU_TANH, 0.1f, 0.15f, true},
    };
    for (size_t i = 0; i < PLM_ARRAY_LEN(models); i++) case_model(&models[i]);
    case_dpo("gpt2_dpo", 0.5f, false, PLM_DPO_SIGMOID);
    case_dpo("gpt2_dpo_untied", 0.1f, true, PLM_DPO_SIGMOID);
    case_dpo("gpt2_dpo_hinge", 0.2f, false, PLM_DPO_HINGE); /* one pair past the hinge, one before */
    case_dpo("gpt2_dpo_ipo_untied", 0.5f, true, PLM_DPO_IPO);
    case_pairwise("pairwise", 0.0f);
    case_pairwise("pairwise_center", 0.05f);
    case_reward("gpt2_reward", 0.0f);
    case_reward("gpt2_reward_center", 0.05f);
    /* small models: odd width 36 (3 heads of 12), padded pair batches, dropout on */
#define SMALL .C = 36, .L = 2, .NH = 3, .I = 60, .V = 53, .B = 3, .T = 11, .p_hidden = 0.1f, .p_attn = 0.1f
    static const heads_variant heads[] = {
        {"bert_nsp_c36", PLM_ARCH_BERT, SMALL, .kinds = {PLM_HEAD_NSP}, .num_heads = 1, .num_labels = 2, .pairs = true},
        /* BertForPreTraining, wide enough for every GEMM route (ffn-up's and the LM head's
         * weight gradients, M >= 512 and N <= 256, go to oneDNN's matmul primitive) */
        {"bert_pretraining", PLM_ARCH_BERT, .C = 64, .L = 1, .NH = 4, .I = 512, .V = 600, .B = 2, .T = 12,
         .kinds = {PLM_HEAD_LM, PLM_HEAD_NSP}, .num_heads = 2, .num_labels = 2, .p_hidden = 0.1f, .p_attn = 0.1f,
         .pairs = true},
        {"bert_seqcls_c36", PLM_ARCH_BERT, SMALL, .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 3,
         .pairs = true},
        /* width 312 (4 heads of 78), regression (num_labels 1, MSE) */
        {"bert_regression_c312", PLM_ARCH_BERT, .C = 312, .L = 1, .NH = 4, .I = 400, .V = 40, .B = 2, .T = 8,
         .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 1, .p_hidden = 0.1f, .p_attn = 0.1f, .pairs = true},
        {"gpt2_seqcls", PLM_ARCH_GPT2, SMALL, .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 3},
        {"gpt2_regression", PLM_ARCH_GPT2, .C = 48, .L = 1, .NH = 3, .I = 64, .V = 41, .B = 3, .T = 9,
         .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 1},
        /* embedding projection E 24 -> C 36; gelu_new in the body, erf GELU in the head */
        {"electra_seqcls_proj", PLM_ARCH_ELECTRA, SMALL, .E = 24, .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1,
         .num_labels = 3, .pairs = true, .gelu_new = true},
        /* ElectraForSequenceClassification as regression (num_labels 1, MSE): the head
         * plm finetune puts on an ELECTRA discriminator for STS-B, no projection */
        {"electra_regression", PLM_ARCH_ELECTRA, SMALL, .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 1,
         .pairs = true},
        {"bert_tokcls_c36", PLM_ARCH_BERT, SMALL, .kinds = {PLM_HEAD_TOKEN_CLS}, .num_heads = 1, .num_labels = 5,
         .pairs = true},
        {"bert_qa_c36", PLM_ARCH_BERT, SMALL, .kinds = {PLM_HEAD_QA}, .num_heads = 1, .pairs = true},
        /* decoders: GPT2ForTokenClassification / GPT2ForQuestionAnswering on the causal
         * states (classifier(dropout(h)), qa_outputs(h)), padded batches, dropout on */
        /* sequence classification from the [CLS] state or the mean over real tokens (padded
         * rows: the mean must skip padding), instead of BERT's pooler / GPT-2's last token */
        {"bert_seqcls_cls", PLM_ARCH_BERT, SMALL, .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 3,
         .pairs = true, .pooling = PLM_SEQ_POOL_CLS},
        {"bert_seqcls_mean", PLM_ARCH_BERT, SMALL, .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 3,
         .pairs = true, .pooling = PLM_SEQ_POOL_MEAN},
        {"gpt2_seqcls_mean", PLM_ARCH_GPT2, SMALL, .kinds = {PLM_HEAD_SEQ_CLS}, .num_heads = 1, .num_labels = 3,
         .pooling = PLM_SEQ_POOL_MEAN},
        {"gpt2_tokcls", PLM_ARCH_GPT2, SMALL, .kinds = {PLM_HEAD_TOKEN_CLS}, .num_heads = 1, .num_labels = 5},
        {"gpt2_qa", PLM_ARCH_GPT2, SMALL, .kinds = {PLM_HEAD_QA}, .num_heads = 1},
        {"electra_rtd", PLM_ARCH_ELECTRA, SMALL, .E = 24, .kinds = {PLM_HEAD_RTD}, .num_heads = 1, .pairs = true},
        /* discriminator (backbone 0, width 36, RTD weighted 50) + generator (backbone 1,
         * width 12, LM), the embedding tables (width 24) shared */
        {"electra_gen_disc", PLM_ARCH_ELECTRA, SMALL, .E = 24, .kinds = {PLM_HEAD_RTD}, .num_heads = 1, .pairs = true,
         .gen_C = 12, .weight = 50.0f, .gelu_new = true},
        /* the joint ELECTRA step: the discriminator reads the generator's batch with fixed
         * samples in (plm_electra_corrupt), loss L_gen + 50 L_disc, generator width 12 with
         * its own embeddings_project from the shared width-36 tables (no E); no dropout, so
         * that parity.py's eval-mode HF forward of the saved checkpoint sees the same logits */
        {"electra_joint", PLM_ARCH_ELECTRA, .C = 36, .L = 2, .NH = 3, .I = 60, .V = 53, .B = 3, .T = 11,
         .kinds = {PLM_HEAD_RTD}, .num_heads = 1, .pairs = true, .gen_C = 12, .weight = 50.0f, .joint = true},
        /* the clm+mlm switch: one post-LN BERT, a causal CLM run then a bidirectional MLM run
         * (no dropout: the dumped masks are keyed by the backbone's last batch) */
        {"bert_clm_mlm_switch", PLM_ARCH_BERT, .C = 36, .L = 2, .NH = 3, .I = 60, .V = 53, .B = 3, .T = 11,
         .kinds = {PLM_HEAD_LM}, .num_heads = 1, .mask_switch = true},
    };
#undef SMALL
    for (size_t i = 0; i < PLM_ARRAY_LEN(heads); i++) case_heads(&heads[i]);
    static const s2s_variant s2s[] = {
        /* BERT2BERT: post-LN decoder, dropout on, encoder longer than the decoder */
        {"s2s_bert2bert", PLM_ARCH_BERT, .C = 48, .L = 2, .NH = 3, .I = 80, .V = 61, .B = 3, .Tk = 13, .Tq = 9,
         .p = 0.1f, .tied = true},
        /* a GPT-2 decoder (pre-LN, ln_cross_attn) on a BERT encoder, decoder longer */
        {"s2s_bert2gpt2", PLM_ARCH_GPT2, .C = 48, .L = 2, .NH = 3, .I = 80, .V = 61, .B = 3, .Tk = 9, .Tq = 12,
         .p = 0.1f, .tied = true},
        /* odd width 36 (3 heads of 12), no dropout, untied LM heads */
        {"s2s_bert2bert_c36", PLM_ARCH_BERT, .C = 36, .L = 2, .NH = 3, .I = 60, .V = 53, .B = 3, .Tk = 11, .Tq = 7,
         .p = 0.0f, .tied = false},
        {"s2s_bert2gpt2_c36", PLM_ARCH_GPT2, .C = 36, .L = 2, .NH = 3, .I = 60, .V = 53, .B = 3, .Tk = 7, .Tq = 10,
         .p = 0.0f, .tied = false},
    };
    for (size_t i = 0; i < PLM_ARRAY_LEN(s2s); i++) case_seq2seq(&s2s[i]);
    case_adamw();
    /* last: a case added later draws after the others, leaving their random inputs as they were */
    case_rloo("gpt2_rloo", 0.1f, false);
    case_rloo("gpt2_rloo_untied", 0.5f, true);
    case_ppo("gpt2_ppo", false, 1.0f, 0.95f, false);
    case_ppo("gpt2_ppo_whiten_untied", true, 0.9f, 0.8f, true);
    /* last: the cases above keep the random inputs they had before these were added */
    case_attention_docs("attention_docs_causal", true, 0.0f, 13);
    case_attention_docs("attention_docs_bidir", false, 0.0f, 13);
    case_attention_docs("attention_docs_long_causal", true, 0.0f, 150);
    case_attention_docs("attention_docs_long_bidir", false, 0.0f, 201);
    case_attention_docs("attention_docs_long_causal_201", true, 0.0f, 201);
    case_attention_docs("attention_docs_dropout", false, 0.2f, 13);
    case_attention_docs("attention_docs_long_causal_dropout", true, 0.15f, 150);
    if (verbose) dropout_statistics();
    if (verbose) attention_fused_is_ex();
    if (verbose) seq2seq_spec_checks();
    TEST_EXIT();
}
