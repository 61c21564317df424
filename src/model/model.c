/* model.c - see model.h */
#include "model.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "core/common.h"
#include "core/rng.h"
#include "dropout.h"
#include "embedding.h"
#include "gelu.h"
#include "layernorm.h"
#include "linear.h"

/* ---------------------------------------------------------------- parameters */

typedef struct {
    plm_model *m;
    int cap;
} table_builder;

/* Registers a tensor; its pointer is resolved once the buffer exists. */
static size_t add_tensor(table_builder *tb, const char *name, int rows, int cols, bool transpose) {
    plm_model *m = tb->m;
    if (m->num_tensors == tb->cap) {
        tb->cap = tb->cap ? 2 * tb->cap : 64;
        m->tensors = plm_realloc(m->tensors, (size_t)tb->cap * sizeof(plm_tensor));
    }
    plm_tensor *t = &m->tensors[m->num_tensors++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (size_t)rows * (cols ? cols : 1);
    t->offset = m->num_params;
    t->transpose = transpose;
    t->no_decay = cols == 0;
    /* keep every tensor 64-byte aligned for vector loads */
    m->num_params += (t->numel + 15) & ~(size_t)15;
    return t->offset;
}

/* Offsets of every view, filled while registering, turned into pointers after. */
typedef struct {
    size_t wte, wpe, wtt, emb_ln_w, emb_ln_b, ln_f_w, ln_f_b;
    size_t head_dense_w, head_dense_b, head_ln_w, head_ln_b, head_bias, lm_w;
    size_t *layer; /* 12 per layer, in plm_layer_weights order */
} view_offsets;

#define NONE ((size_t)-1)

static void register_bert(table_builder *tb, view_offsets *v) {
    const plm_config *c = &tb->m->config;
    int C = c->hidden_size, I = c->intermediate_size;
    char n[96];
    v->wte = add_tensor(tb, "bert.embeddings.word_embeddings.weight", c->vocab_size, C, false);
    v->wpe = add_tensor(tb, "bert.embeddings.position_embeddings.weight", c->max_position_embeddings, C, false);
    v->wtt = c->type_vocab_size
                 ? add_tensor(tb, "bert.embeddings.token_type_embeddings.weight", c->type_vocab_size, C, false)
                 : NONE;
    if (!c->pre_layernorm) {
        v->emb_ln_w = add_tensor(tb, "bert.embeddings.LayerNorm.weight", C, 0, false);
        v->emb_ln_b = add_tensor(tb, "bert.embeddings.LayerNorm.bias", C, 0, false);
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        size_t *o = v->layer + 12 * l;
#define P(idx, suffix, r, cl)                                                                                          \
    snprintf(n, sizeof n, "bert.encoder.layer.%d.%s", l, suffix);                                                      \
    o[idx] = add_tensor(tb, n, r, cl, false)
        /* query, key, value registered back to back: together they are the fused
         * [3C, C] qkv matrix (and [3C] bias) that one GEMM multiplies. */
        P(2, "attention.self.query.weight", C, C);
        add_tensor(tb, (snprintf(n, sizeof n, "bert.encoder.layer.%d.attention.self.key.weight", l), n), C, C, false);
        add_tensor(tb, (snprintf(n, sizeof n, "bert.encoder.layer.%d.attention.self.value.weight", l), n), C, C, false);
        P(3, "attention.self.query.bias", C, 0);
        add_tensor(tb, (snprintf(n, sizeof n, "bert.encoder.layer.%d.attention.self.key.bias", l), n), C, 0, false);
        add_tensor(tb, (snprintf(n, sizeof n, "bert.encoder.layer.%d.attention.self.value.bias", l), n), C, 0, false);
        P(4, "attention.output.dense.weight", C, C);
        P(5, "attention.output.dense.bias", C, 0);
        P(0, "attention.output.LayerNorm.weight", C, 0);
        P(1, "attention.output.LayerNorm.bias", C, 0);
        P(8, "intermediate.dense.weight", I, C);
        P(9, "intermediate.dense.bias", I, 0);
        P(10, "output.dense.weight", C, I);
        P(11, "output.dense.bias", C, 0);
        P(6, "output.LayerNorm.weight", C, 0);
        P(7, "output.LayerNorm.bias", C, 0);
#undef P
    }
    if (c->pre_layernorm) {
        v->ln_f_w = add_tensor(tb, "bert.encoder.ln_f.weight", C, 0, false);
        v->ln_f_b = add_tensor(tb, "bert.encoder.ln_f.bias", C, 0, false);
    }
    v->head_dense_w = add_tensor(tb, "cls.predictions.transform.dense.weight", C, C, false);
    v->head_dense_b = add_tensor(tb, "cls.predictions.transform.dense.bias", C, 0, false);
    v->head_ln_w = add_tensor(tb, "cls.predictions.transform.LayerNorm.weight", C, 0, false);
    v->head_ln_b = add_tensor(tb, "cls.predictions.transform.LayerNorm.bias", C, 0, false);
    v->head_bias = add_tensor(tb, "cls.predictions.bias", c->vocab_size, 0, false);
    v->lm_w =
        c->tie_word_embeddings ? v->wte : add_tensor(tb, "cls.predictions.decoder.weight", c->vocab_size, C, false);
}

static void register_gpt2(table_builder *tb, view_offsets *v) {
    const plm_config *c = &tb->m->config;
    int C = c->hidden_size, I = c->intermediate_size;
    char n[96];
    v->wte = add_tensor(tb, "transformer.wte.weight", c->vocab_size, C, false);
    v->wpe = add_tensor(tb, "transformer.wpe.weight", c->max_position_embeddings, C, false);
    v->wtt = c->type_vocab_size ? add_tensor(tb, "transformer.wtt.weight", c->type_vocab_size, C, false) : NONE;
    if (!c->pre_layernorm) {
        v->emb_ln_w = add_tensor(tb, "transformer.ln_emb.weight", C, 0, false);
        v->emb_ln_b = add_tensor(tb, "transformer.ln_emb.bias", C, 0, false);
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        size_t *o = v->layer + 12 * l;
        /* Conv1D weights are [in, out] in HF files: stored transposed. */
#define P(idx, suffix, r, cl, tr)                                                                                      \
    snprintf(n, sizeof n, "transformer.h.%d.%s", l, suffix);                                                           \
    o[idx] = add_tensor(tb, n, r, cl, tr)
        P(0, "ln_1.weight", C, 0, false);
        P(1, "ln_1.bias", C, 0, false);
        P(2, "attn.c_attn.weight", 3 * C, C, true);
        P(3, "attn.c_attn.bias", 3 * C, 0, false);
        P(4, "attn.c_proj.weight", C, C, true);
        P(5, "attn.c_proj.bias", C, 0, false);
        P(6, "ln_2.weight", C, 0, false);
        P(7, "ln_2.bias", C, 0, false);
        P(8, "mlp.c_fc.weight", I, C, true);
        P(9, "mlp.c_fc.bias", I, 0, false);
        P(10, "mlp.c_proj.weight", C, I, true);
        P(11, "mlp.c_proj.bias", C, 0, false);
#undef P
    }
    if (c->pre_layernorm) {
        v->ln_f_w = add_tensor(tb, "transformer.ln_f.weight", C, 0, false);
        v->ln_f_b = add_tensor(tb, "transformer.ln_f.bias", C, 0, false);
    }
    v->lm_w = c->tie_word_embeddings ? v->wte : add_tensor(tb, "lm_head.weight", c->vocab_size, C, false);
}

static float *at(float *base, size_t off) { return off == NONE ? NULL : base + off; }

static void resolve_views(plm_weights *w, float *base, const view_offsets *v, int L) {
    w->wte = at(base, v->wte);
    w->wpe = at(base, v->wpe);
    w->wtt = at(base, v->wtt);
    w->emb_ln_w = at(base, v->emb_ln_w);
    w->emb_ln_b = at(base, v->emb_ln_b);
    w->ln_f_w = at(base, v->ln_f_w);
    w->ln_f_b = at(base, v->ln_f_b);
    w->head_dense_w = at(base, v->head_dense_w);
    w->head_dense_b = at(base, v->head_dense_b);
    w->head_ln_w = at(base, v->head_ln_w);
    w->head_ln_b = at(base, v->head_ln_b);
    w->head_bias = at(base, v->head_bias);
    w->lm_w = at(base, v->lm_w);
    for (int l = 0; l < L; l++) {
        float **p = (float **)&w->layers[l];
        for (int k = 0; k < 12; k++) p[k] = at(base, v->layer[12 * l + k]);
    }
}

static void init_normal(float *p, size_t n, float std, plm_rng *r) {
    for (size_t i = 0; i < n; i++) p[i] = std * plm_rng_normal(r);
}

plm_model *plm_model_create(const plm_config *config, uint64_t seed) {
    if (plm_config_validate(config, "config") != 0) return NULL;
    plm_model *m = plm_calloc(1, sizeof *m);
    m->config = *config;
    const plm_config *c = &m->config;
    int L = c->num_hidden_layers;
    view_offsets v;
    memset(&v, 0xff, sizeof v); /* every offset NONE */
    v.layer = plm_malloc(12 * (size_t)L * sizeof(size_t));
    table_builder tb = {m, 0};
    if (c->arch == PLM_ARCH_BERT)
        register_bert(&tb, &v);
    else
        register_gpt2(&tb, &v);
    m->params = plm_aligned_alloc(m->num_params * sizeof(float));
    memset(m->params, 0, m->num_params * sizeof(float));
    m->w.layers = plm_calloc((size_t)L, sizeof(plm_layer_weights));
    m->g.layers = plm_calloc((size_t)L, sizeof(plm_layer_weights));
    m->grads = plm_aligned_alloc(m->num_params * sizeof(float));
    memset(m->grads, 0, m->num_params * sizeof(float));
    resolve_views(&m->w, m->params, &v, L);
    resolve_views(&m->g, m->grads, &v, L);
    free(v.layer);

    /* Initialisation, in table order so it is reproducible from the seed. */
    plm_rng r;
    plm_rng_seed(&r, seed, 0x1417);
    float std = c->initializer_range;
    float proj_std = c->arch == PLM_ARCH_GPT2 ? std / sqrtf(2.0f * (float)L) : std;
    for (int i = 0; i < m->num_tensors; i++) {
        plm_tensor *t = &m->tensors[i];
        float *p = m->params + t->offset;
        const char *nm = t->name;
        bool is_ln_w = t->ndim == 1 && (strstr(nm, "LayerNorm.weight") || strstr(nm, "ln_"));
        if (t->ndim == 1) {
            float val = is_ln_w && strstr(nm, ".weight") ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->numel; k++) p[k] = val;
        } else {
            bool resid_proj = strstr(nm, "c_proj.weight") != NULL;
            init_normal(p, t->numel, resid_proj ? proj_std : std, &r);
        }
    }
    if (c->arch == PLM_ARCH_BERT && c->pad_token_id >= 0)
        memset(m->w.wte + (size_t)c->pad_token_id * c->hidden_size, 0, (size_t)c->hidden_size * sizeof(float));
    return m;
}

const plm_tensor *plm_model_find(const plm_model *m, const char *name) {
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* ---------------------------------------------------------------- activations */

static float *falloc(size_t n) { return plm_aligned_alloc(n * sizeof(float)); }

int plm_model_reserve(plm_model *m, int B, int T) {
    const plm_config *c = &m->config;
    if (T > c->max_position_embeddings) {
        plm_error("sequence length %d exceeds max_position_embeddings %d", T, c->max_position_embeddings);
        return -1;
    }
    if (m->cap_B >= B && m->cap_T >= T) return 0;
    B = PLM_MAX(B, m->cap_B);
    T = PLM_MAX(T, m->cap_T);
    free(m->emb); /* growing: the old activations go */
    m->cap_B = B;
    m->cap_T = T;
    size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size;
    size_t NH = c->num_attention_heads, L = c->num_hidden_layers;
    /* One allocation for every activation, carved into views. */
    size_t per_layer = N * C * 5 + N * 3 * C + NH * N * T + N * I * 2 + 4 * N;
    size_t total =
        N * C * 3 + 2 * N + per_layer * L + N * C + 2 * N + N * C * 4 + 2 * N + N * V + N * C * 4 + N * 3 * C + N * I;
    int nt = omp_get_max_threads();
    size_t sc = attention_scratch_floats(T);
    size_t red = (size_t)nt * PLM_MAX(PLM_MAX(2 * C, 3 * C), PLM_MAX(I, V));
    m->scratch_floats = PLM_MAX(sc, red);
    total += m->scratch_floats + 16 * (16 * L + 32); /* each view is rounded up to 16 floats */
    float *p = falloc(total);
    memset(p, 0, total * sizeof(float));
    float *base = p;
#define TAKE(n) (p += (((n) + 15) & ~(size_t)15), p - (((n) + 15) & ~(size_t)15))
    m->emb = TAKE(N * C);
    m->emb_ln = TAKE(N * C);
    m->emb_mean = TAKE(N);
    m->emb_rstd = TAKE(N);
    m->x0 = TAKE(N * C);
    free(m->acts);
    m->acts = plm_calloc(L, sizeof(plm_layer_acts));
    for (size_t l = 0; l < L; l++) {
        plm_layer_acts *a = &m->acts[l];
        a->ln1 = TAKE(N * C);
        a->ln1_mean = TAKE(N);
        a->ln1_rstd = TAKE(N);
        a->qkv = TAKE(N * 3 * C);
        a->att = TAKE(NH * N * T);
        a->atty = TAKE(N * C);
        a->res1 = TAKE(N * C);
        a->ln2 = TAKE(N * C);
        a->ln2_mean = TAKE(N);
        a->ln2_rstd = TAKE(N);
        a->fch = TAKE(N * I);
        a->fch_gelu = TAKE(N * I);
        a->res2 = TAKE(N * C);
    }
    m->lnf = TAKE(N * C);
    m->lnf_mean = TAKE(N);
    m->lnf_rstd = TAKE(N);
    m->hsel = TAKE(N * C);
    m->h_dense = TAKE(N * C);
    m->h_gelu = TAKE(N * C);
    m->h_ln = TAKE(N * C);
    m->h_mean = TAKE(N);
    m->h_rstd = TAKE(N);
    m->logits = TAKE(N * V);
    m->g_resid = TAKE(N * C);
    m->g_a = TAKE(N * C);
    m->g_b = TAKE(N * C);
    m->g_atty = TAKE(N * C);
    m->g_qkv = TAKE(N * 3 * C);
    m->g_fch = TAKE(N * I);
    m->scratch = TAKE(m->scratch_floats);
#undef TAKE
    if ((size_t)(p - base) > total) plm_die("activation layout overflow");
    free(m->rows);
    free(m->row_targets);
    m->rows = plm_malloc(N * sizeof(int32_t));
    m->row_targets = plm_malloc(N * sizeof(int32_t));
    return 0;
}

void plm_model_zero_grad(plm_model *m) {
    if (m->grads) memset(m->grads, 0, m->num_params * sizeof(float));
}

void plm_model_free(plm_model *m) {
    if (!m) return;
    free(m->tensors);
    free(m->params);
    free(m->grads);
    free(m->w.layers);
    free(m->g.layers);
    free(m->emb);
    free(m->acts);
    free(m->rows);
    free(m->row_targets);
    free(m);
}

/* ---------------------------------------------------------------- forward */

/* Dropout sites get independent masks: key = f(seed, layer, site). */
static uint64_t drop_key(const plm_batch *b, int layer, int site) {
    return plm_hash_combine(b->dropout_seed, (uint64_t)(layer + 1) * 16 + (uint64_t)site);
}

static const float *layer_input(const plm_model *m, int l) {
    if (l == 0) return m->x0;
    const plm_layer_acts *a = &m->acts[l - 1];
    return m->config.pre_layernorm ? a->res2 : a->ln2;
}

const float *plm_model_hidden(const plm_model *m) {
    int L = m->config.num_hidden_layers;
    return m->config.pre_layernorm ? m->lnf : m->acts[L - 1].ln2;
}

/* Runs the head transform (BERT) on m->num_rows gathered rows; returns the head input. */
static const float *head_transform(plm_model *m) {
    const plm_config *c = &m->config;
    int M = m->num_rows, C = c->hidden_size;
    const float *h = plm_model_hidden(m);
    for (int r = 0; r < M; r++) memcpy(m->hsel + (size_t)r * C, h + (size_t)m->rows[r] * C, C * sizeof(float));
    if (c->arch != PLM_ARCH_BERT) return m->hsel;
    linear_forward(m->h_dense, m->hsel, m->w.head_dense_w, m->w.head_dense_b, M, C, C);
    gelu_forward(m->h_gelu, m->h_dense, (size_t)M * C, c->hidden_act);
    layernorm_forward(m->h_ln, m->h_mean, m->h_rstd, m->h_gelu, m->w.head_ln_w, m->w.head_ln_b, M, C,
                      c->layer_norm_eps);
    return m->h_ln;
}

static void forward_body(plm_model *m, const plm_batch *b) {
    const plm_config *c = &m->config;
    int B = b->B, T = b->T, C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads;
    size_t N = (size_t)B * T;
    float pd = b->training ? c->hidden_dropout_prob : 0.0f;
    float pa = b->training ? c->attention_probs_dropout_prob : 0.0f;
    m->cur = *b;

    embedding_forward(m->emb, b->input_ids, b->token_type_ids, m->w.wte, m->w.wpe, m->w.wtt, B, T, C, 0);
    if (!c->pre_layernorm) {
        layernorm_forward(m->emb_ln, m->emb_mean, m->emb_rstd, m->emb, m->w.emb_ln_w, m->w.emb_ln_b, (int)N, C,
                          c->layer_norm_eps);
        dropout_forward(m->x0, m->emb_ln, N * C, pd, drop_key(b, -1, 0));
    } else {
        dropout_forward(m->x0, m->emb, N * C, pd, drop_key(b, -1, 0));
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const plm_layer_weights *w = &m->w.layers[l];
        plm_layer_acts *a = &m->acts[l];
        const float *x = layer_input(m, l);
        if (c->pre_layernorm) {
            layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, (int)N, C, c->layer_norm_eps);
            linear_forward(a->qkv, a->ln1, w->qkv_w, w->qkv_b, (int)N, C, 3 * C);
        } else {
            linear_forward(a->qkv, x, w->qkv_w, w->qkv_b, (int)N, C, 3 * C);
        }
        attention_forward(a->atty, a->att, a->qkv, b->attention_mask, B, T, C, NH, b->causal, pa, drop_key(b, l, 0),
                          m->scratch);
        linear_forward(a->res1, a->atty, w->attn_proj_w, w->attn_proj_b, (int)N, C, C);
        residual_dropout_forward(a->res1, x, a->res1, N * C, pd, drop_key(b, l, 1));
        const float *mlp_in;
        if (c->pre_layernorm) {
            layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res1, w->ln2_w, w->ln2_b, (int)N, C,
                              c->layer_norm_eps);
            mlp_in = a->ln2;
        } else {
            layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->res1, w->ln1_w, w->ln1_b, (int)N, C,
                              c->layer_norm_eps);
            mlp_in = a->ln1;
        }
        linear_forward(a->fch, mlp_in, w->fc_w, w->fc_b, (int)N, C, I);
        gelu_forward(a->fch_gelu, a->fch, N * I, c->hidden_act);
        linear_forward(a->res2, a->fch_gelu, w->proj_w, w->proj_b, (int)N, I, C);
        /* the MLP's residual: pre-LN adds the sub-layer input res1, post-LN the LN output */
        residual_dropout_forward(a->res2, c->pre_layernorm ? a->res1 : mlp_in, a->res2, N * C, pd, drop_key(b, l, 2));
        if (!c->pre_layernorm)
            layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, w->ln2_w, w->ln2_b, (int)N, C,
                              c->layer_norm_eps);
    }
    if (c->pre_layernorm) {
        const plm_layer_acts *a = &m->acts[c->num_hidden_layers - 1];
        layernorm_forward(m->lnf, m->lnf_mean, m->lnf_rstd, a->res2, m->w.ln_f_w, m->w.ln_f_b, (int)N, C,
                          c->layer_norm_eps);
    }
}

/* ---------------------------------------------------------------- backward */

static void backward_body(plm_model *m, const float *head_in) {
    const plm_config *c = &m->config;
    const plm_batch *b = &m->cur;
    int B = b->B, T = b->T, C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads;
    int M = m->num_rows, V = c->vocab_size;
    size_t N = (size_t)B * T;
    float pd = b->training ? c->hidden_dropout_prob : 0.0f;
    float pa = b->training ? c->attention_probs_dropout_prob : 0.0f;
    float *sc = m->scratch;

    /* head: logits = head_in @ lm_w^T (+ bias); m->logits holds dlogits */
    linear_backward(m->g_b, m->g.lm_w, m->g.head_bias, m->logits, head_in, m->w.lm_w, M, C, V, false, sc);
    float *dsel = m->g_b;
    if (c->arch == PLM_ARCH_BERT) {
        layernorm_backward(m->g_atty, m->g.head_ln_w, m->g.head_ln_b, m->g_b, m->h_gelu, m->w.head_ln_w, m->h_mean,
                           m->h_rstd, M, C, false, sc);
        gelu_backward(m->g_atty, m->h_dense, m->g_atty, (size_t)M * C, c->hidden_act);
        linear_backward(m->g_b, m->g.head_dense_w, m->g.head_dense_b, m->g_atty, m->hsel, m->w.head_dense_w, M, C, C,
                        false, sc);
    }
    /* scatter the selected rows back into a full [N, C] gradient */
    float *gtop = c->pre_layernorm ? m->g_a : m->g_resid;
    memset(gtop, 0, N * C * sizeof(float));
    for (int r = 0; r < M; r++) memcpy(gtop + (size_t)m->rows[r] * C, dsel + (size_t)r * C, C * sizeof(float));
    if (c->pre_layernorm) {
        const plm_layer_acts *a = &m->acts[c->num_hidden_layers - 1];
        layernorm_backward(m->g_resid, m->g.ln_f_w, m->g.ln_f_b, m->g_a, a->res2, m->w.ln_f_w, m->lnf_mean, m->lnf_rstd,
                           (int)N, C, false, sc);
    }

    for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
        const plm_layer_weights *w = &m->w.layers[l];
        plm_layer_weights *g = &m->g.layers[l];
        plm_layer_acts *a = &m->acts[l];
        const float *x = layer_input(m, l);
        if (c->pre_layernorm) {
            /* g_resid = d res2. MLP branch: res2 = res1 + drop(proj(gelu(fc(ln2)))) */
            float *dmlp = m->g_resid;
            if (pd > 0.0f) dropout_backward(dmlp = m->g_b, m->g_resid, N * C, pd, drop_key(b, l, 2));
            linear_backward(m->g_fch, g->proj_w, g->proj_b, dmlp, a->fch_gelu, w->proj_w, (int)N, I, C, false, sc);
            gelu_backward(m->g_fch, a->fch, m->g_fch, N * I, c->hidden_act);
            linear_backward(m->g_a, g->fc_w, g->fc_b, m->g_fch, a->ln2, w->fc_w, (int)N, C, I, false, sc);
            layernorm_backward(m->g_resid, g->ln2_w, g->ln2_b, m->g_a, a->res1, w->ln2_w, a->ln2_mean, a->ln2_rstd,
                               (int)N, C, true, sc);
            /* g_resid = d res1. Attention branch: res1 = x + drop(proj(attn(qkv(ln1)))) */
            float *dattn = m->g_resid;
            if (pd > 0.0f) dropout_backward(dattn = m->g_b, m->g_resid, N * C, pd, drop_key(b, l, 1));
            linear_backward(m->g_atty, g->attn_proj_w, g->attn_proj_b, dattn, a->atty, w->attn_proj_w, (int)N, C, C,
                            false, sc);
            attention_backward(m->g_qkv, m->g_atty, a->qkv, a->att, B, T, C, NH, pa, drop_key(b, l, 0), sc);
            linear_backward(m->g_a, g->qkv_w, g->qkv_b, m->g_qkv, a->ln1, w->qkv_w, (int)N, C, 3 * C, false, sc);
            layernorm_backward(m->g_resid, g->ln1_w, g->ln1_b, m->g_a, x, w->ln1_w, a->ln1_mean, a->ln1_rstd, (int)N, C,
                               true, sc);
        } else {
            /* g_resid = d ln2 = d out. res2 = ln1 + drop(mlp(ln1)); ln2 = LN(res2) */
            layernorm_backward(m->g_a, g->ln2_w, g->ln2_b, m->g_resid, a->res2, w->ln2_w, a->ln2_mean, a->ln2_rstd,
                               (int)N, C, false, sc);
            float *dmlp = m->g_a;
            if (pd > 0.0f) dropout_backward(dmlp = m->g_b, m->g_a, N * C, pd, drop_key(b, l, 2));
            linear_backward(m->g_fch, g->proj_w, g->proj_b, dmlp, a->fch_gelu, w->proj_w, (int)N, I, C, false, sc);
            gelu_backward(m->g_fch, a->fch, m->g_fch, N * I, c->hidden_act);
            /* g_a = d res2 (identity path) + the MLP path = d ln1 */
            linear_backward(m->g_a, g->fc_w, g->fc_b, m->g_fch, a->ln1, w->fc_w, (int)N, C, I, true, sc);
            /* res1 = x + drop(attn(x)); ln1 = LN(res1) */
            layernorm_backward(m->g_resid, g->ln1_w, g->ln1_b, m->g_a, a->res1, w->ln1_w, a->ln1_mean, a->ln1_rstd,
                               (int)N, C, false, sc);
            float *dattn = m->g_resid;
            if (pd > 0.0f) dropout_backward(dattn = m->g_b, m->g_resid, N * C, pd, drop_key(b, l, 1));
            linear_backward(m->g_atty, g->attn_proj_w, g->attn_proj_b, dattn, a->atty, w->attn_proj_w, (int)N, C, C,
                            false, sc);
            attention_backward(m->g_qkv, m->g_atty, a->qkv, a->att, B, T, C, NH, pa, drop_key(b, l, 0), sc);
            linear_backward(m->g_resid, g->qkv_w, g->qkv_b, m->g_qkv, x, w->qkv_w, (int)N, C, 3 * C, true, sc);
        }
    }

    /* embeddings: x0 = drop(LN(emb)) (post-LN) or drop(emb) (pre-LN) */
    if (pd > 0.0f) dropout_backward(m->g_resid, m->g_resid, N * C, pd, drop_key(b, -1, 0));
    const float *demb = m->g_resid;
    if (!c->pre_layernorm) {
        layernorm_backward(m->g_a, m->g.emb_ln_w, m->g.emb_ln_b, m->g_resid, m->emb, m->w.emb_ln_w, m->emb_mean,
                           m->emb_rstd, (int)N, C, false, sc);
        demb = m->g_a;
    }
    /* BERT's word embedding has padding_idx = pad_token_id (nn.Embedding semantics):
     * the padding row gets no gradient from the lookup. */
    int padding_idx = c->arch == PLM_ARCH_BERT ? c->pad_token_id : -1;
    embedding_backward(m->g.wte, m->g.wpe, m->g.wtt, demb, b->input_ids, b->token_type_ids, B, T, C, 0, padding_idx);
}

plm_ce_result plm_model_forward(plm_model *m, const plm_batch *b, bool backward, float loss_scale) {
    const plm_config *c = &m->config;
    if (b->B * b->T > m->cap_B * m->cap_T || b->T > m->cap_T) plm_die("batch %dx%d exceeds reserved size", b->B, b->T);
    forward_body(m, b);
    /* rows with a label go through the head */
    int M = 0, N = b->B * b->T;
    for (int i = 0; i < N; i++)
        if (b->labels && b->labels[i] != PLM_IGNORE_INDEX) {
            m->rows[M] = i;
            m->row_targets[M] = b->labels[i];
            M++;
        }
    m->num_rows = M;
    plm_ce_result res = {0.0, 0, 0};
    if (M == 0) return res;
    const float *head_in = head_transform(m);
    linear_forward(m->logits, head_in, m->w.lm_w, m->w.head_bias, M, c->hidden_size, c->vocab_size);
    float grad_scale = loss_scale / (float)M;
    res = crossentropy_forward_backward(m->logits, m->row_targets, M, c->vocab_size, backward, grad_scale);
    if (backward) backward_body(m, head_in);
    return res;
}

void plm_model_logits_at(plm_model *m, const int32_t *positions, int n, float *out) {
    const plm_config *c = &m->config;
    m->num_rows = n;
    for (int i = 0; i < n; i++) m->rows[i] = positions[i];
    const float *head_in = head_transform(m);
    linear_forward(out, head_in, m->w.lm_w, m->w.head_bias, n, c->hidden_size, c->vocab_size);
}

double plm_model_flops(const plm_config *c, int B, int T, int head_rows) {
    double C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size, L = c->num_hidden_layers;
    double N = (double)B * T;
    double layer_params = 3 * C * C + C * C + 2 * C * I; /* qkv, proj, fc, proj */
    double head_params = (c->arch == PLM_ARCH_BERT ? C * C : 0.0) + C * V;
    double gemm = 6.0 * (N * L * layer_params + head_rows * head_params);
    double attn = 12.0 * L * B * (double)T * T * C; /* QK^T and PV: 2 x 2BT^2C fwd, x3 fwd+bwd */
    return gemm + attn;
}
