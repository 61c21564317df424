/* test_t5.c - T5 (T5ForConditionalGeneration) in plm.
 *
 *   test_t5 DIR   dumps two whole-model cases (v1.0: ReLU, tied lm_head; v1.1: gated
 *                 GELU, untied) for tests/t5_parity.sh: each case's checkpoint as plm
 *                 saves it (DIR/<case>/config.json + model.safetensors, HF names), its
 *                 inputs and outputs (DIR/<case>/io.safetensors) and every gradient in
 *                 HF layout (DIR/<case>/grads.safetensors). tests/ref/t5_ref.py reads the
 *                 checkpoint with its own float64 T5 and compares.
 *   test_t5       (no argument, as tests/run.sh runs it) self-checks: HF's tensor names,
 *                 the init's standard deviations, the relative-position buckets against
 *                 values HF gives, save -> load gives the same loss, cached decoding
 *                 (self- and cross-attention K/V cached) equals recomputing the decoder
 *                 over the whole prefix, and a bad T5 config is refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "model/model_io.h"
#include "model/relpos.h"
#include "model/t5.h"
#include "test.h"
#include "train/safetensors.h"

typedef struct {
    const char *name;
    bool gated, tied;
    int C, NH, I, V, Lenc, Ldec, B, Tk, Tq, buckets, max_distance;
    int d_kv; /* 0: C / NH */
} t5_case;

static plm_config case_config(const t5_case *k) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_T5);
    c.vocab_size = k->V;
    c.hidden_size = k->C;
    c.num_attention_heads = k->NH;
    c.d_kv = k->d_kv;
    c.intermediate_size = k->I;
    c.num_hidden_layers = k->Lenc;
    c.num_decoder_layers = k->Ldec;
    c.gated_act = k->gated;
    c.hidden_act = k->gated ? PLM_GELU_TANH : PLM_ACT_RELU;
    c.tie_word_embeddings = k->tied;
    c.relative_attention_num_buckets = k->buckets;
    c.relative_attention_max_distance = k->max_distance;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.max_position_embeddings = 128;
    return c;
}

typedef struct {
    int32_t *enc, *dec, *labels;
    uint8_t *emask;
    plm_batch eb, db;
} t5_batch;

/* Encoder rows padded to different lengths; decoder ids with some labels -100. */
static void make_batch(t5_batch *tb, const t5_case *k, plm_rng *r) {
    int B = k->B;
    tb->enc = plm_malloc((size_t)B * k->Tk * sizeof(int32_t));
    tb->emask = plm_malloc((size_t)B * k->Tk);
    tb->dec = plm_malloc((size_t)B * k->Tq * sizeof(int32_t));
    tb->labels = plm_malloc((size_t)B * k->Tq * sizeof(int32_t));
    for (int b = 0; b < B; b++) {
        int len = b == 0 ? k->Tk : k->Tk - 2 - 3 * b;
        for (int t = 0; t < k->Tk; t++) {
            int i = b * k->Tk + t;
            tb->emask[i] = t < len;
            tb->enc[i] = t < len ? 2 + (int32_t)plm_rng_below(r, k->V - 2) : 0;
        }
        for (int t = 0; t < k->Tq; t++) {
            int i = b * k->Tq + t;
            tb->dec[i] = t == 0 ? 0 : 1 + (int32_t)plm_rng_below(r, k->V - 1);
            tb->labels[i] = plm_rng_below(r, 5) == 0 ? PLM_IGNORE_INDEX : (int32_t)plm_rng_below(r, k->V);
        }
    }
    tb->eb = (plm_batch){.B = B, .T = k->Tk, .input_ids = tb->enc, .attention_mask = tb->emask};
    tb->db = (plm_batch){.B = B, .T = k->Tq, .input_ids = tb->dec, .labels = tb->labels, .causal = true};
}

static void free_batch(t5_batch *t) { free(t->enc), free(t->dec), free(t->labels), free(t->emask); }

static plm_model *make_model(const t5_case *k) {
    plm_config c = case_config(k);
    plm_model *m = plm_model_create(&c, 77);
    if (!m || plm_model_reserve(m, k->B, PLM_MAX(k->Tk, k->Tq)) != 0) plm_die("t5 model: %s", plm_last_error());
    /* norm weights away from 1 so a missing weight shows */
    plm_rng r;
    plm_rng_seed(&r, 3, 9);
    for (int i = 0; i < m->num_tensors; i++)
        if (m->tensors[i].ndim == 1)
            for (size_t j = 0; j < m->tensors[i].numel; j++)
                m->params[m->tensors[i].offset + j] = 0.5f + plm_rng_uniform(&r);
    plm_model_params_written(m);
    return m;
}

static const t5_case CASES[] = {
    /* v1.0: ReLU, tied (d_model^-1/2 rescale), odd width 15 = 3 heads x 5 */
    {"t5_v1_0", false, true, 15, 3, 37, 53, 2, 3, 3, 19, 11, 32, 128, 0},
    /* v1.1: gated GELU, untied, 3 heads of d_kv 5 on d_model 14 (inner 15 != d_model, as
     * v1.1-small's 6 x 64 on 512); lengths past max_exact and past max_distance (20) */
    {"t5_v1_1", true, false, 14, 3, 23, 41, 2, 2, 2, 70, 40, 16, 20, 5},
};

static int dump_case(const t5_case *k, const char *dir) {
    char sub[1024], path[1100];
    snprintf(sub, sizeof sub, "%s/%s", dir, k->name);
    plm_model *m = make_model(k);
    plm_rng r;
    plm_rng_seed(&r, 11, 1);
    t5_batch t;
    make_batch(&t, k, &r);
    int rc = -1;
    if (plm_model_run_seq2seq(m, &t.eb, &t.db, false, 1.0f) != 0) goto out;
    int M = m->heads[0].num_rows, V = k->V, C = k->C;
    float *logits = plm_malloc((size_t)M * V * sizeof(float));
    memcpy(logits, m->heads[0].logits, (size_t)M * V * sizeof(float));
    size_t ne = (size_t)k->B * k->Tk * C, nd = (size_t)k->B * k->Tq * C;
    float *enc_h = plm_malloc(ne * sizeof(float)), *dec_h = plm_malloc(nd * sizeof(float));
    memcpy(enc_h, backbone_hidden(&m->bb[0]), ne * sizeof(float));
    memcpy(dec_h, backbone_hidden(&m->bb[1]), nd * sizeof(float));
    float loss = (float)m->loss;
    plm_model_zero_grad(m);
    if (plm_model_run_seq2seq(m, &t.eb, &t.db, true, 1.0f) != 0) goto out;
    if (plm_model_save(m, sub, NULL, 0) != 0) goto out;
    /* the gradients in HF layout: the same save with the buffers swapped */
    float *p = m->params;
    m->params = m->grads;
    snprintf(path, sizeof path, "%s/grads.safetensors", sub);
    rc = plm_model_save_weights(m, path, NULL, 0);
    m->params = p;
    if (rc != 0) goto out;
    plm_st_writer w;
    plm_st_writer_init(&w);
    int64_t se[2] = {k->B, k->Tk}, sd[2] = {k->B, k->Tq}, sl[2] = {M, V}, s1[1] = {1};
    int64_t she[3] = {k->B, k->Tk, C}, shd[3] = {k->B, k->Tq, C};
    plm_st_add(&w, "encoder.input_ids", PLM_DT_I32, 2, se, t.enc);
    plm_st_add(&w, "encoder.attention_mask", PLM_DT_U8, 2, se, t.emask);
    plm_st_add(&w, "decoder.input_ids", PLM_DT_I32, 2, sd, t.dec);
    plm_st_add(&w, "labels", PLM_DT_I32, 2, sd, t.labels);
    plm_st_add(&w, "loss", PLM_DT_F32, 1, s1, &loss);
    plm_st_add(&w, "logits", PLM_DT_F32, 2, sl, logits);
    plm_st_add(&w, "encoder.hidden", PLM_DT_F32, 3, she, enc_h);
    plm_st_add(&w, "decoder.hidden", PLM_DT_F32, 3, shd, dec_h);
    snprintf(path, sizeof path, "%s/io.safetensors", sub);
    rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    free(logits), free(enc_h), free(dec_h);
out:
    if (rc != 0) printf("FAIL t5_dump.%s: %s\n", k->name, plm_last_error());
    free_batch(&t);
    plm_model_free(m);
    return rc;
}

/* ---------------------------------------------------------------- self-checks */

static void check_names(void) {
    plm_model *m = make_model(&CASES[1]);
    const char *want[] = {"shared.weight",
                          "encoder.block.0.layer.0.SelfAttention.qkv.weight",
                          "encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                          "encoder.block.1.layer.1.DenseReluDense.wi_01.weight",
                          "decoder.block.1.layer.1.EncDecAttention.kv.weight",
                          "decoder.block.1.layer.2.DenseReluDense.wo.weight",
                          "decoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                          "decoder.final_layer_norm.weight",
                          "lm_head.weight"};
    bool ok = true;
    for (size_t i = 0; i < PLM_ARRAY_LEN(want); i++)
        if (!plm_model_find(m, want[i])) {
            printf("FAIL t5.names: no %s\n", want[i]);
            ok = false;
        }
    ok = ok && !plm_model_find(m, "encoder.block.1.layer.0.SelfAttention.relative_attention_bias.weight");
    const plm_tensor *t = plm_model_find(m, "encoder.block.0.layer.0.SelfAttention.qkv.weight");
    ok = ok && t && t->nparts == 3 && !strcmp(t->parts[0], "encoder.block.0.layer.0.SelfAttention.q.weight");
    TEST_CHECK(ok, "t5.hf_names", "HF T5 names or fused parts wrong");
    TEST_CHECK(!strcmp(plm_model_architecture(m), "T5ForConditionalGeneration"), "t5.architecture", "%s",
               plm_model_architecture(m));
    plm_model_free(m);
}

static double std_of(const float *p, size_t n) {
    double s = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) s += p[i], s2 += (double)p[i] * p[i];
    return sqrt(s2 / n - (s / n) * (s / n));
}

/* HF's _init_weights: q std (d_model d_kv)^-1/2, k std d_model^-1/2, wo std d_ff^-1/2, shared 1 */
static void check_init(void) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_T5);
    c.vocab_size = 300;
    c.hidden_size = 64, c.num_attention_heads = 4, c.intermediate_size = 256;
    c.num_hidden_layers = c.num_decoder_layers = 1;
    plm_model *m = plm_model_create(&c, 1);
    const plm_tensor *qkv = plm_model_find(m, "encoder.block.0.layer.0.SelfAttention.qkv.weight");
    const plm_tensor *wo = plm_model_find(m, "encoder.block.0.layer.1.DenseReluDense.wo.weight");
    const plm_tensor *sh = plm_model_find(m, "shared.weight");
    const plm_tensor *ln = plm_model_find(m, "decoder.final_layer_norm.weight");
    size_t blk = (size_t)64 * 64;
    double sq = std_of(m->params + qkv->offset, blk), sk = std_of(m->params + qkv->offset + blk, blk);
    double swo = std_of(m->params + wo->offset, wo->numel), ssh = std_of(m->params + sh->offset, sh->numel);
    bool ok = fabs(sq / (1.0 / sqrt(64.0 * 16)) - 1) < 0.05 && fabs(sk / (1.0 / 8) - 1) < 0.05 &&
              fabs(swo / (1.0 / 16) - 1) < 0.05 && fabs(ssh - 1) < 0.05 && m->params[ln->offset] == 1.0f;
    TEST_CHECK(ok, "t5.init_std", "q %.4f k %.4f wo %.4f shared %.4f", sq, sk, swo, ssh);
    plm_model_free(m);
}

/* Buckets as HF's _relative_position_bucket gives them (num_buckets 32, max_distance 128;
 * computed with its code in torch float32). */
static void check_buckets(void) {
    static const int rel[] = {-200, -128, -100, -64, -20, -16, -9, -8, -7, -1, 0, 1, 7, 8, 9, 15, 16, 31, 64, 127, 500};
    static const int bi[] = {15, 15, 15, 14, 10, 10, 8, 8, 7, 1, 0, 17, 23, 24, 24, 25, 26, 27, 30, 31, 31};
    static const int uni[] = {31, 31, 30, 26, 17, 16, 9, 8, 7, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    bool ok = true;
    for (size_t i = 0; i < PLM_ARRAY_LEN(rel); i++) {
        int a = relpos_bucket(rel[i], true, 32, 128), b = relpos_bucket(rel[i], false, 32, 128);
        if (a != bi[i] || b != uni[i]) {
            printf("FAIL t5.buckets: relative position %d: %d / %d, HF %d / %d\n", rel[i], a, b, bi[i], uni[i]);
            ok = false;
        }
    }
    TEST_CHECK(ok, "t5.relative_position_buckets", "see above");
}

static void check_save_load(void) {
    const t5_case *k = &CASES[0];
    plm_model *m = make_model(k);
    plm_rng r;
    plm_rng_seed(&r, 5, 5);
    t5_batch t;
    make_batch(&t, k, &r);
    char dir[] = "/tmp/plm-t5-XXXXXX";
    bool ok = mkdtemp(dir) && plm_model_run_seq2seq(m, &t.eb, &t.db, false, 1.0f) == 0 &&
              plm_model_save(m, dir, NULL, 0) == 0;
    double loss = m->loss;
    plm_model *l = ok ? plm_model_load(dir) : NULL;
    ok = l && plm_model_reserve(l, k->B, PLM_MAX(k->Tk, k->Tq)) == 0 &&
         plm_model_run_seq2seq(l, &t.eb, &t.db, false, 1.0f) == 0 && l->loss == loss && l->config.arch == PLM_ARCH_T5 &&
         l->bb[1].config.num_hidden_layers == k->Ldec;
    TEST_CHECK(ok, "t5.save_load_same_loss", "%s", l ? "loss or config differs" : plm_last_error());
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("warning: could not remove %s\n", dir);
    plm_model_free(l);
    plm_model_free(m);
    free_batch(&t);
}

/* Cached decoding: step by step with cached K/V equals the full causal forward. */
static void check_cache(const t5_case *k) {
    plm_model *m = make_model(k);
    plm_rng r;
    plm_rng_seed(&r, 8, 8);
    t5_batch t;
    make_batch(&t, k, &r);
    plm_model_run_seq2seq(m, &t.eb, &t.db, false, 1.0f);
    const plm_backbone *db = &m->bb[1];
    int B = k->B, Tq = k->Tq, C = k->C;
    const float *full = backbone_hidden(db);
    t5_cache kc;
    t5_cache_begin(&kc, db, backbone_hidden(&m->bb[0]), t.emask, B, k->Tk, Tq);
    double maxd = 0, maxv = 0;
    int32_t *ids = plm_malloc((size_t)B * sizeof(int32_t));
    for (int s = 0; s < Tq; s++) {
        for (int b = 0; b < B; b++) ids[b] = t.dec[b * Tq + s];
        const float *h = t5_cache_step(&kc, db, ids);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < C; i++) {
                double a = h[(size_t)b * C + i], e = full[((size_t)b * Tq + s) * C + i];
                maxd = fmax(maxd, fabs(a - e));
                maxv = fmax(maxv, fabs(e));
            }
    }
    char name[64];
    snprintf(name, sizeof name, "t5.%s.cached_decoding_equals_full", k->name);
    TEST_CHECK(maxd <= 1e-5 * fmax(1.0, maxv), name, "max |cached - full| = %.3g (max %.3g)", maxd, maxv);
    free(ids);
    t5_cache_free(&kc);
    free_batch(&t);
    plm_model_free(m);
}

/* plm_generate_seq2seq (encoder once, cached decoder) against recomputing the whole
 * encoder-decoder over the growing decoder prefix at every step: the same greedy tokens,
 * and a sampled run reproducible from its seed. */
static void check_generate(const t5_case *k) {
    plm_model *m = make_model(k);
    enum { N = 12 };
    int Tk = 9;
    int32_t in[9] = {5, 9, 2, 17, 33, 4, 8, 21, 1}, got[N], ref[N + 1], dec[N + 1], lab[N + 1];
    plm_sampling s;
    plm_sampling_default(&s);
    s.max_new_tokens = N;
    s.do_sample = false;
    int n = plm_generate_seq2seq(m, in, Tk, &s, got, NULL, NULL);
    plm_model_reserve(m, 1, N + 1);
    dec[0] = m->bb[1].config.decoder_start_token_id;
    for (int t = 0; t < N; t++) {
        for (int i = 0; i <= t; i++) lab[i] = i == t ? 0 : PLM_IGNORE_INDEX;
        plm_batch eb = {.B = 1, .T = Tk, .input_ids = in};
        plm_batch db = {.B = 1, .T = t + 1, .input_ids = dec, .labels = lab, .causal = true};
        plm_model_run_seq2seq(m, &eb, &db, false, 1.0f);
        const float *z = m->heads[0].logits;
        int best = 0;
        for (int v = 1; v < k->V; v++)
            if (z[v] > z[best]) best = v;
        ref[t] = dec[t + 1] = best;
    }
    printf("# %s greedy:", k->name);
    for (int t = 0; t < n; t++) printf(" %d", got[t]);
    printf("\n");
    char name[80];
    snprintf(name, sizeof name, "t5.%s.generate_cached_equals_recomputed", k->name);
    TEST_CHECK(n == N && memcmp(got, ref, sizeof got) == 0, name, "%d tokens; first %d vs %d", n, got[0], ref[0]);
    s.do_sample = true;
    s.seed = 5;
    int32_t a[N], b[N];
    int na = plm_generate_seq2seq(m, in, Tk, &s, a, NULL, NULL),
        nb = plm_generate_seq2seq(m, in, Tk, &s, b, NULL, NULL);
    snprintf(name, sizeof name, "t5.%s.sampling_reproducible", k->name);
    TEST_CHECK(na == nb && memcmp(a, b, (size_t)na * sizeof(int32_t)) == 0, name, "two runs of one seed differ");
    /* a batch of inputs of different lengths (the encoder pads and masks them) gives each
     * input the tokens it gets alone, greedy and sampled */
    const int32_t *ins[3] = {in, in + 2, in + 1};
    int lens[3] = {Tk, 4, 7};
    for (int mode = 0; mode < 2; mode++) {
        s.do_sample = mode == 1;
        int32_t outb[3 * N], alone[N];
        int nout[3];
        bool same = plm_generate_seq2seq_batch(m, ins, lens, 3, &s, outb, nout, NULL, NULL, NULL) == 0;
        for (int i = 0; i < 3 && same; i++) {
            int na1 = plm_generate_seq2seq(m, ins[i], lens[i], &s, alone, NULL, NULL);
            same = na1 == nout[i] && na1 > 0 && !memcmp(alone, outb + i * N, (size_t)na1 * sizeof(int32_t));
        }
        snprintf(name, sizeof name, "t5.%s.batch_equals_alone.%s", k->name, mode ? "sampled" : "greedy");
        TEST_CHECK(same, name, "a batch member differs from the input generated alone");
    }
    plm_model_free(m);
}

static void check_bad_config(void) {
    plm_config c;
    bool bad_kv = plm_config_parse(&c, "{\"model_type\": \"t5\", \"d_model\": 64, \"num_heads\": 4, \"d_kv\": -8}",
                                   "x.json") != 0 &&
                  strstr(plm_last_error(), "d_kv");
    /* d_kv 0 would be read as "derive it" and written back as d_model / num_heads (fuzz_config) */
    bad_kv = bad_kv && plm_config_parse(&c, "{\"model_type\": \"t5\", \"d_model\": 256, \"d_kv\": 0}", "x.json") != 0 &&
             strstr(plm_last_error(), "x.json: d_kv must be in 1..65536");
    bool inner_kv = plm_config_parse(&c, "{\"model_type\": \"t5\", \"d_model\": 64, \"num_heads\": 6, \"d_kv\": 8}",
                                     "x.json") == 0 &&
                    plm_config_d_kv(&c) == 8;
    bool bad_ff = plm_config_parse(&c, "{\"model_type\": \"t5\", \"feed_forward_proj\": \"swish\"}", "x.json") != 0 &&
                  strstr(plm_last_error(), "feed_forward_proj");
    bool good = plm_config_parse(&c,
                                 "{\"model_type\": \"t5\", \"d_model\": 64, \"num_heads\": 4, \"d_kv\": 16, "
                                 "\"num_layers\": 3, \"feed_forward_proj\": \"gated-gelu\"}",
                                 "x.json") == 0 &&
                c.arch == PLM_ARCH_T5 && c.gated_act && c.hidden_act == PLM_GELU_TANH && c.num_decoder_layers == 3;
    /* written T5Config text parses back to the identical config (as fuzz_config demands) */
    const char *texts[] = {"{\"model_type\": \"t5\"}",
                           "{\"model_type\": \"t5\", \"d_model\": 30, \"num_heads\": 4, \"feed_forward_proj\": "
                           "\"gated-relu\", \"pad_token_id\": -1}",
                           "{\"model_type\": \"t5\", \"feed_forward_proj\": \"gelu_new\", \"is_decoder\": true}",
                           "{\"model_type\": \"t5\", \"feed_forward_proj\": \"gelu\", \"dropout_rate\": 0.3}"};
    bool rt = true;
    for (size_t i = 0; i < PLM_ARRAY_LEN(texts); i++) {
        plm_config r;
        if (plm_config_parse(&c, texts[i], "x.json") != 0) {
            rt = false;
            continue;
        }
        char *j = plm_config_to_json(&c, NULL);
        rt = rt && plm_config_parse(&r, j, "w.json") == 0 && memcmp(&r, &c, sizeof r) == 0;
        free(j);
    }
    TEST_CHECK(rt, "t5.config_json_round_trip", "a T5 config does not read back identically");
    TEST_CHECK(bad_kv && inner_kv && bad_ff && good, "t5.config_parse",
               "d_kv -8 refused %d, 6 x 8 on 64 accepted %d, feed_forward_proj refused %d, parse %d", bad_kv, inner_kv,
               bad_ff, good);
}

int main(int argc, char **argv) {
    if (argc > 1) {
        int rc = 0;
        for (size_t i = 0; i < PLM_ARRAY_LEN(CASES); i++) rc |= dump_case(&CASES[i], argv[1]) != 0;
        return rc;
    }
    check_names();
    check_init();
    check_buckets();
    check_save_load();
    for (size_t i = 0; i < PLM_ARRAY_LEN(CASES); i++) check_cache(&CASES[i]);
    for (size_t i = 0; i < PLM_ARRAY_LEN(CASES); i++) check_generate(&CASES[i]);
    check_bad_config();
    TEST_EXIT();
}
