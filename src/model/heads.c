/* heads.c - see heads.h */
#include "heads.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "dropout.h"
#include "gelu.h"
#include "gemm.h"
#include "layernorm.h"
#include "linear.h"

const char *head_kind_name(plm_head_kind k) {
    static const char *names[] = {"lm", "nsp", "sequence-classification", "token-classification", "qa", "rtd"};
    return (unsigned)k < PLM_ARRAY_LEN(names) ? names[k] : "?";
}

/* BERT's classification and NSP heads read the pooler; ELECTRA's and GPT-2's do not. */
bool head_uses_pooler(const plm_head_spec *spec, plm_arch arch) {
    return arch == PLM_ARCH_BERT &&
           (spec->kind == PLM_HEAD_NSP || (spec->kind == PLM_HEAD_SEQ_CLS && spec->pooling == PLM_SEQ_POOL_DEFAULT));
}

const char *head_pooling_name(plm_seq_pooling p) {
    return p == PLM_SEQ_POOL_CLS ? "cls" : p == PLM_SEQ_POOL_MEAN ? "mean" : "pooler";
}

int head_pooling_of(const char *name, plm_seq_pooling *out) {
    for (int p = PLM_SEQ_POOL_DEFAULT; p <= PLM_SEQ_POOL_MEAN; p++)
        if (!strcmp(name, head_pooling_name((plm_seq_pooling)p))) {
            *out = (plm_seq_pooling)p;
            return 0;
        }
    return -1;
}

/* The real tokens of row r: the attention mask's ones, or all T without a mask. */
static bool is_real(const plm_batch *b, int r, int t) {
    return !b->attention_mask || b->attention_mask[(size_t)r * b->T + t];
}

/* v[r] = mean of hid[r, t] over the real tokens t (pooling mean). */
static void mean_pool(float *v, const float *hid, const plm_batch *b, int C) {
    for (int r = 0; r < b->B; r++) {
        float *o = v + (size_t)r * C;
        memset(o, 0, (size_t)C * sizeof(float));
        int n = 0;
        for (int t = 0; t < b->T; t++)
            if (is_real(b, r, t)) {
                const float *x = hid + ((size_t)r * b->T + t) * C;
                for (int i = 0; i < C; i++) o[i] += x[i];
                n++;
            }
        float inv = n ? 1.0f / (float)n : 0.0f;
        for (int i = 0; i < C; i++) o[i] *= inv;
    }
}

/* dhidden[r, t] += dv[r] / n_r over the real tokens t: the mean's gradient. */
static void mean_pool_backward(float *dhid, const float *dv, const plm_batch *b, int C) {
    for (int r = 0; r < b->B; r++) {
        int n = 0;
        for (int t = 0; t < b->T; t++) n += is_real(b, r, t);
        if (!n) continue;
        float inv = 1.0f / (float)n;
        const float *g = dv + (size_t)r * C;
        for (int t = 0; t < b->T; t++)
            if (is_real(b, r, t)) {
                float *d = dhid + ((size_t)r * b->T + t) * C;
                for (int i = 0; i < C; i++) d[i] += inv * g[i];
            }
    }
}

void head_setup(plm_head *h, const plm_head_spec *spec, const plm_backbone *bb) {
    const plm_config *c = &bb->config;
    h->spec = *spec;
    h->in_dim = h->hidden = c->hidden_size;
    h->in_scale = 1.0f;
    switch (spec->kind) {
    case PLM_HEAD_LM:
        h->K = c->vocab_size;
        h->in_dim = bb->E;
        h->transform = c->arch != PLM_ARCH_GPT2 && c->arch != PLM_ARCH_T5;
        if (c->arch == PLM_ARCH_T5 && c->tie_word_embeddings) h->in_scale = 1.0f / sqrtf((float)c->hidden_size);
        break;
    case PLM_HEAD_NSP:
        h->K = 2;
        break;
    case PLM_HEAD_QA:
        h->K = 2;
        break;
    case PLM_HEAD_RTD:
        h->K = 1;
        break;
    default:
        h->K = spec->num_labels;
        break;
    }
}

void head_reserve(plm_head *h, int B, int T) {
    size_t N = (size_t)B * T;
    if ((size_t)h->cap >= N) return;
    plm_zeroed_free(h->block, h->block_bytes);
    free(h->rows);
    free(h->targets);
    free(h->row_loss);
    free(h->row_weight);
    h->cap = (int)N;
    /* x, d1, d1g, t, dx, dt, dd: [N, max(C, E)] each; logits [N, K]; LN stats */
    size_t width = (size_t)PLM_MAX(h->in_dim, h->hidden);
    size_t total = 7 * (N * width + 16) + N * (size_t)h->K + 16 + 2 * (N + 16);
    /* zero pages mapped on first touch: the LM head's logits are sized for every row but
     * only the labelled rows (15% under MLM, the masks in fill-mask) are ever written */
    float *p = plm_zeroed_alloc(total * sizeof(float));
    h->block = p;
    h->block_bytes = total * sizeof(float);
#define TAKE(n) (p += (((n) + 15) & ~(size_t)15), p - (((n) + 15) & ~(size_t)15))
    h->x = TAKE(N * width);
    h->d1 = TAKE(N * width);
    h->d1g = TAKE(N * width);
    h->t = TAKE(N * width);
    h->dx = TAKE(N * width);
    h->dt = TAKE(N * width);
    h->dd = TAKE(N * width);
    h->logits = TAKE(N * (size_t)h->K);
    h->tmean = TAKE(N);
    h->trstd = TAKE(N);
#undef TAKE
    h->rows = plm_malloc(N * sizeof(int32_t));
    h->targets = plm_malloc(N * sizeof(int32_t));
    h->row_loss = plm_malloc(N * sizeof(double));
    h->row_weight = plm_malloc(N * sizeof(float));
}

void head_free(plm_head *h) {
    plm_zeroed_free(h->block, h->block_bytes);
    free(h->rows);
    free(h->targets);
    free(h->row_loss);
    free(h->row_weight);
    h->block = NULL;
    h->rows = h->targets = NULL;
    h->row_loss = NULL;
    h->row_weight = NULL;
    h->cap = 0;
}

/* ---------------------------------------------------------------- labels */

int head_check_labels(const plm_head *h, const plm_batch *b, const char *what) {
    size_t N = (size_t)b->B * b->T;
    if (b->pairwise) {
        if (h->spec.kind != PLM_HEAD_SEQ_CLS || h->K != 1) {
            plm_error("%s: a pairwise (reward) batch needs a sequence head with one output, not a %s head with %d",
                      what, head_kind_name(h->spec.kind), h->K);
            return -1;
        }
        if (b->B % 2 != 0 || !isfinite(b->center_rewards) || b->center_rewards < 0) {
            plm_error("%s: a pairwise batch needs an even number of rows (%d) and a finite center_rewards >= 0 (%g)",
                      what, b->B, b->center_rewards);
            return -1;
        }
        return 0;
    }
    switch (h->spec.kind) {
    case PLM_HEAD_LM:
    case PLM_HEAD_TOKEN_CLS:
    case PLM_HEAD_RTD: {
        if (!b->labels) {
            plm_error("%s: the %s head needs per-token labels", what, head_kind_name(h->spec.kind));
            return -1;
        }
        int K = h->spec.kind == PLM_HEAD_RTD ? 2 : h->K;
        if (b->label_weights && h->spec.kind != PLM_HEAD_LM) {
            plm_error("%s: label_weights are for the LM head only", what);
            return -1;
        }
        for (size_t i = 0; i < N; i++) {
            if (b->label_weights && !isfinite(b->label_weights[i])) {
                plm_error("%s: label weight %g at position %zu is not finite", what, b->label_weights[i], i);
                return -1;
            }
            int y = b->labels[i];
            if (y != PLM_IGNORE_INDEX && (y < 0 || y >= K)) {
                plm_error("%s: label %d at position %zu is outside 0..%d (or -100) for the %s head", what, y, i, K - 1,
                          head_kind_name(h->spec.kind));
                return -1;
            }
        }
        return 0;
    }
    case PLM_HEAD_NSP:
    case PLM_HEAD_SEQ_CLS:
        if (h->spec.kind == PLM_HEAD_SEQ_CLS && h->K == 1) {
            if (!b->seq_targets) {
                plm_error("%s: the regression head needs seq_targets", what);
                return -1;
            }
            for (int i = 0; i < b->B; i++)
                if (!isfinite(b->seq_targets[i])) {
                    plm_error("%s: regression target %d is not finite", what, i);
                    return -1;
                }
            return 0;
        }
        if (!b->seq_labels) {
            plm_error("%s: the %s head needs seq_labels", what, head_kind_name(h->spec.kind));
            return -1;
        }
        for (int i = 0; i < b->B; i++) {
            int y = b->seq_labels[i];
            if (y != PLM_IGNORE_INDEX && (y < 0 || y >= h->K)) {
                plm_error("%s: label %d of sequence %d is outside 0..%d", what, y, i, h->K - 1);
                return -1;
            }
        }
        return 0;
    case PLM_HEAD_QA:
        if (!b->start_positions || !b->end_positions) {
            plm_error("%s: the QA head needs start_positions and end_positions", what);
            return -1;
        }
        /* HF clamps positions to [0, T] and ignores T (an answer truncated away) */
        for (int i = 0; i < b->B; i++) {
            int s = b->start_positions[i], e = b->end_positions[i];
            if ((s != PLM_IGNORE_INDEX && (s < 0 || s > b->T)) || (e != PLM_IGNORE_INDEX && (e < 0 || e > b->T))) {
                plm_error("%s: answer span [%d, %d] of sequence %d is outside 0..%d", what, s, e, i, b->T);
                return -1;
            }
        }
        return 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- helpers */

static uint64_t head_key(const plm_head *h, const plm_backbone *bb, int site) {
    return backbone_drop_key(bb, bb->config.num_hidden_layers + h->index, site);
}

/* HF's ELECTRA generator and classification heads use erf GELU whatever hidden_act says
 * (get_activation("gelu")); BERT's LM transform and ELECTRA's RTD head use hidden_act. */
static plm_gelu_kind head_act(const plm_head *h, const plm_config *c) {
    bool erf = c->arch == PLM_ARCH_ELECTRA && (h->spec.kind == PLM_HEAD_LM || h->spec.kind == PLM_HEAD_SEQ_CLS);
    return erf ? PLM_GELU_ERF : c->hidden_act;
}

static float head_dropout(const plm_backbone *bb) { return bb->training ? bb->config.hidden_dropout_prob : 0.0f; }

/* Gathers the rows of hidden (or pooled) that the head reads into h->x. */
static void gather(plm_head *h, const float *src, int C) {
    for (int r = 0; r < h->num_rows; r++)
        memcpy(h->x + (size_t)r * C, src + (size_t)h->rows[r] * C, (size_t)C * sizeof(float));
}

static void scatter_add(float *dst, const float *src, const int32_t *rows, int n, int C) {
    for (int r = 0; r < n; r++) {
        float *d = dst + (size_t)rows[r] * C;
        const float *s = src + (size_t)r * C;
        for (int i = 0; i < C; i++) d[i] += s[i];
    }
}

/* Binary cross-entropy with logits, mean over counted rows:
 *   loss = max(z, 0) - z y + log(1 + e^-|z|);  dloss/dz = sigmoid(z) - y */
static plm_ce_result bce_forward_backward(float *z, const int32_t *y, int M, bool backward, float grad_scale) {
    plm_ce_result r = {0.0, 0, 0};
    for (int i = 0; i < M; i++) {
        if (y[i] == PLM_IGNORE_INDEX) {
            if (backward) z[i] = 0.0f;
            continue;
        }
        float x = z[i], t = (float)y[i];
        r.loss_sum += (double)(fmaxf(x, 0.0f) - x * t + log1pf(expf(-fabsf(x))));
        r.count++;
        r.correct += (x > 0.0f) == (y[i] == 1);
        if (backward) z[i] = (1.0f / (1.0f + expf(-x)) - t) * grad_scale;
    }
    return r;
}

static int count_targets(const int32_t *t, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += t[i] != PLM_IGNORE_INDEX;
    return k;
}

/* ---------------------------------------------------------------- forward */

/* The LM transform (dense -> GELU -> LN) on the gathered rows; returns its output. */
static const float *lm_transform(plm_head *h, const plm_backbone *bb) {
    const plm_config *c = &bb->config;
    int M = h->num_rows, C = c->hidden_size, E = h->in_dim;
    if (h->in_scale != 1.0f)
        for (size_t i = 0; i < (size_t)M * C; i++) h->x[i] *= h->in_scale;
    if (!h->transform) return h->x;
    linear_forward(h->d1, h->x, h->w.dense_w, h->w.dense_b, M, C, E);
    gelu_forward(h->d1g, h->d1, (size_t)M * E, head_act(h, c));
    layernorm_forward(h->t, h->tmean, h->trstd, h->d1g, h->w.ln_w, h->w.ln_b, M, E, c->layer_norm_eps);
    return h->t;
}

void head_lm_logits_at(plm_head *h, const plm_backbone *bb, const int32_t *rows, int n, float *out) {
    h->num_rows = n;
    memcpy(h->rows, rows, (size_t)n * sizeof(int32_t));
    gather(h, backbone_hidden(bb), bb->config.hidden_size);
    const float *in = lm_transform(h, bb);
    linear_forward(out, in, h->w.out_w, h->w.out_b, n, h->in_dim, h->K);
}

void head_forward(plm_head *h, plm_backbone *bb, const plm_batch *b, bool want_grad, float grad_scale) {
    const plm_config *c = &bb->config;
    int B = b->B, T = b->T, C = c->hidden_size, K = h->K, N = B * T;
    float pd = head_dropout(bb);
    const float *hid = backbone_hidden(bb);
    h->result = (plm_ce_result){0.0, 0, 0};
    h->loss = NAN;
    double weighted = NAN; /* the LM loss under label_weights */
    float s = grad_scale * h->spec.weight;
    switch (h->spec.kind) {
    case PLM_HEAD_LM: {
        /* only rows with a label go through the head */
        int M = 0;
        for (int i = 0; i < N; i++)
            if (b->labels[i] != PLM_IGNORE_INDEX) {
                h->rows[M] = i;
                h->targets[M++] = b->labels[i];
            }
        h->num_rows = M;
        if (M == 0) return;
        gather(h, hid, C);
        const float *in = lm_transform(h, bb);
        linear_forward(h->logits, in, h->w.out_w, h->w.out_b, M, h->in_dim, K);
        /* under bf16 the loss pass also writes the gradient's bf16 copy, which the head's
         * backward (linear_backward on h->logits, next) holds for both of its products */
        uint16_t *g16 = want_grad ? plm_gemm_bf16_hold_begin(h->logits, (size_t)M * K) : NULL;
        if (b->label_weights) { /* the gradient of sum_k w_k CE_k: each row scaled by its weight */
            for (int k = 0; k < M; k++) h->row_weight[k] = b->label_weights[h->rows[k]];
            h->result = crossentropy_forward_backward_ex(h->logits, h->targets, M, K, want_grad, s, h->row_weight,
                                                         h->row_loss, g16);
            weighted = 0.0;
            for (int k = 0; k < M; k++) weighted += (double)h->row_weight[k] * h->row_loss[k];
        } else {
            h->result = crossentropy_forward_backward_ex(h->logits, h->targets, M, K, want_grad, s / (float)M, NULL,
                                                         h->row_loss, g16);
        }
        if (g16 && h->result.count == 0) plm_gemm_bf16_release(); /* head_backward will not run */
        break;
    }
    case PLM_HEAD_NSP:
    case PLM_HEAD_SEQ_CLS: {
        h->num_rows = B;
        bool regression = h->spec.kind == PLM_HEAD_SEQ_CLS && K == 1;
        if (h->spec.kind == PLM_HEAD_SEQ_CLS && h->spec.pooling != PLM_SEQ_POOL_DEFAULT) {
            /* classifier(dropout(v)), v = h[:, 0] or the mean over the real tokens */
            if (h->spec.pooling == PLM_SEQ_POOL_CLS) {
                for (int r = 0; r < B; r++) h->rows[r] = r * T;
                gather(h, hid, C);
            } else {
                mean_pool(h->x, hid, b, C);
            }
            dropout_forward(h->x, h->x, (size_t)B * C, pd, head_key(h, bb, 0));
            linear_forward(h->logits, h->x, h->w.out_w, c->arch == PLM_ARCH_GPT2 ? NULL : h->w.out_b, B, C, K);
        } else if (head_uses_pooler(&h->spec, c->arch)) {
            /* BERT: classifier(dropout(pooled)); NSP has no dropout */
            for (int r = 0; r < B; r++) h->rows[r] = r;
            gather(h, bb->pooled, C);
            if (h->spec.kind == PLM_HEAD_SEQ_CLS) dropout_forward(h->x, h->x, (size_t)B * C, pd, head_key(h, bb, 0));
            linear_forward(h->logits, h->x, h->w.out_w, h->w.out_b, B, C, K);
        } else if (c->arch == PLM_ARCH_ELECTRA) {
            /* out_proj(dropout(gelu(dense(dropout(h[:, 0]))))) */
            for (int r = 0; r < B; r++) h->rows[r] = r * T;
            gather(h, hid, C);
            dropout_forward(h->x, h->x, (size_t)B * C, pd, head_key(h, bb, 0));
            linear_forward(h->d1, h->x, h->w.dense_w, h->w.dense_b, B, C, C);
            gelu_forward(h->d1g, h->d1, (size_t)B * C, head_act(h, c));
            dropout_forward(h->t, h->d1g, (size_t)B * C, pd, head_key(h, bb, 1));
            linear_forward(h->logits, h->t, h->w.out_w, h->w.out_b, B, C, K);
        } else {
            /* GPT-2: score(h at the last real token), no bias */
            for (int r = 0; r < B; r++) {
                /* the last real token: by the mask, else (as HF) the last that is not padding */
                int last = T - 1, pad = c->pad_token_id;
                if (b->attention_mask)
                    while (last > 0 && !b->attention_mask[(size_t)r * T + last]) last--;
                else if (pad >= 0)
                    while (last > 0 && b->input_ids[(size_t)r * T + last] == pad) last--;
                h->rows[r] = r * T + last;
            }
            gather(h, hid, C);
            linear_forward(h->logits, h->x, h->w.out_w, NULL, B, C, K);
        }
        if (regression && b->pairwise) {
            /* a reward model: Bradley-Terry over the (chosen, rejected) row pairs, mean over pairs */
            int n = B / 2;
            pairwise_forward(h->logits, n, b->center_rewards, &h->pairs);
            if (want_grad) pairwise_backward(h->logits, h->logits, n, b->center_rewards, n ? s / (float)n : 0.0f);
            h->result = (plm_ce_result){h->pairs.loss_sum, n, h->pairs.correct};
        } else if (regression) {
            /* mean squared error */
            for (int r = 0; r < B; r++) {
                float d = h->logits[r] - b->seq_targets[r];
                h->result.loss_sum += (double)d * d;
                if (want_grad) h->logits[r] = 2.0f * d * s / (float)B;
            }
            h->result.count = B;
        } else {
            for (int r = 0; r < B; r++) h->targets[r] = b->seq_labels[r];
            int n = count_targets(h->targets, B);
            h->result = crossentropy_forward_backward(h->logits, h->targets, B, K, want_grad, n ? s / (float)n : 0);
        }
        break;
    }
    case PLM_HEAD_TOKEN_CLS: {
        h->num_rows = N;
        dropout_forward(h->x, hid, (size_t)N * C, pd, head_key(h, bb, 0));
        linear_forward(h->logits, h->x, h->w.out_w, h->w.out_b, N, C, K);
        int n = count_targets(b->labels, N);
        h->result = crossentropy_forward_backward(h->logits, b->labels, N, K, want_grad, n ? s / (float)n : 0);
        break;
    }
    case PLM_HEAD_QA: {
        /* logits [N, 2] -> start [B, T] (d1) and end [B, T] (d1g); two cross-entropies */
        h->num_rows = N;
        linear_forward(h->logits, hid, h->w.out_w, h->w.out_b, N, C, 2);
        float *st = h->d1, *en = h->d1g;
        for (int i = 0; i < N; i++) {
            st[i] = h->logits[2 * i];
            en[i] = h->logits[2 * i + 1];
        }
        int32_t *ts = h->targets, *te = h->rows;
        for (int r = 0; r < B; r++) {
            int sp = b->start_positions[r], ep = b->end_positions[r];
            ts[r] = sp >= 0 && sp < T ? sp : PLM_IGNORE_INDEX;
            te[r] = ep >= 0 && ep < T ? ep : PLM_IGNORE_INDEX;
        }
        int ns = count_targets(ts, B), ne = count_targets(te, B);
        plm_ce_result rs = crossentropy_forward_backward(st, ts, B, T, want_grad, ns ? 0.5f * s / (float)ns : 0);
        plm_ce_result re = crossentropy_forward_backward(en, te, B, T, want_grad, ne ? 0.5f * s / (float)ne : 0);
        h->result.count = rs.count;
        h->result.correct = PLM_MIN(rs.correct, re.correct);
        /* loss = (mean start loss + mean end loss) / 2, reported as a sum over count */
        double ls = rs.count ? rs.loss_sum / rs.count : 0.0, le = re.count ? re.loss_sum / re.count : 0.0;
        h->result.loss_sum = 0.5 * (ls + le) * (rs.count ? rs.count : 1);
        if (!rs.count && !re.count) h->result.loss_sum = 0.0;
        if (!rs.count) h->result.count = re.count;
        h->loss = (rs.count || re.count) ? 0.5 * (ls + le) : NAN;
        if (want_grad)
            for (int i = 0; i < N; i++) {
                h->logits[2 * i] = st[i];
                h->logits[2 * i + 1] = en[i];
            }
        return;
    }
    case PLM_HEAD_RTD: {
        /* logit = dense_prediction(gelu(dense(h))) per token */
        h->num_rows = N;
        linear_forward(h->d1, hid, h->w.dense_w, h->w.dense_b, N, C, C);
        gelu_forward(h->d1g, h->d1, (size_t)N * C, c->hidden_act);
        linear_forward(h->logits, h->d1g, h->w.out_w, h->w.out_b, N, C, 1);
        int n = count_targets(b->labels, N);
        h->result = bce_forward_backward(h->logits, b->labels, N, want_grad, n ? s / (float)n : 0);
        break;
    }
    }
    h->loss = !isnan(weighted) ? weighted : h->result.count ? h->result.loss_sum / h->result.count : NAN;
}

/* ---------------------------------------------------------------- backward */

void head_backward(plm_head *h, plm_backbone *bb, const plm_batch *b) {
    const plm_config *c = &bb->config;
    int B = b->B, T = b->T, C = c->hidden_size, K = h->K, N = B * T, M = h->num_rows;
    float pd = head_dropout(bb);
    const float *hid = backbone_hidden(bb);
    (void)T;
    if (h->result.count == 0) return;
    switch (h->spec.kind) {
    case PLM_HEAD_LM: {
        int E = h->in_dim;
        const float *in = h->transform ? h->t : h->x;
        float *din = h->transform ? h->dt : h->dx;
        linear_backward(din, h->g.out_w, h->g.out_b, h->logits, in, h->w.out_w, M, E, K, false);
        if (h->transform) {
            layernorm_backward(h->dd, h->g.ln_w, h->g.ln_b, h->dt, h->d1g, h->w.ln_w, h->tmean, h->trstd, M, E, false);
            gelu_backward(h->dd, h->d1, h->dd, (size_t)M * E, head_act(h, c));
            linear_backward(h->dx, h->g.dense_w, h->g.dense_b, h->dd, h->x, h->w.dense_w, M, C, E, false);
        }
        if (h->in_scale != 1.0f)
            for (size_t i = 0; i < (size_t)M * C; i++) h->dx[i] *= h->in_scale;
        scatter_add(bb->dhidden, h->dx, h->rows, M, C);
        break;
    }
    case PLM_HEAD_NSP:
    case PLM_HEAD_SEQ_CLS:
        if (h->spec.kind == PLM_HEAD_SEQ_CLS && h->spec.pooling != PLM_SEQ_POOL_DEFAULT) {
            linear_backward(h->dx, h->g.out_w, c->arch == PLM_ARCH_GPT2 ? NULL : h->g.out_b, h->logits, h->x,
                            h->w.out_w, B, C, K, false);
            dropout_backward(h->dx, h->dx, (size_t)B * C, pd, head_key(h, bb, 0));
            if (h->spec.pooling == PLM_SEQ_POOL_CLS)
                scatter_add(bb->dhidden, h->dx, h->rows, B, C);
            else
                mean_pool_backward(bb->dhidden, h->dx, b, C);
        } else if (head_uses_pooler(&h->spec, c->arch)) {
            linear_backward(h->dx, h->g.out_w, h->g.out_b, h->logits, h->x, h->w.out_w, B, C, K, false);
            if (h->spec.kind == PLM_HEAD_SEQ_CLS) dropout_backward(h->dx, h->dx, (size_t)B * C, pd, head_key(h, bb, 0));
            for (size_t i = 0; i < (size_t)B * C; i++) bb->dpooled[i] += h->dx[i];
        } else if (c->arch == PLM_ARCH_ELECTRA) {
            linear_backward(h->dt, h->g.out_w, h->g.out_b, h->logits, h->t, h->w.out_w, B, C, K, false);
            dropout_backward(h->dt, h->dt, (size_t)B * C, pd, head_key(h, bb, 1));
            gelu_backward(h->dt, h->d1, h->dt, (size_t)B * C, head_act(h, c));
            linear_backward(h->dx, h->g.dense_w, h->g.dense_b, h->dt, h->x, h->w.dense_w, B, C, C, false);
            dropout_backward(h->dx, h->dx, (size_t)B * C, pd, head_key(h, bb, 0));
            scatter_add(bb->dhidden, h->dx, h->rows, B, C);
        } else {
            linear_backward(h->dx, h->g.out_w, NULL, h->logits, h->x, h->w.out_w, B, C, K, false);
            scatter_add(bb->dhidden, h->dx, h->rows, B, C);
        }
        break;
    case PLM_HEAD_TOKEN_CLS:
        linear_backward(h->dx, h->g.out_w, h->g.out_b, h->logits, h->x, h->w.out_w, N, C, K, false);
        dropout_backward(h->dx, h->dx, (size_t)N * C, pd, head_key(h, bb, 0));
        for (size_t i = 0; i < (size_t)N * C; i++) bb->dhidden[i] += h->dx[i];
        break;
    case PLM_HEAD_QA:
        linear_backward(bb->dhidden, h->g.out_w, h->g.out_b, h->logits, hid, h->w.out_w, N, C, 2, true);
        break;
    case PLM_HEAD_RTD:
        linear_backward(h->dt, h->g.out_w, h->g.out_b, h->logits, h->d1g, h->w.out_w, N, C, 1, false);
        gelu_backward(h->dt, h->d1, h->dt, (size_t)N * C, c->hidden_act);
        linear_backward(bb->dhidden, h->g.dense_w, h->g.dense_b, h->dt, hid, h->w.dense_w, N, C, C, true);
        break;
    }
}
