/* rl_fixtures.h - what test_rloo.c and test_ppo.c share: a 300-token byte-level BPE
 * trained on one chat line, a 1-layer GPT-2 config of width 32, the hand-built reward
 * model (+1 when the last scored token is a multiple of 4, else -1), seeded prompt files
 * and the mean / variance of sampled responses' rewards. Header-only, included by one
 * test each. */
#ifndef PLM_TESTS_RL_FIXTURES_H
#define PLM_TESTS_RL_FIXTURES_H

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/reward.h"
#include "train/sft.h"

static plm_tokenizer *tiny_tokenizer(const char *dir) {
    char txp[512];
    snprintf(txp, sizeof txp, "%s/text.txt", dir);
    FILE *f = fopen(txp, "w");
    if (!f) return NULL;
    fprintf(f, "User: say a b c d e f g h\nAssistant: h g f e d c b a\n");
    fclose(f);
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    const char *special[] = {"<|endoftext|>"};
    to.vocab_size = 300;
    to.special_tokens = special;
    to.n_special = 1;
    to.num_threads = 1;
    const char *files[] = {txp};
    return plm_tokenizer_train_bpe(files, 1, &to);
}

static void tiny_config(plm_config *c, const plm_tokenizer *tok) {
    plm_config_default(c, PLM_ARCH_GPT2);
    c->vocab_size = plm_tokenizer_vocab_size(tok);
    c->hidden_size = 32;
    c->num_attention_heads = 2;
    c->num_hidden_layers = 1;
    c->intermediate_size = 64;
    c->max_position_embeddings = 32;
    c->hidden_dropout_prob = c->attention_probs_dropout_prob = 0.0f;
    c->eos_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
}

/* The hand-built reward model: every layer adds zero to the residual stream (output
 * projections and their biases 0), positions embed to 0, so the final hidden state of
 * token x is LN(wte[x]) = +-u (wte[x] = +v when x % 4 == 0, else -v; v of mean 0, u its
 * normalised form) and the score head w = u / |u|^2 reads +1 or -1. */
static plm_model *hand_reward_model(const plm_tokenizer *tok) {
    plm_model_spec s;
    memset(&s, 0, sizeof s);
    tiny_config(&s.backbone[0], tok);
    s.backbone[0].num_labels = 1;
    s.backbone[0].pad_token_id = s.backbone[0].eos_token_id;
    s.num_backbones = 1;
    plm_model_spec_add_head(&s, PLM_HEAD_SEQ_CLS, 1);
    plm_model *m = plm_model_create_spec(&s, 11);
    plm_backbone *bb = &m->bb[0];
    int C = m->config.hidden_size, V = m->config.vocab_size;
    float v[64], u2 = 0;
    for (int e = 0; e < C; e++) v[e] = (e % 2 ? 1.0f : -1.0f) * (1.0f + 0.25f * (float)(e % 3)); /* mean 0 below */
    float mean = 0;
    for (int e = 0; e < C; e++) mean += v[e] / C;
    for (int e = 0; e < C; e++) v[e] -= mean;
    for (int t = 0; t < V; t++)
        for (int e = 0; e < C; e++) bb->w.wte[(size_t)t * C + e] = t % 4 == 0 ? v[e] : -v[e];
    memset(bb->w.wpe, 0, (size_t)m->config.max_position_embeddings * C * sizeof(float));
    for (int l = 0; l < m->config.num_hidden_layers; l++) {
        plm_layer_weights *w = &bb->w.layers[l];
        memset(w->attn_proj_w, 0, (size_t)C * C * sizeof(float));
        memset(w->attn_proj_b, 0, (size_t)C * sizeof(float));
        memset(w->proj_w, 0, (size_t)C * m->config.intermediate_size * sizeof(float));
        memset(w->proj_b, 0, (size_t)C * sizeof(float));
    }
    /* LN(+-v) = +-v / std(v) (ln_f: weight 1, bias 0 at initialisation) */
    double var = 0;
    for (int e = 0; e < C; e++) var += (double)v[e] * v[e] / C;
    float sd = (float)sqrt(var + m->config.layer_norm_eps);
    plm_head *h = &m->heads[0];
    for (int e = 0; e < C; e++) u2 += (v[e] / sd) * (v[e] / sd);
    for (int e = 0; e < C; e++) h->w.out_w[e] = v[e] / sd / u2;
    if (h->w.out_b) h->w.out_b[0] = 0.0f;
    plm_model_params_written(m);
    return m;
}

static void write_prompts(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "w");
    plm_rng r;
    plm_rng_seed(&r, seed, 1);
    for (int i = 0; i < n; i++) {
        fprintf(f, "{\"prompt\": \"say");
        int k = 1 + (int)plm_rng_below(&r, 3);
        for (int j = 0; j < k; j++) fprintf(f, " %c", (char)('a' + plm_rng_below(&r, 8)));
        fprintf(f, "\", \"chosen\": \"ignored\"}\n");
    }
    fclose(f);
}

/* Mean and variance of the reward-model scores of `samples` responses per prompt from m at temperature. */
static void sampled_rewards(const plm_model *m, plm_model *rm, const plm_sft_data *prompts, int samples, int max_new,
                            float temperature, int32_t eos, int32_t pad, double *mean, double *var, int *n) {
    int P = prompts->n;
    const int32_t **p = plm_malloc((size_t)P * sizeof *p);
    int *np = plm_malloc((size_t)P * sizeof *np), *nout = plm_malloc((size_t)P * sizeof *nout);
    int32_t *out = plm_malloc((size_t)P * max_new * sizeof *out), ids[64];
    uint8_t tr[64] = {0};
    for (int i = 0; i < P; i++) {
        p[i] = prompts->ids + prompts->off[i];
        np[i] = (int)(prompts->off[i + 1] - prompts->off[i]);
    }
    plm_sft_data seqs;
    plm_sft_data_init(&seqs);
    for (int s = 0; s < samples; s++) {
        plm_sampling sp;
        plm_sampling_default(&sp);
        sp.max_new_tokens = max_new;
        sp.temperature = temperature;
        sp.eos_token_id = eos;
        uint64_t seeds[256];
        for (int i = 0; i < P && i < 256; i++) seeds[i] = plm_hash_combine(1000 + (uint64_t)s, (uint64_t)i);
        sp.seeds = seeds;
        plm_generate_batch(m, p, np, P, &sp, out, nout, NULL, NULL, NULL);
        for (int i = 0; i < P; i++) {
            memcpy(ids, p[i], (size_t)np[i] * sizeof *ids);
            memcpy(ids + np[i], out + (size_t)i * max_new, (size_t)nout[i] * sizeof *ids);
            plm_sft_data_add(&seqs, ids, tr, np[i] + nout[i], 64, 0);
        }
    }
    float *r = plm_malloc((size_t)seqs.n * sizeof *r);
    plm_reward_score(rm, &seqs, 64, pad, NULL, r);
    double s1 = 0, s2 = 0;
    for (int i = 0; i < seqs.n; i++) s1 += r[i], s2 += (double)r[i] * r[i];
    *n = seqs.n;
    *mean = s1 / seqs.n;
    *var = s2 / seqs.n - *mean * *mean;
    free(r);
    plm_sft_data_free(&seqs);
    free(out);
    free(nout);
    free(np);
    free(p);
}

#endif
