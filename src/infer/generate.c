/* generate.c - see generate.h */
#include "generate.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/profile.h"
#include "model/attention.h"
#include "model/fastmath.h"
#include "model/gelu.h"
#include "model/layernorm.h"
#include "model/linear.h"
#include "model/t5.h"

void plm_sampling_default(plm_sampling *s) {
    s->max_new_tokens = 64;
    s->do_sample = true;
    s->temperature = 1.0f;
    s->top_k = 0;
    s->top_p = 1.0f;
    s->seed = 42;
    s->eos_token_id = -1;
    s->seeds = NULL;
}

/* Rows a prefill call takes at most when the prompts are many (their chunks are split
 * into calls of whole prompts under this): bounds the activation buffers. */
enum { PREFILL_ROWS = 2048 };

int plm_kv_cache_init_batch(plm_kv_cache *kv, const plm_model *m, int B, int max_len, int max_rows) {
    const plm_config *c = &m->config;
    if (max_len > c->max_position_embeddings) max_len = c->max_position_embeddings;
    if (max_len < 1) max_len = 1;
    if (max_rows < 1) max_rows = 1;
    memset(kv, 0, sizeof *kv);
    kv->m = m;
    kv->B = B;
    kv->max_len = max_len;
    kv->max_rows = max_rows;
    size_t C = c->hidden_size, L = c->num_hidden_layers, I = c->intermediate_size, R = max_rows;
    size_t D = PLM_MAX(C, (size_t)m->bb[0].E); /* rows wide enough for both widths */
    size_t NH = c->num_attention_heads, hs = C / NH;
    kv->len = calloc((size_t)B, sizeof(int));
    kv->row_seq = plm_malloc(R * sizeof(int));
    kv->row_pos = plm_malloc(R * sizeof(int));
    kv->grow = plm_malloc(R * sizeof(int));
    kv->k = plm_aligned_alloc(L * B * max_len * C * sizeof(float));
    kv->v = plm_aligned_alloc(L * B * max_len * C * sizeof(float));
    kv->x = plm_aligned_alloc(R * (D * 8 + I + 2) * sizeof(float)); /* x ln qkv(3) atty tmp h1, fch, mean rstd */
    kv->ln = kv->x + R * D;
    kv->qkv = kv->ln + R * D;
    kv->atty = kv->qkv + R * 3 * D;
    kv->tmp = kv->atty + R * D;
    kv->fch = kv->tmp + R * D;
    kv->h1 = kv->fch + R * I;
    kv->mean = kv->h1 + R * D;
    kv->rstd = kv->mean + R;
    kv->att = plm_aligned_alloc(attention_saved_floats(1, (int)NH, max_len, max_len, (int)hs) * sizeof(float));
    kv->last = plm_aligned_alloc((size_t)B * (2 * D + c->vocab_size) * sizeof(float));
    kv->lt = kv->last + (size_t)B * D;
    kv->logits = kv->lt + (size_t)B * D;
    return 0;
}

int plm_kv_cache_init(plm_kv_cache *kv, const plm_model *m, int max_len) {
    return plm_kv_cache_init_batch(kv, m, 1, max_len, 1);
}

void plm_kv_cache_free(plm_kv_cache *kv) {
    void *p[] = {kv->len, kv->row_seq, kv->row_pos, kv->grow, kv->k, kv->v, kv->x, kv->att, kv->last};
    for (size_t i = 0; i < PLM_ARRAY_LEN(p); i++) free(p[i]);
    memset(kv, 0, sizeof *kv);
}

/* Attention of the listed rows (one new token each, at position row_pos of sequence
 * row_seq, whose keys and values up to and including that position are in the cache of
 * layer l): per (row, head), s_j = scale q.k_j for j <= pos, p = softmax(s),
 * out = sum_j p_j v_j. One pass over the keys and one over the values, the scores in a
 * per-thread buffer of max_len floats; (row, head) pairs are split over the threads. */
static void attend_rows(plm_kv_cache *kv, const float *kc, const float *vc, const int *rows, int nr) {
    const plm_config *c = &kv->m->config;
    int C = c->hidden_size, NH = c->num_attention_heads, hs = C / NH;
    float scale = 1.0f / sqrtf((float)hs);
    double prof_t0 = plm_prof_begin();
    /* A task is a row and a group of G consecutive heads: it reads the group's part of
     * each cached key and value row as one contiguous run (all heads at once when there
     * are rows enough to keep the threads busy), which streams the cache. The sums run
     * in the same order as one head at a time: the bits do not depend on G. */
    int groups = (2 * omp_get_max_threads() + nr - 1) / nr;
    groups = groups < 1 ? 1 : groups > NH ? NH : groups;
    while (NH % groups) groups++;
    int G = NH / groups;
#pragma omp parallel
    {
        float *sc = plm_thread_scratch(4, (size_t)G * kv->max_len + (size_t)G), *inv = sc + (size_t)G * kv->max_len;
#pragma omp for schedule(dynamic, 1)
        for (int task = 0; task < nr * groups; task++) {
            int r = rows[task / groups], h0 = (task % groups) * G, T = kv->row_pos[r] + 1;
            size_t base = (size_t)kv->row_seq[r] * kv->max_len * C + (size_t)h0 * hs;
            const float *q = kv->qkv + (size_t)r * 3 * C + (size_t)h0 * hs;
            for (int j = 0; j < T; j++) {
                const float *k = kc + base + (size_t)j * C;
                for (int g = 0; g < G; g++) {
                    const float *qg = q + g * hs, *kg = k + g * hs;
                    float d = 0.0f;
#pragma omp simd reduction(+ : d)
                    for (int e = 0; e < hs; e++) d += qg[e] * kg[e];
                    sc[(size_t)g * T + j] = d * scale;
                }
            }
            for (int g = 0; g < G; g++) {
                float *s = sc + (size_t)g * T, mx = -INFINITY, sum = 0.0f;
                for (int j = 0; j < T; j++) mx = fmaxf(mx, s[j]);
#pragma omp simd reduction(+ : sum)
                for (int j = 0; j < T; j++) {
                    s[j] = plm_expf(s[j] - mx);
                    sum += s[j];
                }
                inv[g] = 1.0f / sum;
            }
            float *o = kv->atty + (size_t)r * C + (size_t)h0 * hs;
            memset(o, 0, (size_t)G * hs * sizeof(float));
            for (int j = 0; j < T; j++) {
                const float *v = vc + base + (size_t)j * C;
                for (int g = 0; g < G; g++) {
                    float p = sc[(size_t)g * T + j] * inv[g];
                    float *og = o + g * hs;
                    const float *vg = v + g * hs;
#pragma omp simd
                    for (int e = 0; e < hs; e++) og[e] += p * vg[e];
                }
            }
        }
    }
    plm_prof_end("attention (KV cache)", prof_t0);
}

/* The math is the batched forward pass of model.c (backbone.c), restricted to the new
 * rows: every per-row op (embeddings, LayerNorm, linear layers, GELU, residuals) runs on
 * the stacked rows of all items at once; attention reads each row's own sequence from
 * the cache. A prompt starting an empty sequence (n > 1 at position 0) is a causal
 * self-attention over its own rows and goes through the tiled attention of training
 * (attention.h: GEMMs per block); any other row (a decoded token) goes through
 * attend_rows. The LM head runs on each item's last row only: the logits of a prompt's
 * other positions are never used. */
const float *plm_kv_cache_append(plm_kv_cache *kv, int count, const int *seq, const int *n, const int32_t *ids) {
    const plm_model *m = kv->m;
    const plm_backbone *bb = &m->bb[0];
    const plm_head *head = &m->heads[plm_model_head(m, PLM_HEAD_LM)];
    const plm_config *c = &m->config;
    int C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads, hs = C / NH, E = bb->E;
    int V = c->vocab_size;
    float eps = c->layer_norm_eps;
    if (count < 1 || count > kv->B) plm_die("kv cache: %d items for %d sequences", count, kv->B);
    int M = 0;
    for (int i = 0; i < count; i++) {
        int b = seq[i];
        if (b < 0 || b >= kv->B || n[i] < 1) plm_die("kv cache: bad item (sequence %d, %d tokens)", b, n[i]);
        if (kv->len[b] + n[i] > kv->max_len) plm_die("KV cache full (%d positions)", kv->max_len);
        if (M + n[i] > kv->max_rows) plm_die("kv cache: more than %d rows in one call", kv->max_rows);
        for (int t = 0; t < n[i]; t++, M++) {
            kv->row_seq[M] = b;
            kv->row_pos[M] = kv->len[b] + t;
        }
    }
    /* embeddings */
    for (int r = 0; r < M; r++) {
        const float *te = bb->w.wte + (size_t)ids[r] * E, *pe = bb->w.wpe + (size_t)kv->row_pos[r] * E;
        float *x = kv->x + (size_t)r * E;
        for (int e = 0; e < E; e++) x[e] = te[e] + pe[e];
        if (bb->w.wtt)
            for (int e = 0; e < E; e++) x[e] += bb->w.wtt[e];
    }
    if (!c->pre_layernorm) {
        layernorm_forward(kv->tmp, kv->mean, kv->rstd, kv->x, bb->w.emb_ln_w, bb->w.emb_ln_b, M, E, eps);
        memcpy(kv->x, kv->tmp, (size_t)M * E * sizeof(float));
    }
    if (E != C) {
        linear_forward(kv->tmp, kv->x, bb->w.emb_proj_w, bb->w.emb_proj_b, M, E, C);
        memcpy(kv->x, kv->tmp, (size_t)M * C * sizeof(float));
    }
    size_t MC = (size_t)M * C, layer = (size_t)kv->B * kv->max_len * C;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const plm_layer_weights *w = &bb->w.layers[l];
        float *kc = kv->k + l * layer, *vc = kv->v + l * layer;
        const float *attn_in = kv->x;
        if (c->pre_layernorm) {
            layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->x, w->ln1_w, w->ln1_b, M, C, eps);
            attn_in = kv->ln;
        }
        linear_forward(kv->qkv, attn_in, w->qkv_w, w->qkv_b, M, C, 3 * C);
        for (int r = 0; r < M; r++) {
            size_t at = ((size_t)kv->row_seq[r] * kv->max_len + kv->row_pos[r]) * C;
            memcpy(kc + at, kv->qkv + (size_t)r * 3 * C + C, C * sizeof(float));
            memcpy(vc + at, kv->qkv + (size_t)r * 3 * C + 2 * C, C * sizeof(float));
        }
        int nrows = 0, r0 = 0;
        for (int i = 0; i < count; r0 += n[i], i++) {
            if (kv->row_pos[r0] == 0 && n[i] > 1) {
                attn_shape a = {.B = 1,
                                .Tq = n[i],
                                .Tk = n[i],
                                .NH = NH,
                                .hs = hs,
                                .q = kv->qkv + (size_t)r0 * 3 * C,
                                .k = kc + (size_t)seq[i] * kv->max_len * C,
                                .v = vc + (size_t)seq[i] * kv->max_len * C,
                                .ldq = 3 * C,
                                .ldk = C,
                                .ldv = C,
                                .causal = true,
                                .scale = 1.0f / sqrtf((float)hs)};
                attention_forward_ex(&a, kv->atty + (size_t)r0 * C, kv->att);
            } else {
                for (int t = 0; t < n[i]; t++) kv->grow[nrows++] = r0 + t;
            }
        }
        if (nrows) attend_rows(kv, kc, vc, kv->grow, nrows);
        linear_forward(kv->tmp, kv->atty, w->attn_proj_w, w->attn_proj_b, M, C, C);
        for (size_t i = 0; i < MC; i++) kv->h1[i] = kv->x[i] + kv->tmp[i]; /* res1 */
        const float *mlp_in;
        if (c->pre_layernorm) {
            layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->h1, w->ln2_w, w->ln2_b, M, C, eps);
            mlp_in = kv->ln;
        } else {
            layernorm_forward(kv->ln, kv->mean, kv->rstd, kv->h1, w->ln1_w, w->ln1_b, M, C, eps);
            memcpy(kv->h1, kv->ln, MC * sizeof(float)); /* post-LN residual is LN(res1) */
            mlp_in = kv->h1;
        }
        linear_forward(kv->fch, mlp_in, w->fc_w, w->fc_b, M, C, I);
        gelu_forward(kv->fch, kv->fch, (size_t)M * I, c->hidden_act);
        linear_forward(kv->tmp, kv->fch, w->proj_w, w->proj_b, M, I, C);
        if (c->pre_layernorm) {
            for (size_t i = 0; i < MC; i++) kv->x[i] = kv->h1[i] + kv->tmp[i];
        } else {
            for (size_t i = 0; i < MC; i++) kv->tmp[i] += kv->h1[i];
            layernorm_forward(kv->x, kv->mean, kv->rstd, kv->tmp, w->ln2_w, w->ln2_b, M, C, eps);
        }
    }
    /* the head, on each item's last row */
    int r0 = 0;
    for (int i = 0; i < count; i++) {
        r0 += n[i];
        memcpy(kv->last + (size_t)i * C, kv->x + (size_t)(r0 - 1) * C, C * sizeof(float));
        kv->len[seq[i]] += n[i];
    }
    const float *hid = kv->last;
    if (c->pre_layernorm) {
        layernorm_forward(kv->lt, kv->mean, kv->rstd, kv->last, bb->w.ln_f_w, bb->w.ln_f_b, count, C, eps);
        memcpy(kv->last, kv->lt, (size_t)count * C * sizeof(float));
    }
    if (head->transform) { /* MLM head transform: dense -> GELU -> LN, width E */
        linear_forward(kv->lt, hid, head->w.dense_w, head->w.dense_b, count, C, E);
        gelu_forward(kv->lt, kv->lt, (size_t)count * E, c->hidden_act);
        layernorm_forward(kv->last, kv->mean, kv->rstd, kv->lt, head->w.ln_w, head->w.ln_b, count, E, eps);
    }
    linear_forward(kv->logits, hid, head->w.out_w, head->w.out_b, count, head->in_dim, V);
    return kv->logits;
}

const float *plm_kv_cache_step(plm_kv_cache *kv, int32_t id) {
    int seq = 0, one = 1;
    return plm_kv_cache_append(kv, 1, &seq, &one, &id);
}

typedef struct {
    float p;
    int id;
} cand;

/* descending probability, ties by ascending id: a total order, so the result does not
 * depend on the sort */
static int cand_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->p, y = ((const cand *)b)->p;
    return x < y ? 1 : x > y ? -1 : ((const cand *)a)->id - ((const cand *)b)->id;
}

/* a before b in cand_desc's order */
static bool cand_before(const cand *a, const cand *b) { return a->p > b->p || (a->p == b->p && a->id < b->id); }

/* Restores the min-heap (its root the last of the kept candidates in cand_desc's order)
 * below node i. */
static void heap_down(cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && cand_before(&h[w], &h[l])) w = l;
        if (r < n && cand_before(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

size_t plm_sample_work_bytes(int V) { return (size_t)V * sizeof(cand); }

/* Temperature, then top-k, then top-p over the sorted distribution (HF's order), then
 * one uniform draw against the cumulative kept mass. Costs: greedy is an argmax; plain
 * temperature sampling draws in id order (no sort); top-k keeps the k best in a heap
 * (V log k) and sorts only those; top-p alone sorts the vocabulary. */
int32_t plm_sample(float *logits, int V, const plm_sampling *s, plm_rng *r, void *work) {
    if (!s->do_sample) { /* the first index of the maximum, in two vectorisable passes */
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int i = 0; i < V; i++) mx = logits[i] > mx ? logits[i] : mx;
        for (int i = 0; i < V; i++)
            if (logits[i] == mx) return i;
        return 0; /* every logit NaN */
    }
    float mx = -INFINITY, inv_t = 1.0f / s->temperature;
    for (int i = 0; i < V; i++) mx = fmaxf(mx, logits[i] * inv_t);
    if (s->top_k <= 0 && s->top_p >= 1.0f) {
        double sum = 0.0;
        for (int i = 0; i < V; i++) sum += logits[i] = expf(logits[i] * inv_t - mx);
        double u = plm_rng_uniform_d(r) * sum, acc = 0.0;
        for (int i = 0; i < V; i++) {
            acc += logits[i];
            if (u < acc) return i;
        }
        for (int i = V - 1; i > 0; i--) /* rounding left u at the top: the last token with mass */
            if (logits[i] > 0.0f) return i;
        return 0;
    }
    cand *cs = work ? work : plm_malloc(plm_sample_work_bytes(V));
    int n = V;
    if (s->top_k > 0 && s->top_k < V) {
        n = s->top_k;
        for (int i = 0; i < V; i++) {
            cand c = {expf(logits[i] * inv_t - mx), i};
            if (i < n) {
                cs[i] = c;
                if (i == n - 1)
                    for (int j = n / 2 - 1; j >= 0; j--) heap_down(cs, n, j);
            } else if (cand_before(&c, &cs[0])) {
                cs[0] = c;
                heap_down(cs, n, 0);
            }
        }
    } else {
        for (int i = 0; i < V; i++) cs[i] = (cand){expf(logits[i] * inv_t - mx), i};
    }
    qsort(cs, (size_t)n, sizeof(cand), cand_desc);
    double kept = 0.0;
    for (int i = 0; i < n; i++) kept += cs[i].p;
    if (s->top_p < 1.0f) {
        double acc = 0.0;
        for (int i = 0; i < n; i++) {
            acc += cs[i].p;
            if (acc / kept >= s->top_p) {
                n = i + 1;
                break;
            }
        }
        kept = 0.0;
        for (int i = 0; i < n; i++) kept += cs[i].p;
    }
    double u = plm_rng_uniform_d(r) * kept, acc = 0.0;
    int32_t pick = cs[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += cs[i].p;
        if (u < acc) {
            pick = cs[i].id;
            break;
        }
    }
    if (!work) free(cs);
    return pick;
}

static int check_prompt(const plm_model *m, const int32_t *ids, int n, int i) {
    if (n <= 0) {
        plm_error("generate: prompt %d is empty", i + 1);
        return -1;
    }
    if (n >= m->config.max_position_embeddings) {
        plm_error("generate: prompt %d of %d tokens fills the context (%d)", i + 1, n,
                  m->config.max_position_embeddings);
        return -1;
    }
    for (int t = 0; t < n; t++)
        if (ids[t] < 0 || ids[t] >= m->config.vocab_size) {
            plm_error("generate: prompt %d: id %d is outside the vocabulary (%d)", i + 1, ids[t], m->config.vocab_size);
            return -1;
        }
    return 0;
}

void plm_gen_workspace_free(plm_gen_workspace *ws) {
    if (ws->kv.m) plm_kv_cache_free(&ws->kv);
    free(ws->rng);
    free(ws->seq);
    free(ws->ids);
    free(ws->work);
    memset(ws, 0, sizeof *ws);
}

/* ws ready for count sequences of up to max_len positions, max_rows rows per call: grown
 * (to at least what it held) when it is smaller or holds another model, else its cache
 * emptied. The cache's sizes are capacities: rows are placed by them, computed alike. */
static void workspace_reserve(plm_gen_workspace *ws, const plm_model *m, int count, int max_len, int max_rows) {
    plm_kv_cache *kv = &ws->kv;
    if (kv->m != m || kv->B < count || kv->max_len < max_len || kv->max_rows < max_rows) {
        bool same = kv->m == m;
        int B = same ? PLM_MAX(kv->B, count) : count, L = same ? PLM_MAX(kv->max_len, max_len) : max_len;
        int R = same ? PLM_MAX(kv->max_rows, max_rows) : max_rows;
        if (kv->m) plm_kv_cache_free(kv);
        free(ws->ids);
        free(ws->work);
        plm_kv_cache_init_batch(kv, m, B, L, R);
        ws->ids = plm_malloc((size_t)kv->max_rows * sizeof(int32_t));
        ws->work = plm_malloc(plm_sample_work_bytes(m->config.vocab_size));
    } else {
        memset(kv->len, 0, (size_t)kv->B * sizeof(int));
    }
    if (ws->count < count) {
        free(ws->rng);
        free(ws->seq);
        ws->rng = plm_malloc((size_t)count * sizeof(plm_rng));
        ws->seq = plm_malloc((size_t)count * 3 * sizeof(int));
        ws->count = count;
    }
}

/* A call's rows per prefill chunk: whole prompts up to PREFILL_ROWS or one sequence's
 * length, and at least one row per sequence for the decoding steps. */
static int call_rows(int count, long total, int max_len) {
    return (int)PLM_MAX((long)count, PLM_MIN(total, (long)PLM_MAX(PREFILL_ROWS, max_len)));
}

void plm_gen_workspace_reserve(plm_gen_workspace *ws, const plm_model *m, int count, int max_prompt,
                               int max_new_tokens) {
    int L = PLM_MAX(1, PLM_MIN(max_prompt + max_new_tokens, m->config.max_position_embeddings));
    workspace_reserve(ws, m, count, L, call_rows(count, (long)count * max_prompt, L));
}

int plm_generate_batch(const plm_model *m, const int32_t *const *prompts, const int *n_prompt, int count,
                       const plm_sampling *s, int32_t *out, int *n_out,
                       void (*on_token)(int seq, int32_t id, void *ctx), void *ctx, plm_gen_stats *stats) {
    plm_gen_workspace ws = {0};
    int rc = plm_generate_batch_ws(&ws, m, prompts, n_prompt, count, s, out, n_out, on_token, ctx, stats);
    plm_gen_workspace_free(&ws);
    return rc;
}

/* Per-row lengths, not left-padding: every prompt starts at position 0 in its own slice
 * of the cache, so positions and attention need no offsets or masks, and no work is
 * spent on padding. The prompts run as chunks of whole prompts (at most PREFILL_ROWS
 * rows per call, or one prompt); then every step appends one token to each sequence
 * still running (finished ones leave the batch, so the rows shrink instead of carrying
 * dead sequences). Sequence i may generate quota_i = min(max_new_tokens,
 * max_position_embeddings - n_prompt_i) tokens; its last token is never run through the
 * network. */
int plm_generate_batch_ws(plm_gen_workspace *ws, const plm_model *m, const int32_t *const *prompts, const int *n_prompt,
                          int count, const plm_sampling *s, int32_t *out, int *n_out,
                          void (*on_token)(int seq, int32_t id, void *ctx), void *ctx, plm_gen_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (count < 1) {
        plm_error("generate: no prompt");
        return -1;
    }
    int max_len = 1, maxpos = m->config.max_position_embeddings;
    long total = 0;
    for (int i = 0; i < count; i++) {
        if (check_prompt(m, prompts[i], n_prompt[i], i) != 0) return -1;
        n_out[i] = 0;
        total += n_prompt[i];
        max_len = PLM_MAX(max_len, PLM_MIN(n_prompt[i] + s->max_new_tokens, maxpos));
    }
    if (s->max_new_tokens <= 0) return 0;
    int V = m->config.vocab_size;
    int max_rows = call_rows(count, total, max_len);
    workspace_reserve(ws, m, count, max_len, max_rows);
    plm_kv_cache *kv = &ws->kv;
    plm_rng *rng = ws->rng;
    int *seq = ws->seq, *len = seq + count, *quota = len + count;
    int32_t *ids = ws->ids;
    void *work = ws->work;
    for (int i = 0; i < count; i++) {
        plm_rng_seed(&rng[i], s->seeds ? s->seeds[i] : s->seed, 0x6e6); /* as the prompt generated alone */
        quota[i] = PLM_MIN(s->max_new_tokens, maxpos - n_prompt[i]);
    }
    int active = 0; /* sequences still generating, listed in seq[0..active) */
    double t0 = plm_now();
    /* prefill, a chunk of whole prompts per call; then each prompt's first token */
    for (int i0 = 0; i0 < count;) {
        int k = 0, rows = 0;
        while (i0 + k < count && (k == 0 || rows + n_prompt[i0 + k] <= max_rows)) {
            int i = i0 + k;
            memcpy(ids + rows, prompts[i], (size_t)n_prompt[i] * sizeof(int32_t));
            seq[active + k] = i;
            len[active + k] = n_prompt[i];
            rows += n_prompt[i];
            k++;
        }
        int base = active; /* seq[base..base+k): this chunk; the running ones are written back in place */
        const float *logits = plm_kv_cache_append(kv, k, seq + base, len + base, ids);
        for (int j = 0; j < k; j++) {
            int i = seq[base + j];
            int32_t id = plm_sample((float *)logits + (size_t)j * V, V, s, &rng[i], work);
            out[(size_t)i * s->max_new_tokens + n_out[i]++] = id;
            if (on_token) on_token(i, id, ctx);
            if (id != s->eos_token_id && n_out[i] < quota[i]) seq[active++] = i; /* keeps running */
        }
        i0 += k;
    }
    double t1 = plm_now();
    for (int j = 0; j < count; j++) len[j] = 1;
    while (active > 0) {
        for (int j = 0; j < active; j++) ids[j] = out[(size_t)seq[j] * s->max_new_tokens + n_out[seq[j]] - 1];
        const float *logits = plm_kv_cache_append(kv, active, seq, len, ids);
        int still = 0;
        double prof_t0 = plm_prof_begin();
        for (int j = 0; j < active; j++) {
            int i = seq[j];
            int32_t id = plm_sample((float *)logits + (size_t)j * V, V, s, &rng[i], work);
            out[(size_t)i * s->max_new_tokens + n_out[i]++] = id;
            if (on_token) on_token(i, id, ctx);
            if (id != s->eos_token_id && n_out[i] < quota[i]) seq[still++] = i;
        }
        plm_prof_end("sampling", prof_t0);
        active = still;
    }
    double t2 = plm_now();
    if (stats) {
        stats->prompt_tokens = total;
        for (int i = 0; i < count; i++) stats->new_tokens += n_out[i];
        stats->prefill_s = t1 - t0;
        stats->decode_s = t2 - t1;
    }
    return 0;
}

typedef struct {
    void (*f)(int32_t id, void *ctx);
    void *ctx;
} one_cb;

static void one_token(int seq, int32_t id, void *p) {
    (void)seq;
    one_cb *c = p;
    c->f(id, c->ctx);
}

int plm_generate(const plm_model *m, const int32_t *prompt, int n_prompt, const plm_sampling *s, int32_t *out,
                 void (*on_token)(int32_t id, void *ctx), void *ctx) {
    one_cb cb = {on_token, ctx};
    int n = 0;
    if (plm_generate_batch(m, &prompt, &n_prompt, 1, s, out, &n, on_token ? one_token : NULL, &cb, NULL) != 0)
        return -1;
    return n;
}

static int check_input(const plm_model *m, const int32_t *in, int n, int i) {
    if (n <= 0 || n > m->config.max_position_embeddings) {
        plm_error("generate: input %d has %d tokens (1..%d)", i + 1, n, m->config.max_position_embeddings);
        return -1;
    }
    for (int t = 0; t < n; t++)
        if (in[t] < 0 || in[t] >= m->config.vocab_size) {
            plm_error("generate: input id %d is outside the vocabulary (%d)", in[t], m->config.vocab_size);
            return -1;
        }
    return 0;
}

/* All sequences decode in lockstep from position 0 (T5's decoder has no prompt), so the
 * batch is the t5_cache's B rows; a finished sequence keeps being fed EOS until the last
 * one finishes (its rows are cheap next to the shared weight reads, and t5_cache has
 * fixed rows) and its tokens are no longer recorded. */
int plm_generate_seq2seq_batch(plm_model *m, const int32_t *const *inputs, const int *n_input, int count,
                               const plm_sampling *s, int32_t *out, int *n_out,
                               void (*on_token)(int seq, int32_t id, void *ctx), void *ctx, plm_gen_stats *stats) {
    if (stats) memset(stats, 0, sizeof *stats);
    int hi = plm_model_head(m, PLM_HEAD_LM);
    if (m->config.arch != PLM_ARCH_T5 || hi < 0 || m->heads[hi].spec.backbone != 1) {
        plm_error("generate: text-to-text generation needs a T5 model with its LM head");
        return -1;
    }
    if (count < 1) {
        plm_error("generate: no input");
        return -1;
    }
    int Tk = 0;
    bool padded = false;
    long total = 0;
    for (int i = 0; i < count; i++) {
        if (check_input(m, inputs[i], n_input[i], i) != 0) return -1;
        if (i > 0 && n_input[i] != Tk) padded = true;
        Tk = PLM_MAX(Tk, n_input[i]);
        total += n_input[i];
        n_out[i] = 0;
    }
    if (s->max_new_tokens <= 0) return 0;
    if (plm_model_reserve(m, count, Tk) != 0) return -1;
    plm_backbone *enc = &m->bb[0], *dec = &m->bb[1];
    const plm_head *h = &m->heads[hi];
    int32_t *in = plm_malloc((size_t)count * Tk * sizeof(int32_t));
    uint8_t *mask = plm_malloc((size_t)count * Tk);
    for (int i = 0; i < count; i++)
        for (int t = 0; t < Tk; t++) {
            bool real = t < n_input[i];
            in[(size_t)i * Tk + t] = real ? inputs[i][t] : 0; /* padding: masked out below */
            mask[(size_t)i * Tk + t] = real;
        }
    double t0 = plm_now();
    const float *states = backbone_forward(enc, count, Tk, in, NULL, padded ? mask : NULL, false, false, 0);
    t5_cache kc;
    t5_cache_begin(&kc, dec, states, padded ? mask : NULL, count, Tk, s->max_new_tokens);
    double t1 = plm_now();
    int C = dec->config.hidden_size, V = h->K;
    float *x = plm_malloc((size_t)count * C * sizeof(float)), *logits = plm_malloc((size_t)count * V * sizeof(float));
    plm_rng *rng = plm_malloc((size_t)count * sizeof(plm_rng));
    int32_t *ids = plm_malloc((size_t)count * sizeof(int32_t));
    bool *done = calloc((size_t)count, sizeof(bool));
    void *work = plm_malloc(plm_sample_work_bytes(V));
    for (int i = 0; i < count; i++) {
        plm_rng_seed(&rng[i], s->seed, 0x6e6);
        ids[i] = dec->config.decoder_start_token_id;
    }
    for (int step = 0, left = count; step < s->max_new_tokens && left > 0; step++) {
        const float *y = t5_cache_step(&kc, dec, ids);
        /* the LM head: lm_head(y * d_model^-1/2) when tied (heads.h) */
        for (size_t i = 0; i < (size_t)count * C; i++) x[i] = y[i] * h->in_scale;
        linear_forward(logits, x, h->w.out_w, h->w.out_b, count, C, V);
        for (int i = 0; i < count; i++) {
            if (done[i]) continue;
            int32_t id = plm_sample(logits + (size_t)i * V, V, s, &rng[i], work);
            out[(size_t)i * s->max_new_tokens + n_out[i]++] = id;
            if (on_token) on_token(i, id, ctx);
            ids[i] = id;
            if (id == s->eos_token_id) done[i] = true, left--;
        }
    }
    if (stats) {
        stats->prompt_tokens = total;
        for (int i = 0; i < count; i++) stats->new_tokens += n_out[i];
        stats->prefill_s = t1 - t0;
        stats->decode_s = plm_now() - t1;
    }
    free(work);
    free(done);
    free(ids);
    free(rng);
    free(x);
    free(logits);
    free(mask);
    free(in);
    t5_cache_free(&kc);
    return 0;
}

int plm_generate_seq2seq(plm_model *m, const int32_t *input, int n_input, const plm_sampling *s, int32_t *out,
                         void (*on_token)(int32_t id, void *ctx), void *ctx) {
    one_cb cb = {on_token, ctx};
    int n = 0;
    if (plm_generate_seq2seq_batch(m, &input, &n_input, 1, s, out, &n, on_token ? one_token : NULL, &cb, NULL) != 0)
        return -1;
    return n;
}
