/* test_bf16.c - the bf16 copies the bf16 GEMMs reuse instead of rounding (gemm.h mirrors):
 *   - training with them (AdamW's bf16 copy of the weights; each layer's output gradient
 *     rounded once for dX and dW; each linear input's copy kept from forward for dW)
 *     gives the same losses and weights bit for bit as rounding both operands in every
 *     GEMM (reuse off, i.e. PLM_BF16_REUSE=0), for a GPT-2 (CLM, odd widths), a BERT
 *     whose MLM decoder is tied to the word embeddings and a BERT encoder with a GPT-2
 *     decoder (cross-attention), with dropout; the copies were really read (a step after
 *     the first rounds no operand in its GEMMs), and AdamW's copy equals the rounded fp32
 *     weights element for element;
 *   - loading weights into a model trained under bf16 (its copy fresh) makes the copy
 *     stale: training on gives the same losses and weights, bit for bit, as a fresh model
 *     loaded from the same file;
 *   - a write of the weights that forgets plm_model_params_written stops the program with
 *     a message (a child process: this binary with --stale-child);
 *   - fp32 training never allocates nor reads a copy;
 *   - inference (generate/eval --bf16): plm_model_round_bf16 fills the copy once, decoding
 *     reads the weights from it, and its logits have the bits of GEMMs that round both
 *     operands themselves, within bf16 rounding of fp32's;
 *   - decoding's few-row products from a weight's bf16 copy (skinny.h's AVX512_BF16
 *     kernel): within 1e-5 of a float64 sum of the same bf16 products, at odd sizes on
 *     every edge of its blocks (K tails, rows of A and B past a multiple of 4), beta 0
 *     over a NaN-poisoned C, beta 1, bias; and plm_sgemm / plm_sgemm_bias route such
 *     products there, reading the weight's fresh copy, or rounding it with copies off.
 * On a CPU without bf16 in oneDNN only the last but one runs, and a line says so. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "model/bf16_rate.h"
#include "model/gemm.h"
#include "model/model.h"
#include "model/model_io.h"
#include "model/skinny.h"
#include "test.h"
#include "train/adamw.h"

enum { B = 4, T = 16, V = 97, STEPS = 4 };

static plm_config tiny(plm_arch arch) {
    plm_config c;
    plm_config_default(&c, arch);
    c.vocab_size = V;
    c.hidden_size = 36; /* 3 heads of 12: odd row lengths everywhere */
    c.num_hidden_layers = 2;
    c.num_attention_heads = 3;
    c.intermediate_size = 50;
    c.max_position_embeddings = 32;
    return c;
}

/* PLM_ARCH_BERT, PLM_ARCH_GPT2, or SEQ2SEQ: a BERT encoder and a GPT-2 decoder with
 * cross-attention, the LM head on the decoder. */
#define SEQ2SEQ ((plm_arch)-1)

static plm_model *make_model(plm_arch arch, uint64_t seed) {
    plm_model *m;
    if (arch == SEQ2SEQ) {
        plm_model_spec s;
        memset(&s, 0, sizeof s);
        s.backbone[0] = tiny(PLM_ARCH_BERT);
        s.backbone[1] = tiny(PLM_ARCH_GPT2);
        s.backbone[1].is_decoder = s.backbone[1].add_cross_attention = true;
        s.prefix[0] = "encoder";
        s.prefix[1] = "decoder.transformer";
        s.num_backbones = 2;
        int h = plm_model_spec_add_head(&s, PLM_HEAD_LM, 0);
        s.heads[h].backbone = 1;
        m = plm_model_create_spec(&s, seed);
    } else {
        plm_config c = tiny(arch);
        m = plm_model_create(&c, seed);
    }
    if (!m || plm_model_reserve(m, B, T) != 0) plm_die("model: %s", plm_last_error());
    return m;
}

/* steps AdamW steps on batches fixed by (step, data_seed); losses[s] of each. */
static void train(plm_model *m, int steps, uint64_t data_seed, double *losses) {
    bool s2s = plm_model_is_seq2seq(m), clm = s2s || m->config.arch == PLM_ARCH_GPT2;
    int32_t ids[B * T], dec[B * T], labels[B * T];
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    plm_adamw_hparams h = plm_adamw_defaults(1e-2f);
    for (int s = 0; s < steps; s++) {
        plm_rng r;
        plm_rng_seed(&r, data_seed, (uint64_t)s);
        for (int i = 0; i < B * T; i++) ids[i] = 1 + (int32_t)plm_rng_below(&r, (uint32_t)V - 1);
        for (int i = 0; i < B * T; i++) dec[i] = 1 + (int32_t)plm_rng_below(&r, (uint32_t)V - 1);
        const int32_t *lm = s2s ? dec : ids; /* the sequence the LM head predicts */
        for (int i = 0; i < B * T; i++)
            labels[i] = clm ? (i % T == T - 1 ? -100 : lm[i + 1]) : (i % 3 == 1 ? ids[i] : -100);
        plm_batch b = {.B = B,
                       .T = T,
                       .input_ids = ids,
                       .labels = s2s ? NULL : labels,
                       .causal = clm && !s2s,
                       .training = true,
                       .dropout_seed = 100 + (uint64_t)s};
        plm_batch d = {.B = B,
                       .T = T,
                       .input_ids = dec,
                       .labels = labels,
                       .causal = true,
                       .training = true,
                       .dropout_seed = 200 + (uint64_t)s};
        plm_model_zero_grad(m);
        int rc = s2s ? plm_model_run_seq2seq(m, &b, &d, true, 1.0f) : plm_model_run(m, 0, &b, true, 1.0f);
        if (rc != 0) plm_die("run: %s", plm_last_error());
        losses[s] = m->loss;
        plm_clip_grad_norm(m, 1.0);
        plm_adamw_step(&opt, m, &h, 1e-2f);
    }
    plm_adamw_free(&opt);
}

static long reused_now(void) {
    long r, c;
    plm_gemm_bf16_counts(&r, &c);
    return r;
}

/* Every element of every tensor: the copy holds the rounded fp32 weight. */
static bool mirror_matches(const plm_model *m) {
    const plm_bf16_mirror *s = &m->params16;
    if (!s->w || s->w_gen != s->gen) return false;
    for (int i = 0; i < m->num_tensors; i++)
        for (size_t k = 0; k < m->tensors[i].numel; k++) {
            size_t o = m->tensors[i].offset + k;
            if (s->w[o] != plm_to_bf16(m->params[o])) return false;
        }
    return true;
}

static void test_same_bits(plm_arch arch, const char *name) {
    double loss[2][STEPS];
    float *params[2];
    long used[2];
    bool matches = false;
    for (int reuse = 1; reuse >= 0; reuse--) {
        plm_gemm_set_bf16_reuse(reuse);
        plm_model *m = make_model(arch, 5);
        long r0 = reused_now();
        train(m, STEPS, 11, loss[reuse]);
        used[reuse] = reused_now() - r0;
        if (reuse) matches = mirror_matches(m);
        params[reuse] = plm_malloc(m->num_params * sizeof(float));
        memcpy(params[reuse], m->params, m->num_params * sizeof(float));
        size_t n = m->num_params;
        if (reuse) { /* one more step: every operand of every product comes from a copy */
            long r1, c1, r2, c2;
            double extra;
            plm_gemm_bf16_counts(&r1, &c1);
            train(m, 1, 12, &extra);
            plm_gemm_bf16_counts(&r2, &c2);
            char nm[96];
            snprintf(nm, sizeof nm, "bf16_reuse.%s.no_rounding_in_gemms", name);
            TEST_CHECK(c2 == c1 && r2 > r1, nm, "a step rounded %ld operands in its GEMMs, read %ld from copies",
                       c2 - c1, r2 - r1);
        }
        plm_model_free(m);
        if (!reuse) {
            char nm[96];
            snprintf(nm, sizeof nm, "bf16_reuse.%s.same_losses", name);
            TEST_CHECK(!memcmp(loss[0], loss[1], sizeof loss[0]), nm, "step losses %.17g .. %.17g vs %.17g .. %.17g",
                       loss[1][0], loss[1][STEPS - 1], loss[0][0], loss[0][STEPS - 1]);
            snprintf(nm, sizeof nm, "bf16_reuse.%s.same_weights", name);
            TEST_CHECK(!memcmp(params[0], params[1], n * sizeof(float)), nm, "the final weights differ");
        }
    }
    plm_gemm_set_bf16_reuse(true);
    char nm[96];
    snprintf(nm, sizeof nm, "bf16_reuse.%s.copies_read", name);
    TEST_CHECK(used[1] > 0 && used[0] == 0, nm, "operands read from copies: %ld with reuse, %ld without", used[1],
               used[0]);
    snprintf(nm, sizeof nm, "bf16_reuse.%s.adamw_copy_is_rounded_weights", name);
    TEST_CHECK(matches, nm, "AdamW's bf16 copy is missing, stale or differs from the rounded weights");
    snprintf(nm, sizeof nm, "bf16_reuse.%s.engaged", name);
    /* the bf16 losses differ from fp32's: bf16 really ran */
    plm_gemm_set_bf16(false);
    double l32[STEPS];
    plm_model *m = make_model(arch, 5);
    train(m, STEPS, 11, l32);
    plm_model_free(m);
    plm_gemm_set_bf16(true);
    TEST_CHECK(memcmp(l32, loss[1], sizeof l32) != 0 && fabs(l32[STEPS - 1] - loss[1][STEPS - 1]) < 0.05 * l32[0], nm,
               "fp32 last loss %.9g, bf16 %.9g", l32[STEPS - 1], loss[1][STEPS - 1]);
    free(params[0]), free(params[1]);
}

static void test_load_makes_stale(void) {
    char dir[] = "/tmp/plm-test-bf16.XXXXXX";
    if (!mkdtemp(dir)) plm_die("mkdtemp");
    char path[128];
    snprintf(path, sizeof path, "%s/w.safetensors", dir);
    plm_model *other = make_model(PLM_ARCH_GPT2, 9);
    if (plm_model_save_weights(other, path, NULL, 0) != 0) plm_die("save: %s", plm_last_error());
    plm_model_free(other);

    double la[STEPS], lb[STEPS], warm[STEPS];
    plm_model *a = make_model(PLM_ARCH_GPT2, 5);
    train(a, 3, 11, warm); /* a's copy is fresh now */
    bool fresh = a->params16.w && a->params16.w_gen == a->params16.gen;
    if (plm_model_load_weights(a, path) != 0) plm_die("load: %s", plm_last_error());
    bool stale = a->params16.w_gen != a->params16.gen;
    train(a, STEPS, 12, la);
    plm_model *b = make_model(PLM_ARCH_GPT2, 1);
    if (plm_model_load_weights(b, path) != 0) plm_die("load: %s", plm_last_error());
    train(b, STEPS, 12, lb);
    TEST_CHECK(fresh && stale, "bf16_reuse.load_marks_copy_stale", "copy fresh after training %d, stale after load %d",
               fresh, stale);
    TEST_CHECK(!memcmp(la, lb, sizeof la) && !memcmp(a->params, b->params, a->num_params * sizeof(float)),
               "bf16_reuse.load_then_train_uses_loaded_weights",
               "losses after loading into a trained model %.17g .. %.17g, into a fresh one %.17g .. %.17g", la[0],
               la[STEPS - 1], lb[0], lb[STEPS - 1]);
    plm_model_free(a);
    plm_model_free(b);
    unlink(path);
    rmdir(dir);
}

/* The child: trains (copy fresh), then writes the weights behind the copy's back and
 * runs a forward pass, which must stop the program. */
static int stale_child(void) {
    if (!plm_gemm_set_bf16(true)) return 3;
    plm_model *m = make_model(PLM_ARCH_GPT2, 5);
    double l[2];
    train(m, 2, 11, l);
    for (size_t i = 0; i < m->num_params; i++) m->params[i] *= 1.5f; /* no plm_model_params_written */
    train(m, 1, 11, l);
    plm_model_free(m);
    return 0; /* not reached when the check works */
}

static void test_forgotten_write_stops(void) {
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) plm_die("readlink /proc/self/exe");
    exe[n] = 0;
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "'%s' --stale-child 2>&1", exe);
    FILE *p = popen(cmd, "r");
    char out[8192] = "";
    size_t got = p ? fread(out, 1, sizeof out - 1, p) : 0;
    out[got] = 0;
    int rc = p ? pclose(p) : -1;
    TEST_CHECK(rc != 0 && strstr(out, "bf16 copy of a GEMM operand is stale"), "bf16_reuse.forgotten_write_stops",
               "child exit status %d, output: %.300s", rc, out);
}

static void test_fp32_no_copy(void) {
    plm_gemm_set_bf16(false);
    plm_model *m = make_model(PLM_ARCH_BERT, 5);
    long r0 = reused_now();
    double l[2];
    train(m, 2, 11, l);
    TEST_CHECK(!m->params16.w && reused_now() == r0, "bf16_reuse.fp32_has_no_copy",
               "fp32 training allocated a bf16 copy (%p) or read %ld operands from one", (void *)m->params16.w,
               reused_now() - r0);
    plm_model_free(m);
}

/* Logits of the KV-cache forward (decoding's path) for 3 prompts of T/2 tokens, then one
 * more token each: [3, V] after the second call, into out. */
static void decode_logits(plm_model *m, float *out) {
    plm_kv_cache kv;
    if (plm_kv_cache_init_batch(&kv, m, 3, T, 3 * T) != 0) plm_die("kv cache: %s", plm_last_error());
    int seq[3] = {0, 1, 2}, n[3] = {T / 2, T / 2, T / 2}, one[3] = {1, 1, 1};
    int32_t ids[3 * T];
    for (int i = 0; i < 3 * T; i++) ids[i] = (int32_t)((i * 37 + 11) % V);
    plm_kv_cache_append(&kv, 3, seq, n, ids);
    const float *l = plm_kv_cache_append(&kv, 3, seq, one, ids + 3 * (T / 2));
    memcpy(out, l, 3 * V * sizeof(float));
    plm_kv_cache_free(&kv);
}

/* Inference under bf16 (plm generate --bf16): plm_model_round_bf16 fills the weights'
 * copy once; decoding then reads it (no weight rounded in a GEMM) and gives the same
 * logits, bit for bit, as GEMMs rounding both operands themselves, and logits within
 * bf16 rounding of fp32's. */
static void test_inference_copy(void) {
    plm_model *m = make_model(PLM_ARCH_GPT2, 9);
    static float f32[3 * V], own[3 * V], copy[3 * V];
    plm_gemm_set_bf16(false);
    decode_logits(m, f32);
    plm_gemm_set_bf16(true);
    plm_gemm_set_bf16_reuse(false);
    TEST_CHECK(!plm_model_round_bf16(m), "bf16_infer.no_copy_when_reuse_off", "filled a copy with reuse off");
    decode_logits(m, own);
    plm_gemm_set_bf16_reuse(true);
    bool filled = plm_model_round_bf16(m);
    long r0, c0, r1, c1;
    plm_gemm_bf16_counts(&r0, &c0);
    decode_logits(m, copy);
    plm_gemm_bf16_counts(&r1, &c1);
    double num = 0, den = 0;
    for (int i = 0; i < 3 * V; i++)
        num += (copy[i] - f32[i]) * (double)(copy[i] - f32[i]), den += f32[i] * (double)f32[i];
    double rel = sqrt(num / den);
    TEST_CHECK(filled && r1 - r0 > 0 && r1 - r0 == c1 - c0, "bf16_infer.weights_read_from_copy",
               "filled %d, %ld operands read from copies, %ld rounded (want one of each per GEMM)", filled, r1 - r0,
               c1 - c0);
    TEST_CHECK(memcmp(own, copy, sizeof copy) == 0, "bf16_infer.same_bits_as_rounding_in_gemm",
               "logits differ from the GEMMs' own rounding");
    TEST_CHECK(rel > 0 && rel < 1e-2, "bf16_infer.close_to_fp32", "relative L2 distance to fp32 %.3g (want (0, 1e-2))",
               rel);
    plm_model_free(m);
}

static float bf(float x) {
    union {
        uint32_t u;
        float f;
    } v = {.u = (uint32_t)plm_to_bf16(x) << 16};
    return v.f;
}

/* Worst |C - ref| / (sum of |terms|) over C[M,N] = A B^T + bias + beta C0, the reference
 * in float64 over the bf16 values of A and B. */
static double skinny16_err(int M, int N, int K, const float *A, const float *B, const float *bias, float beta,
                           const float *C0, const float *C) {
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double ref = bias ? bias[j] : 0, mag = fabs(ref);
            for (int k = 0; k < K; k++) {
                double t = (double)bf(A[(size_t)i * K + k]) * bf(B[(size_t)j * K + k]);
                ref += t, mag += fabs(t);
            }
            if (beta != 0.0f) ref += beta * (double)C0[(size_t)i * N + j], mag += fabs(C0[(size_t)i * N + j]);
            double e = fabs(C[(size_t)i * N + j] - ref) / (mag > 0 ? mag : 1);
            if (!(e <= worst)) worst = isnan(e) ? INFINITY : e;
        }
    return worst;
}

static void fill(float *x, size_t n, plm_rng *r) {
    for (size_t i = 0; i < n; i++) x[i] = plm_rng_uniform(r) * 2.0f - 1.0f;
}

/* skinny_nt_bf16 alone, at sizes on both sides of every block edge. */
static void test_skinny_kernel(void) {
    static const int Ms[] = {1, 2, 3, 4, 5, 8}, Ns[] = {1, 3, 4, 5, 37}, Ks[] = {1, 31, 32, 33, 95, 517};
    enum { MAXM = 8, MAXN = 37, MAXK = 517 };
    static float A[MAXM * MAXK], B[MAXN * MAXK], bias[MAXN], C0[MAXM * MAXN], C[MAXM * MAXN];
    static uint16_t A16[MAXM * MAXK], B16[MAXN * MAXK];
    plm_rng r;
    plm_rng_seed(&r, 17, 0);
    fill(A, MAXM * MAXK, &r), fill(B, MAXN * MAXK, &r), fill(bias, MAXN, &r), fill(C0, MAXM * MAXN, &r);
    for (int i = 0; i < MAXM * MAXK; i++) A16[i] = plm_to_bf16(A[i]);
    for (int i = 0; i < MAXN * MAXK; i++) B16[i] = plm_to_bf16(B[i]);
    double worst[3] = {0, 0, 0};
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (size_t ni = 0; ni < sizeof Ns / sizeof *Ns; ni++)
            for (size_t ki = 0; ki < sizeof Ks / sizeof *Ks; ki++)
                for (int v = 0; v < 3; v++) { /* beta 0, beta 1, bias */
                    int M = Ms[mi], N = Ns[ni], K = Ks[ki];
                    /* dense rows of this K: the copies are re-laid-out per K */
                    static float a[MAXM * MAXK], b[MAXN * MAXK];
                    static uint16_t a16[MAXM * MAXK], b16[MAXN * MAXK];
                    for (int i = 0; i < M; i++)
                        for (int k = 0; k < K; k++) a[i * K + k] = A[i * MAXK + k], a16[i * K + k] = A16[i * MAXK + k];
                    for (int j = 0; j < N; j++)
                        for (int k = 0; k < K; k++) b[j * K + k] = B[j * MAXK + k], b16[j * K + k] = B16[j * MAXK + k];
                    float beta = v == 1 ? 1.0f : 0.0f;
                    for (int i = 0; i < M * N; i++) C[i] = beta != 0.0f ? C0[i] : NAN;
                    skinny_nt_bf16(M, N, K, a16, K, b16, K, beta, v == 2 ? bias : NULL, C, N);
                    double e = skinny16_err(M, N, K, a, b, v == 2 ? bias : NULL, beta, C0, C);
                    if (!(e <= worst[v])) worst[v] = isnan(e) ? INFINITY : e;
                }
    static const char *const names[3] = {"skinny_bf16.kernel_beta0", "skinny_bf16.kernel_beta1",
                                         "skinny_bf16.kernel_bias"};
    for (int v = 0; v < 3; v++)
        TEST_CHECK(worst[v] <= 1e-5, names[v], "worst error %.3g relative to the sum of |terms| (want <= 1e-5)",
                   worst[v]);
}

/* plm_sgemm and plm_sgemm_bias under bf16: 1-8 rows against a weight of 2^12 floats or
 * more give the kernel's bits, reading the weight's fresh bf16 copy. */
static void test_skinny_route(void) {
    enum { N = 515, K = 517, MAXM = 8 };
    float *W = malloc(sizeof(float) * N * K), *A = malloc(sizeof(float) * MAXM * K);
    uint16_t *W16 = malloc(sizeof(uint16_t) * N * K), *A16 = malloc(sizeof(uint16_t) * MAXM * K);
    static float bias[N], C[MAXM * N], want[MAXM * N];
    plm_rng r;
    plm_rng_seed(&r, 23, 0);
    fill(W, (size_t)N * K, &r), fill(A, (size_t)MAXM * K, &r), fill(bias, N, &r);
    for (size_t i = 0; i < (size_t)N * K; i++) W16[i] = plm_to_bf16(W[i]);
    for (size_t i = 0; i < (size_t)MAXM * K; i++) A16[i] = plm_to_bf16(A[i]);
    plm_bf16_mirror copy = {.base = W, .n = (size_t)N * K, .w = W16};
    plm_gemm_mirror_add(&copy);
    static const int Ms[] = {1, 3, 8};
    for (size_t mi = 0; mi < sizeof Ms / sizeof *Ms; mi++)
        for (int withbias = 0; withbias < 2; withbias++) {
            int M = Ms[mi];
            long r0, c0, r1, c1;
            for (int i = 0; i < M * N; i++) C[i] = NAN;
            skinny_nt_bf16(M, N, K, A16, K, W16, K, 0.0f, withbias ? bias : NULL, want, N);
            plm_gemm_bf16_counts(&r0, &c0);
            if (withbias)
                plm_sgemm_bias(M, N, K, A, K, W, K, bias, C, N);
            else
                plm_sgemm(false, true, M, N, K, 1.0f, A, K, W, K, 0.0f, C, N);
            plm_gemm_bf16_counts(&r1, &c1);
            char name[64];
            snprintf(name, sizeof name, "skinny_bf16.route_M%d%s", M, withbias ? "_bias" : "");
            TEST_CHECK(memcmp(C, want, sizeof(float) * M * N) == 0 && r1 - r0 == 1 && c1 - c0 == 1, name,
                       "not the kernel's bits, or the weight was not read from its copy (%ld read, %ld rounded)",
                       r1 - r0, c1 - c0);
        }
    /* with the copies off (PLM_BF16_REUSE=0) both operands are rounded in the call:
     * the same route, the same bits */
    plm_gemm_set_bf16_reuse(false);
    long r0, c0, r1, c1;
    skinny_nt_bf16(3, N, K, A16, K, W16, K, 0.0f, bias, want, N);
    plm_gemm_bf16_counts(&r0, &c0);
    plm_sgemm_bias(3, N, K, A, K, W, K, bias, C, N);
    plm_gemm_bf16_counts(&r1, &c1);
    TEST_CHECK(memcmp(C, want, sizeof(float) * 3 * N) == 0 && r1 == r0 && c1 - c0 == 2, "skinny_bf16.route_no_copy",
               "not the kernel's bits, or a copy was read with reuse off (%ld read, %ld rounded)", r1 - r0, c1 - c0);
    plm_gemm_set_bf16_reuse(true);
    plm_gemm_mirror_remove(&copy);
    free(W), free(A), free(W16), free(A16);
}

/* bf16_rate.h: zero exactly where the CPU lacks the instruction; elsewhere a rate within
 * reason (Zen 4/5 about 2, Intel without AMX about 0.5), measured once. */
static void test_dot_ratio(void) {
    __builtin_cpu_init();
    bool has = __builtin_cpu_supports("avx512bf16");
    double r = plm_bf16_dot_ratio();
    TEST_CHECK(has ? r > 0.1 && r < 10 : r == 0, "bf16_rate.dot_vs_fma", "ratio %.3f on a CPU %s AVX512_BF16", r,
               has ? "with" : "without");
    TEST_CHECK(plm_bf16_dot_ratio() == r, "bf16_rate.measured_once", "a second call gave %.3f, the first %.3f",
               plm_bf16_dot_ratio(), r);
    printf("# bf16 dot product: %.2fx the fp32 FMA rate\n", r);
}

int main(int argc, char **argv) {
    if (argc == 2 && strcmp(argv[1], "--stale-child") == 0) return stale_child();
    test_dot_ratio();
    test_fp32_no_copy();
    const char *isa = plm_bf16_isa();
    if (!isa || !plm_gemm_set_bf16(true)) {
        printf("# this CPU has no bf16 matmul in oneDNN: only the fp32 check ran (tests/bf16.sh tests the fallback)\n");
        TEST_EXIT();
    }
    printf("# bf16 ISA: %s\n", isa);
    test_same_bits(PLM_ARCH_GPT2, "gpt2_clm");
    test_same_bits(PLM_ARCH_BERT, "bert_mlm_tied");
    test_same_bits(SEQ2SEQ, "bert2gpt2_seq2seq");
    test_load_makes_stale();
    test_forgotten_write_stops();
    test_inference_copy();
    if (!skinny_bf16_cpu_ok()) {
        printf("# this CPU has no AVX512_BF16: decoding's bf16 products run on oneDNN, the skinny kernel is not "
               "tested\n");
        TEST_EXIT();
    }
    test_skinny_kernel();
    test_skinny_route();
    TEST_EXIT();
}
