/* unmask.c - see unmask.h */
#include "unmask.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"

/* LM-head rows computed per plm_model_logits_at call: bounds the logits buffer to
 * LOGIT_ROWS x V floats however many positions a batch masks. */
enum { LOGIT_ROWS = 256 };

void plm_unmask_opts_default(plm_unmask_opts *o) {
    o->iterations = 10;
    o->strategy = PLM_UNMASK_MASK_PREDICT;
    plm_sampling_default(&o->sampling);
    o->sampling.do_sample = false;
    o->mask_token_id = -1;
    o->pad_token_id = -1;
    o->first_index = 0;
}

int plm_unmask_strategy_parse(const char *name) {
    if (strcmp(name, "mask-predict") == 0) return PLM_UNMASK_MASK_PREDICT;
    if (strcmp(name, "confidence") == 0) return PLM_UNMASK_CONFIDENCE;
    return -1;
}

const char *plm_unmask_strategy_name(plm_unmask_strategy s) {
    return s == PLM_UNMASK_CONFIDENCE ? "confidence" : "mask-predict";
}

int plm_unmask_count(int L, int t, int N) {
    if (N < 1 || t >= N) return 0;
    if (t <= 0) return L;
    return (int)((long long)L * (N - t) / N); /* non-negative operands: truncation is floor */
}

int plm_unmask_select(const float *prob, const uint8_t *candidate, int L, int n, uint8_t *masked) {
    memset(masked, 0, (size_t)L);
    int got = 0;
    /* n passes of a linear scan for the lowest unmarked candidate: L is a sentence's
     * masks (tens), and the scan makes the tie rule (earlier position first) explicit */
    for (; got < n; got++) {
        int best = -1;
        for (int j = 0; j < L; j++) {
            if (masked[j] || (candidate && !candidate[j])) continue;
            if (best < 0 || prob[j] < prob[best]) best = j;
        }
        if (best < 0) break;
        masked[best] = 1;
    }
    return got;
}

int plm_unmask_next(plm_unmask_strategy s, int t, int N, int L, const float *prob, uint8_t *masked, uint8_t *prev) {
    int n = plm_unmask_count(L, t, N);
    if (t <= 0) {
        memset(masked, 1, (size_t)L);
        return L;
    }
    memcpy(prev, masked, (size_t)L);
    return plm_unmask_select(prob, s == PLM_UNMASK_CONFIDENCE ? prev : NULL, L, n, masked);
}

/* Decodes one position from its logits z [V] (modified): the mask token dropped, then
 * argmax or plm_sample on a copy; *p = softmax(z)[id] at temperature 1. */
static int32_t decode_one(float *z, int V, int32_t mask_id, const plm_sampling *s, plm_rng *rng, float *copy,
                          void *work, float *p) {
    z[mask_id] = -INFINITY;
    float mx = -INFINITY;
    for (int v = 0; v < V; v++) mx = fmaxf(mx, z[v]);
    double sum = 0.0;
    for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
    int32_t id;
    if (s->do_sample) {
        memcpy(copy, z, (size_t)V * sizeof(float));
        id = plm_sample(copy, V, s, rng, work);
    } else {
        id = plm_sample(z, V, s, rng, work); /* greedy: the first argmax, z untouched */
    }
    *p = (float)(exp((double)z[id] - mx) / sum);
    return id;
}

int plm_unmask_batch(plm_model *m, int32_t *const *ids, const int *n, int count, const plm_unmask_opts *o,
                     float *const *prob, plm_unmask_step_fn on_step, void *ctx) {
    int hi = plm_model_head(m, PLM_HEAD_LM);
    if (hi < 0) {
        plm_error("unmask: the model has no masked-language-model head");
        return -1;
    }
    int k = m->heads[hi].spec.backbone, V = m->heads[hi].K, N = o->iterations;
    const plm_config *c = &m->bb[k].config;
    if (c->is_decoder) {
        plm_error("unmask: the model is causal (is_decoder); iterative unmasking needs a bidirectional MLM encoder");
        return -1;
    }
    if (N < 1) {
        plm_error("unmask: %d iterations (need >= 1)", N);
        return -1;
    }
    if (o->mask_token_id < 0 || o->mask_token_id >= V) {
        plm_error("unmask: mask token id %d is outside the vocabulary (%d)", o->mask_token_id, V);
        return -1;
    }
    if (count < 1) return 0;
    /* the generated positions of all sequences, concatenated: sequence i owns slots
     * [off[i], off[i+1]) */
    int Tmax = 0;
    int *off = plm_malloc((size_t)(count + 1) * sizeof(int));
    off[0] = 0;
    for (int i = 0; i < count; i++) {
        if (n[i] < 1 || n[i] > c->max_position_embeddings) {
            plm_error("unmask: sequence %d has %d tokens (1..max_position_embeddings = %d)", i + 1, n[i],
                      c->max_position_embeddings);
            free(off);
            return -1;
        }
        Tmax = PLM_MAX(Tmax, n[i]);
        int L = 0;
        for (int t = 0; t < n[i]; t++) L += ids[i][t] == o->mask_token_id;
        off[i + 1] = off[i] + L;
    }
    int S = off[count];
    int *pos = plm_malloc((size_t)PLM_MAX(S, 1) * sizeof(int));
    float *p = plm_calloc((size_t)PLM_MAX(S, 1), sizeof(float));
    uint8_t *msk = plm_calloc((size_t)PLM_MAX(S, 1), 1), *prev = plm_calloc((size_t)PLM_MAX(S, 1), 1);
    for (int i = 0; i < count; i++)
        for (int t = 0, j = off[i]; t < n[i]; t++)
            if (ids[i][t] == o->mask_token_id) pos[j++] = t;
    size_t BT = (size_t)count * Tmax;
    int32_t *in = plm_malloc(BT * sizeof(int32_t)), *labels = plm_malloc(BT * sizeof(int32_t));
    int32_t *seq_labels = plm_malloc((size_t)count * sizeof(int32_t)),
            *rows = plm_malloc((size_t)PLM_MAX(S, 1) * sizeof(int32_t));
    uint8_t *am = plm_malloc(BT);
    int *active = plm_malloc((size_t)count * sizeof(int));
    int *slot = plm_malloc((size_t)PLM_MAX(S, 1) * sizeof(int)),
        *slot_seq = plm_malloc((size_t)PLM_MAX(S, 1) * sizeof(int));
    float *logits = plm_malloc((size_t)LOGIT_ROWS * V * sizeof(float)), *copy = plm_malloc((size_t)V * sizeof(float));
    void *work = plm_malloc(plm_sample_work_bytes(V));
    uint8_t *fm = plm_malloc((size_t)Tmax);
    float *fp = plm_malloc((size_t)Tmax * sizeof(float));
    plm_rng *rng = plm_malloc((size_t)count * sizeof(plm_rng));
    /* one stream per input, numbered by its place among all inputs (not in this batch) */
    for (int i = 0; i < count; i++) plm_rng_seed(&rng[i], o->sampling.seed, 0x756d + (uint64_t)(o->first_index + i));
    for (size_t i = 0; i < BT; i++) labels[i] = PLM_IGNORE_INDEX; /* no loss: the LM head skips every row */
    for (int i = 0; i < count; i++) seq_labels[i] = PLM_IGNORE_INDEX;
    int pad = o->pad_token_id >= 0 && o->pad_token_id < c->vocab_size ? o->pad_token_id : 0;
    int rc = 0;
    if (plm_model_reserve(m, count, Tmax) != 0) rc = -1;
    for (int t = 0; t < N && rc == 0; t++) {
        /* which positions this iteration's input masks */
        int na = 0, Tb = 0;
        for (int i = 0; i < count; i++) {
            int L = off[i + 1] - off[i];
            if (plm_unmask_next(o->strategy, t, N, L, p + off[i], msk + off[i], prev + off[i]) > 0) {
                active[na++] = i;
                Tb = PLM_MAX(Tb, n[i]);
            }
        }
        if (na == 0) break; /* n_t only decreases: nothing is masked again */
        /* the batch: the active sequences, right-padded to the longest */
        bool padded = false;
        for (int r = 0; r < na; r++) {
            int i = active[r];
            int32_t *row = in + (size_t)r * Tb;
            uint8_t *arow = am + (size_t)r * Tb;
            memcpy(row, ids[i], (size_t)n[i] * sizeof(int32_t));
            for (int j = off[i]; j < off[i + 1]; j++)
                if (msk[j]) row[pos[j]] = o->mask_token_id;
            memset(arow, 1, (size_t)n[i]);
            for (int u = n[i]; u < Tb; u++) row[u] = pad, arow[u] = 0, padded = true;
        }
        plm_batch b = {.B = na,
                       .T = Tb,
                       .input_ids = in,
                       .attention_mask = padded ? am : NULL,
                       .labels = labels,
                       .seq_labels = seq_labels,
                       .causal = false};
        if (plm_model_run(m, k, &b, false, 1.0f) != 0) {
            rc = -1;
            break;
        }
        /* the LM head at every masked position, in (sequence, position) order,
         * LOGIT_ROWS rows per call */
        int nr = 0;
        for (int r = 0; r < na; r++)
            for (int j = off[active[r]]; j < off[active[r] + 1]; j++)
                if (msk[j]) {
                    rows[nr] = r * Tb + pos[j];
                    slot[nr] = j;
                    slot_seq[nr++] = active[r];
                }
        for (int q0 = 0; q0 < nr; q0 += LOGIT_ROWS) {
            int nq = PLM_MIN(LOGIT_ROWS, nr - q0);
            plm_model_logits_at(m, rows + q0, nq, logits);
            for (int q = 0; q < nq; q++) {
                int j = slot[q0 + q], s = slot_seq[q0 + q];
                ids[s][pos[j]] =
                    decode_one(logits + (size_t)q * V, V, o->mask_token_id, &o->sampling, &rng[s], copy, work, &p[j]);
            }
        }
        if (on_step)
            for (int r = 0; r < na; r++) {
                int i = active[r];
                memset(fm, 0, (size_t)n[i]);
                memset(fp, 0, (size_t)n[i] * sizeof(float));
                for (int j = off[i]; j < off[i + 1]; j++) fm[pos[j]] = msk[j], fp[pos[j]] = p[j];
                on_step(i, t, ids[i], fm, fp, n[i], ctx);
            }
    }
    if (rc == 0 && prob)
        for (int i = 0; i < count; i++) {
            if (!prob[i]) continue;
            memset(prob[i], 0, (size_t)n[i] * sizeof(float));
            for (int j = off[i]; j < off[i + 1]; j++) prob[i][pos[j]] = p[j];
        }
    free(rng), free(fp), free(fm), free(work), free(copy), free(logits), free(slot_seq), free(slot);
    free(active), free(am), free(rows), free(seq_labels), free(labels), free(in);
    free(prev), free(msk), free(p), free(pos), free(off);
    return rc;
}

double plm_pseudo_log_likelihood(plm_model *m, const int32_t *ids, int n, const int *pos, int np, int32_t mask_id) {
    int hi = plm_model_head(m, PLM_HEAD_LM);
    if (hi < 0) {
        plm_error("pseudo-log-likelihood: the model has no masked-language-model head");
        return NAN;
    }
    int k = m->heads[hi].spec.backbone, V = m->heads[hi].K;
    if (n < 1 || n > m->bb[k].config.max_position_embeddings) {
        plm_error("pseudo-log-likelihood: %d tokens (1..max_position_embeddings = %d)", n,
                  m->bb[k].config.max_position_embeddings);
        return NAN;
    }
    if (mask_id < 0 || mask_id >= V) {
        plm_error("pseudo-log-likelihood: mask token id %d is outside the vocabulary (%d)", mask_id, V);
        return NAN;
    }
    /* the scored token is masked in the input, so the model's own id check never sees it */
    for (int r = 0; r < np; r++) {
        if (pos[r] < 0 || pos[r] >= n) {
            plm_error("pseudo-log-likelihood: position %d is outside the sequence of %d tokens", pos[r], n);
            return NAN;
        }
        if (ids[pos[r]] < 0 || ids[pos[r]] >= V) {
            plm_error("pseudo-log-likelihood: token %d at position %d is outside the vocabulary (%d)", ids[pos[r]],
                      pos[r], V);
            return NAN;
        }
    }
    if (np < 1) return 0.0;
    int32_t *in = plm_malloc((size_t)np * n * sizeof(int32_t)), *labels = plm_malloc((size_t)np * n * sizeof(int32_t));
    int32_t *seq_labels = plm_malloc((size_t)np * sizeof(int32_t)), *rows = plm_malloc((size_t)np * sizeof(int32_t));
    float *z = plm_malloc((size_t)V * sizeof(float));
    for (int r = 0; r < np; r++) {
        memcpy(in + (size_t)r * n, ids, (size_t)n * sizeof(int32_t));
        in[(size_t)r * n + pos[r]] = mask_id;
        rows[r] = r * n + pos[r];
        seq_labels[r] = PLM_IGNORE_INDEX;
    }
    for (size_t i = 0; i < (size_t)np * n; i++) labels[i] = PLM_IGNORE_INDEX;
    plm_batch b = {.B = np, .T = n, .input_ids = in, .labels = labels, .seq_labels = seq_labels, .causal = false};
    double pll = NAN;
    if (plm_model_reserve(m, np, n) == 0 && plm_model_run(m, k, &b, false, 1.0f) == 0) {
        pll = 0.0;
        for (int r = 0; r < np; r++) {
            plm_model_logits_at(m, rows + r, 1, z);
            float mx = -INFINITY;
            for (int v = 0; v < V; v++) mx = fmaxf(mx, z[v]);
            double sum = 0.0;
            for (int v = 0; v < V; v++) sum += exp((double)z[v] - mx);
            pll += (double)z[ids[pos[r]]] - mx - log(sum);
        }
    }
    free(z), free(rows), free(seq_labels), free(labels), free(in);
    return pll;
}
