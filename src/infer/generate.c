/* generate.c - see generate.h */
#include "generate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
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
}

int plm_kv_cache_init(plm_kv_cache *kv, const plm_model *m, int max_len) {
    const plm_config *c = &m->config;
    if (max_len > c->max_position_embeddings) max_len = c->max_position_embeddings;
    memset(kv, 0, sizeof *kv);
    kv->m = m;
    kv->max_len = max_len;
    size_t C = c->hidden_size, L = c->num_hidden_layers, I = c->intermediate_size;
    size_t D = PLM_MAX(C, (size_t)m->bb[0].E); /* vectors wide enough for both widths */
    kv->k = plm_aligned_alloc(L * max_len * C * sizeof(float));
    kv->v = plm_aligned_alloc(L * max_len * C * sizeof(float));
    float *buf = plm_aligned_alloc((D * 10 + I + (size_t)max_len + c->vocab_size + 64) * sizeof(float));
    kv->x = buf;
    kv->ln = kv->x + D;
    kv->qkv = kv->ln + D;
    kv->atty = kv->qkv + 3 * D;
    kv->tmp = kv->atty + D;
    kv->h1 = kv->tmp + D;
    kv->h2 = kv->h1 + D;
    kv->fch = kv->h2 + D;
    kv->scores = kv->fch + I;
    kv->logits = kv->scores + max_len;
    return 0;
}

void plm_kv_cache_free(plm_kv_cache *kv) {
    free(kv->k);
    free(kv->v);
    free(kv->x);
    memset(kv, 0, sizeof *kv);
}

static void ln1(float *out, const float *in, const float *w, const float *b, int C, float eps) {
    float mean, rstd;
    layernorm_forward(out, &mean, &rstd, in, w, b, 1, C, eps);
}

/* One position through the network. The math is the batched forward pass of
 * model.c restricted to a single query row. */
const float *plm_kv_cache_step(plm_kv_cache *kv, int32_t id) {
    const plm_model *m = kv->m;
    const plm_backbone *bb = &m->bb[0];
    const plm_head *head = &m->heads[plm_model_head(m, PLM_HEAD_LM)];
    const plm_config *c = &m->config;
    int C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads, hs = C / NH, E = bb->E;
    int pos = kv->len;
    if (pos >= kv->max_len) plm_die("KV cache full (%d positions)", kv->max_len);
    float eps = c->layer_norm_eps, scale = 1.0f / sqrtf((float)hs);
    for (int i = 0; i < E; i++) kv->x[i] = bb->w.wte[(size_t)id * E + i] + bb->w.wpe[(size_t)pos * E + i];
    if (bb->w.wtt)
        for (int i = 0; i < E; i++) kv->x[i] += bb->w.wtt[i];
    if (!c->pre_layernorm) {
        ln1(kv->tmp, kv->x, bb->w.emb_ln_w, bb->w.emb_ln_b, E, eps);
        memcpy(kv->x, kv->tmp, E * sizeof(float));
    }
    if (E != C) {
        linear_forward(kv->tmp, kv->x, bb->w.emb_proj_w, bb->w.emb_proj_b, 1, E, C);
        memcpy(kv->x, kv->tmp, C * sizeof(float));
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const plm_layer_weights *w = &bb->w.layers[l];
        float *kc = kv->k + ((size_t)l * kv->max_len) * C, *vc = kv->v + ((size_t)l * kv->max_len) * C;
        const float *attn_in = kv->x;
        if (c->pre_layernorm) {
            ln1(kv->ln, kv->x, w->ln1_w, w->ln1_b, C, eps);
            attn_in = kv->ln;
        }
        linear_forward(kv->qkv, attn_in, w->qkv_w, w->qkv_b, 1, C, 3 * C);
        memcpy(kc + (size_t)pos * C, kv->qkv + C, C * sizeof(float));
        memcpy(vc + (size_t)pos * C, kv->qkv + 2 * C, C * sizeof(float));
        for (int h = 0; h < NH; h++) {
            const float *q = kv->qkv + h * hs;
            float mx = -INFINITY;
            for (int j = 0; j <= pos; j++) {
                const float *k = kc + (size_t)j * C + h * hs;
                float s = 0.0f;
                for (int d = 0; d < hs; d++) s += q[d] * k[d];
                kv->scores[j] = s * scale;
                mx = fmaxf(mx, kv->scores[j]);
            }
            float sum = 0.0f;
            for (int j = 0; j <= pos; j++) sum += kv->scores[j] = expf(kv->scores[j] - mx);
            float *o = kv->atty + h * hs;
            memset(o, 0, hs * sizeof(float));
            for (int j = 0; j <= pos; j++) {
                const float *v = vc + (size_t)j * C + h * hs;
                float p = kv->scores[j] / sum;
                for (int d = 0; d < hs; d++) o[d] += p * v[d];
            }
        }
        linear_forward(kv->tmp, kv->atty, w->attn_proj_w, w->attn_proj_b, 1, C, C);
        for (int i = 0; i < C; i++) kv->h1[i] = kv->x[i] + kv->tmp[i]; /* res1 */
        const float *mlp_in;
        if (c->pre_layernorm) {
            ln1(kv->ln, kv->h1, w->ln2_w, w->ln2_b, C, eps);
            mlp_in = kv->ln;
        } else {
            ln1(kv->ln, kv->h1, w->ln1_w, w->ln1_b, C, eps);
            memcpy(kv->h1, kv->ln, C * sizeof(float)); /* post-LN residual is LN(res1) */
            mlp_in = kv->h1;
        }
        linear_forward(kv->fch, mlp_in, w->fc_w, w->fc_b, 1, C, I);
        gelu_forward(kv->fch, kv->fch, (size_t)I, c->hidden_act);
        linear_forward(kv->tmp, kv->fch, w->proj_w, w->proj_b, 1, I, C);
        for (int i = 0; i < C; i++) kv->h2[i] = kv->h1[i] + kv->tmp[i];
        if (c->pre_layernorm)
            memcpy(kv->x, kv->h2, C * sizeof(float));
        else
            ln1(kv->x, kv->h2, w->ln2_w, w->ln2_b, C, eps);
    }
    const float *hid = kv->x;
    if (c->pre_layernorm) {
        ln1(kv->ln, kv->x, bb->w.ln_f_w, bb->w.ln_f_b, C, eps);
        hid = kv->ln;
    }
    if (head->transform) { /* MLM head transform: dense -> GELU -> LN, width E */
        linear_forward(kv->tmp, hid, head->w.dense_w, head->w.dense_b, 1, C, E);
        gelu_forward(kv->tmp, kv->tmp, (size_t)E, c->hidden_act);
        ln1(kv->h1, kv->tmp, head->w.ln_w, head->w.ln_b, E, eps);
        hid = kv->h1;
    }
    linear_forward(kv->logits, hid, head->w.out_w, head->w.out_b, 1, head->in_dim, c->vocab_size);
    kv->len++;
    return kv->logits;
}

typedef struct {
    float p;
    int id;
} cand;

static int cand_desc(const void *a, const void *b) {
    float x = ((const cand *)a)->p, y = ((const cand *)b)->p;
    return x < y ? 1 : x > y ? -1 : ((const cand *)a)->id - ((const cand *)b)->id;
}

int32_t plm_sample(float *logits, int V, const plm_sampling *s, plm_rng *r) {
    if (!s->do_sample) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }
    /* temperature, then top-k, then top-p over the sorted distribution (HF's order) */
    cand *cs = plm_malloc((size_t)V * sizeof(cand));
    float mx = -INFINITY;
    for (int i = 0; i < V; i++) mx = fmaxf(mx, logits[i] / s->temperature);
    double sum = 0.0;
    for (int i = 0; i < V; i++) {
        cs[i].id = i;
        cs[i].p = expf(logits[i] / s->temperature - mx);
        sum += cs[i].p;
    }
    qsort(cs, (size_t)V, sizeof(cand), cand_desc);
    int n = V;
    if (s->top_k > 0 && s->top_k < n) n = s->top_k;
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
    (void)sum;
    double u = plm_rng_uniform_d(r) * kept, acc = 0.0;
    int32_t pick = cs[n - 1].id;
    for (int i = 0; i < n; i++) {
        acc += cs[i].p;
        if (u < acc) {
            pick = cs[i].id;
            break;
        }
    }
    free(cs);
    return pick;
}

int plm_generate(const plm_model *m, const int32_t *prompt, int n_prompt, const plm_sampling *s, int32_t *out,
                 void (*on_token)(int32_t id, void *ctx), void *ctx) {
    if (n_prompt <= 0) {
        plm_error("generate: empty prompt");
        return -1;
    }
    int max_len = n_prompt + s->max_new_tokens;
    if (max_len > m->config.max_position_embeddings) max_len = m->config.max_position_embeddings;
    if (n_prompt >= max_len) {
        plm_error("generate: prompt of %d tokens fills the context (%d)", n_prompt, m->config.max_position_embeddings);
        return -1;
    }
    plm_kv_cache kv;
    plm_kv_cache_init(&kv, m, max_len);
    plm_rng r;
    plm_rng_seed(&r, s->seed, 0x6e6);
    const float *logits = NULL;
    for (int i = 0; i < n_prompt; i++) logits = plm_kv_cache_step(&kv, prompt[i]);
    int n = 0;
    int V = m->config.vocab_size;
    float *work = plm_malloc((size_t)V * sizeof(float));
    while (n < s->max_new_tokens && kv.len < max_len) {
        memcpy(work, logits, (size_t)V * sizeof(float));
        int32_t id = plm_sample(work, V, s, &r);
        out[n++] = id;
        if (on_token) on_token(id, ctx);
        if (id == s->eos_token_id || kv.len >= max_len) break;
        logits = plm_kv_cache_step(&kv, id);
    }
    free(work);
    plm_kv_cache_free(&kv);
    return n;
}

int plm_generate_seq2seq(plm_model *m, const int32_t *input, int n_input, const plm_sampling *s, int32_t *out,
                         void (*on_token)(int32_t id, void *ctx), void *ctx) {
    int hi = plm_model_head(m, PLM_HEAD_LM);
    if (m->config.arch != PLM_ARCH_T5 || hi < 0 || m->heads[hi].spec.backbone != 1) {
        plm_error("generate: text-to-text generation needs a T5 model with its LM head");
        return -1;
    }
    if (n_input <= 0 || n_input > m->config.max_position_embeddings) {
        plm_error("generate: the input has %d tokens (1..%d)", n_input, m->config.max_position_embeddings);
        return -1;
    }
    for (int i = 0; i < n_input; i++)
        if (input[i] < 0 || input[i] >= m->config.vocab_size) {
            plm_error("generate: input id %d is outside the vocabulary (%d)", input[i], m->config.vocab_size);
            return -1;
        }
    if (plm_model_reserve(m, 1, n_input) != 0) return -1;
    plm_backbone *enc = &m->bb[0], *dec = &m->bb[1];
    const plm_head *h = &m->heads[hi];
    const float *states = backbone_forward(enc, 1, n_input, input, NULL, NULL, false, false, 0);
    t5_cache kc;
    t5_cache_begin(&kc, dec, states, NULL, 1, n_input, PLM_MAX(s->max_new_tokens, 1));
    int C = dec->config.hidden_size, V = h->K;
    float *x = plm_malloc((size_t)C * sizeof(float)), *logits = plm_malloc((size_t)V * sizeof(float));
    plm_rng r;
    plm_rng_seed(&r, s->seed, 0x6e6);
    int32_t id = dec->config.decoder_start_token_id;
    int n = 0;
    while (n < s->max_new_tokens) {
        const float *y = t5_cache_step(&kc, dec, &id);
        /* the LM head: lm_head(y * d_model^-1/2) when tied (heads.h) */
        for (int i = 0; i < C; i++) x[i] = y[i] * h->in_scale;
        linear_forward(logits, x, h->w.out_w, h->w.out_b, 1, C, V);
        id = plm_sample(logits, V, s, &r);
        out[n++] = id;
        if (on_token) on_token(id, ctx);
        if (id == s->eos_token_id) break;
    }
    free(x);
    free(logits);
    t5_cache_free(&kc);
    return n;
}
