/* rloo.c - see rloo.h */
#include "rloo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "dpo.h"
#include "reward.h"

const char *const plm_rloo_metrics[3] = {"reward", "score", "kl"};

/* ---------------------------------------------------------------- prompts */

int plm_rloo_encode_prompts(plm_sft_data *out, const plm_chat_set *set, const char *name, const plm_tokenizer *tok,
                            plm_chat_template t, int max_len) {
    return plm_sft_encode_ex(out, set, name, tok, t, max_len, true);
}

/* ---------------------------------------------------------------- the loss */

void plm_rloo_loss(const float *score, const double *logp, const double *ref, const int *len, int n, int k, float beta,
                   plm_rloo_stats *st, double *adv, float *w) {
    memset(st, 0, sizeof *st);
    int N = n * k;
    st->n = N;
    if (N <= 0 || k < 2) return;
    for (int i = 0; i < n; i++) {
        double sum = 0.0; /* of the prompt's k rewards */
        for (int j = 0; j < k; j++) {
            int s = i * k + j;
            sum += (double)score[s] - beta * (logp[s] - ref[s]);
        }
        for (int j = 0; j < k; j++) {
            int s = i * k + j;
            double kl = logp[s] - ref[s], r = (double)score[s] - beta * kl;
            double a = r - (sum - r) / (k - 1); /* the mean of the other k - 1 */
            st->loss -= a * logp[s];
            st->score += score[s];
            st->kl += kl;
            st->reward += r;
            st->advantage += fabs(a);
            st->length += len ? len[s] : 0;
            if (adv) adv[s] = a;
            if (w) w[s] = (float)(a / N); /* d loss / d logp = -a / N; d logp / d CE_t = -1 */
        }
    }
    st->loss /= N, st->score /= N, st->kl /= N, st->reward /= N, st->advantage /= N, st->length /= N;
}

void plm_missing_eos_penalty(float *score, const int32_t *gen, int stride, const int *len, int n, int32_t eos,
                             float penalty) {
    if (penalty == 0.0f) return;
    for (int i = 0; i < n; i++) {
        bool has = false;
        for (int t = 0; t < len[i] && !has; t++) has = gen[(size_t)i * stride + t] == eos;
        if (!has) score[i] -= penalty;
    }
}

/* ---------------------------------------------------------------- training */

typedef struct {
    const plm_tokenizer *tok;
    const plm_sft_data *prompts, *valid; /* valid NULL: no evaluation */
    const plm_rloo_args *r;
    plm_chat_template t;
    int max_seq_length, max_len, k, B;
    uint64_t eval_seed;
    int *erows; /* [B] */
    int32_t pad, eos;
    /* one step's buffers, sized for train_batch_size prompts before the loop */
    plm_sft_data seqs;    /* completion j of prompt i at i k + j: prompt ids, then the completion's */
    const int32_t **pids; /* [N] each sequence's prompt */
    int *plen;            /* [N] */
    uint64_t *seeds;      /* [N] sampling seeds */
    int32_t *gen;         /* [N][max_new_tokens] */
    int *nout;            /* [N] */
    int *len, *rows;      /* [N] completion lengths; rows 0..N-1 */
    float *score, *seq_w; /* [N] */
    double *logp, *ref;   /* [N] */
    float *tok_w;         /* [N max_len] */
    int32_t *ids;         /* [max_len]: one sequence being assembled */
    uint8_t *train;       /* [max_len] */
    plm_sft_batch bb;
    plm_gen_workspace gen_ws; /* the rollouts' KV cache, reserved before the loop */
    plm_reward_buf score_buf; /* the rollouts' scoring and log-prob batches, the same */
    plm_rloo_stats last;
} rloo_loop;

/* Samples k completions of prompts rows[0..n) of set with the policy m (sequence q = i k + j
 * seeded hash(seed, q + 1)), and fills c->seqs (prompt + completion, the completion's
 * tokens trained), c->len, the reward model's c->score and the reference's c->ref. Returns
 * 0 or -1 (error set). */
static int rollout(rloo_loop *c, const plm_model *m, const plm_sft_data *set, const int *rows, int n, uint64_t seed) {
    const plm_rloo_args *r = c->r;
    int k = c->k, N = n * k, mnt = r->s.max_new_tokens;
    /* one batch of N sequences, each with its own seed (with one seed for all, the k
     * copies of a prompt would draw one sample k times) */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < k; j++) {
            int q = i * k + j;
            c->pids[q] = set->ids + set->off[rows[i]];
            c->plen[q] = (int)(set->off[rows[i] + 1] - set->off[rows[i]]);
            c->seeds[q] = plm_hash_combine(seed, (uint64_t)q + 1);
        }
    plm_sampling s = r->s;
    s.seeds = c->seeds;
    s.eos_token_id = c->eos;
    if (plm_generate_batch_ws(&c->gen_ws, m, c->pids, c->plen, N, &s, c->gen, c->nout, NULL, NULL, NULL) != 0)
        return -1;
    c->seqs.n = 0;
    c->seqs.max_len = 0;
    c->seqs.targets = 0;
    for (int q = 0; q < N; q++) {
        int g = c->nout[q], np = c->plen[q], T = PLM_MIN(np + g, c->max_len);
        memcpy(c->ids, c->pids[q], (size_t)np * sizeof *c->ids);
        memcpy(c->ids + np, c->gen + (size_t)q * mnt, (size_t)(T - np) * sizeof *c->ids);
        memset(c->train, 0, (size_t)np);
        memset(c->train + np, 1, (size_t)(T - np));
        plm_sft_data_add(&c->seqs, c->ids, c->train, T, c->max_len, set->line[rows[q / k]]);
        c->len[q] = T - np;
        c->rows[q] = q;
    }
    /* the reward model's scores and the reference's log-probs, dropout off */
    if (plm_reward_score_buf(r->rm, &c->seqs, N, r->rm_pad, NULL, &c->score_buf, c->score) != 0 ||
        plm_dpo_logps_buf(r->ref, &c->seqs, N, c->pad, &c->score_buf.bb, c->score_buf.rows, c->ref) != 0)
        return -1;
    plm_missing_eos_penalty(c->score, c->gen, mnt, c->len, N, c->eos, r->missing_eos_penalty);
    return 0;
}

int plm_rloo_policy_batch(plm_model *m, const plm_sft_data *seqs, int n, int k, const float *score, const double *ref,
                          const int *len, float beta, int32_t pad, const int *rows, plm_sft_batch *bb, double *logp,
                          float *seq_w, float *tok_w, plm_batch *out, plm_rloo_stats *st) {
    int N = n * k;
    plm_sft_collate(seqs, rows, N, pad, bb, out);
    out->training = false; /* TRL's disable_dropout */
    out->dropout_seed = 0;
    /* the policy's log-probs: the pass the backward runs again */
    if (plm_model_run(m, 0, out, false, 1.0f) != 0) return -1;
    memset(logp, 0, (size_t)N * sizeof *logp);
    const plm_head *h = &m->heads[0];
    for (int q = 0; q < h->num_rows; q++) logp[h->rows[q] / out->T] -= h->row_loss[q];
    plm_rloo_loss(score, logp, ref, len, n, k, beta, st, NULL, seq_w);
    size_t NT = (size_t)out->B * out->T;
    for (size_t q = 0; q < NT; q++) tok_w[q] = seq_w[q / (size_t)out->T];
    out->label_weights = tok_w;
    return 0;
}

static int rloo_train_batch(void *ctx, plm_model *m, const int *rows, int n, uint64_t dseed, plm_batch *out) {
    rloo_loop *c = ctx;
    if (rollout(c, m, c->prompts, rows, n, dseed) != 0) return -1;
    return plm_rloo_policy_batch(m, &c->seqs, n, c->k, c->score, c->ref, c->len, c->r->beta, c->pad, c->rows, &c->bb,
                                 c->logp, c->seq_w, c->tok_w, out, &c->last);
}

/* The held-out prompts: k completions of each, sampled with the run's seed (the same draws
 * at every evaluation, so evaluations compare policies, not samples), in batches of the
 * training batch's size; eval_loss is the RLOO loss, the metrics the mean reward, score
 * and KL. */
static int rloo_eval(void *ctx, plm_model *m, int B, plm_ft_scores *out) {
    rloo_loop *c = ctx;
    (void)B; /* the step's buffers hold train_batch_size prompts */
    double sum[4] = {0, 0, 0, 0};
    for (int i0 = 0; i0 < c->valid->n; i0 += c->B) {
        int n = PLM_MIN(c->B, c->valid->n - i0), N = n * c->k;
        for (int i = 0; i < n; i++) c->erows[i] = i0 + i;
        if (rollout(c, m, c->valid, c->erows, n, plm_hash_combine(c->eval_seed, (uint64_t)i0)) != 0 ||
            plm_dpo_logps_buf(m, &c->seqs, N, c->pad, &c->score_buf.bb, c->score_buf.rows, c->logp) != 0)
            return -1;
        plm_rloo_stats st;
        plm_rloo_loss(c->score, c->logp, c->ref, c->len, n, c->k, c->r->beta, &st, NULL, NULL);
        sum[0] += st.loss * N, sum[1] += st.reward * N, sum[2] += st.score * N, sum[3] += st.kl * N;
    }
    double N = (double)c->valid->n * c->k;
    *out = (plm_ft_scores){sum[0] / N, {sum[1] / N, sum[2] / N, sum[3] / N}, c->valid->n};
    return 0;
}

static double rloo_batch_loss(void *ctx) { return ((rloo_loop *)ctx)->last.loss; }

static void rloo_step_fields(void *ctx, char *buf, size_t size) {
    const plm_rloo_stats *s = &((rloo_loop *)ctx)->last;
    snprintf(buf, size,
             ", \"reward\": %.9g, \"score\": %.9g, \"kl\": %.9g, \"advantage\": %.9g, \"completion_length\": %.6g",
             s->reward, s->score, s->kl, s->advantage, s->length);
}

static int rloo_save(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    rloo_loop *c = ctx;
    plm_ft_config_kv extra[] = {{"chat_template", plm_chat_template_name(c->t), 0},
                                {"max_seq_length", NULL, c->max_seq_length},
                                {"rloo_k", NULL, c->k},
                                {"beta", NULL, c->r->beta},
                                {"missing_eos_penalty", NULL, c->r->missing_eos_penalty},
                                {"max_new_tokens", NULL, c->r->s.max_new_tokens},
                                {"reward_model", c->r->rm_dir ? c->r->rm_dir : "", 0}};
    plm_ft_config_task ct = {.name = "rloo",
                             .type = "rloo",
                             .n_metrics = 3,
                             .metrics = plm_rloo_metrics,
                             .n_extra = (int)PLM_ARRAY_LEN(extra),
                             .extra = extra};
    return plm_ft_save_dir(m, c->tok, &ct, dir, meta_kv, n_meta);
}

static void loop_free(rloo_loop *c) {
    plm_gen_workspace_free(&c->gen_ws);
    plm_reward_buf_free(&c->score_buf);
    plm_sft_data_free(&c->seqs);
    plm_sft_batch_free(&c->bb);
    free(c->pids);
    free(c->plen);
    free(c->seeds);
    free(c->erows);
    free(c->gen);
    free(c->nout);
    free(c->len);
    free(c->rows);
    free(c->score);
    free(c->seq_w);
    free(c->logp);
    free(c->ref);
    free(c->tok_w);
    free(c->ids);
    free(c->train);
}

int plm_rloo_train(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *prompts, const plm_sft_data *valid,
                   const plm_rloo_args *r, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best) {
    if (plm_model_head(m, PLM_HEAD_LM) != 0 || m->num_backbones != 1 || !m->config.is_decoder) {
        plm_error("rloo needs a causal language model (is_decoder true, an LM head); this is a %s",
                  plm_model_architecture(m));
        return PLM_EXIT_INPUT;
    }
    if (r->k < 2 || !(r->beta >= 0) || !isfinite(r->beta) || r->s.max_new_tokens < 1 ||
        !(r->missing_eos_penalty >= 0) || !isfinite(r->missing_eos_penalty)) {
        plm_error("rloo needs --rloo-k >= 2, a finite --beta >= 0, --max-new-tokens >= 1 and a finite "
                  "--missing-eos-penalty >= 0");
        return PLM_EXIT_USAGE;
    }
    if (plm_reward_check_model(r->rm) != 0) return PLM_EXIT_INPUT;
    int32_t eos = plm_chat_eos(tok);
    if (eos < 0) {
        plm_error("rloo: the tokenizer has no EOS token to end a completion");
        return PLM_EXIT_INPUT;
    }
    int B = PLM_MAX(a->train_batch_size, 1), k = r->k, N = B * k, mnt = r->s.max_new_tokens;
    bool has_valid = valid && valid->n > 0;
    int longest = PLM_MAX(prompts->max_len, has_valid ? valid->max_len : 0);
    int max_len = PLM_MIN(longest + mnt, a->max_seq_length);
    max_len = PLM_MIN(max_len, m->config.max_position_embeddings);
    rloo_loop c = {.tok = tok,
                   .prompts = prompts,
                   .valid = has_valid ? valid : NULL,
                   .r = r,
                   .t = t,
                   .max_seq_length = a->max_seq_length,
                   .max_len = max_len,
                   .k = k,
                   .B = B,
                   .eval_seed = plm_hash_combine(a->seed, 0x65766c), /* "evl" */
                   .pad = plm_sft_pad_id(m, tok),
                   .eos = eos};
    /* the step's buffers at their largest now */
    plm_sft_data_init(&c.seqs);
    c.pids = plm_malloc((size_t)N * sizeof *c.pids);
    c.plen = plm_malloc((size_t)N * sizeof *c.plen);
    c.seeds = plm_malloc((size_t)N * sizeof *c.seeds);
    c.erows = plm_malloc((size_t)B * sizeof *c.erows);
    c.gen = plm_malloc((size_t)N * mnt * sizeof *c.gen);
    c.nout = plm_malloc((size_t)N * sizeof *c.nout);
    c.len = plm_malloc((size_t)N * sizeof *c.len);
    c.rows = plm_malloc((size_t)N * sizeof *c.rows);
    c.score = plm_malloc((size_t)N * sizeof *c.score);
    c.seq_w = plm_malloc((size_t)N * sizeof *c.seq_w);
    c.logp = plm_malloc((size_t)N * sizeof *c.logp);
    c.ref = plm_malloc((size_t)N * sizeof *c.ref);
    c.tok_w = plm_malloc((size_t)N * max_len * sizeof *c.tok_w);
    c.ids = plm_malloc((size_t)max_len * sizeof *c.ids);
    c.train = plm_malloc((size_t)max_len);
    plm_sft_batch_reserve(&c.bb, (size_t)N * max_len);
    plm_gen_workspace_reserve(&c.gen_ws, m, N, longest, mnt);
    plm_reward_buf_reserve(&c.score_buf, N, max_len);
    int rc = PLM_EXIT_USAGE;
    if (plm_model_reserve(r->ref, N, max_len) != 0 || plm_model_reserve(r->rm, N, max_len) != 0) goto out;
    plm_ft_loop_task lt = {.name = "rloo",
                           .n_metrics = 3,
                           .metrics = plm_rloo_metrics,
                           .n_train = prompts->n,
                           .max_len = max_len,
                           .rows_per_item = k,
                           .has_dev = has_valid,
                           .ctx = &c,
                           .train_batch = rloo_train_batch,
                           .evaluate = rloo_eval,
                           .save_model = rloo_save,
                           .batch_loss = rloo_batch_loss,
                           .step_fields = rloo_step_fields};
    rc = plm_ft_train(m, &lt, a, best);
out:
    loop_free(&c);
    return rc;
}
