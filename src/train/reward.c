/* reward.c - see reward.h */
#include "reward.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/progress.h"

const char *const plm_reward_metrics[3] = {"accuracy", "margin", "mean_reward"};

/* ---------------------------------------------------------------- batches */

void plm_reward_buf_free(plm_reward_buf *b) {
    plm_sft_batch_free(&b->bb);
    free(b->rows);
    free(b->zeros);
    memset(b, 0, sizeof *b);
}

static void rows_reserve(plm_reward_buf *b, int rows) {
    if ((size_t)rows <= b->cap_rows) return;
    b->cap_rows = (size_t)rows;
    b->rows = plm_realloc(b->rows, b->cap_rows * sizeof *b->rows);
    free(b->zeros);
    b->zeros = plm_calloc(b->cap_rows, sizeof *b->zeros);
}

void plm_reward_buf_reserve(plm_reward_buf *b, int rows, int max_len) {
    rows = PLM_MAX(rows, 1);
    rows_reserve(b, rows);
    plm_sft_batch_reserve(&b->bb, (size_t)rows * (size_t)PLM_MAX(max_len, 1));
}

void plm_reward_collate(const plm_sft_data *seqs, const int *rows, int n, int32_t pad, plm_reward_buf *buf,
                        plm_batch *out) {
    plm_sft_collate(seqs, rows, n, pad, &buf->bb, out);
    /* HF's token: the last one that is not padding (reward.h); one token stays */
    for (int r = 0; r < n; r++) {
        int len = (int)(seqs->off[rows[r] + 1] - seqs->off[rows[r]]);
        int32_t *ids = buf->bb.ids + (size_t)r * out->T;
        uint8_t *mask = buf->bb.mask + (size_t)r * out->T;
        while (len > 1 && ids[len - 1] == pad) mask[--len] = 0;
    }
    out->labels = NULL; /* the sequence head reads none */
}

void plm_reward_batch(const plm_dpo_data *d, const int *pairs, int n, int32_t pad, float center, plm_reward_buf *buf,
                      plm_batch *out) {
    rows_reserve(buf, 2 * n);
    for (int i = 0; i < n; i++) {
        buf->rows[2 * i] = 2 * pairs[i];
        buf->rows[2 * i + 1] = 2 * pairs[i] + 1;
    }
    plm_reward_collate(&d->seqs, buf->rows, 2 * n, pad, buf, out);
    out->pairwise = true;
    out->center_rewards = center;
    out->training = false; /* TRL's disable_dropout */
}

/* ---------------------------------------------------------------- scoring */

static int reward_head(const plm_model *m) {
    int h = plm_model_head(m, PLM_HEAD_SEQ_CLS);
    return h >= 0 && m->heads[h].K == 1 ? h : -1;
}

int plm_reward_check_model(const plm_model *m) {
    int h = plm_model_head(m, PLM_HEAD_SEQ_CLS);
    if (m->num_backbones != 1 || !m->config.is_decoder || m->config.arch != PLM_ARCH_GPT2) {
        plm_error("a %s%s: a reward model needs a causal GPT-2 style model (its score head reads the last token)",
                  plm_model_architecture(m), m->config.is_decoder ? "" : " (is_decoder false)");
        return -1;
    }
    if (h < 0 || m->heads[h].K != 1 || m->num_heads != 1) {
        char outs[48] = "";
        if (h >= 0) snprintf(outs, sizeof outs, " with %d outputs", m->heads[h].K);
        plm_error("a %s%s: a reward model has one sequence head with one output (num_labels 1)",
                  plm_model_architecture(m), outs);
        return -1;
    }
    return 0;
}

int plm_reward_score(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, const char *progress, float *out) {
    plm_reward_buf buf = {0};
    int rc = plm_reward_score_buf(m, seqs, B, pad, progress, &buf, out);
    plm_reward_buf_free(&buf);
    return rc;
}

int plm_reward_score_buf(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, const char *progress,
                         plm_reward_buf *buf, float *out) {
    int h = reward_head(m);
    if (h < 0) {
        plm_error("the model has no sequence head with one output (a reward model)");
        return -1;
    }
    B = PLM_MAX(PLM_MIN(B, seqs->n), 1); /* a batch beyond the file would only reserve memory */
    if (plm_model_reserve(m, B, PLM_MAX(seqs->max_len, 1)) != 0) return -1; /* grow-only: a no-op in training */
    plm_reward_buf_reserve(buf, B, seqs->max_len);                          /* grow-only */
    plm_progress pb = {0};
    if (progress) plm_progress_start(&pb, progress, seqs->n, 0);
    int rc = 0;
    for (int i = 0; i < seqs->n && rc == 0; i += B) {
        int n = PLM_MIN(B, seqs->n - i);
        for (int r = 0; r < n; r++) buf->rows[r] = i + r;
        plm_batch b;
        plm_reward_collate(seqs, buf->rows, n, pad, buf, &b);
        b.seq_targets = buf->zeros; /* a forward pass leaves the head's outputs, the rewards, in place */
        if (plm_model_run(m, 0, &b, false, 1.0f) != 0) rc = -1;
        for (int r = 0; r < n && rc == 0; r++) out[i + r] = m->heads[h].logits[r];
        if (progress) plm_progress_update(&pb, i + n, "");
    }
    if (progress) plm_progress_finish(&pb, "");
    return rc;
}

int plm_reward_evaluate(plm_model *m, const plm_dpo_data *d, int B, int32_t pad, float center,
                        plm_pairwise_stats *out) {
    float *r = plm_malloc((size_t)PLM_MAX(d->seqs.n, 1) * sizeof *r);
    int rc = plm_reward_score(m, &d->seqs, 2 * PLM_MAX(B, 1), pad, NULL, r);
    if (rc == 0) pairwise_forward(r, d->n, center, out);
    free(r);
    return rc;
}

/* ---------------------------------------------------------------- training */

typedef struct {
    const plm_tokenizer *tok;
    const plm_dpo_data *train, *valid;
    plm_chat_template t;
    float center;
    int max_seq_length, head;
    int32_t pad;
    plm_model *m; /* the model trained: its head holds the last batch's statistics */
    plm_reward_buf buf;
} reward_loop;

static int reward_train_batch(void *ctx, plm_model *m, const int *rows, int n, uint64_t dseed, plm_batch *out) {
    reward_loop *c = ctx;
    (void)m;
    plm_reward_batch(c->train, rows, n, c->pad, c->center, &c->buf, out);
    out->dropout_seed = dseed;
    return 0;
}

static void reward_step_fields(void *ctx, char *buf, size_t size) {
    const reward_loop *c = ctx;
    const plm_pairwise_stats *s = &c->m->heads[c->head].pairs;
    int n = PLM_MAX(s->pairs, 1);
    snprintf(buf, size,
             ", \"accuracy\": %.6f, \"margin\": %.9g, \"mean_reward\": %.9g, \"min_reward\": %.9g, "
             "\"max_reward\": %.9g",
             (double)s->correct / n, s->margin_sum / n, (s->chosen_sum + s->rejected_sum) / (2.0 * n), s->min_reward,
             s->max_reward);
}

static int reward_eval(void *ctx, plm_model *m, int B, plm_ft_scores *out) {
    reward_loop *c = ctx;
    plm_pairwise_stats s;
    if (plm_reward_evaluate(m, c->valid, B, c->pad, c->center, &s) != 0) return -1;
    int n = PLM_MAX(s.pairs, 1);
    *out = (plm_ft_scores){s.loss_sum / n,
                           {(double)s.correct / n, s.margin_sum / n, (s.chosen_sum + s.rejected_sum) / (2.0 * n)},
                           c->valid->n};
    return 0;
}

static int reward_save(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    reward_loop *c = ctx;
    plm_ft_config_kv extra[] = {{"chat_template", plm_chat_template_name(c->t), 0},
                                {"max_seq_length", NULL, c->max_seq_length},
                                {"center_rewards_coefficient", NULL, c->center}};
    plm_ft_config_task ct = {.name = "reward",
                             .type = "reward",
                             .n_metrics = 3,
                             .metrics = plm_reward_metrics,
                             .n_extra = 3,
                             .extra = extra};
    return plm_ft_save_dir(m, c->tok, &ct, dir, meta_kv, n_meta);
}

int plm_reward_train(plm_model *m, const plm_tokenizer *tok, const plm_dpo_data *train, const plm_dpo_data *valid,
                     float center, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best) {
    if (plm_reward_check_model(m) != 0) return PLM_EXIT_INPUT;
    if (!(center >= 0) || !isfinite(center)) {
        plm_error("--center-rewards-coefficient must be finite and >= 0, got %g", center);
        return PLM_EXIT_USAGE;
    }
    /* HF's GPT2ForSequenceClassification finds the last token by config.pad_token_id: record it */
    plm_ft_set_pad_id(m, tok);
    bool has_valid = valid && valid->n > 0;
    reward_loop c = {.tok = tok,
                     .train = train,
                     .valid = has_valid ? valid : NULL,
                     .t = t,
                     .center = center,
                     .max_seq_length = a->max_seq_length,
                     .head = reward_head(m),
                     .pad = plm_sft_pad_id(m, tok),
                     .m = m};
    int max_len = train->seqs.max_len;
    if (has_valid) max_len = PLM_MAX(max_len, valid->seqs.max_len);
    /* the batch buffers at their largest now: a later, longer batch must not allocate in a step */
    plm_reward_buf_reserve(&c.buf, 2 * a->train_batch_size, train->seqs.max_len);
    plm_ft_loop_task lt = {.name = "reward",
                           .n_metrics = 3,
                           .metrics = plm_reward_metrics,
                           .n_train = train->n,
                           .max_len = max_len,
                           .rows_per_item = 2,
                           .has_dev = has_valid,
                           .ctx = &c,
                           .train_batch = reward_train_batch,
                           .evaluate = reward_eval,
                           .save_model = reward_save,
                           .step_fields = reward_step_fields};
    int rc = plm_ft_train(m, &lt, a, best);
    plm_reward_buf_free(&c.buf);
    return rc;
}
