/* lm_score.c - see lm_score.h */
#include "lm_score.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "model/crossentropy.h"

static int check_lm(const plm_model *m) {
    if (plm_model_head(m, PLM_HEAD_LM) < 0) {
        plm_error("the model (%s) has no language-model head", plm_model_architecture(m));
        return -1;
    }
    if (!m->config.is_decoder) {
        plm_error("the model (%s) is a bidirectional encoder (is_decoder false): left-to-right log-likelihoods need "
                  "a causal model",
                  plm_model_architecture(m));
        return -1;
    }
    return 0;
}

typedef struct {
    int len, idx;
} by_len;

static int len_desc(const void *a, const void *b) {
    const by_len *x = a, *y = b;
    if (x->len != y->len) return x->len < y->len ? 1 : -1;
    return x->idx - y->idx; /* stable: the order of equal lengths is the input's */
}

int plm_lm_score(plm_model *m, plm_lm_request *reqs, int n, int batch_size, plm_progress *progress) {
    if (check_lm(m) != 0) return -1;
    if (n <= 0) return 0;
    int P = m->config.max_position_embeddings, V = m->config.vocab_size;
    if (batch_size < 1) batch_size = 1;
    by_len *order = plm_malloc((size_t)n * sizeof *order);
    for (int i = 0; i < n; i++) {
        const plm_lm_request *r = &reqs[i];
        if (r->n_ctx < 1 || r->n_cont < 1 || r->n_ctx + r->n_cont > P) {
            plm_error("score request %d: %d context + %d continuation tokens (need >= 1 each, at most %d in all)", i,
                      r->n_ctx, r->n_cont, P);
            free(order);
            return -1;
        }
        order[i] = (by_len){r->n_ctx + r->n_cont, i};
    }
    qsort(order, (size_t)n, sizeof *order, len_desc);
    /* the input is the sequence minus its last token: the last token is only predicted */
    int Tmax = order[0].len - 1;
    if (Tmax < 1) Tmax = 1;
    if (plm_model_reserve(m, batch_size, Tmax) != 0) {
        free(order);
        return -1;
    }
    int32_t *ids = plm_malloc((size_t)batch_size * Tmax * sizeof(int32_t));
    int32_t *labels = plm_malloc((size_t)batch_size * Tmax * sizeof(int32_t));
    int32_t *rows = plm_malloc((size_t)batch_size * Tmax * sizeof(int32_t));
    float *logits = NULL;
    size_t logits_cap = 0;
    int rc = 0;
    for (int s = 0; s < n && rc == 0; s += batch_size) {
        int B = PLM_MIN(batch_size, n - s);
        int T = order[s].len - 1; /* the longest of the batch (sorted) */
        if (T < 1) T = 1;
        int nrows = 0;
        for (int b = 0; b < B; b++) {
            const plm_lm_request *r = &reqs[order[s + b].idx];
            int32_t *row = ids + (size_t)b * T;
            int k = 0;
            for (int i = 0; i < r->n_ctx && k < T; i++) row[k++] = r->ctx[i];
            for (int i = 0; i < r->n_cont && k < T; i++) row[k++] = r->cont[i];
            for (; k < T; k++) row[k] = 0; /* right padding: never attended to by the scored positions */
            /* continuation token i is predicted at position n_ctx - 1 + i */
            for (int i = 0; i < r->n_cont; i++) rows[nrows++] = b * T + r->n_ctx - 1 + i;
        }
        for (size_t i = 0; i < (size_t)B * T; i++) labels[i] = PLM_IGNORE_INDEX; /* no loss: logits read below */
        plm_batch batch = {.B = B, .T = T, .input_ids = ids, .labels = labels, .causal = true};
        if (plm_model_run(m, 0, &batch, false, 1.0f) != 0) {
            rc = -1;
            break;
        }
        if ((size_t)nrows * V > logits_cap) {
            logits_cap = (size_t)nrows * V;
            free(logits);
            logits = plm_malloc(logits_cap * sizeof(float));
        }
        plm_model_logits_at(m, rows, nrows, logits);
        int q = 0;
        for (int b = 0; b < B; b++) {
            plm_lm_request *r = &reqs[order[s + b].idx];
            double lp = 0.0;
            bool greedy = true;
            for (int i = 0; i < r->n_cont; i++, q++) {
                const float *z = logits + (size_t)q * V;
                int arg = 0;
                for (int v = 1; v < V; v++)
                    if (z[v] > z[arg]) arg = v;
                /* log softmax(z)[y] = z[y] - max - log sum exp(z - max), in double */
                double mx = z[arg], sum = 0.0;
                for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
                int y = r->cont[i];
                lp += (double)z[y] - mx - log(sum);
                if (arg != y) greedy = false;
            }
            r->logprob = lp;
            r->greedy = greedy;
        }
        if (progress) plm_progress_update(progress, s + B, NULL);
    }
    free(order);
    free(ids);
    free(labels);
    free(rows);
    free(logits);
    return rc;
}

int plm_lm_perplexity(plm_model *m, const int32_t *ids, size_t n, int max_length, int stride, int batch_size,
                      plm_progress *progress, plm_ppl_result *out) {
    memset(out, 0, sizeof *out);
    if (check_lm(m) != 0) return -1;
    if (max_length < 2 || max_length > m->config.max_position_embeddings) {
        plm_error("perplexity: max_length %d must be in 2..%d (max_position_embeddings)", max_length,
                  m->config.max_position_embeddings);
        return -1;
    }
    if (stride < 1 || stride > max_length) {
        plm_error("perplexity: stride %d must be in 1..%d (max_length)", stride, max_length);
        return -1;
    }
    if (n < 2) {
        plm_error("perplexity: %zu tokens: nothing to predict", n);
        return -1;
    }
    if (batch_size < 1) batch_size = 1;
    /* The windows as HF's loop makes them: begin = 0, stride, 2 stride, ...; end =
     * min(begin + max_length, n); stop after the window that reaches n. Window w scores
     * the tokens [max(prev_end, 1), end): in input positions t (predicting ids[begin+t+1])
     * that is t in [max(prev_end, 1) - 1 - begin, end - 1 - begin). */
    size_t nw = 0;
    for (size_t begin = 0;; begin += (size_t)stride) {
        nw++;
        if (begin + (size_t)max_length >= n) break;
    }
    int T = (int)PLM_MIN((size_t)max_length, n) - 1; /* input tokens of a full window */
    if (plm_model_reserve(m, batch_size, T) != 0) return -1;
    int32_t *in = plm_malloc((size_t)batch_size * T * sizeof(int32_t));
    int32_t *labels = plm_malloc((size_t)batch_size * T * sizeof(int32_t));
    size_t w = 0, prev_end = 0;
    int rc = 0;
    while (w < nw) {
        /* a batch of windows of one length: all are full but (possibly) the last */
        int B = 0, Tb = 0;
        while (B < batch_size && w + (size_t)B < nw) {
            size_t begin = (w + (size_t)B) * (size_t)stride, end = PLM_MIN(begin + (size_t)max_length, n);
            int len = (int)(end - begin) - 1;
            if (B > 0 && len != Tb) break;
            Tb = len;
            int32_t *x = in + (size_t)B * Tb, *y = labels + (size_t)B * Tb;
            size_t first = PLM_MAX(prev_end, (size_t)1); /* first token this window scores */
            for (int t = 0; t < Tb; t++) {
                size_t target = begin + (size_t)t + 1;
                x[t] = ids[begin + (size_t)t];
                y[t] = target >= first && target < end ? ids[target] : PLM_IGNORE_INDEX;
            }
            prev_end = end;
            B++;
        }
        plm_batch batch = {.B = B, .T = Tb, .input_ids = in, .labels = labels, .causal = true};
        plm_ce_result r = plm_model_forward(m, &batch, false, 1.0f);
        if (r.count == 0 && isnan(r.loss_sum)) {
            rc = -1;
            break;
        }
        out->nll += r.loss_sum;
        out->tokens += r.count;
        out->correct += r.correct;
        w += (size_t)B;
        out->windows += B;
        if (progress) {
            char status[64];
            snprintf(status, sizeof status, "ppl %.3f", exp(out->nll / (double)PLM_MAX(out->tokens, 1L)));
            plm_progress_update(progress, (long)w, status);
        }
    }
    free(in);
    free(labels);
    return rc;
}
