/* dpo.c - see dpo.h */
#include "dpo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

const char *const plm_dpo_metrics[3] = {"rewards/accuracies", "rewards/margins", "rewards/chosen"};

/* ---------------------------------------------------------------- data */

int plm_dpo_encode(plm_dpo_data *out, const plm_chat_set *chosen, const plm_chat_set *rejected, const char *name,
                   const plm_tokenizer *tok, plm_chat_template t, int max_len) {
    memset(out, 0, sizeof *out);
    if (chosen->n != rejected->n) {
        plm_error("%s: %d chosen and %d rejected responses", name, chosen->n, rejected->n);
        return -1;
    }
    /* interleaved: chosen, rejected, chosen, ... */
    plm_chat_set both = {.n = 2 * chosen->n, .cap = 2 * chosen->n};
    both.items = plm_malloc((size_t)PLM_MAX(both.n, 1) * sizeof *both.items);
    for (int i = 0; i < chosen->n; i++) {
        both.items[2 * i] = chosen->items[i];
        both.items[2 * i + 1] = rejected->items[i];
    }
    int rc = plm_sft_encode(&out->seqs, &both, name, tok, t, max_len);
    free(both.items); /* the conversations are the callers' */
    if (rc == 0) out->n = chosen->n;
    return rc;
}

void plm_dpo_data_free(plm_dpo_data *d) {
    plm_sft_data_free(&d->seqs);
    free(d->ref_logp);
    memset(d, 0, sizeof *d);
}

int plm_dpo_split(plm_dpo_data *d, double fraction, uint64_t seed, plm_dpo_data *valid) {
    memset(valid, 0, sizeof *valid);
    plm_sft_data_init(&valid->seqs);
    int k = (int)lround(fraction * d->n);
    if (k <= 0) return 0;
    if (k > d->n) k = d->n;
    int *order = plm_malloc((size_t)d->n * sizeof *order);
    uint8_t *held = plm_calloc((size_t)d->n, 1);
    plm_ft_epoch_order(order, d->n, seed, -1);
    for (int i = 0; i < k; i++) held[order[i]] = 1;
    plm_sft_data keep;
    plm_sft_data_init(&keep);
    const plm_sft_data *s = &d->seqs;
    for (int i = 0; i < 2 * d->n; i++) {
        size_t a = s->off[i], n = s->off[i + 1] - a;
        plm_sft_data_add(held[i / 2] ? &valid->seqs : &keep, s->ids + a, s->train + a, (int)n, (int)n, s->line[i]);
    }
    keep.truncated = s->truncated;
    keep.no_target = s->no_target;
    valid->seqs.truncated = valid->seqs.no_target = 0;
    valid->n = k;
    plm_sft_data_free(&d->seqs);
    d->seqs = keep;
    d->n -= k;
    free(order);
    free(held);
    return k;
}

/* ---------------------------------------------------------------- log-probs and the loss */

/* Adds -CE of each labelled row of the LM head's last forward to its sequence's logp. */
static void head_logps(const plm_model *m, int T, double *logp) {
    const plm_head *h = &m->heads[0];
    for (int k = 0; k < h->num_rows; k++) logp[h->rows[k] / T] -= h->row_loss[k];
}

int plm_dpo_logps_buf(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, plm_sft_batch *bb, int *rows,
                      double *out) {
    int rc = 0;
    for (int i = 0; i < seqs->n && rc == 0; i += B) {
        int n = PLM_MIN(B, seqs->n - i);
        for (int r = 0; r < n; r++) rows[r] = i + r;
        plm_batch b;
        plm_sft_collate(seqs, rows, n, pad, bb, &b);
        if (plm_model_run(m, 0, &b, false, 1.0f) != 0) rc = -1;
        memset(out + i, 0, (size_t)n * sizeof *out);
        if (rc == 0) head_logps(m, b.T, out + i);
    }
    return rc;
}

int plm_dpo_logps(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, double *out) {
    plm_sft_batch bb = {0};
    int *rows = plm_malloc((size_t)PLM_MAX(B, 1) * sizeof *rows);
    int rc = plm_dpo_logps_buf(m, seqs, B, pad, &bb, rows, out);
    free(rows);
    plm_sft_batch_free(&bb);
    return rc;
}

/* log sigmoid(x) and sigmoid(x) without overflow */
static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

const char *plm_dpo_loss_name(plm_dpo_loss_type t) {
    return t == PLM_DPO_HINGE ? "hinge" : t == PLM_DPO_IPO ? "ipo" : "sigmoid";
}

int plm_dpo_loss_of(const char *name, plm_dpo_loss_type *out) {
    for (int t = PLM_DPO_SIGMOID; t <= PLM_DPO_IPO; t++)
        if (!strcmp(name, plm_dpo_loss_name((plm_dpo_loss_type)t))) {
            *out = (plm_dpo_loss_type)t;
            return 0;
        }
    return -1;
}

int plm_dpo_response_tokens(const plm_sft_data *s, int i) {
    int k = 0;
    for (size_t j = s->off[i] + 1; j < s->off[i + 1]; j++) k += s->train[j] != 0;
    return k;
}

void plm_dpo_loss(const double *logp, const double *ref, const int *ntok, int n, float beta, plm_dpo_loss_type type,
                  plm_dpo_stats *st, float *w) {
    memset(st, 0, sizeof *st);
    st->pairs = n;
    for (int i = 0; i < n; i++) {
        /* k: what a sequence's log-probs are divided by (ipo: its response tokens, TRL's mean) */
        bool mean = type == PLM_DPO_IPO && ntok;
        double kc = mean ? PLM_MAX(ntok[2 * i], 1) : 1.0, kr = mean ? PLM_MAX(ntok[2 * i + 1], 1) : 1.0;
        double lc = logp[2 * i] / kc, lr = logp[2 * i + 1] / kr;
        double rc = beta * (lc - ref[2 * i] / kc), rr = beta * (lr - ref[2 * i + 1] / kr);
        double bz = rc - rr, loss, dz; /* beta z; the loss and d loss / dz at z */
        if (type == PLM_DPO_HINGE) {
            loss = fmax(0.0, 1.0 - bz);
            dz = 1.0 - bz > 0.0 ? -(double)beta : 0.0; /* torch.relu's gradient at 0 is 0 */
        } else if (type == PLM_DPO_IPO) {
            double u = (lc - ref[2 * i] / kc) - (lr - ref[2 * i + 1] / kr) - 1.0 / (2.0 * beta);
            loss = u * u;
            dz = 2.0 * u;
        } else {
            loss = -log_sigmoid(bz);
            dz = -beta * sigmoid(-bz);
        }
        st->loss += loss;
        st->chosen += rc;
        st->rejected += rr;
        st->accuracy += rc > rr;
        st->margin += bz;
        st->logp_chosen += lc;
        st->logp_rejected += lr;
        if (w) { /* loss'(z) (dz / dlogp: 1 / kc, -1 / kr) (dlogp / dCE_t: -1) */
            w[2 * i] = (float)(-dz / (n * kc));
            w[2 * i + 1] = (float)(dz / (n * kr));
        }
    }
    if (n > 0) {
        st->loss /= n, st->chosen /= n, st->rejected /= n, st->accuracy /= n, st->margin /= n;
        st->logp_chosen /= n, st->logp_rejected /= n;
    }
}

void plm_dpo_buf_free(plm_dpo_buf *b) {
    plm_sft_batch_free(&b->bb);
    free(b->rows);
    free(b->logp);
    free(b->ref);
    free(b->ntok);
    free(b->seq_w);
    free(b->tok_w);
    memset(b, 0, sizeof *b);
}

static void buf_reserve(plm_dpo_buf *b, int rows) {
    if ((size_t)rows <= b->cap_rows) return;
    b->cap_rows = (size_t)rows;
    b->rows = plm_realloc(b->rows, b->cap_rows * sizeof *b->rows);
    b->logp = plm_realloc(b->logp, b->cap_rows * sizeof *b->logp);
    b->ref = plm_realloc(b->ref, b->cap_rows * sizeof *b->ref);
    b->ntok = plm_realloc(b->ntok, b->cap_rows * sizeof *b->ntok);
    b->seq_w = plm_realloc(b->seq_w, b->cap_rows * sizeof *b->seq_w);
}

static void tok_reserve(plm_dpo_buf *b, size_t N) {
    if (N <= b->cap_tok) return;
    b->cap_tok = N;
    b->tok_w = plm_realloc(b->tok_w, N * sizeof *b->tok_w);
}

void plm_dpo_buf_reserve(plm_dpo_buf *b, int pairs, int max_len) {
    size_t rows = 2 * (size_t)PLM_MAX(pairs, 1), N = rows * (size_t)PLM_MAX(max_len, 1);
    buf_reserve(b, (int)rows);
    plm_sft_batch_reserve(&b->bb, N);
    tok_reserve(b, N);
}

int plm_dpo_batch(plm_model *m, const plm_dpo_data *d, const int *pairs, int n, float beta, plm_dpo_loss_type type,
                  int32_t pad, bool training, uint64_t seed, plm_dpo_buf *buf, plm_batch *out, plm_dpo_stats *st) {
    if (!d->ref_logp) {
        plm_error("DPO needs the reference model's log-probs (plm_dpo_logps) first");
        return -1;
    }
    buf_reserve(buf, 2 * n);
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            buf->rows[2 * i + k] = 2 * pairs[i] + k;
            buf->ref[2 * i + k] = d->ref_logp[2 * pairs[i] + k];
            buf->ntok[2 * i + k] = plm_dpo_response_tokens(&d->seqs, 2 * pairs[i] + k);
        }
    }
    plm_sft_collate(&d->seqs, buf->rows, 2 * n, pad, &buf->bb, out);
    out->training = training;
    out->dropout_seed = seed;
    /* the policy's log-probs: the same pass (dropout masks included) the backward will run */
    if (plm_model_run(m, 0, out, false, 1.0f) != 0) return -1;
    memset(buf->logp, 0, (size_t)2 * n * sizeof *buf->logp);
    head_logps(m, out->T, buf->logp);
    plm_dpo_loss(buf->logp, buf->ref, buf->ntok, n, beta, type, st, buf->seq_w);
    size_t N = (size_t)out->B * out->T;
    tok_reserve(buf, N);
    for (size_t k = 0; k < N; k++) buf->tok_w[k] = buf->seq_w[k / (size_t)out->T];
    out->label_weights = buf->tok_w;
    return 0;
}

int plm_dpo_evaluate(plm_model *m, const plm_dpo_data *d, int B, float beta, plm_dpo_loss_type type, int32_t pad,
                     plm_dpo_stats *out) {
    double *logp = plm_malloc((size_t)PLM_MAX(2 * d->n, 1) * sizeof *logp);
    int *ntok = plm_malloc((size_t)PLM_MAX(2 * d->n, 1) * sizeof *ntok);
    for (int s = 0; s < 2 * d->n; s++) ntok[s] = plm_dpo_response_tokens(&d->seqs, s);
    int rc = plm_dpo_logps(m, &d->seqs, 2 * PLM_MAX(B, 1), pad, logp);
    if (rc == 0) plm_dpo_loss(logp, d->ref_logp, ntok, d->n, beta, type, out, NULL);
    free(ntok);
    free(logp);
    return rc;
}

/* ---------------------------------------------------------------- training */

typedef struct {
    const plm_tokenizer *tok;
    const plm_dpo_data *train, *valid;
    plm_chat_template t;
    float beta;
    plm_dpo_loss_type type;
    int max_seq_length;
    int32_t pad;
    plm_dpo_buf buf;
    plm_dpo_stats last; /* of the last training batch */
} dpo_loop;

static int dpo_train_batch(void *ctx, plm_model *m, const int *rows, int n, uint64_t dseed, plm_batch *out) {
    dpo_loop *c = ctx;
    /* dropout off, as TRL's disable_dropout (its default): the policy's log-probs are then the
     * reference's at the start, and the loss log 2 */
    return plm_dpo_batch(m, c->train, rows, n, c->beta, c->type, c->pad, false, dseed, &c->buf, out, &c->last);
}

static double dpo_batch_loss(void *ctx) { return ((dpo_loop *)ctx)->last.loss; }

static void dpo_step_fields(void *ctx, char *buf, size_t size) {
    const plm_dpo_stats *s = &((dpo_loop *)ctx)->last;
    snprintf(buf, size,
             ", \"rewards/chosen\": %.9g, \"rewards/rejected\": %.9g, \"rewards/accuracies\": %.6f, "
             "\"rewards/margins\": %.9g, \"logps/chosen\": %.9g, \"logps/rejected\": %.9g",
             s->chosen, s->rejected, s->accuracy, s->margin, s->logp_chosen, s->logp_rejected);
}

static int dpo_eval(void *ctx, plm_model *m, int B, plm_ft_scores *out) {
    dpo_loop *c = ctx;
    plm_dpo_stats s;
    if (plm_dpo_evaluate(m, c->valid, B, c->beta, c->type, c->pad, &s) != 0) return -1;
    *out = (plm_ft_scores){s.loss, {s.accuracy, s.margin, s.chosen}, c->valid->n};
    return 0;
}

static int dpo_save(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    dpo_loop *c = ctx;
    plm_ft_config_kv extra[] = {{"chat_template", plm_chat_template_name(c->t), 0},
                                {"max_seq_length", NULL, c->max_seq_length},
                                {"beta", NULL, c->beta},
                                {"loss_type", plm_dpo_loss_name(c->type), 0}};
    plm_ft_config_task ct = {
        .name = "dpo", .type = "dpo", .n_metrics = 3, .metrics = plm_dpo_metrics, .n_extra = 4, .extra = extra};
    return plm_ft_save_dir(m, c->tok, &ct, dir, meta_kv, n_meta);
}

int plm_dpo_train(plm_model *m, const plm_tokenizer *tok, const plm_dpo_data *train, const plm_dpo_data *valid,
                  float beta, plm_dpo_loss_type type, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best) {
    if (plm_model_head(m, PLM_HEAD_LM) != 0 || m->num_backbones != 1 || !m->config.is_decoder) {
        plm_error("dpo needs a causal language model (is_decoder true, an LM head); this is a %s",
                  plm_model_architecture(m));
        return PLM_EXIT_INPUT;
    }
    if (!(beta > 0) || !isfinite(beta)) {
        plm_error("--beta must be positive, got %g", beta);
        return PLM_EXIT_USAGE;
    }
    bool has_valid = valid && valid->n > 0;
    if (!train->ref_logp || (has_valid && !valid->ref_logp)) {
        plm_error("DPO needs the reference model's log-probs (plm_dpo_logps) first");
        return PLM_EXIT_FAIL;
    }
    dpo_loop c = {.tok = tok,
                  .train = train,
                  .valid = has_valid ? valid : NULL,
                  .t = t,
                  .beta = beta,
                  .type = type,
                  .max_seq_length = a->max_seq_length,
                  .pad = plm_sft_pad_id(m, tok)};
    int max_len = train->seqs.max_len;
    if (has_valid) max_len = PLM_MAX(max_len, valid->seqs.max_len);
    /* the batch buffers at their largest now: a later, longer batch must not allocate in a step */
    plm_dpo_buf_reserve(&c.buf, a->train_batch_size, train->seqs.max_len);
    plm_ft_loop_task lt = {.name = "dpo",
                           .n_metrics = 3,
                           .metrics = plm_dpo_metrics,
                           .n_train = train->n,
                           .max_len = max_len,
                           .rows_per_item = 2,
                           .has_dev = has_valid,
                           .ctx = &c,
                           .train_batch = dpo_train_batch,
                           .evaluate = dpo_eval,
                           .save_model = dpo_save,
                           .batch_loss = dpo_batch_loss,
                           .step_fields = dpo_step_fields};
    int rc = plm_ft_train(m, &lt, a, best);
    plm_dpo_buf_free(&c.buf);
    return rc;
}
