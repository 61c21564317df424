/* sft.c - see sft.h */
#include "sft.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "dist.h"

const char *const plm_sft_metrics[3] = {"perplexity", "token_accuracy", "majority_token_accuracy"};

/* ---------------------------------------------------------------- examples */

void plm_sft_data_init(plm_sft_data *d) {
    memset(d, 0, sizeof *d);
    d->off = plm_calloc(1, sizeof *d->off);
}

void plm_sft_data_free(plm_sft_data *d) {
    free(d->off);
    free(d->ids);
    free(d->train);
    free(d->line);
    memset(d, 0, sizeof *d);
}

void plm_sft_data_add(plm_sft_data *d, const int32_t *ids, const uint8_t *train, int n, int max_len, int line) {
    int had = 0;
    for (int k = 1; k < n; k++) had |= train[k];
    if (n > max_len) {
        d->truncated++;
        n = max_len;
    }
    int targets = 0;
    for (int k = 1; k < n; k++) targets += train[k] != 0;
    if (had && !targets) d->no_target++;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 64;
        d->off = plm_realloc(d->off, (size_t)(d->cap + 1) * sizeof *d->off);
        d->line = plm_realloc(d->line, (size_t)d->cap * sizeof *d->line);
    }
    size_t at = d->off[d->n];
    if (at + (size_t)n > d->cap_tok) {
        d->cap_tok = 2 * (at + (size_t)n) + 256;
        d->ids = plm_realloc(d->ids, d->cap_tok * sizeof *d->ids);
        d->train = plm_realloc(d->train, d->cap_tok);
    }
    memcpy(d->ids + at, ids, (size_t)n * sizeof *ids);
    memcpy(d->train + at, train, (size_t)n);
    d->line[d->n] = line;
    d->off[++d->n] = at + (size_t)n;
    d->max_len = PLM_MAX(d->max_len, n);
    d->targets += targets;
}

int plm_sft_encode_ex(plm_sft_data *out, const plm_chat_set *set, const char *name, const plm_tokenizer *tok,
                      plm_chat_template t, int max_len, bool prompts) {
    plm_sft_data_init(out);
    plm_chat_tokens ct;
    plm_chat_tokens_init(&ct);
    int rc = 0;
    for (int i = 0; i < set->n && rc == 0; i++) {
        const plm_chat *c = &set->items[i];
        ct.n = 0;
        if (plm_chat_encode(tok, t, c->msgs, c->n, prompts, &ct) != 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", plm_last_error());
            plm_error("%s:%d: %s", name, c->line, msg);
            rc = -1;
        } else if (prompts && ct.n >= max_len) { /* no room left for a completion */
            plm_error("%s:%d: the prompt has %d tokens, leaving no room for a completion within %d (--max-seq-length)",
                      name, c->line, ct.n, max_len);
            rc = -1;
        } else {
            plm_sft_data_add(out, ct.ids, ct.train, ct.n, max_len, c->line);
        }
    }
    plm_chat_tokens_free(&ct);
    if (rc != 0) plm_sft_data_free(out);
    return rc;
}

int plm_sft_encode(plm_sft_data *out, const plm_chat_set *set, const char *name, const plm_tokenizer *tok,
                   plm_chat_template t, int max_len) {
    return plm_sft_encode_ex(out, set, name, tok, t, max_len, false);
}

/* Copies example i of src to the end of dst (no further truncation). */
static void copy_example(plm_sft_data *dst, const plm_sft_data *src, int i) {
    size_t a = src->off[i], n = src->off[i + 1] - a;
    int trunc = dst->truncated, nt = dst->no_target;
    plm_sft_data_add(dst, src->ids + a, src->train + a, (int)n, (int)n, src->line[i]);
    dst->truncated = trunc;
    dst->no_target = nt;
}

int plm_sft_split(plm_sft_data *d, double fraction, uint64_t seed, plm_sft_data *valid) {
    plm_sft_data_init(valid);
    int k = (int)lround(fraction * d->n);
    if (k <= 0) return 0;
    if (k > d->n) k = d->n;
    int *order = plm_malloc((size_t)d->n * sizeof *order);
    uint8_t *held = plm_calloc((size_t)d->n, 1);
    plm_ft_epoch_order(order, d->n, seed, -1); /* epoch -1: a stream no training epoch uses */
    for (int i = 0; i < k; i++) held[order[i]] = 1;
    plm_sft_data keep;
    plm_sft_data_init(&keep);
    for (int i = 0; i < d->n; i++) copy_example(held[i] ? valid : &keep, d, i);
    keep.truncated = d->truncated; /* the counts of the file as read */
    keep.no_target = d->no_target;
    plm_sft_data_free(d);
    *d = keep;
    free(order);
    free(held);
    return k;
}

int32_t plm_sft_majority_token(const plm_sft_data *d, int vocab_size) {
    long *count = plm_calloc((size_t)vocab_size, sizeof *count);
    for (int i = 0; i < d->n; i++)
        for (size_t k = d->off[i] + 1; k < d->off[i + 1]; k++)
            if (d->train[k] && d->ids[k] >= 0 && d->ids[k] < vocab_size) count[d->ids[k]]++;
    int32_t best = -1;
    for (int v = 0; v < vocab_size; v++)
        if (count[v] > 0 && (best < 0 || count[v] > count[best])) best = v;
    free(count);
    return best;
}

/* ---------------------------------------------------------------- batches */

void plm_sft_batch_free(plm_sft_batch *b) {
    free(b->ids);
    free(b->labels);
    free(b->mask);
    free(b->position_ids);
    free(b->seq_idx);
    memset(b, 0, sizeof *b);
}

void plm_sft_batch_reserve(plm_sft_batch *bb, size_t N) {
    if (N <= bb->cap) return;
    bb->cap = N;
    bb->ids = plm_realloc(bb->ids, N * sizeof *bb->ids);
    bb->labels = plm_realloc(bb->labels, N * sizeof *bb->labels);
    bb->mask = plm_realloc(bb->mask, N);
    bb->position_ids = plm_realloc(bb->position_ids, N * sizeof *bb->position_ids);
    bb->seq_idx = plm_realloc(bb->seq_idx, N * sizeof *bb->seq_idx);
}

void plm_sft_collate(const plm_sft_data *d, const int *rows, int n, int32_t pad_id, plm_sft_batch *bb, plm_batch *out) {
    int T = 1;
    for (int r = 0; r < n; r++) T = PLM_MAX(T, (int)(d->off[rows[r] + 1] - d->off[rows[r]]));
    size_t N = (size_t)n * T;
    plm_sft_batch_reserve(bb, N); /* nothing to do once reserved for [B, max_len] */
    for (int r = 0; r < n; r++) {
        size_t a = d->off[rows[r]];
        int len = (int)(d->off[rows[r] + 1] - a);
        int32_t *ids = bb->ids + (size_t)r * T, *lab = bb->labels + (size_t)r * T;
        uint8_t *mask = bb->mask + (size_t)r * T;
        for (int t = 0; t < T; t++) {
            bool real = t < len;
            ids[t] = real ? d->ids[a + t] : pad_id;
            mask[t] = real;
            /* pre-shifted: position t is scored on token t + 1 when that token is learned */
            lab[t] = t + 1 < len && d->train[a + t + 1] ? d->ids[a + t + 1] : PLM_IGNORE_INDEX;
        }
    }
    *out = (plm_batch){.B = n,
                       .T = T,
                       .input_ids = bb->ids,
                       .attention_mask = bb->mask,
                       .labels = bb->labels,
                       .causal = true,
                       .training = false};
}

/* ---------------------------------------------------------------- packing */

void plm_sft_packs_free(plm_sft_packs *p) {
    free(p->off);
    free(p->ex);
    free(p->len);
    memset(p, 0, sizeof *p);
}

double plm_sft_packing_efficiency(const plm_sft_packs *p, int max_len) {
    return p->n ? (double)p->tokens / ((double)p->n * max_len) : NAN;
}

typedef struct {
    int len, rank; /* tokens, place in the shuffled order */
} pack_key;

static int longest_first(const void *x, const void *y) {
    const pack_key *a = x, *b = y;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return (a->rank > b->rank) - (a->rank < b->rank);
}

void plm_sft_pack(const plm_sft_data *d, int max_len, uint64_t seed, plm_sft_packs *out) {
    int n = d->n;
    memset(out, 0, sizeof *out);
    int *order = plm_malloc((size_t)PLM_MAX(n, 1) * sizeof *order);
    plm_ft_epoch_order(order, n, seed, -2); /* epoch -2: a stream neither training nor the split uses */
    pack_key *key = plm_malloc((size_t)PLM_MAX(n, 1) * sizeof *key);
    for (int r = 0; r < n; r++) key[r] = (pack_key){(int)(d->off[order[r] + 1] - d->off[order[r]]), r};
    qsort(key, (size_t)n, sizeof *key, longest_first);
    /* Free space of rows 0..n-1 (at most one row per example) in a max-segment tree with
     * leaves at size..2 size-1: a row not yet opened has all max_len tokens free, so the
     * leftmost leaf with room is the first opened row with room or else the next new row. */
    int size = 1;
    while (size < PLM_MAX(n, 1)) size *= 2;
    int *tree = plm_malloc((size_t)2 * size * sizeof *tree);
    for (int i = 0; i < size; i++) tree[size + i] = i < n ? max_len : -1;
    for (int i = size - 1; i >= 1; i--) tree[i] = PLM_MAX(tree[2 * i], tree[2 * i + 1]);
    int *row_of = plm_malloc((size_t)PLM_MAX(n, 1) * sizeof *row_of); /* by rank */
    int rows = 0;
    for (int r = 0; r < n; r++) {
        int len = key[r].len, i = 1;
        if (len > max_len) plm_die("plm_sft_pack: an example of %d tokens is longer than the rows (%d)", len, max_len);
        while (i < size) i = tree[2 * i] >= len ? 2 * i : 2 * i + 1; /* the leftmost child with room */
        row_of[r] = i - size;
        rows = PLM_MAX(rows, i - size + 1);
        tree[i] -= len;
        for (i /= 2; i >= 1; i /= 2) tree[i] = PLM_MAX(tree[2 * i], tree[2 * i + 1]);
    }
    out->n = rows;
    out->off = plm_calloc((size_t)rows + 1, sizeof *out->off);
    out->len = plm_calloc((size_t)PLM_MAX(rows, 1), sizeof *out->len);
    out->ex = plm_malloc((size_t)PLM_MAX(n, 1) * sizeof *out->ex);
    for (int r = 0; r < n; r++) out->off[row_of[r] + 1]++, out->len[row_of[r]] += key[r].len;
    for (int k = 0; k < rows; k++) out->off[k + 1] += out->off[k];
    int *fill = plm_calloc((size_t)PLM_MAX(rows, 1), sizeof *fill);
    for (int r = 0; r < n; r++) /* in placing order: a row's documents longest first */
        out->ex[out->off[row_of[r]] + fill[row_of[r]]++] = order[key[r].rank];
    for (int k = 0; k < rows; k++) {
        out->max_len = PLM_MAX(out->max_len, out->len[k]);
        out->tokens += out->len[k];
    }
    free(fill);
    free(row_of);
    free(tree);
    free(key);
    free(order);
}

void plm_sft_collate_packed(const plm_sft_data *d, const plm_sft_packs *p, const int *rows, int n, int32_t pad_id,
                            plm_sft_batch *bb, plm_batch *out) {
    int T = 1;
    for (int r = 0; r < n; r++) T = PLM_MAX(T, p->len[rows[r]]);
    plm_sft_batch_reserve(bb, (size_t)n * T);
    for (int r = 0; r < n; r++) {
        size_t row = (size_t)r * T;
        int t = 0, doc = 0;
        for (int e = p->off[rows[r]]; e < p->off[rows[r] + 1]; e++, doc++) {
            size_t a = d->off[p->ex[e]];
            int len = (int)(d->off[p->ex[e] + 1] - a);
            for (int k = 0; k < len; k++, t++) {
                bb->ids[row + t] = d->ids[a + k];
                bb->mask[row + t] = 1;
                /* pre-shifted within the document: its last position has no target */
                bb->labels[row + t] = k + 1 < len && d->train[a + k + 1] ? d->ids[a + k + 1] : PLM_IGNORE_INDEX;
                bb->position_ids[row + t] = k;
                bb->seq_idx[row + t] = doc;
            }
        }
        for (; t < T; t++) {
            bb->ids[row + t] = pad_id;
            bb->mask[row + t] = 0;
            bb->labels[row + t] = PLM_IGNORE_INDEX;
            bb->position_ids[row + t] = 0;
            bb->seq_idx[row + t] = doc; /* not read: the mask makes it padding */
        }
    }
    *out = (plm_batch){.B = n,
                       .T = T,
                       .input_ids = bb->ids,
                       .attention_mask = bb->mask,
                       .labels = bb->labels,
                       .position_ids = bb->position_ids,
                       .seq_idx = bb->seq_idx,
                       .causal = true,
                       .training = false};
}

/* ---------------------------------------------------------------- evaluation */

int plm_sft_evaluate(plm_model *m, const plm_sft_data *d, int B, int32_t pad_id, int32_t majority,
                     plm_sft_scores *out) {
    plm_sft_batch bb = {0};
    int *rows = plm_malloc((size_t)PLM_MAX(B, 1) * sizeof *rows);
    double loss = 0.0;
    long count = 0, correct = 0, maj = 0;
    int rc = 0;
    for (int i = 0; i < d->n && rc == 0; i += B) {
        int n = PLM_MIN(B, d->n - i);
        for (int r = 0; r < n; r++) rows[r] = i + r;
        plm_batch b;
        plm_sft_collate(d, rows, n, pad_id, &bb, &b);
        if (plm_model_run(m, 0, &b, false, 1.0f) != 0) {
            rc = -1;
            break;
        }
        const plm_ce_result *res = &m->heads[0].result;
        loss += res->loss_sum;
        count += res->count;
        correct += res->correct;
        for (size_t k = 0; k < (size_t)b.B * b.T; k++) maj += b.labels[k] >= 0 && b.labels[k] == majority;
    }
    free(rows);
    plm_sft_batch_free(&bb);
    *out = (plm_sft_scores){count ? loss / (double)count : NAN, count ? (double)correct / (double)count : NAN,
                            count && majority >= 0 ? (double)maj / (double)count : NAN, count};
    return rc;
}

int32_t plm_sft_pad_id(const plm_model *m, const plm_tokenizer *tok) {
    if (m->config.pad_token_id >= 0) return m->config.pad_token_id;
    int32_t p = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    return p >= 0 ? p : plm_chat_eos(tok) >= 0 ? plm_chat_eos(tok) : 0;
}

/* ---------------------------------------------------------------- training */

typedef struct {
    const plm_tokenizer *tok;
    const plm_sft_data *train, *valid;
    plm_chat_template t;
    int max_seq_length;
    int32_t pad, majority;
    plm_sft_batch bb;
    const plm_sft_packs *packs; /* NULL: one example per row */
    double batch_efficiency;    /* of the last packed batch */
} sft_loop;

static int sft_train_batch(void *ctx, plm_model *m, const int *rows, int n, uint64_t dseed, plm_batch *out) {
    (void)m;
    sft_loop *c = ctx;
    if (c->packs) {
        plm_sft_collate_packed(c->train, c->packs, rows, n, c->pad, &c->bb, out);
        long real = 0;
        for (int r = 0; r < n; r++) real += c->packs->len[rows[r]];
        c->batch_efficiency = (double)real / ((double)n * c->max_seq_length);
    } else {
        plm_sft_collate(c->train, rows, n, c->pad, &c->bb, out);
    }
    out->training = true;
    out->dropout_seed = dseed;
    return 0;
}

static void sft_step_fields(void *ctx, char *buf, size_t size) {
    const sft_loop *c = ctx;
    snprintf(buf, size, ", \"packing_efficiency\": %.4f", c->batch_efficiency);
}

static int sft_eval(void *ctx, plm_model *m, int B, plm_ft_scores *out) {
    sft_loop *c = ctx;
    plm_sft_scores s;
    if (plm_sft_evaluate(m, c->valid, B, c->pad, c->majority, &s) != 0) return -1;
    *out = (plm_ft_scores){s.loss, {exp(s.loss), s.accuracy, s.majority_accuracy}, c->valid->n};
    return 0;
}

static int sft_save(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    sft_loop *c = ctx;
    plm_ft_config_kv extra[] = {{"chat_template", plm_chat_template_name(c->t), 0},
                                {"max_seq_length", NULL, c->max_seq_length}};
    plm_ft_config_task ct = {
        .name = "sft", .type = "sft", .n_metrics = 3, .metrics = plm_sft_metrics, .n_extra = 2, .extra = extra};
    return plm_ft_save_dir(m, c->tok, &ct, dir, meta_kv, n_meta);
}

int plm_sft_train(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *train, const plm_sft_data *valid,
                  plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best) {
    return plm_sft_train_ex(m, tok, train, valid, t, a, false, best);
}

int plm_sft_train_ex(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *train, const plm_sft_data *valid,
                     plm_chat_template t, const plm_ft_args *a, bool packing, plm_ft_scores *best) {
    if (plm_model_head(m, PLM_HEAD_LM) != 0 || m->num_backbones != 1 || !m->config.is_decoder) {
        plm_error("sft needs a causal language model (is_decoder true, an LM head); this is a %s%s",
                  plm_model_architecture(m), m->config.is_decoder ? "" : " with bidirectional attention");
        return PLM_EXIT_INPUT;
    }
    if (train->n == 0) {
        plm_error("no training examples");
        return PLM_EXIT_INPUT;
    }
    sft_loop c = {.tok = tok,
                  .train = train,
                  .valid = valid && valid->n > 0 ? valid : NULL,
                  .t = t,
                  .max_seq_length = a->max_seq_length,
                  .pad = plm_sft_pad_id(m, tok),
                  .majority = plm_sft_majority_token(train, m->config.vocab_size)};
    plm_sft_packs packs = {0};
    int row_len = train->max_len; /* the longest training row */
    if (packing) {
        int cap = a->max_seq_length > 0 ? a->max_seq_length : train->max_len;
        if (train->max_len > cap) {
            plm_error("--packing: an example of %d tokens is longer than --max-seq-length %d", train->max_len, cap);
            return PLM_EXIT_USAGE;
        }
        c.max_seq_length = cap;
        plm_sft_pack(train, cap, a->seed, &packs);
        c.packs = &packs;
        row_len = packs.max_len;
        if (!a->quiet && plm_dist_is_root())
            printf("sft: packed %d examples into %d rows of %d tokens: packing efficiency %.4f (real tokens / (rows "
                   "x max_seq_length))\n",
                   train->n, packs.n, cap, plm_sft_packing_efficiency(&packs, cap));
    }
    int max_len = row_len;
    if (c.valid) max_len = PLM_MAX(max_len, c.valid->max_len);
    /* the batch buffers at their largest now: a later, longer batch must not allocate in a step */
    plm_sft_batch_reserve(&c.bb, (size_t)PLM_MAX(a->train_batch_size, 1) * (size_t)PLM_MAX(row_len, 1));
    plm_ft_loop_task lt = {.name = "sft",
                           .n_metrics = 3,
                           .metrics = plm_sft_metrics,
                           .lower_is_better = true,
                           .n_train = packing ? packs.n : train->n,
                           .max_len = max_len,
                           .has_dev = c.valid != NULL,
                           .ctx = &c,
                           .train_batch = sft_train_batch,
                           .evaluate = sft_eval,
                           .save_model = sft_save,
                           .step_fields = packing ? sft_step_fields : NULL};
    int rc = plm_ft_train(m, &lt, a, best);
    plm_sft_batch_free(&c.bb);
    plm_sft_packs_free(&packs);
    return rc;
}
