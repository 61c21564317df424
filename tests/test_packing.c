/* test_packing.c - plm sft --packing (train/sft.h, attention seq_idx, position_ids):
 *   packing: every example lands in exactly one row, no row exceeds max_seq_length, the
 *     rows are first-fit-decreasing's, and the same seed gives the same rows;
 *   attention: a row of packed documents (lengths 1 .. > 128, padding at the end) gives
 *     each document the output and the q, k, v gradients it has alone in its own row,
 *     causal and bidirectional, T = 13, 150, 201 (across the 64-query and 128-key tiles);
 *   model: a packed batch of sft examples gives the loss (mean over the labelled tokens)
 *     and every parameter gradient of the same examples padded one per row, fp32,
 *     relative error <= 1e-5, with the activations poisoned (NaN) before each run.
 *   refusals: a packed batch on T5, a position id past max_position_embeddings and a
 *     negative seq_idx are errors that name the problem, not a forward pass.
 * PyTorch float64 parity of the attention with seq_idx is in tests/parity.sh. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "model/attention.h"
#include "model/model.h"
#include "test.h"
#include "train/sft.h"

static float *frand(size_t n, uint64_t seed, float scale) {
    float *x = plm_malloc(n * sizeof *x);
    plm_rng r;
    plm_rng_seed(&r, seed, 0);
    for (size_t i = 0; i < n; i++) x[i] = scale * (2.0f * plm_rng_uniform(&r) - 1.0f);
    return x;
}

static float *fnan(size_t n) {
    float *x = plm_malloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}

/* ||a - b|| / ||b|| over n floats (NaN in a: infinity). */
static double relerr(const float *a, const float *b, size_t n) {
    double d = 0.0, r = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i])) return INFINITY;
        d += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        r += (double)b[i] * b[i];
    }
    return r > 0 ? sqrt(d / r) : sqrt(d);
}

/* ---------------------------------------------------------------- packing */

static void test_pack(void) {
    plm_sft_data d;
    plm_sft_data_init(&d);
    plm_rng r;
    plm_rng_seed(&r, 9, 0);
    int32_t ids[64];
    uint8_t train[64];
    for (int i = 0; i < 64; i++) ids[i] = i, train[i] = 1;
    for (int i = 0; i < 200; i++) { /* the first of length 1 */
        int len = i == 0 ? 1 : 1 + (int)(plm_rng_uniform(&r) * 63);
        plm_sft_data_add(&d, ids, train, len, 64, 0);
    }
    long total = (long)d.off[d.n];
    plm_sft_packs p, q;
    plm_sft_pack(&d, 64, 5, &p);
    plm_sft_pack(&d, 64, 5, &q);
    int *seen = plm_calloc((size_t)d.n, sizeof *seen);
    bool fits = true, lens = true;
    for (int k = 0; k < p.n; k++) {
        int len = 0;
        for (int e = p.off[k]; e < p.off[k + 1]; e++) {
            seen[p.ex[e]]++;
            len += (int)(d.off[p.ex[e] + 1] - d.off[p.ex[e]]);
        }
        fits &= len <= 64;
        lens &= len == p.len[k];
    }
    int once = 0;
    for (int i = 0; i < d.n; i++) once += seen[i] == 1;
    TEST_CHECK(once == d.n && p.tokens == total, "packing_every_example_once", "%d of %d once, %ld of %ld tokens", once,
               d.n, p.tokens, total);
    TEST_CHECK(fits && lens && p.max_len <= 64, "packing_rows_fit", "a row is over 64 tokens or miscounted");
    /* first-fit-decreasing leaves at most one row at most half full (two such rows would
     * have been merged), so rows <= 2 tokens / 64 + 1 */
    TEST_CHECK(p.n <= 2 * total / 64 + 1 && p.n >= (total + 63) / 64, "packing_row_count", "%d rows for %ld tokens",
               p.n, total);
    TEST_CHECK(p.n == q.n && !memcmp(p.ex, q.ex, (size_t)d.n * sizeof *p.ex), "packing_seeded",
               "the same seed packed differently");
    printf("packing: 200 examples, %ld tokens -> %d rows of 64, efficiency %.4f\n", total, p.n,
           plm_sft_packing_efficiency(&p, 64));
    free(seen);
    plm_sft_packs_free(&p);
    plm_sft_packs_free(&q);
    plm_sft_data_free(&d);
}

/* ---------------------------------------------------------------- attention */

/* Row 0 of [1, T] packs documents of lens[0..nd) then padding; each document alone in a
 * row of its own length must give the same output and gradients. */
static void attn_case(const char *name, int T, const int *lens, int nd, bool causal) {
    int C = 24, NH = 3;
    size_t nq = (size_t)T * 3 * C, no = (size_t)T * C, na = attention_saved_floats(1, NH, T, T, C / NH);
    float *qkv = frand(nq, 11 + T, 1.5f), *dout = frand(no, 12 + T, 1.0f);
    float *out = fnan(no), *att = fnan(na), *dqkv = fnan(nq);
    uint8_t *mask = plm_malloc((size_t)T);
    int32_t *seq = plm_malloc((size_t)T * sizeof *seq);
    int used = 0;
    for (int k = 0; k < nd; k++)
        for (int t = 0; t < lens[k]; t++) seq[used] = k, mask[used++] = 1;
    for (int t = used; t < T; t++) seq[t] = nd, mask[t] = 0;
    attention_forward_docs(out, att, qkv, mask, seq, 1, T, C, NH, causal, 0.0f, 0);
    attention_backward(dqkv, dout, qkv, att, 1, T, C, NH, 0.0f, 0);
    double eo = 0.0, eg = 0.0;
    bool pad_zero = true;
    int at = 0;
    for (int k = 0; k < nd; k++) {
        int n = lens[k];
        size_t mq = (size_t)n * 3 * C, mo = (size_t)n * C;
        float *o1 = fnan(mo), *a1 = fnan(attention_saved_floats(1, NH, n, n, C / NH)), *g1 = fnan(mq);
        attention_forward(o1, a1, qkv + (size_t)at * 3 * C, NULL, 1, n, C, NH, causal, 0.0f, 0);
        attention_backward(g1, dout + (size_t)at * C, qkv + (size_t)at * 3 * C, a1, 1, n, C, NH, 0.0f, 0);
        eo = fmax(eo, relerr(out + (size_t)at * C, o1, mo));
        eg = fmax(eg, relerr(dqkv + (size_t)at * 3 * C, g1, mq));
        at += n;
        free(o1), free(a1), free(g1);
    }
    for (size_t i = (size_t)used * C; i < no; i++) pad_zero &= out[i] == 0.0f;
    for (size_t i = (size_t)used * 3 * C; i < nq; i++) pad_zero &= dqkv[i] == 0.0f;
    char n1[96], n2[96];
    snprintf(n1, sizeof n1, "packing_attention.%s.out", name);
    snprintf(n2, sizeof n2, "packing_attention.%s.grad_qkv", name);
    TEST_CHECK(eo <= 1e-5, n1, "relerr %.3g", eo);
    TEST_CHECK(eg <= 1e-5 && pad_zero, n2, "relerr %.3g, padding zero %d", eg, pad_zero);
    printf("packing_attention.%s: max relerr out %.2e, grad %.2e\n", name, eo, eg);
    free(qkv), free(dout), free(out), free(att), free(dqkv), free(mask), free(seq);
}

static void test_attention(void) {
    int l13[] = {5, 1, 4};                /* 3 tokens of padding */
    int l150[] = {70, 1, 40, 30};         /* 9 of padding */
    int l201[] = {1, 130, 3, 60, 7};      /* no padding */
    int l201b[] = {66, 64, 1, 1, 50, 10}; /* 9 of padding */
    for (int c = 0; c < 2; c++) {
        bool causal = c == 0;
        char nm[64];
        snprintf(nm, sizeof nm, "T13_%s", causal ? "causal" : "bidir");
        attn_case(nm, 13, l13, 3, causal);
        snprintf(nm, sizeof nm, "T150_%s", causal ? "causal" : "bidir");
        attn_case(nm, 150, l150, 4, causal);
        snprintf(nm, sizeof nm, "T201_%s", causal ? "causal" : "bidir");
        attn_case(nm, 201, l201, 5, causal);
        snprintf(nm, sizeof nm, "T201b_%s", causal ? "causal" : "bidir");
        attn_case(nm, 201, l201b, 6, causal);
    }
}

/* ---------------------------------------------------------------- model */

/* NaN into the backbone's activations and gradient scratch, so that a value the run does
 * not write shows up. */
static void poison(plm_model *m) {
    plm_backbone *bb = &m->bb[0];
    const plm_config *c = &bb->config;
    size_t N = (size_t)bb->cap_B * bb->cap_T, C = c->hidden_size, NH = c->num_attention_heads;
    size_t na = attention_saved_floats(bb->cap_B, (int)NH, bb->cap_T, bb->cap_T, (int)(C / NH));
    for (size_t i = 0; i < N * C; i++) bb->emb[i] = bb->dhidden[i] = bb->g_resid[i] = bb->g_atty[i] = NAN;
    for (size_t i = 0; i < 3 * N * C; i++) bb->g_qkv[i] = NAN;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        plm_layer_acts *a = &bb->acts[l];
        for (size_t i = 0; i < N * C; i++) a->atty[i] = a->res1[i] = a->res2[i] = NAN;
        for (size_t i = 0; i < 3 * N * C; i++) a->qkv[i] = NAN;
        for (size_t i = 0; i < na; i++) a->att[i] = NAN;
    }
}

static void test_model(void) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = 97;
    c.hidden_size = 32;
    c.num_attention_heads = 4;
    c.num_hidden_layers = 2;
    c.intermediate_size = 64;
    c.max_position_embeddings = 256;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    plm_model *m = plm_model_create(&c, 21);
    /* documents: lengths 1 (no target at all), short, and across the 64 / 128 tiles;
     * prompt tokens (train 0) then response tokens (train 1) */
    int lens[] = {1, 9, 70, 3, 130, 25, 2, 41, 12, 60};
    int nd = (int)PLM_ARRAY_LEN(lens), T = 150;
    plm_sft_data d;
    plm_sft_data_init(&d);
    plm_rng r;
    plm_rng_seed(&r, 4, 0);
    for (int k = 0; k < nd; k++) {
        int32_t ids[256];
        uint8_t train[256];
        for (int t = 0; t < lens[k]; t++) {
            ids[t] = (int32_t)(plm_rng_uniform(&r) * c.vocab_size);
            train[t] = t >= lens[k] / 3;
        }
        plm_sft_data_add(&d, ids, train, lens[k], T, 0);
    }
    plm_sft_packs p;
    plm_sft_pack(&d, T, 1, &p);
    int rows[16], all[16];
    for (int k = 0; k < p.n; k++) rows[k] = k;
    for (int k = 0; k < nd; k++) all[k] = k;
    if (!m || plm_model_reserve(m, nd, T) != 0) {
        TEST_CHECK(false, "packing_model", "%s", plm_last_error());
        plm_model_free(m);
        return;
    }
    plm_sft_batch b1 = {0}, b2 = {0};
    plm_batch packed, padded;
    plm_sft_collate_packed(&d, &p, rows, p.n, 0, &b1, &packed);
    plm_sft_collate(&d, all, nd, 0, &b2, &padded);
    bool pad_end = false;
    for (int k = 0; k < p.n; k++) pad_end |= p.len[k] < packed.T;
    printf("packing_model: %d documents in %d rows of %d (T %d), efficiency %.4f\n", nd, p.n, T, packed.T,
           plm_sft_packing_efficiency(&p, T));
    float *g[2];
    double loss[2];
    int count[2];
    const plm_batch *bs[2] = {&packed, &padded};
    for (int k = 0; k < 2; k++) {
        poison(m);
        plm_model_zero_grad(m);
        plm_ce_result res = plm_model_forward(m, bs[k], true, 1.0f);
        loss[k] = res.loss_sum / res.count;
        count[k] = res.count;
        g[k] = plm_malloc(m->num_params * sizeof(float));
        memcpy(g[k], m->grads, m->num_params * sizeof(float));
    }
    double el = fabs(loss[0] - loss[1]) / fabs(loss[1]), eg = relerr(g[0], g[1], m->num_params), et = 0.0;
    const char *worst = "";
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        double e = relerr(g[0] + t->offset, g[1] + t->offset, t->numel);
        if (e > et) et = e, worst = t->name;
    }
    TEST_CHECK(p.n > 1 && p.n < nd && pad_end, "packing_model_layout", "%d rows, padding at a row end %d", p.n,
               pad_end);
    TEST_CHECK(count[0] == count[1] && count[0] > 0 && el <= 1e-5, "packing_model_loss",
               "loss %.9g (%d tokens) vs padded %.9g (%d tokens)", loss[0], count[0], loss[1], count[1]);
    TEST_CHECK(eg <= 1e-5 && et <= 1e-5, "packing_model_grads", "relerr %.3g overall, %.3g worst (%s)", eg, et, worst);
    printf("packing_model: loss relerr %.2e, gradient relerr %.2e overall, %.2e worst tensor (%s)\n", el, eg, et,
           worst);
    free(g[0]), free(g[1]);
    plm_sft_batch_free(&b1);
    plm_sft_batch_free(&b2);
    plm_sft_packs_free(&p);
    plm_sft_data_free(&d);
    plm_model_free(m);
}

/* plm_model_check_batch refuses what packing cannot mean and names why */
static void test_refusals(void) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = 50, c.hidden_size = 16, c.num_attention_heads = 2, c.num_hidden_layers = 1;
    c.intermediate_size = 32, c.max_position_embeddings = 8;
    plm_model *g = plm_model_create(&c, 3);
    plm_config_default(&c, PLM_ARCH_T5);
    c.vocab_size = 50, c.hidden_size = 16, c.num_attention_heads = 2, c.intermediate_size = 32;
    c.num_hidden_layers = c.num_decoder_layers = 1;
    plm_model *t5 = plm_model_create(&c, 3);
    int32_t ids[8] = {5, 6, 7, 8, 9, 10, 11, 12}, pos[8] = {0, 1, 2, 0, 1, 2, 3, 4}, seq[8] = {0, 0, 0, 1, 1, 1, 1, 1};
    plm_batch b = {.B = 1, .T = 8, .input_ids = ids, .labels = ids, .position_ids = pos, .seq_idx = seq};
    bool ok = g && t5 && plm_model_reserve(g, 1, 8) == 0 && plm_model_reserve(t5, 1, 8) == 0;
    TEST_CHECK(ok && plm_model_check_batch(g, 0, &b) == 0, "packing_check_accepts", "%s", plm_last_error());
    TEST_CHECK(ok && plm_model_check_batch(t5, 0, &b) != 0 && strstr(plm_last_error(), "self-attention"),
               "packing_check_t5", "%s", plm_last_error());
    pos[7] = 8; /* max_position_embeddings */
    TEST_CHECK(ok && plm_model_check_batch(g, 0, &b) != 0 && strstr(plm_last_error(), "max_position_embeddings"),
               "packing_check_position", "%s", plm_last_error());
    pos[7] = 4, seq[3] = -1;
    TEST_CHECK(ok && plm_model_check_batch(g, 0, &b) != 0 && strstr(plm_last_error(), "seq_idx"),
               "packing_check_seq_idx", "%s", plm_last_error());
    plm_model_free(g);
    plm_model_free(t5);
}

int main(void) {
    test_refusals();
    test_pack();
    test_attention();
    test_model();
    TEST_EXIT();
}
