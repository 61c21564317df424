/* test_ops.c - numerical robustness of the ops (issue 6):
 *   - any thread count: per-thread partial sums are not dropped (more than 256
 *     threads), a team raised after plm_model_reserve is safe (omp_set_num_threads),
 *     and reductions give the same bits for 1, 2 and 300 threads (the bias gradients
 *     fused into GELU's and dropout's backward passes too);
 *   - divergence: NaN / inf logits give a non-finite loss without reading out of
 *     bounds; the fast exp is defined for NaN, +-inf and huge inputs;
 *     plm_first_nonfinite names the first tensor with a NaN or inf;
 *   - bf16 GEMMs (gemm.h): every layout with alpha / beta and odd sizes against a
 *     double reference on the bf16-rounded inputs (fp32 accumulation: 1e-5 relative) and
 *     on the exact inputs (bf16 tolerance 1e-2); on a CPU without bf16 the fallback:
 *     asking for bf16 returns false and the product is the fp32 one bit for bit; operands
 *     read in place from bf16 mirrors (gemm.h), strided, give the same bits as rounded
 *     copies;
 *   - the skinny fp32 route (few rows, a large weight: decoding) and the weight
 *     gradient's TN routes against a double reference;
 *   - dropout's integer draw (plm_keep_threshold) keeps what the float draw keeps.
 * OpenMP starts 300 threads when asked, even on 2 cores: that is the point. */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "core/profile.h"
#include "core/rng.h"
#include "model/attention.h"
#include "model/attn_bf16.h"
#include "model/crossentropy.h"
#include "model/dropout.h"
#include "model/fastmath.h"
#include "model/gelu.h"
#include "model/gemm.h"
#include "model/layernorm.h"
#include "model/linear.h"
#include "model/model.h"
#include "test.h"
#include "train/adamw.h"

#define MANY 300 /* more threads than the old fixed arrays (256) held */

static plm_rng R;

static float *frand(size_t n, float scale) {
    float *p = plm_aligned_alloc(n * sizeof(float));
    for (size_t i = 0; i < n; i++) p[i] = scale * (2.0f * plm_rng_uniform(&R) - 1.0f);
    return p;
}

static float *fcopy(const float *src, size_t n) {
    float *p = plm_aligned_alloc(n * sizeof(float));
    memcpy(p, src, n * sizeof(float));
    return p;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double d = 0.0;
    for (size_t i = 0; i < n; i++) d = fmax(d, fabs((double)a[i] - b[i]));
    return d;
}

/* ---- cross-entropy: thread counts ---- */

static void test_crossentropy_threads(void) {
    int M = 701, V = 37;
    float *logits = frand((size_t)M * V, 4.0f);
    int32_t *targets = plm_malloc((size_t)M * sizeof(int32_t));
    for (int i = 0; i < M; i++) targets[i] = i % 7 == 3 ? PLM_IGNORE_INDEX : (int32_t)plm_rng_below(&R, V);
    /* reference in double */
    double ref = 0.0;
    int ref_count = 0, ref_correct = 0;
    for (int i = 0; i < M; i++) {
        if (targets[i] == PLM_IGNORE_INDEX) continue;
        const float *z = logits + (size_t)i * V;
        double mx = z[0], s = 0.0;
        int arg = 0;
        for (int v = 1; v < V; v++)
            if (z[v] > mx) mx = z[v], arg = v;
        for (int v = 0; v < V; v++) s += exp(z[v] - mx);
        ref += mx + log(s) - z[targets[i]];
        ref_count++;
        ref_correct += arg == targets[i];
    }
    int threads[3] = {1, 2, MANY};
    plm_ce_result res[3];
    float *grads[3];
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(threads[k]);
        grads[k] = fcopy(logits, (size_t)M * V);
        res[k] = crossentropy_forward_backward(grads[k], targets, M, V, true, 0.5f);
        char name[64];
        snprintf(name, sizeof name, "ce_threads_%d", threads[k]);
        TEST_CHECK(res[k].count == ref_count && res[k].correct == ref_correct &&
                       fabs(res[k].loss_sum - ref) < 1e-5 * ref,
                   name, "count %d correct %d loss %.9g; want %d %d %.9g", res[k].count, res[k].correct,
                   res[k].loss_sum, ref_count, ref_correct, ref);
    }
    omp_set_num_threads(2);
    TEST_CHECK(res[1].loss_sum == res[0].loss_sum && res[2].loss_sum == res[0].loss_sum, "ce_threads_same_bits",
               "loss sums %.17g (1) %.17g (2) %.17g (%d threads)", res[0].loss_sum, res[1].loss_sum, res[2].loss_sum,
               MANY);
    bool same = !memcmp(grads[0], grads[1], (size_t)M * V * sizeof(float)) &&
                !memcmp(grads[0], grads[2], (size_t)M * V * sizeof(float));
    TEST_CHECK(same, "ce_threads_grads", "dlogits differ between thread counts");
    /* the bf16 copy of the gradient written by the same pass (the LM head's dY under
     * --bf16): the fp32 gradient keeps its bits, every copy element is its rounding, and
     * ignored rows are zero in both; row weights and row losses as well */
    float *g = fcopy(logits, (size_t)M * V), *rw = frand(M, 1.0f);
    uint16_t *g16 = plm_malloc((size_t)M * V * sizeof(uint16_t));
    for (size_t i = 0; i < (size_t)M * V; i++) g16[i] = 0x7fc1; /* poison: a NaN pattern */
    plm_ce_result r16 = crossentropy_forward_backward_ex(g, targets, M, V, true, 0.5f, NULL, NULL, g16);
    bool copy = r16.loss_sum == res[0].loss_sum && !memcmp(g, grads[0], (size_t)M * V * sizeof(float));
    for (size_t i = 0; i < (size_t)M * V; i++) copy &= g16[i] == plm_to_bf16(g[i]);
    float *gw = fcopy(logits, (size_t)M * V), *gw2 = fcopy(logits, (size_t)M * V);
    double *rl = plm_malloc((size_t)M * sizeof(double)), *rl2 = plm_malloc((size_t)M * sizeof(double));
    crossentropy_forward_backward_ex(gw, targets, M, V, true, 0.5f, rw, rl, NULL);
    crossentropy_forward_backward_ex(gw2, targets, M, V, true, 0.5f, rw, rl2, g16);
    copy &= !memcmp(gw, gw2, (size_t)M * V * sizeof(float)) && !memcmp(rl, rl2, (size_t)M * sizeof(double));
    for (size_t i = 0; i < (size_t)M * V; i++) copy &= g16[i] == plm_to_bf16(gw2[i]);
    TEST_CHECK(copy, "ce_bf16_copy",
               "the pass with a bf16 copy changed the fp32 results, or the copy is not the "
               "rounded gradient");
    free(g), free(rw), free(g16), free(gw), free(gw2), free(rl), free(rl2);
    for (int k = 0; k < 3; k++) free(grads[k]);
    free(logits);
    free(targets);
}

/* ---- layer-wise learning-rate decay (ELECTRA's layerwise_lr_decay) ---- */

/* Depths from HF names, and one AdamW step with the decay against AdamW at lr x decay^(L + 2
 * - depth) per tensor, computed in double. */
static void test_layerwise_lr_decay(void) {
    static const struct {
        const char *name;
        int depth; /* with L = 3 */
    } cases[] = {
        {"bert.embeddings.word_embeddings.weight", 0},
        {"electra.embeddings_project.weight", 0},
        {"transformer.wte.weight", 0},
        {"bert.encoder.layer.0.attention.self.qkv.weight", 1},
        {"bert.encoder.layer.2.output.LayerNorm.bias", 3},
        {"transformer.h.1.mlp.c_fc.weight", 2},
        {"encoder.block.2.layer.1.DenseReluDense.wi.weight", 3},
        {"bert.pooler.dense.weight", 5},
        {"classifier.out_proj.weight", 5},
        {"transformer.ln_f.weight", 5},
        {"cls.predictions.transform.LayerNorm.weight", 5},
    };
    enum { NT = PLM_ARRAY_LEN(cases) };
    plm_tensor t[NT];
    plm_model m;
    memset(&m, 0, sizeof m);
    memset(t, 0, sizeof t);
    size_t off = 0;
    for (int i = 0; i < NT; i++) {
        snprintf(t[i].name, sizeof t[i].name, "%s", cases[i].name);
        t[i].offset = off;
        t[i].numel = 37 + 5 * (size_t)i;
        t[i].no_decay = i % 3 == 1;
        off += t[i].numel;
    }
    m.tensors = t;
    m.num_tensors = NT;
    m.num_params = off;
    m.config.num_hidden_layers = 3;
    int bad = 0;
    for (int i = 0; i < NT; i++)
        if (plm_tensor_depth(&m, i) != cases[i].depth) {
            bad++;
            fprintf(stderr, "  %s: depth %d, want %d\n", cases[i].name, plm_tensor_depth(&m, i), cases[i].depth);
        }
    TEST_CHECK(bad == 0, "layerwise_lr_decay_depths", "%d of %d tensors at the wrong depth", bad, NT);

    m.params = frand(off, 1.0f);
    m.grads = frand(off, 0.01f);
    float *p0 = fcopy(m.params, off);
    plm_adamw_hparams h = {.learning_rate = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    plm_adamw o;
    plm_adamw_init(&o, off);
    int rc_bad = plm_adamw_layerwise_decay(&o, &m, 1.5f), rc = plm_adamw_layerwise_decay(&o, &m, 0.8f);
    TEST_CHECK(rc_bad == -1 && rc == 0 && o.lr_scale, "layerwise_lr_decay_args", "decay 1.5 -> %d, 0.8 -> %d", rc_bad,
               rc);
    plm_adamw_step(&o, &m, &h, 1e-3f);
    double err = 0.0, moved_min = INFINITY, moved_max = 0.0;
    for (int i = 0; i < NT; i++) {
        /* the rate as plm computes it, in float: lr x 0.8^(L + 2 - depth), the head (depth L + 2) at lr */
        double lr = (float)(1e-3f * powf(0.8f, (float)(cases[i].depth <= 3 ? 5 - cases[i].depth : 0)));
        for (size_t k = t[i].offset; k < t[i].offset + t[i].numel; k++) {
            double p = p0[k], g = m.grads[k];
            if (!t[i].no_decay) p *= 1.0 - lr * 0.1;
            double mm = 0.1 * g, vv = 0.001 * g * g;
            p -= lr * (mm / 0.1) / (sqrt(vv / 0.001) + 1e-8);
            err = fmax(err, fabs(p - m.params[k]));
        }
        double step = fabs((double)m.params[t[i].offset] - p0[t[i].offset]);
        if (cases[i].depth == 0) moved_min = fmin(moved_min, step);
        if (cases[i].depth == 5) moved_max = fmax(moved_max, step);
    }
    /* the embeddings moved by about 0.8^5 = 0.33 of the head's step (Adam's first step is ~lr) */
    TEST_CHECK(err < 2e-6 && moved_min < 0.4 * moved_max, "layerwise_lr_decay_step",
               "max abs error %.3g; embedding step %.3g vs head step %.3g", err, moved_min, moved_max);
    TEST_CHECK(plm_adamw_layerwise_decay(&o, &m, 1.0f) == 0 && !o.lr_scale, "layerwise_lr_decay_off",
               "decay 1 must free the scales");
    plm_adamw_free(&o);
    free(m.params);
    free(m.grads);
    free(p0);
}

/* ---- grad norm, clipping and AdamW: thread counts ---- */

/* A model with only the fields the optimiser reads: a tensor table over params/grads. */
typedef struct {
    plm_model m;
    plm_tensor t[3];
} fake_model;

static void fake_init(fake_model *f, const size_t *numel, int nt) {
    memset(f, 0, sizeof *f);
    size_t off = 0;
    for (int i = 0; i < nt; i++) {
        snprintf(f->t[i].name, sizeof f->t[i].name, "tensor%d", i);
        f->t[i].offset = off;
        f->t[i].numel = numel[i];
        f->t[i].no_decay = i == 1;
        off += numel[i];
    }
    f->m.tensors = f->t;
    f->m.num_tensors = nt;
    f->m.num_params = off;
    f->m.params = frand(off, 1.0f);
    f->m.grads = frand(off, 0.01f);
}

static void fake_free(fake_model *f) {
    free(f->m.params);
    free(f->m.grads);
}

static void test_optimizer_threads(void) {
    size_t numel[3] = {70001, 513, 40000};
    fake_model f;
    fake_init(&f, numel, 3);
    size_t n = f.m.num_params;
    float *p0 = fcopy(f.m.params, n), *g0 = fcopy(f.m.grads, n);
    double ref = 0.0;
    for (size_t i = 0; i < n; i++) ref += (double)g0[i] * g0[i];
    ref = sqrt(ref);

    int threads[3] = {1, 2, MANY};
    double norms[3];
    float *after[3];
    plm_adamw_hparams h = {.learning_rate = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f};
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(threads[k]);
        memcpy(f.m.params, p0, n * sizeof(float));
        memcpy(f.m.grads, g0, n * sizeof(float));
        norms[k] = plm_grad_norm(&f.m);
        char name[64];
        snprintf(name, sizeof name, "grad_norm_threads_%d", threads[k]);
        TEST_CHECK(fabs(norms[k] - ref) <= 1e-12 * ref, name, "norm %.17g, want %.17g", norms[k], ref);
        /* clip to half the norm, then two AdamW steps */
        double pre = plm_clip_grad_norm(&f.m, 0.5 * ref);
        double post = plm_grad_norm(&f.m);
        snprintf(name, sizeof name, "clip_grad_norm_threads_%d", threads[k]);
        TEST_CHECK(pre == norms[k] && fabs(post - 0.5 * ref) < 1e-6 * ref, name, "norm %.9g -> %.9g, want %.9g", pre,
                   post, 0.5 * ref);
        plm_adamw o;
        plm_adamw_init(&o, n);
        plm_adamw_step(&o, &f.m, &h, 1e-3f);
        plm_adamw_step(&o, &f.m, &h, 5e-4f);
        plm_adamw_free(&o);
        after[k] = fcopy(f.m.params, n);
    }
    omp_set_num_threads(2);
    TEST_CHECK(norms[1] == norms[0] && norms[2] == norms[0], "grad_norm_threads_same_bits",
               "norms %.17g (1) %.17g (2) %.17g (%d threads)", norms[0], norms[1], norms[2], MANY);
    /* AdamW reference in double: the clipped gradient, two steps */
    double c = 0.5 * ref / (ref + 1e-6), err = 0.0;
    for (int ti = 0; ti < 3; ti++) {
        const plm_tensor *t = &f.t[ti];
        for (size_t k = t->offset; k < t->offset + t->numel; k++) {
            double p = p0[k], g = (double)(float)((float)c * g0[k]), m = 0.0, v = 0.0;
            double lrs[2] = {1e-3, 5e-4};
            for (int s = 1; s <= 2; s++) {
                double lr = (float)lrs[s - 1];
                if (!t->no_decay) p *= 1.0 - lr * 0.1;
                m = 0.9 * m + 0.1 * g;
                v = 0.999 * v + 0.001 * g * g;
                p -= lr * (m / (1.0 - pow(0.9, s))) / (sqrt(v / (1.0 - pow(0.999, s))) + 1e-8);
            }
            err = fmax(err, fabs(p - after[0][k]));
        }
    }
    TEST_CHECK(err < 2e-6, "adamw_matches_reference", "max abs error %.3g", err);
    bool same = !memcmp(after[0], after[1], n * sizeof(float)) && !memcmp(after[0], after[2], n * sizeof(float));
    TEST_CHECK(same, "adamw_threads_same_bits", "parameters after AdamW differ between thread counts");
    for (int k = 0; k < 3; k++) free(after[k]);
    free(p0);
    free(g0);
    fake_free(&f);
}

/* ---- reductions and attention tiles with 1, 2 and 300 threads (the team raised after setup) ---- */

static void test_linear_bias_threads(void) {
    int N = 613, C = 24, OC = 70;
    float *dout = frand((size_t)N * OC, 1.0f), *inp = frand((size_t)N * C, 1.0f), *w = frand((size_t)OC * C, 1.0f);
    double ref[70];
    for (int o = 0; o < OC; o++) {
        ref[o] = 0.25;
        for (int i = 0; i < N; i++) ref[o] += dout[(size_t)i * OC + o];
    }
    int threads[3] = {1, 2, MANY};
    float *db[3];
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(2); /* "reserve time" */
        float *dinp = plm_aligned_alloc((size_t)N * C * sizeof(float)), *dw = plm_aligned_alloc((size_t)OC * C * 4);
        memset(dw, 0, (size_t)OC * C * sizeof(float));
        db[k] = plm_aligned_alloc((size_t)OC * sizeof(float));
        for (int o = 0; o < OC; o++) db[k][o] = 0.25f;
        omp_set_num_threads(threads[k]); /* raised after sizing */
        linear_backward(dinp, dw, db[k], dout, inp, w, N, C, OC, false);
        double err = 0.0;
        for (int o = 0; o < OC; o++) err = fmax(err, fabs(db[k][o] - ref[o]));
        char name[64];
        snprintf(name, sizeof name, "linear_bias_threads_%d", threads[k]);
        TEST_CHECK(err < 1e-4, name, "dbias max error %.3g", err);
        free(dinp);
        free(dw);
    }
    omp_set_num_threads(2);
    TEST_CHECK(!memcmp(db[0], db[1], OC * sizeof(float)) && !memcmp(db[0], db[2], OC * sizeof(float)),
               "linear_bias_same_bits", "dbias differs between thread counts");
    for (int k = 0; k < 3; k++) free(db[k]);
    free(dout);
    free(inp);
    free(w);
}

/* The bias gradients fused into GELU's and dropout's backward passes: the same bits for
 * 1, 2 and 300 threads, and the bits of colsum_accumulate on the same dout. */
static void test_fused_bias_threads(void) {
    int N = 613, I = 70;
    size_t n = (size_t)N * I;
    float *pre = frand(n, 3.0f), *dout = frand(n, 1.0f);
    int threads[3] = {1, 2, MANY};
    float *dx[2][3], *db[2][3];
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(threads[k]);
        for (int f = 0; f < 2; f++) {
            dx[f][k] = plm_aligned_alloc(n * sizeof(float));
            db[f][k] = plm_aligned_alloc((size_t)I * sizeof(float));
            for (int o = 0; o < I; o++) db[f][k][o] = 0.25f;
        }
        float *dact = fcopy(pre, n), *act = plm_aligned_alloc(n * sizeof(float));
        gelu_forward_dact(act, NULL, dact, n, PLM_GELU_TANH);
        gelu_backward_dact_colsum(dx[0][k], NULL, dact, dout, N, I, PLM_GELU_TANH, db[0][k]);
        free(dact), free(act);
        dropout_backward_colsum(dx[1][k], dout, N, I, 0.1f, 77, db[1][k]);
    }
    omp_set_num_threads(2);
    const char *names[2] = {"gelu", "dropout"};
    for (int f = 0; f < 2; f++) {
        float ref[70];
        for (int o = 0; o < I; o++) ref[o] = 0.25f;
        colsum_accumulate(ref, dx[f][0], N, I);
        bool same = !memcmp(ref, db[f][0], (size_t)I * sizeof(float));
        for (int k = 1; k < 3; k++)
            same &= !memcmp(dx[f][0], dx[f][k], n * sizeof(float)) &&
                    !memcmp(db[f][0], db[f][k], (size_t)I * sizeof(float));
        char name[64];
        snprintf(name, sizeof name, "fused_bias_grad_same_bits_%s", names[f]);
        TEST_CHECK(same, name, "bias gradient differs between thread counts or from colsum_accumulate");
        for (int k = 0; k < 3; k++) free(dx[f][k]), free(db[f][k]);
    }
    free(pre);
    free(dout);
}

/* GELU's passes as the backbone runs them (gelu_forward_dact, gelu_backward_dact_colsum):
 * the activation has the bits of gelu_forward, the gradient those of gelu_backward, the
 * bias gradient those of colsum_accumulate, and each bf16 copy is plm_to_bf16 of its fp32
 * result, with and without the copies, for every activation, odd sizes and a block tail. */
static void test_gelu_bf16_copy(void) {
    int N = 37, I = 333;
    size_t n = (size_t)N * I;
    float *pre = frand(n, 3.0f), *dout = frand(n, 1.0f);
    float *a = plm_malloc(n * 4), *da = plm_malloc(n * 4);
    uint16_t *b16 = plm_malloc(n * 2), *db16 = plm_malloc(n * 2);
    float ga[333];
    plm_gelu_kind kinds[3] = {PLM_GELU_ERF, PLM_GELU_TANH, PLM_ACT_RELU};
    for (int k = 0; k < 3; k++) {
        for (int o = 0; o < I; o++) ga[o] = 0.5f;
        gelu_forward(a, pre, n, kinds[k]);
        gelu_backward(da, pre, dout, n, kinds[k]);
        colsum_accumulate(ga, da, N, I);
        bool same = true;
        for (int copy = 0; copy < 2; copy++) {
            float *b = plm_malloc(n * 4), *db = plm_malloc(n * 4), *dact = fcopy(pre, n), gb[333];
            for (int o = 0; o < I; o++) gb[o] = 0.5f;
            gelu_forward_dact(b, copy ? b16 : NULL, dact, n, kinds[k]);
            gelu_backward_dact_colsum(db, copy ? db16 : NULL, dact, dout, N, I, kinds[k], gb);
            same &= !memcmp(a, b, n * 4) && !memcmp(da, db, n * 4) && !memcmp(ga, gb, sizeof ga);
            for (size_t i = 0; copy && i < n; i++) same &= b16[i] == plm_to_bf16(b[i]) && db16[i] == plm_to_bf16(db[i]);
            free(b), free(db), free(dact);
        }
        char name[64];
        snprintf(name, sizeof name, "gelu_bf16_copy_%d", k);
        TEST_CHECK(same, name,
                   "bits differ from gelu_forward / gelu_backward / colsum_accumulate, or a bf16 copy is "
                   "not the rounded result");
    }
    free(pre), free(dout), free(a), free(da), free(b16), free(db16);
}

/* attn_bf16.c's packing and kernel against a double reference on the rounded inputs
 * (products of bf16 values are exact in fp32; only the fp32 sums round): both A
 * layouts (pair rows, and A^T from pair columns), B from pair columns and from a
 * transpose, odd K (a half-empty pair), N and M tails; C's columns past N and rows past
 * M stay as poisoned. On a CPU without AVX512_BF16 the fallback is checked instead:
 * attention must not take the bf16 route. */
static void test_attn_bf16_kernel(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx512bf16")) {
        plm_gemm_set_bf16(true);
        TEST_CHECK(!attn_bf16_on(), "attn_bf16_fallback", "attention would run bf16 without AVX512_BF16");
        plm_gemm_set_bf16(false);
        printf("# attn_bf16_kernel: this CPU has no AVX512_BF16; checked the fp32 fallback only\n");
        return;
    }
    int shapes[][3] = {{13, 5, 5}, {64, 128, 64}, {70, 67, 131}, {1, 1, 1}, {7, 130, 2}};
    for (size_t t = 0; t < sizeof shapes / sizeof shapes[0]; t++) {
        int M = shapes[t][0], N = shapes[t][1], K = shapes[t][2], kp = (K + 1) / 2, ldb = attn_bf16_ld(N);
        int ldm = attn_bf16_ld(M), ldc = N + 3;
        float *A = frand((size_t)M * K, 2.0f), *Bm = frand((size_t)K * N, 2.0f),
              *C0 = frand((size_t)(M + 1) * ldc, 1.0f);
        float *At = plm_malloc((size_t)K * M * 4), *Bt = plm_malloc((size_t)N * K * 4);
        for (int m = 0; m < M; m++)
            for (int k = 0; k < K; k++) At[(size_t)k * M + m] = A[(size_t)m * K + k];
        for (int k = 0; k < K; k++)
            for (int n = 0; n < N; n++) Bt[(size_t)n * K + k] = Bm[(size_t)k * N + n];
        uint32_t *pa = plm_malloc((size_t)M * kp * 4), *pat = plm_malloc((size_t)kp * ldm * 4);
        uint32_t *pb = plm_malloc((size_t)kp * ldb * 4), *pbr = plm_malloc((size_t)N * kp * 4);
        uint32_t *pbt = plm_malloc((size_t)kp * ldb * 4);
        attn_bf16_pack_rows(pa, kp, A, K, M, K);
        attn_bf16_pack_cols(pat, ldm, At, M, K, M);
        attn_bf16_pack_cols(pb, ldb, Bm, N, K, N);
        attn_bf16_pack_rows(pbr, kp, Bt, K, N, K);
        attn_bf16_transpose(pbt, ldb, pbr, kp, N, kp);
        bool bits = true;
        for (int m = 0; m < M; m++)
            for (int p = 0; p < kp; p++) {
                float hi = 2 * p + 1 < K ? A[(size_t)m * K + 2 * p + 1] : 0.0f;
                uint32_t w = plm_to_bf16(A[(size_t)m * K + 2 * p]) | (uint32_t)plm_to_bf16(hi) << 16;
                bits &= pa[(size_t)m * kp + p] == w && pat[(size_t)p * ldm + m] == w;
            }
        for (int p = 0; p < kp; p++)
            for (int n = 0; n < ldb; n++) bits &= pb[(size_t)p * ldb + n] == pbt[(size_t)p * ldb + n];
        double err = 0, norm = 0;
        bool poison = true;
        for (int layout = 0; layout < 2; layout++) {
            float *C = fcopy(C0, (size_t)(M + 1) * ldc);
            if (layout == 0)
                attn_bf16_gemm(M, N, kp, 0.75f, pa, kp, 1, pb, ldb, 1.0f, C, ldc);
            else
                attn_bf16_gemm(M, N, kp, 0.75f, pat, 1, ldm, pbt, ldb, 1.0f, C, ldc);
            for (int m = 0; m <= M; m++)
                for (int n = 0; n < ldc; n++) {
                    size_t i = (size_t)m * ldc + n;
                    if (m == M || n >= N) {
                        poison &= C[i] == C0[i];
                        continue;
                    }
                    double r = 0;
                    for (int k = 0; k < K; k++)
                        r += (double)plm_round_bf16(A[(size_t)m * K + k]) * plm_round_bf16(Bm[(size_t)k * N + n]);
                    r = 0.75 * r + C0[i];
                    err += (C[i] - r) * (C[i] - r), norm += r * r;
                }
            free(C);
        }
        char name[64];
        snprintf(name, sizeof name, "attn_bf16_kernel_%dx%dx%d", M, N, K);
        TEST_CHECK(bits && poison && sqrt(err / norm) < 1e-6, name,
                   "packed bits %s, outside C %s, relative error %.3g (want < 1e-6)", bits ? "ok" : "wrong",
                   poison ? "untouched" : "written", sqrt(err / norm));
        free(A), free(Bm), free(C0), free(At), free(Bt), free(pa), free(pat), free(pb), free(pbr), free(pbt);
    }
}

static void test_layernorm_threads(void) {
    int N = 517, C = 40;
    float *inp = frand((size_t)N * C, 2.0f), *dout = frand((size_t)N * C, 1.0f), *w = frand(C, 1.0f),
          *b = frand(C, 1.0f);
    float *out = plm_aligned_alloc((size_t)N * C * 4), *mean = plm_aligned_alloc(N * 4),
          *rstd = plm_aligned_alloc(N * 4);
    layernorm_forward(out, mean, rstd, inp, w, b, N, C, 1e-5f);
    int threads[3] = {1, 2, MANY};
    float *dx[3], *dwb[3];
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(2);
        dx[k] = plm_aligned_alloc((size_t)N * C * 4);
        dwb[k] = plm_aligned_alloc(2 * (size_t)C * 4);
        for (int c = 0; c < 2 * C; c++) dwb[k][c] = 0.5f;
        omp_set_num_threads(threads[k]);
        layernorm_backward(dx[k], dwb[k], dwb[k] + C, dout, inp, w, mean, rstd, N, C, false);
    }
    omp_set_num_threads(2);
    /* reference dweight, dbias in double */
    double err = 0.0;
    for (int c = 0; c < C; c++) {
        double sw = 0.5, sb = 0.5;
        for (int i = 0; i < N; i++) {
            double xhat = ((double)inp[(size_t)i * C + c] - mean[i]) * rstd[i];
            sw += dout[(size_t)i * C + c] * xhat;
            sb += dout[(size_t)i * C + c];
        }
        err = fmax(err, fmax(fabs(sw - dwb[0][c]), fabs(sb - dwb[0][C + c])));
    }
    TEST_CHECK(err < 1e-4, "layernorm_weight_grads", "max error %.3g", err);
    bool same = true;
    for (int k = 1; k < 3; k++)
        same &= !memcmp(dx[0], dx[k], (size_t)N * C * 4) && !memcmp(dwb[0], dwb[k], 2 * (size_t)C * 4);
    TEST_CHECK(same, "layernorm_threads_same_bits", "layernorm gradients differ between thread counts");
    for (int k = 0; k < 3; k++) {
        free(dx[k]);
        free(dwb[k]);
    }
    free(inp);
    free(dout);
    free(w);
    free(b);
    free(out);
    free(mean);
    free(rstd);
}

/* Attention with bf16 tiles (attn_bf16.h): the same bits for 1, 2 and many threads
 * (the forward hands a thread all query blocks of a head; the results must not depend on
 * which thread), causal with dropout over several query and key blocks, and close to
 * the fp32 tiles. Without AVX512_BF16 the fallback is checked instead. */
static void test_attention_bf16_threads(void) {
    if (!plm_gemm_set_bf16(true) || !attn_bf16_on()) {
        plm_gemm_set_bf16(false);
        TEST_CHECK(!attn_bf16_on(), "attention_bf16_fallback", "bf16 attention on without bf16 GEMMs");
        printf("# attention_bf16_threads: no AVX512_BF16 here; checked the fp32 fallback only\n");
        return;
    }
    int B = 3, NH = 2, T = 150, hs = 64, C = NH * hs;
    float *qkv = frand((size_t)B * T * 3 * C, 1.5f), *dout = frand((size_t)B * T * C, 1.0f);
    size_t natt = attention_saved_floats(B, NH, T, T, hs), no = (size_t)B * T * C, nq = no * 3;
    int threads[4] = {1, 2, MANY, 2};
    float *outs[4], *dqkvs[4];
    for (int k = 0; k < 4; k++) {
        if (k == 3) plm_gemm_set_bf16(false); /* the fp32 tiles, for the distance */
        float *att = plm_aligned_alloc(natt * 4);
        outs[k] = plm_aligned_alloc(no * 4);
        dqkvs[k] = plm_aligned_alloc(nq * 4);
        omp_set_num_threads(threads[k]);
        attention_forward(outs[k], att, qkv, NULL, B, T, C, NH, true, 0.1f, 5);
        attention_backward(dqkvs[k], dout, qkv, att, B, T, C, NH, 0.1f, 5);
        free(att);
    }
    omp_set_num_threads(2);
    bool same = true;
    for (int k = 1; k < 3; k++) same &= !memcmp(outs[0], outs[k], no * 4) && !memcmp(dqkvs[0], dqkvs[k], nq * 4);
    TEST_CHECK(same, "attention_bf16_threads_same_bits", "bf16 attention differs between 1, 2 and %d threads", MANY);
    double e = 0, n = 0, eg = 0, ng = 0;
    for (size_t i = 0; i < no; i++) e += pow(outs[0][i] - outs[3][i], 2), n += pow(outs[3][i], 2);
    for (size_t i = 0; i < nq; i++) eg += pow(dqkvs[0][i] - dqkvs[3][i], 2), ng += pow(dqkvs[3][i], 2);
    e = sqrt(e / n), eg = sqrt(eg / ng);
    TEST_CHECK(e > 0 && e < 2e-2 && eg > 0 && eg < 2e-2, "attention_bf16_close_to_fp32",
               "relative L2 distance: out %.3g, dqkv %.3g (want (0, 2e-2))", e, eg);
    for (int k = 0; k < 4; k++) free(outs[k]), free(dqkvs[k]);
    free(qkv), free(dout);
}

static void test_attention_threads(void) {
    int B = 60, NH = 6, T = 7, hs = 4, C = NH * hs; /* B x NH = 360 (batch, head) tasks */
    float *qkv = frand((size_t)B * T * 3 * C, 1.0f), *dout = frand((size_t)B * T * C, 1.0f);
    uint8_t *mask = plm_malloc((size_t)B * T);
    for (int i = 0; i < B * T; i++) mask[i] = i % T < T - (i / T) % 3;
    size_t natt = attention_saved_floats(B, NH, T, T, C / NH);
    int threads[3] = {1, 2, MANY};
    float *outs[3], *dqkvs[3], *dbs[3];
    for (int k = 0; k < 3; k++) {
        omp_set_num_threads(2);
        float *att = plm_aligned_alloc(natt * 4);
        outs[k] = plm_aligned_alloc((size_t)B * T * C * 4);
        dqkvs[k] = plm_aligned_alloc((size_t)B * T * 3 * C * 4);
        dbs[k] = plm_aligned_alloc(3 * (size_t)C * 4);
        for (int c = 0; c < 3 * C; c++) dbs[k][c] = 0.5f;
        omp_set_num_threads(threads[k]);
        attention_forward(outs[k], att, qkv, mask, B, T, C, NH, false, 0.25f, 77);
        attention_backward_qkv_bias(dqkvs[k], dout, qkv, att, B, T, C, NH, 0.25f, 77, dbs[k]);
        free(att);
    }
    omp_set_num_threads(2);
    double e = 0.0;
    for (int k = 1; k < 3; k++) {
        e = fmax(e, max_abs_diff(outs[0], outs[k], (size_t)B * T * C));
        e = fmax(e, max_abs_diff(dqkvs[0], dqkvs[k], (size_t)B * T * 3 * C));
    }
    TEST_CHECK(e < 1e-5, "attention_threads_match", "max difference to 1 thread %.3g", e);
    /* the qkv bias gradient summed in the backward pass: the column sums of dqkv, with
     * the same bits for any number of threads */
    double eb = 0.0;
    for (int c = 0; c < 3 * C; c++) {
        double ref = 0.5;
        for (int i = 0; i < B * T; i++) ref += dqkvs[0][(size_t)i * 3 * C + c];
        eb = fmax(eb, fabs(ref - dbs[0][c]));
    }
    TEST_CHECK(eb < 1e-4, "attention_qkv_bias_grad", "max error %.3g", eb);
    TEST_CHECK(!memcmp(dbs[0], dbs[1], 3 * (size_t)C * 4) && !memcmp(dbs[0], dbs[2], 3 * (size_t)C * 4),
               "attention_qkv_bias_same_bits", "the qkv bias gradient differs between thread counts");
    for (int k = 0; k < 3; k++) {
        free(outs[k]);
        free(dqkvs[k]);
        free(dbs[k]);
    }
    free(qkv);
    free(dout);
    free(mask);
}

/* The backward pass writes every element of dq, dk and dv, whatever they held before
 * (rows are zeroed, or overwritten by a first product with beta 0, and skipped tiles
 * must leave no row unwritten). Gradients into buffers full of NaN must have the bits
 * of gradients into zeros, for
 * every mask (none, causal, padding, documents), cross-attention (Tq != Tk) and lengths
 * that leave partial query and key blocks (64 and 128), in fp32 and, where the CPU has
 * it, bf16. */
static void test_attention_backward_overwrites(void) {
    int B = 3, NH = 2, hs = 16, C = NH * hs, Tk_cross = 150;
    int lens[3] = {7, 130, 200};
    bool bad = false;
    int runs = 0;
    for (int prec = 0; prec < 2; prec++) {
        if (prec == 1 && (!plm_gemm_set_bf16(true) || !attn_bf16_on())) {
            plm_gemm_set_bf16(false);
            printf("# attention_backward_overwrites: no AVX512_BF16 here; fp32 tiles only\n");
            break;
        }
        for (int li = 0; li < 3; li++)
            for (int kind = 0; kind < 5; kind++) { /* none, causal, padding, documents, cross */
                int T = lens[li], Tq = T, Tk = kind == 4 ? Tk_cross : T;
                float *q = frand((size_t)B * Tq * C, 1.0f), *k = frand((size_t)B * Tk * C, 1.0f);
                float *v = frand((size_t)B * Tk * C, 1.0f), *dout = frand((size_t)B * Tq * C, 1.0f);
                uint8_t *mask = plm_malloc((size_t)B * Tk);
                int32_t *docs = plm_malloc((size_t)B * T * sizeof(int32_t));
                for (int i = 0; i < B * Tk; i++) mask[i] = kind != 2 || i % Tk < Tk - 3 * (i / Tk);
                for (int i = 0; i < B * T; i++) docs[i] = (i % T) / 50;
                attn_shape a = {.B = B,
                                .Tq = Tq,
                                .Tk = Tk,
                                .NH = NH,
                                .hs = hs,
                                .q = q,
                                .k = k,
                                .v = v,
                                .ldq = C,
                                .ldk = C,
                                .ldv = C,
                                .key_mask = mask,
                                .causal = kind == 1,
                                .seq_idx = kind == 3 ? docs : NULL,
                                .scale = 0.25f,
                                .dropout_p = 0.1f,
                                .dropout_key = 9};
                float *out = plm_malloc((size_t)B * Tq * C * 4);
                float *att = plm_malloc(attention_saved_floats(B, NH, Tq, Tk, hs) * 4);
                attention_forward_ex(&a, out, att);
                float *g[2][3];
                for (int r = 0; r < 2; r++) {
                    size_t n[3] = {(size_t)B * Tq * C, (size_t)B * Tk * C, (size_t)B * Tk * C};
                    for (int m = 0; m < 3; m++) {
                        g[r][m] = plm_malloc(n[m] * 4);
                        for (size_t i = 0; i < n[m]; i++) g[r][m][i] = r ? NAN : 0.0f;
                    }
                    attention_backward_ex(&a, dout, att, g[r][0], g[r][1], g[r][2], NULL);
                }
                for (int m = 0; m < 3; m++) {
                    size_t n = (size_t)B * (m ? Tk : Tq) * C;
                    if (memcmp(g[0][m], g[1][m], n * 4)) {
                        bad = true;
                        printf("# %s T %d kind %d: d%c differs from its zeroed run\n", prec ? "bf16" : "fp32", T, kind,
                               "qkv"[m]);
                    }
                }
                runs++;
                for (int r = 0; r < 2; r++)
                    for (int m = 0; m < 3; m++) free(g[r][m]);
                free(q), free(k), free(v), free(dout), free(mask), free(docs), free(out), free(att);
            }
        plm_gemm_set_bf16(false);
    }
    TEST_CHECK(!bad && runs >= 15, "attention_backward_overwrites", "see the lines above (%d runs)", runs);
}

/* The profile's GFLOP/s column: a GEMM's row has a rate that, times its time, gives the
 * FLOPs it did (2 M N K per call); an op without FLOPs has none; the row of the ops
 * with a rate adds them up. Checks the arithmetic of the table, not a speed. */
static void test_profile_rates(void) {
    int n = 256, calls = 40;
    float *a = frand((size_t)n * n, 1.0f), *b = frand((size_t)n * n, 1.0f), *c = frand((size_t)n * n, 1.0f);
    plm_prof_enable(true);
    plm_prof_reset();
    for (int i = 0; i < calls; i++) plm_sgemm(false, false, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
    double t0 = plm_prof_begin();
    plm_prof_end("test: no flops", t0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    plm_prof_report(f, 1, 1e6);
    fclose(f);
    plm_prof_enable(false);
    plm_prof_reset();
    double want = 2.0 * n * n * n * calls * 1e-9, got = -1.0, sum = -1.0;
    bool blank = false;
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        char name[128];
        double fwd, bwd, opt, tot, share, rate;
        if (sscanf(line, "| %127[^|]| %lf | %lf | %lf | %lf | %lf%% | %lf |", name, &fwd, &bwd, &opt, &tot, &share,
                   &rate) == 7) {
            if (!strncmp(name, "gemm NN", 7)) got = rate * tot * 1e-3;
            if (!strncmp(name, "(the ops with a rate", 20)) sum = rate * tot * 1e-3;
        } else if (!strncmp(line, "| test: no flops |", 18)) {
            blank = strlen(line) > 3 && !strcmp(line + strlen(line) - 3, "| |");
        }
    }
    free(buf);
    /* the table prints ms to 0.01 and GFLOP/s to 0.1: allow their rounding */
    TEST_CHECK(fabs(got - want) < 0.02 * want, "profile_gemm_rate", "rate x time = %.4g GFLOP, want %.4g", got, want);
    TEST_CHECK(fabs(sum - want) < 0.02 * want, "profile_rate_sum", "the sum row gives %.4g GFLOP, want %.4g", sum,
               want);
    TEST_CHECK(blank, "profile_no_rate", "an op without FLOPs shows a rate");
    free(a), free(b), free(c);
}

/* A whole model reserved with 2 threads, then trained a step with 300. */
static void test_model_threads_raised(void) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = 97;
    c.hidden_size = 48;
    c.num_attention_heads = 3;
    c.num_hidden_layers = 2;
    c.intermediate_size = 80;
    c.max_position_embeddings = 16;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.1f;
    c.pad_token_id = 0;
    int B = 4, T = 13, N = B * T;
    omp_set_num_threads(2);
    plm_model *m = plm_model_create(&c, 99);
    TEST_CHECK(m && plm_model_reserve(m, B, T) == 0, "model_threads_reserve", "%s", plm_last_error());
    if (!m) return;
    int32_t ids[64], labels[64];
    for (int i = 0; i < N; i++) {
        ids[i] = 1 + (int32_t)plm_rng_below(&R, c.vocab_size - 1);
        labels[i] = i % 3 == 0 ? (int32_t)plm_rng_below(&R, c.vocab_size) : PLM_IGNORE_INDEX;
    }
    plm_batch batch = {.B = B, .T = T, .input_ids = ids, .labels = labels, .training = true, .dropout_seed = 5};
    int threads[2] = {1, MANY};
    float *g[2];
    plm_ce_result r[2];
    for (int k = 0; k < 2; k++) {
        omp_set_num_threads(threads[k]);
        plm_model_zero_grad(m);
        r[k] = plm_model_forward(m, &batch, true, 1.0f);
        g[k] = fcopy(m->grads, m->num_params);
    }
    omp_set_num_threads(2);
    double e2 = 0.0, n2 = 0.0;
    for (size_t i = 0; i < m->num_params; i++) {
        double d = (double)g[0][i] - g[1][i];
        e2 += d * d;
        n2 += (double)g[0][i] * g[0][i];
    }
    TEST_CHECK(r[0].count == r[1].count && fabs(r[0].loss_sum - r[1].loss_sum) < 1e-5 * fabs(r[0].loss_sum) &&
                   sqrt(e2 / n2) < 1e-5,
               "model_threads_raised", "loss %.9g/%d vs %.9g/%d, gradient relative difference %.3g", r[0].loss_sum,
               r[0].count, r[1].loss_sum, r[1].count, sqrt(e2 / n2));
    free(g[0]);
    free(g[1]);
    plm_model_free(m);
}

/* ---- divergence ---- */

static void test_first_nonfinite(void) {
    size_t numel[3] = {100, 37, 1000};
    fake_model f;
    fake_init(&f, numel, 3);
    TEST_CHECK(plm_first_nonfinite(&f.m, f.m.grads) == -1 && plm_first_nonfinite(&f.m, f.m.params) == -1,
               "first_nonfinite_none", "reported a non-finite value in finite buffers");
    f.m.grads[100 + 1000 + 36] = NAN; /* last element of tensor 2 */
    int a = plm_first_nonfinite(&f.m, f.m.grads);
    f.m.grads[100 + 36] = -INFINITY; /* last element of tensor 1 */
    int b = plm_first_nonfinite(&f.m, f.m.grads);
    f.m.params[0] = INFINITY;
    int c = plm_first_nonfinite(&f.m, f.m.params);
    TEST_CHECK(a == 2 && b == 1 && c == 0, "first_nonfinite_index", "got %d %d %d, want 2 1 0", a, b, c);
    fake_free(&f);
}

static void test_fast_exp_nonfinite(void) {
    volatile float in[8] = {NAN, -NAN, INFINITY, -INFINITY, 1e30f, -1e30f, 3.4e38f, -3.4e38f};
    float e[8], th[8], er[8];
    for (int i = 0; i < 8; i++) {
        e[i] = plm_expf(in[i]);
        th[i] = plm_tanhf(in[i]);
        er[i] = plm_erff(in[i]);
    }
    TEST_CHECK(isnan(e[0]) && isnan(e[1]) && isnan(th[0]) && isnan(er[0]), "fast_exp_nan_propagates",
               "exp(NaN) %g %g tanh(NaN) %g erf(NaN) %g", e[0], e[1], th[0], er[0]);
    bool big = e[2] >= 1e38f && e[4] >= 1e38f && e[6] >= 1e38f;
    bool tiny = e[3] >= 0.0f && e[3] < 1e-37f && e[5] >= 0.0f && e[5] < 1e-37f && e[7] >= 0.0f && e[7] < 1e-37f;
    bool sat = th[2] == 1.0f && th[3] == -1.0f && er[2] == 1.0f && er[3] == -1.0f;
    TEST_CHECK(big && tiny && sat, "fast_exp_saturates", "exp %g %g %g %g tanh %g %g erf %g %g", e[2], e[3], e[4], e[5],
               th[2], th[3], er[2], er[3]);
    /* the vectorised form, as softmax and GELU use it */
    float v[64], out[64];
    for (int i = 0; i < 64; i++) v[i] = in[i % 8] * (i < 8 ? 1.0f : 0.5f);
#pragma omp simd
    for (int i = 0; i < 64; i++) out[i] = plm_expf(v[i]);
    bool ok = true;
    for (int i = 0; i < 64; i++) ok &= isnan(v[i]) ? isnan(out[i]) : out[i] >= 0.0f;
    TEST_CHECK(ok, "fast_exp_vectorised_nonfinite", "a vector lane lost NaN or went negative");
}

static void test_crossentropy_nonfinite(void) {
    int V = 53;
    /* each case is one row: where the bad value sits, what it is */
    struct {
        const char *name;
        int pos;
        float val;
    } cases[] = {{"nan_first", 0, NAN},      {"nan_middle", 20, NAN},    {"nan_target", 7, NAN},
                 {"inf_first", 0, INFINITY}, {"inf_last", 52, INFINITY}, {"minus_inf_target", 7, -INFINITY}};
    int nc = (int)(sizeof cases / sizeof cases[0]);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (int k = 0; k < nc; k++) {
            for (int backward = 0; backward <= 1; backward++) {
                /* the bad row is the last one of its buffer: an unbounded argmax search
                 * runs off its end */
                int M = 3;
                float *z = frand((size_t)M * V, 3.0f);
                z[(size_t)(M - 1) * V + cases[k].pos] = cases[k].val;
                int32_t targets[3] = {1, PLM_IGNORE_INDEX, 7};
                plm_ce_result r = crossentropy_forward_backward(z, targets, M, V, backward, 1.0f);
                char name[96];
                snprintf(name, sizeof name, "ce_nonfinite_%s_%s_%dt", cases[k].name, backward ? "bwd" : "fwd", threads);
                TEST_CHECK(!isfinite(r.loss_sum) && r.count == 2 && r.correct >= 0 && r.correct <= 2, name,
                           "loss %g count %d correct %d", r.loss_sum, r.count, r.correct);
                free(z);
            }
        }
    }
    omp_set_num_threads(2);
}

/* ---- bf16 GEMMs ---- */

static double rel_err(const float *got, const double *ref, size_t n) {
    double d = 0.0, r = 0.0;
    for (size_t i = 0; i < n; i++) d += (got[i] - ref[i]) * (got[i] - ref[i]), r += ref[i] * ref[i];
    return sqrt(d / r);
}

/* rel_err of the M x N product in C (row stride ldc) against ref; *pad_ok: the columns
 * past N are still C0's. */
static double padded_rel_err(const float *C, const float *C0, int M, int N, int ldc, const double *ref, bool *pad_ok) {
    float *Cd = plm_malloc((size_t)M * N * sizeof(float));
    *pad_ok = true;
    for (int i = 0; i < M; i++) {
        memcpy(Cd + (size_t)i * N, C + (size_t)i * ldc, (size_t)N * sizeof(float));
        for (int j = N; j < ldc; j++) *pad_ok &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
    }
    double e = rel_err(Cd, ref, (size_t)M * N);
    free(Cd);
    return e;
}

static void test_gemm_bf16(void) {
    int M = 67, N = 45, K = 131;
    float *A = frand((size_t)M * K + 8 * K, 1.0f), *B = frand((size_t)K * N + 8 * K, 1.0f);
    const char *isa = plm_bf16_isa();
    printf("# bf16 ISA: %s\n", isa ? isa : "none (testing the fp32 fallback)");
    for (int v = 0; v < 8; v++) {
        bool ta = v & 1, tb = v & 2;
        float alpha = v & 4 ? 0.37f : 1.0f, beta = v & 4 ? 1.0f : 0.0f;
        int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 5, ldc = N + 2; /* strided rows */
        float *C0 = frand((size_t)M * ldc, 1.0f), *C = fcopy(C0, (size_t)M * ldc), *C32 = fcopy(C0, (size_t)M * ldc);
        double *ref16 = plm_malloc((size_t)M * N * sizeof(double)), *ref = plm_malloc((size_t)M * N * sizeof(double));
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double s16 = 0.0, s = 0.0;
                for (int k = 0; k < K; k++) {
                    float a = ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k];
                    float b = tb ? B[(size_t)j * ldb + k] : B[(size_t)k * ldb + j];
                    s16 += (double)plm_round_bf16(a) * plm_round_bf16(b);
                    s += (double)a * b;
                }
                double c = beta * C0[(size_t)i * ldc + j];
                ref16[(size_t)i * N + j] = alpha * s16 + c, ref[(size_t)i * N + j] = alpha * s + c;
            }
        plm_gemm_set_bf16(false);
        plm_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C32, ldc);
        bool on = plm_gemm_set_bf16(true);
        plm_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        plm_gemm_set_bf16(false);
        float *Cd = plm_malloc((size_t)M * N * sizeof(float));
        bool pad_ok = true;
        for (int i = 0; i < M; i++) {
            memcpy(Cd + (size_t)i * N, C + (size_t)i * ldc, (size_t)N * sizeof(float));
            for (int j = N; j < ldc; j++) pad_ok &= C[(size_t)i * ldc + j] == C0[(size_t)i * ldc + j];
        }
        char name[64];
        snprintf(name, sizeof name, "gemm_bf16_%c%c%s", ta ? 'T' : 'N', tb ? 'T' : 'N', v & 4 ? "_alpha_beta" : "");
        char en[80];
        snprintf(en, sizeof en, "%s.enabled_iff_isa", name);
        TEST_CHECK(on == (isa != NULL), en, "plm_gemm_set_bf16 returned %d with ISA %s", on, isa ? isa : "none");
        if (isa) {
            double e16 = rel_err(Cd, ref16, (size_t)M * N), e = rel_err(Cd, ref, (size_t)M * N);
            TEST_CHECK(e16 < 1e-5 && e < 1e-2 && e > 1e-6 && pad_ok, name,
                       "rel err %.3g vs rounded inputs (want < 1e-5), %.3g vs exact (want 1e-6 .. 1e-2), "
                       "padding kept %d",
                       e16, e, pad_ok);
            /* the same product with both operands read from bf16 mirrors of A's and B's
             * buffers, in place with their strides: the same bits */
            size_t na = (size_t)(ta ? K : M) * lda, nb = (size_t)(tb ? N : K) * ldb;
            plm_bf16_mirror ma = {.base = A, .n = na, .w = plm_malloc(na * 2)};
            plm_bf16_mirror mb = {.base = B, .n = nb, .w = plm_malloc(nb * 2)};
            for (size_t i = 0; i < na; i++) ma.w[i] = plm_to_bf16(A[i]);
            for (size_t i = 0; i < nb; i++) mb.w[i] = plm_to_bf16(B[i]);
            plm_gemm_mirror_add(&ma), plm_gemm_mirror_add(&mb);
            float *Cm = fcopy(C0, (size_t)M * ldc);
            long r0, c0, r1, c1;
            plm_gemm_bf16_counts(&r0, &c0);
            plm_gemm_set_bf16(true);
            plm_sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, Cm, ldc);
            plm_gemm_set_bf16(false);
            plm_gemm_bf16_counts(&r1, &c1);
            plm_gemm_mirror_remove(&ma), plm_gemm_mirror_remove(&mb);
            char mn[100];
            snprintf(mn, sizeof mn, "%s.mirrored_same_bits", name);
            TEST_CHECK(r1 - r0 == 2 && c1 == c0 && !memcmp(Cm, C, (size_t)M * ldc * sizeof(float)), mn,
                       "%ld operands read from mirrors (want 2), %ld rounded (want 0), same bits %d", r1 - r0, c1 - c0,
                       !memcmp(Cm, C, (size_t)M * ldc * sizeof(float)));
            free(ma.w), free(mb.w), free(Cm);
        } else {
            TEST_CHECK(!memcmp(C, C32, (size_t)M * ldc * sizeof(float)), name, "the fallback is not the fp32 product");
        }
        free(C0), free(C), free(C32), free(ref16), free(ref), free(Cd);
    }
    free(A), free(B);
}

/* bf16 products whose M is not a multiple of 16 run as two primitives (rows up to the
 * last multiple of 16, then the rest); many shapes overflow the primitive cache (160
 * entries) so that evictions land next to the pair in use: every product must still
 * write every row, equal to the double reference on the rounded inputs. */
static void test_gemm_bf16_split(void) {
    if (!plm_bf16_isa()) {
        TEST_CHECK(true, "gemm_bf16_split", "no bf16 ISA: the fallback is tested by gemm_bf16");
        return;
    }
    int K = 40, worst_rows = 0;
    double worst = 0.0;
    float *A = frand((size_t)200 * K, 1.0f), *B = frand((size_t)48 * K, 1.0f),
          *C = plm_malloc((size_t)200 * 48 * 4); /* N <= 44 */
    plm_gemm_set_bf16(true);
    for (int it = 0; it < 3000; it++) {
        /* 16 rows + a tail of 1..15: the 21 head shapes stay cached, the 315 tails churn */
        int M = 17 + (int)plm_rng_below(&R, 15), N = 24 + (int)plm_rng_below(&R, 21);
        for (size_t i = 0; i < (size_t)M * N; i++) C[i] = NAN;
        plm_sgemm(false, true, M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) {
                double r = 0.0;
                for (int k = 0; k < K; k++)
                    r += (double)plm_round_bf16(A[(size_t)i * K + k]) * plm_round_bf16(B[(size_t)j * K + k]);
                double e = fabs(C[(size_t)i * N + j] - r) / (fabs(r) + 1.0);
                if (!(e <= worst)) worst = isnan(e) ? INFINITY : e, worst_rows = M;
            }
    }
    plm_gemm_set_bf16(false);
    TEST_CHECK(worst <= 1e-5, "gemm_bf16_split", "worst error %.3g (M %d)", worst, worst_rows);
    free(A), free(B), free(C);
}

/* The few-row routes (decoding: M = a few sequences, a large weight, Y = X W^T): sgemm's
 * GEMV for M 1-2 and oneDNN's matmul primitive for M 3-64, or, without AVX-512, the
 * AVX2 kernel (skinny.h) for M 2-8; against a double reference: odd M, N, K (a K tail
 * under 8, a last block of one row of B, M past a multiple of 4), strided rows, beta 0
 * over a C poisoned with NaN (never read), beta 1, the bias of plm_sgemm_bias, and the
 * padding of C left alone. tests/gemm_routes.sh runs it under both PLM_GEMM_SKINNY
 * routes. */
static void test_gemm_skinny(void) {
    int N = 2053, K = 1031, Ms[] = {1, 2, 3, 5, 8, 9, 16, 33, 64};
    int lda = K + 3, ldb = K + 5, ldc = N + 2;
    float *A = frand((size_t)64 * lda, 1.0f), *B = frand((size_t)N * ldb, 1.0f), *bias = frand(N, 1.0f);
    for (int mi = 0; mi < (int)PLM_ARRAY_LEN(Ms); mi++)
        for (int v = 0; v < 3; v++) { /* beta 0, beta 1, bias */
            int M = Ms[mi];
            float beta = v == 1 ? 1.0f : 0.0f;
            float *C0 = frand((size_t)M * ldc, 1.0f);
            if (v != 1)
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) C0[(size_t)i * ldc + j] = NAN;
            float *C = fcopy(C0, (size_t)M * ldc);
            double *ref = plm_malloc((size_t)M * N * sizeof(double));
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = v == 2 ? bias[j] : v == 1 ? C0[(size_t)i * ldc + j] : 0.0;
                    for (int k = 0; k < K; k++) acc += (double)A[(size_t)i * lda + k] * B[(size_t)j * ldb + k];
                    ref[(size_t)i * N + j] = acc;
                }
            if (v == 2)
                plm_sgemm_bias(M, N, K, A, lda, B, ldb, bias, C, ldc);
            else
                plm_sgemm(false, true, M, N, K, 1.0f, A, lda, B, ldb, beta, C, ldc);
            bool pad_ok;
            double e = padded_rel_err(C, C0, M, N, ldc, ref, &pad_ok);
            char name[64];
            snprintf(name, sizeof name, "gemm_skinny_M%d_%s", M, v == 0 ? "beta0" : v == 1 ? "beta1" : "bias");
            TEST_CHECK(e < 1e-5 && pad_ok, name, "rel err %.3g (want < 1e-5), padding kept %d", e, pad_ok);
            free(C0), free(C), free(ref);
        }
    free(A), free(B), free(bias);
}

/* dW = alpha dY^T X + beta dW, the weight gradient's TN product, against a double
 * reference: odd shapes on each side of the routes' bounds (the matmul primitive takes
 * out >= 512 and in <= 256 on AVX-512 CPUs), padded leading dimensions left alone, and
 * with beta 0 a C poisoned with NaN that must not be read. tests/gemm_routes.sh runs
 * this under both PLM_GEMM_TN routes on every CPU. */
static void test_gemm_tn(void) {
    int shapes[][3] = {{4099, 37, 29}, {512, 256, 65}, {513, 257, 17}, {511, 5, 33}, {600, 64, 50}};
    for (int si = 0; si < (int)PLM_ARRAY_LEN(shapes); si++)
        for (int v = 0; v < 2; v++) { /* alpha 0.5 beta 0 (C poisoned), alpha 1 beta 1 */
            int M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            int lda = M + 3, ldb = N + 1, ldc = N + 2;
            float alpha = v ? 1.0f : 0.5f, beta = v ? 1.0f : 0.0f;
            float *A = frand((size_t)K * lda, 1.0f), *B = frand((size_t)K * ldb, 1.0f);
            float *C0 = frand((size_t)M * ldc, 1.0f);
            if (!v)
                for (int i = 0; i < M; i++)
                    for (int j = 0; j < N; j++) C0[(size_t)i * ldc + j] = NAN;
            float *C = fcopy(C0, (size_t)M * ldc);
            double *ref = plm_malloc((size_t)M * N * sizeof(double));
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = 0.0;
                    for (int k = 0; k < K; k++) acc += (double)A[(size_t)k * lda + i] * B[(size_t)k * ldb + j];
                    ref[(size_t)i * N + j] = alpha * acc + (v ? (double)C0[(size_t)i * ldc + j] : 0.0);
                }
            plm_sgemm(true, false, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
            bool pad_ok;
            double e = padded_rel_err(C, C0, M, N, ldc, ref, &pad_ok);
            char name[64];
            snprintf(name, sizeof name, "gemm_tn_%dx%dx%d_%s", M, N, K, v ? "beta1" : "beta0");
            TEST_CHECK(e < 1e-5 && pad_ok, name, "rel err %.3g (want < 1e-5), padding kept %d", e, pad_ok);
            free(A), free(B), free(C0), free(C), free(ref);
        }
}

/* plm_openblas_fits_cpu: on a CPU with AVX2 and FMA, OpenBLAS's SSE-era cores (what it
 * falls back to on CPU models it does not know) do not count; its AVX2 cores do. */
char *openblas_get_corename(void);
static void test_openblas_fit(void) {
    static const char *old[] = {"prescott", "core2", "penryn", "dunnington", "nehalem", "atom", "sandybridge"};
    static const char *avx2[] = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
    const char *core = openblas_get_corename();
    __builtin_cpu_init();
    bool cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"), is_old = false, is_avx2 = false;
    for (size_t i = 0; i < PLM_ARRAY_LEN(old); i++) is_old |= !strcasecmp(core, old[i]);
    for (size_t i = 0; i < PLM_ARRAY_LEN(avx2); i++) is_avx2 |= !strcasecmp(core, avx2[i]);
    bool fits = plm_openblas_fits_cpu(), want = !cpu_avx2 || is_avx2;
    printf("# OpenBLAS core: %s (CPU %s AVX2+FMA): %s\n", core, cpu_avx2 ? "with" : "without",
           fits ? "used where measured faster" : "not used");
    TEST_CHECK(fits == want && !(cpu_avx2 && is_old && fits), "openblas_fits_cpu", "core %s, AVX2 %d: fits %d, want %d",
               core, cpu_avx2, fits, want);
}

/* Y = X W^T + bias (linear_forward's product) against a double reference: fp32 (the
 * matmul primitive with its bias), and bf16, where the bf16 matmul adds the bias (vs the
 * rounded inputs: fp32 accumulation). Odd sizes, M over the few-row and the many-row routes. */
static void test_gemm_bias(void) {
    const char *isa = plm_bf16_isa();
    int N = 45, K = 131, Ms[] = {2, 5, 67};
    float *A = frand((size_t)67 * K, 1.0f), *B = frand((size_t)N * K, 1.0f), *bias = frand(N, 1.0f);
    for (int bf = 0; bf < 2; bf++)
        for (int mi = 0; mi < 3; mi++) {
            int M = Ms[mi];
            if (bf && !isa) continue;
            plm_gemm_set_bf16(bf);
            float *C = frand((size_t)M * N, 1.0f); /* poisoned: the product must overwrite it */
            double *ref = plm_malloc((size_t)M * N * sizeof(double));
            for (int i = 0; i < M; i++)
                for (int j = 0; j < N; j++) {
                    double acc = bias[j];
                    for (int k = 0; k < K; k++) {
                        float a = A[(size_t)i * K + k], b = B[(size_t)j * K + k];
                        acc += bf ? (double)plm_round_bf16(a) * plm_round_bf16(b) : (double)a * b;
                    }
                    ref[(size_t)i * N + j] = acc;
                }
            plm_sgemm_bias(M, N, K, A, K, B, K, bias, C, N);
            plm_gemm_set_bf16(false);
            double e = rel_err(C, ref, (size_t)M * N);
            char name[64];
            snprintf(name, sizeof name, "gemm_bias_%s_M%d", bf ? "bf16" : "fp32", M);
            TEST_CHECK(e < 1e-5, name, "rel err %.3g (want < 1e-5)", e);
            free(C), free(ref);
        }
    free(A), free(B), free(bias);
}

/* ---- dropout: the integer draw is the float one ---- */

/* plm_keep_threshold(p) is the least b with b 2^-24 >= p, so keeping b >= threshold is
 * plm_hash_uniform >= p for every b; and the vectorised ops keep exactly the elements
 * the float draw keeps (odd lengths: the vector tails). */
static void test_dropout_draws(void) {
    float ps[] = {0.0f, 0x1.0p-25f, 0x1.0p-24f, 0x1.8p-24f, 0.1f, 0.15f, 0.5f, 0.9f, 1.0f - 0x1.0p-24f, 1.0f};
    bool ok = true;
    for (int t = 0; t < 10 + 1000; t++) {
        float p = t < 10 ? ps[t] : plm_rng_uniform(&R);
        uint32_t thr = plm_keep_threshold(p);
        ok &= thr <= (1u << 24) && (float)thr * 0x1.0p-24f >= p;
        ok &= thr == 0 || (float)(thr - 1) * 0x1.0p-24f < p;
    }
    TEST_CHECK(ok, "dropout_keep_threshold", "a threshold is not the least b with b 2^-24 >= p");
    int N = 37, C = 29;
    size_t n = (size_t)N * C;
    float *x = frand(n, 1.0f), *res = frand(n, 1.0f), *out = frand(n, 1.0f), *out2 = frand(n, 1.0f);
    float *db = frand(C, 1.0f), *db_ref = fcopy(db, C);
    for (int t = 0; t < 2; t++) {
        float p = t ? 0.37f : 0.1f, scale = 1.0f / (1.0f - p);
        uint64_t key = 1234567 + t;
        bool same = true;
        dropout_forward(out, x, n, p, key);
        for (size_t i = 0; i < n; i++) same &= out[i] == (plm_hash_uniform(key, i) >= p ? x[i] * scale : 0.0f);
        residual_dropout_forward(out2, res, x, n, p, key);
        for (size_t i = 0; i < n; i++)
            same &= out2[i] == res[i] + (plm_hash_uniform(key, i) >= p ? x[i] * scale : 0.0f);
        dropout_backward_colsum(out2, x, N, C, p, key, db);
        for (size_t i = 0; i < n; i++) same &= out2[i] == out[i];
        for (int c = 0; c < C; c++) {
            float acc = 0.0f;
            for (int r = 0; r < N; r++) acc += out[(size_t)r * C + c];
            db_ref[c] += acc;
        }
        same &= max_abs_diff(db, db_ref, C) < 1e-5;
        TEST_CHECK(same, t ? "dropout_ops_draws_p37" : "dropout_ops_draws_p10",
                   "an op kept other elements than plm_hash_uniform >= p");
    }
    free(x), free(res), free(out), free(out2), free(db), free(db_ref);
}

/* Groups run in this order; an argument runs only the groups whose name contains it. */
static const struct {
    const char *name;
    void (*fn)(void);
} groups[] = {
    {"crossentropy_threads", test_crossentropy_threads},
    {"optimizer_threads", test_optimizer_threads},
    {"layerwise_lr_decay", test_layerwise_lr_decay},
    {"linear_bias_threads", test_linear_bias_threads},
    {"fused_bias_threads", test_fused_bias_threads},
    {"layernorm_threads", test_layernorm_threads},
    {"attention_threads", test_attention_threads},
    {"attention_backward_overwrites", test_attention_backward_overwrites},
    {"attention_bf16_threads", test_attention_bf16_threads},
    {"gelu_bf16_copy", test_gelu_bf16_copy},
    {"attn_bf16_kernel", test_attn_bf16_kernel},
    {"model_threads_raised", test_model_threads_raised},
    {"first_nonfinite", test_first_nonfinite},
    {"gemm_bf16", test_gemm_bf16},
    {"gemm_bf16_split", test_gemm_bf16_split},
    {"gemm_skinny", test_gemm_skinny},
    {"gemm_tn", test_gemm_tn},
    {"openblas_fit", test_openblas_fit},
    {"profile_rates", test_profile_rates},
    {"gemm_bias", test_gemm_bias},
    {"fast_exp_nonfinite", test_fast_exp_nonfinite},
    {"dropout_draws", test_dropout_draws},
    {"crossentropy_nonfinite", test_crossentropy_nonfinite}, /* last: before the fix it read out of bounds */
};

int main(int argc, char **argv) {
    plm_rng_seed(&R, 6, 0);
    omp_set_dynamic(0);
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++)
        if (argc < 2 || strstr(groups[i].name, argv[1])) groups[i].fn();
    TEST_EXIT();
}
