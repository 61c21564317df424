/* finetune_tokens.c - see finetune_tokens.h */
#include "finetune_tokens.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/progress.h"
#include "core/rng.h"
#include "model/model_io.h"
#include "tasks/metrics.h"

/* ---------------------------------------------------------------- data */

static bool is_tagging(const plm_tt_task *t) { return t->kind != PLM_TT_QA; }

/* The tag ids a sentence is trained and scored on: POS from CoNLL's column 2 when kept. */
static const int *sentence_tags(const plm_tt_task *t, const plm_tagged_sentence *s) {
    return t->kind == PLM_TT_POS && s->pos ? s->pos : s->tags;
}

int plm_tt_data_init(plm_tt_data *d, const plm_tt_task *t, const plm_tokenizer *tok, const plm_tagged_set *tagged,
                     const plm_squad_set *squad, int n) {
    memset(d, 0, sizeof *d);
    d->tagged = tagged;
    d->squad = squad;
    if (is_tagging(t)) {
        d->n = n > 0 && n < tagged->n ? n : tagged->n;
        plm_tagging_init(&d->tf, tok, t->tags, t->n_tags, &t->tag_opts);
        d->word_start = plm_malloc((size_t)(d->n + 1) * sizeof *d->word_start);
        d->word_start[0] = 0;
        for (int i = 0; i < d->n; i++) {
            const plm_tagged_sentence *s = &tagged->sents[i];
            if (plm_tagging_add(&d->tf, s->words, sentence_tags(t, s), s->n) < 0) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", plm_last_error());
                plm_error("sentence on line %d: %s", s->line, msg);
                return -1;
            }
            d->word_start[i + 1] = d->word_start[i] + s->n;
        }
        return 0;
    }
    d->n = n > 0 && n < squad->n ? n : squad->n;
    plm_qa_init(&d->qf, tok, &t->qa_opts);
    plm_squad_set head = *squad; /* the first n questions; every context is registered */
    head.n = d->n;
    return plm_qa_add_squad(&d->qf, &head);
}

void plm_tt_data_free(plm_tt_data *d) {
    if (d->tagged) plm_tagging_free(&d->tf);
    if (d->squad) plm_qa_free(&d->qf);
    free(d->word_start);
    memset(d, 0, sizeof *d);
}

void plm_tt_pred_free(plm_tt_pred *p) {
    free(p->word_tags);
    free(p->answers);
    memset(p, 0, sizeof *p);
}

/* Features (the model's rows) of a split: one per sentence, or the QA windows. */
static int n_features(const plm_tt_task *t, const plm_tt_data *d) { return is_tagging(t) ? d->tf.n : d->qf.n_features; }

static int max_feature_len(const plm_tt_task *t, const plm_tt_data *d) {
    return is_tagging(t) ? d->tf.max_len : d->qf.max_len;
}

/* Rows idx[0..n) as a model batch; tb owns the memory. */
static int fill_batch(const plm_model *m, const plm_tt_task *t, const plm_tt_data *d, const int *idx, int n,
                      bool training, uint64_t dseed, plm_task_batch *tb, plm_batch *out) {
    int rc = is_tagging(t) ? plm_tagging_batch(&d->tf, idx, n, 0, tb) : plm_qa_batch(&d->qf, idx, n, 0, tb);
    if (rc != 0) return -1;
    *out = (plm_batch){.B = tb->B,
                       .T = tb->T,
                       .input_ids = tb->input_ids,
                       /* a model without a segment table (GPT-2) takes no type ids */
                       .token_type_ids = m->config.type_vocab_size > 0 ? tb->token_type_ids : NULL,
                       .attention_mask = tb->attention_mask,
                       .labels = is_tagging(t) ? tb->labels : NULL,
                       .start_positions = is_tagging(t) ? NULL : tb->start_positions,
                       .end_positions = is_tagging(t) ? NULL : tb->end_positions,
                       .causal = m->config.is_decoder,
                       .training = training,
                       .dropout_seed = dseed};
    return 0;
}

static int task_head(const plm_model *m, const plm_tt_task *t) {
    int h = plm_model_head(m, is_tagging(t) ? PLM_HEAD_TOKEN_CLS : PLM_HEAD_QA);
    if (h < 0) plm_error("the model has no %s head", is_tagging(t) ? "token-classification" : "question-answering");
    return h;
}

/* ---------------------------------------------------------------- prediction and scores */

static int default_tag(const plm_tt_task *t) {
    for (int k = 0; k < t->n_tags; k++)
        if (!strcmp(t->tags[k], "O")) return k;
    return 0;
}

int plm_tt_predict(plm_model *m, const plm_tt_task *t, plm_tt_data *d, int B, plm_tt_pred *out, double *loss) {
    memset(out, 0, sizeof *out);
    int h = task_head(m, t);
    if (h < 0) return -1;
    int nf = n_features(t, d), T = PLM_MAX(max_feature_len(t, d), 1);
    if (plm_model_reserve(m, B, T) != 0) return -1; /* grow-only */
    plm_task_batch tb;
    plm_task_batch_init(&tb);
    int *idx = plm_malloc((size_t)B * sizeof *idx);
    /* QA: each window's [len, 2] logits, kept until every window of a question is in */
    long *off = NULL;
    float *store = NULL;
    if (is_tagging(t)) {
        out->word_tags = plm_malloc((size_t)PLM_MAX(d->word_start[d->n], 1) * sizeof *out->word_tags);
    } else {
        off = plm_malloc((size_t)(nf + 1) * sizeof *off);
        off[0] = 0;
        for (int f = 0; f < nf; f++) off[f + 1] = off[f] + 2L * d->qf.features[f].len;
        store = plm_malloc((size_t)PLM_MAX(off[nf], 1) * sizeof *store);
    }
    double loss_sum = 0.0;
    long counted = 0;
    int rc = 0, dflt = default_tag(t);
    for (int start = 0; start < nf; start += B) {
        int n = PLM_MIN(B, nf - start);
        for (int i = 0; i < n; i++) idx[i] = start + i;
        plm_batch b;
        if (fill_batch(m, t, d, idx, n, false, 0, &tb, &b) != 0 || plm_model_run(m, 0, &b, false, 1.0f) != 0) {
            rc = -1;
            break;
        }
        const plm_head *hd = &m->heads[h];
        for (int r = 0; r < n; r++) {
            int f = start + r;
            if (is_tagging(t))
                plm_tagging_decode(&d->tf, f, hd->logits + (size_t)r * b.T * hd->K, dflt,
                                   out->word_tags + d->word_start[f]);
            else
                memcpy(store + off[f], hd->logits + (size_t)r * b.T * 2, (size_t)(off[f + 1] - off[f]) * sizeof *store);
        }
        /* QA: the head's loss is the mean of two means; weigh it by its rows */
        loss_sum += is_tagging(t) ? hd->result.loss_sum : (isfinite(hd->loss) ? hd->loss * hd->result.count : 0.0);
        counted += hd->result.count;
    }
    if (rc == 0 && !is_tagging(t)) {
        out->answers = plm_calloc((size_t)PLM_MAX(d->n, 1), sizeof *out->answers);
        const float **lp = plm_malloc((size_t)PLM_MAX(nf, 1) * sizeof *lp);
        for (int q = 0; q < d->n; q++) {
            int f0 = d->qf.ex_first_feature[q], f1 = d->qf.ex_first_feature[q + 1];
            for (int f = f0; f < f1; f++) lp[f - f0] = store + off[f];
            out->answers[q] = plm_qa_best_answer(&d->qf, q, lp);
        }
        free(lp);
    }
    if (loss) *loss = counted ? loss_sum / (double)counted : NAN;
    free(off);
    free(store);
    free(idx);
    plm_task_batch_free(&tb);
    if (rc != 0) plm_tt_pred_free(out);
    return rc;
}

const char *plm_tt_answer_text(const plm_tt_data *d, const plm_tt_pred *p, int q, int *len) {
    const plm_qa_answer *a = &p->answers[q];
    if (!a->found) {
        *len = 0;
        return "";
    }
    *len = a->end - a->start;
    return d->qf.ctx_text[d->qf.ex_context[q]] + a->start;
}

int plm_tt_score(const plm_tt_task *t, const plm_tt_data *d, const plm_tt_pred *p, plm_tt_scores *out) {
    double loss = out->loss;
    memset(out, 0, sizeof *out);
    out->loss = loss;
    out->n = d->n;
    if (t->kind == PLM_TT_QA) {
        double em = 0, f1 = 0;
        char *buf = NULL;
        size_t cap = 0;
        for (int q = 0; q < d->n; q++) {
            const plm_squad_question *sq = &d->squad->qs[q];
            int len;
            const char *s = plm_tt_answer_text(d, p, q, &len);
            if ((size_t)len + 1 > cap) buf = plm_realloc(buf, cap = (size_t)len + 64);
            memcpy(buf, s, (size_t)len);
            buf[len] = 0;
            em += plm_squad_exact_max(buf, sq->answer_texts, (size_t)sq->n_answers);
            f1 += plm_squad_f1_max(buf, sq->answer_texts, (size_t)sq->n_answers);
        }
        free(buf);
        out->value[0] = d->n ? 100.0 * f1 / d->n : NAN;
        out->value[1] = d->n ? 100.0 * em / d->n : NAN;
        out->value[2] = NAN;
        return 0;
    }
    long nw = d->word_start[d->n];
    int *gold = plm_malloc((size_t)PLM_MAX(nw, 1) * sizeof *gold);
    for (int i = 0; i < d->n; i++) {
        const plm_tagged_sentence *s = &d->tagged->sents[i];
        memcpy(gold + d->word_start[i], sentence_tags(t, s), (size_t)s->n * sizeof *gold);
    }
    int rc = 0;
    if (t->kind == PLM_TT_POS) {
        out->value[0] = plm_accuracy(gold, p->word_tags, (size_t)nw);
        out->value[1] = out->value[2] = NAN;
    } else {
        const char **gs = plm_malloc((size_t)PLM_MAX(nw, 1) * sizeof *gs);
        const char **ps = plm_malloc((size_t)PLM_MAX(nw, 1) * sizeof *ps);
        size_t *lens = plm_malloc((size_t)PLM_MAX(d->n, 1) * sizeof *lens);
        for (long w = 0; w < nw; w++) {
            gs[w] = t->tags[gold[w]];
            ps[w] = t->tags[p->word_tags[w]];
        }
        for (int i = 0; i < d->n; i++) lens[i] = (size_t)(d->word_start[i + 1] - d->word_start[i]);
        plm_entity_scores e;
        rc = plm_entity_f1(gs, ps, lens, (size_t)d->n, &e);
        out->value[0] = e.f1;
        out->value[1] = e.precision;
        out->value[2] = e.recall;
        free(gs);
        free(ps);
        free(lens);
    }
    free(gold);
    return rc;
}

static int tt_evaluate(plm_model *m, const plm_tt_task *t, plm_tt_data *d, int B, plm_tt_scores *out) {
    plm_tt_pred p;
    memset(out, 0, sizeof *out);
    if (plm_tt_predict(m, t, d, B, &p, &out->loss) != 0) return -1;
    int rc = plm_tt_score(t, d, &p, out);
    plm_tt_pred_free(&p);
    return rc;
}

/* ---------------------------------------------------------------- the model directory */

/* config.json as run_ner / run_qa leave it, plus plm_task for evaluate / predict. */
int plm_tt_save_model(const plm_model *m, const plm_tokenizer *tok, const plm_tt_task *t, const char *dir,
                      const char *const *meta_kv, int n_meta) {
    bool tagging = is_tagging(t);
    plm_ft_config_kv extra[2] = {
        {"max_seq_length", NULL, tagging ? t->tag_opts.max_seq_length : t->qa_opts.max_seq_length},
        {"doc_stride", NULL, t->qa_opts.doc_stride},
    };
    plm_ft_config_task c = {
        .name = t->name,
        .n_labels = t->n_tags,
        .labels = tagging ? t->tags : NULL,
        .type = tagging ? "token-classification" : "qa",
        .kind = t->kind == PLM_TT_NER   ? "ner"
                : t->kind == PLM_TT_POS ? "pos"
                                        : "squad",
        .n_metrics = 3,
        .metrics = t->metrics,
        .n_extra = tagging ? 1 : 2,
        .extra = extra,
    };
    return plm_ft_save_dir(m, tok, &c, dir, meta_kv, n_meta);
}

/* ---------------------------------------------------------------- token tasks on the loop */

typedef struct {
    const plm_tt_task *t;
    const plm_tokenizer *tok;
    plm_tt_data *train, *dev;
    plm_task_batch tb;
} tt_loop;

static int tt_train_batch(void *ctx, plm_model *m, const int *rows, int n, uint64_t dseed, plm_batch *out) {
    tt_loop *c = ctx;
    return fill_batch(m, c->t, c->train, rows, n, true, dseed, &c->tb, out);
}

static int tt_eval_dev(void *ctx, plm_model *m, int B, plm_ft_scores *out) {
    tt_loop *c = ctx;
    return tt_evaluate(m, c->t, c->dev, B, out);
}

static int tt_save(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    tt_loop *c = ctx;
    return plm_tt_save_model(m, c->tok, c->t, dir, meta_kv, n_meta);
}

int plm_finetune_tokens(plm_model *m, const plm_tokenizer *tok, plm_tt_data *train, plm_tt_data *dev,
                        const plm_tt_task *t, const plm_ft_args *a, plm_tt_scores *best_out) {
    int h = task_head(m, t);
    if (h < 0) return PLM_EXIT_INPUT;
    if (is_tagging(t) && m->heads[h].K != t->n_tags) {
        plm_error("the model's head has %d outputs, the task %d tags", m->heads[h].K, t->n_tags);
        return PLM_EXIT_INPUT;
    }
    tt_loop c = {.t = t, .tok = tok, .train = train, .dev = dev};
    plm_task_batch_init(&c.tb);
    plm_ft_loop_task lt = {.name = t->name,
                           .n_metrics = 3,
                           .metrics = t->metrics,
                           .n_train = n_features(t, train),
                           .max_len = PLM_MAX(max_feature_len(t, train), dev ? max_feature_len(t, dev) : 0),
                           .has_dev = dev != NULL,
                           .ctx = &c,
                           .train_batch = tt_train_batch,
                           .evaluate = tt_eval_dev,
                           .save_model = tt_save};
    int rc = plm_ft_train(m, &lt, a, best_out);
    plm_task_batch_free(&c.tb);
    return rc;
}
