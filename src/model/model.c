/* model.c - see model.h */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/profile.h"
#include "core/rng.h"
#include "params.h"

/* ---------------------------------------------------------------- parameters */

int plm_params_add(plm_params *p, const char *name, int rows, int cols, int flags, float **w, float **g) {
    plm_model *m = p->m;
    if (m->num_tensors == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        m->tensors = plm_realloc(m->tensors, (size_t)p->cap * sizeof(plm_tensor));
    }
    int idx = m->num_tensors++;
    plm_tensor *t = &m->tensors[idx];
    memset(t, 0, sizeof *t);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows;
    t->shape[1] = cols;
    t->numel = (size_t)rows * (cols ? cols : 1);
    t->offset = m->num_params;
    t->transpose = flags & PLM_P_TRANSPOSE;
    t->no_decay = cols == 0;
    t->head = p->head;
    if (flags & (PLM_P_QKV | PLM_P_KV | PLM_P_PAIR)) {
        /* one [3C, C] (or [2C, C]) block in memory, three (two) HF tensors in files */
        static const char *part[] = {"query", "key", "value"}, *shrt[] = {"q", "k", "v"}, *pair[] = {"0", "1"};
        const char **names = flags & PLM_P_PAIR ? pair : flags & PLM_P_SHORT ? shrt : part;
        int first = flags & PLM_P_KV ? 1 : 0;
        t->nparts = flags & PLM_P_QKV ? 3 : 2;
        for (int k = 0; k < t->nparts; k++) snprintf(t->parts[k], sizeof t->parts[k], name, names[first + k]);
        snprintf(t->name, sizeof t->name, name, flags & PLM_P_PAIR ? "01" : first ? "kv" : "qkv");
    } else {
        snprintf(t->name, sizeof t->name, "%s", name);
    }
    /* keep every tensor 64-byte aligned for vector loads */
    m->num_params += (t->numel + 15) & ~(size_t)15;
    plm_params_alias(p, NULL, idx, w, g);
    return idx;
}

void plm_params_alias(plm_params *p, const char *name, int tensor, float **w, float **g) {
    plm_model *m = p->m;
    if (name) {
        m->aliases = plm_realloc(m->aliases, (size_t)(m->num_aliases + 1) * sizeof(plm_alias));
        plm_alias *a = &m->aliases[m->num_aliases++];
        snprintf(a->name, sizeof a->name, "%s", name);
        a->target = tensor;
    }
    if (!w && !g) return;
    if (p->num_views == p->cap_views) {
        p->cap_views = p->cap_views ? 2 * p->cap_views : 128;
        p->views = plm_realloc(p->views, (size_t)p->cap_views * sizeof *p->views);
    }
    p->views[p->num_views++] = (struct pending){tensor, w, g};
}

void plm_params_finish(plm_params *p) {
    plm_model *m = p->m;
    m->params = plm_aligned_alloc(m->num_params * sizeof(float));
    m->grads = plm_zeroed_alloc(m->num_params * sizeof(float)); /* no memory until training writes it */
    memset(m->params, 0, m->num_params * sizeof(float));
    /* stale until AdamW first fills it */
    m->params16 = (plm_bf16_mirror){.base = m->params, .n = m->num_params, .gen = 1};
    plm_gemm_mirror_add(&m->params16);
    for (int i = 0; i < p->num_views; i++) {
        size_t off = m->tensors[p->views[i].tensor].offset;
        if (p->views[i].w) *p->views[i].w = m->params + off;
        if (p->views[i].g) *p->views[i].g = m->grads + off;
    }
    free(p->views);
    p->views = NULL;
}

/* ---------------------------------------------------------------- registration */

/* One linear layer: "<name>.weight" [out, in] and "<name>.bias" [out], in that order. A
 * fused (PLM_P_QKV / PLM_P_KV) weight has a fused bias; a transposed one a plain bias. */
static void add_linear(plm_params *p, const char *name, int out, int in, int flags, float **w, float **gw, float **b,
                       float **gb) {
    char n[sizeof((plm_tensor *)0)->name];
    size_t len = strnlen(name, sizeof n - sizeof ".weight");
    memcpy(n, name, len);
    memcpy(n + len, ".weight", sizeof ".weight");
    plm_params_add(p, n, out, in, flags, w, gw);
    memcpy(n + len, ".bias", sizeof ".bias");
    plm_params_add(p, n, out, 0, flags & (PLM_P_QKV | PLM_P_KV), b, gb);
}

/* A LayerNorm: "<name>.weight" and "<name>.bias", both [n]. */
static void add_norm(plm_params *p, const char *name, int n, float **w, float **gw, float **b, float **gb) {
    add_linear(p, name, n, 0, 0, w, gw, b, gb);
}

#define VIEW(field) &bb->w.field, &bb->g.field

/* Indices of the embedding tables, so that a second backbone can share them. */
typedef struct {
    int wte, wpe, wtt;
} emb_tables;

/* T5ForConditionalGeneration's names: "shared" (the encoder's embed_tokens and the
 * decoder's are aliases of it), "<stack>.block.{l}.layer.{k}.*", no biases; q | k | v
 * one fused tensor, k | v of EncDecAttention one, wi_0 | wi_1 one. */
static void register_t5(plm_params *p, plm_backbone *bb, const emb_tables *shared, emb_tables *out) {
    const plm_config *c = &bb->config;
    int C = c->hidden_size, I = c->intermediate_size, L = c->num_hidden_layers, NH = c->num_attention_heads;
    int D = NH * plm_config_d_kv(c); /* the attention's inner width */
    const char *P = bb->prefix;
    char n[160];
    bb->w.layers = plm_calloc((size_t)L, sizeof(plm_layer_weights));
    bb->g.layers = plm_calloc((size_t)L, sizeof(plm_layer_weights));
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
#define TV(field) &bb->w.field, &bb->g.field
#define LV(field) &bb->w.layers[l].field, &bb->g.layers[l].field
    if (shared) {
        plm_params_alias(p, NAME("%s.embed_tokens.weight", P), shared->wte, TV(wte));
    } else {
        out->wte = plm_params_add(p, "shared.weight", c->vocab_size, C, 0, TV(wte));
        plm_params_alias(p, NAME("%s.embed_tokens.weight", P), out->wte, NULL, NULL);
    }
    int S = PLM_P_SHORT;
    for (int l = 0; l < L; l++) {
        char lp[96];
        snprintf(lp, sizeof lp, "%s.block.%d.layer", P, l);
        plm_params_add(p, NAME("%s.0.SelfAttention.%%s.weight", lp), 3 * D, C, PLM_P_QKV | S, LV(qkv_w));
        plm_params_add(p, NAME("%s.0.SelfAttention.o.weight", lp), C, D, 0, LV(attn_proj_w));
        if (l == 0)
            plm_params_add(p, NAME("%s.0.SelfAttention.relative_attention_bias.weight", lp),
                           c->relative_attention_num_buckets, NH, 0, TV(rel_bias));
        plm_params_add(p, NAME("%s.0.layer_norm.weight", lp), C, 0, 0, LV(ln1_w));
        int f = 1;
        if (c->add_cross_attention) {
            plm_params_add(p, NAME("%s.1.EncDecAttention.q.weight", lp), D, C, 0, LV(cq_w));
            plm_params_add(p, NAME("%s.1.EncDecAttention.%%s.weight", lp), 2 * D, C, PLM_P_KV | S, LV(ckv_w));
            plm_params_add(p, NAME("%s.1.EncDecAttention.o.weight", lp), C, D, 0, LV(cproj_w));
            plm_params_add(p, NAME("%s.1.layer_norm.weight", lp), C, 0, 0, LV(lnc_w));
            f = 2;
        }
        if (c->gated_act)
            plm_params_add(p, NAME("%s.%d.DenseReluDense.wi_%%s.weight", lp, f), 2 * I, C, PLM_P_PAIR, LV(fc_w));
        else
            plm_params_add(p, NAME("%s.%d.DenseReluDense.wi.weight", lp, f), I, C, 0, LV(fc_w));
        plm_params_add(p, NAME("%s.%d.DenseReluDense.wo.weight", lp, f), C, I, 0, LV(proj_w));
        plm_params_add(p, NAME("%s.%d.layer_norm.weight", lp, f), C, 0, 0, LV(ln2_w));
    }
    plm_params_add(p, NAME("%s.final_layer_norm.weight", P), C, 0, 0, TV(ln_f_w));
#undef LV
#undef TV
#undef NAME
}

/* HF's T5PreTrainedModel._init_weights (factor = initializer_factor): shared and an
 * untied lm_head N(0, factor); q N(0, factor (d_model d_kv)^-1/2), k and v N(0, factor
 * d_model^-1/2), o N(0, factor (NH d_kv)^-1/2); wi (wi_0, wi_1) N(0, factor
 * d_model^-1/2), wo N(0, factor d_ff^-1/2); relative_attention_bias N(0, factor
 * d_model^-1/2). Rows [r0, r1) of a fused tensor: the std of that part. */
static float t5_init_std(const plm_config *c, const char *name, int row) {
    float f = c->initializer_range, C = (float)c->hidden_size, dkv = (float)plm_config_d_kv(c);
    if (strstr(name, "SelfAttention.qkv") || strstr(name, "EncDecAttention.q."))
        return row < c->num_attention_heads * plm_config_d_kv(c) ? f / sqrtf(C * dkv) : f / sqrtf(C);
    if (strstr(name, "EncDecAttention.kv") || strstr(name, "relative_attention_bias") || strstr(name, ".wi"))
        return f / sqrtf(C);
    if (strstr(name, "Attention.o.")) return f / sqrtf((float)c->num_attention_heads * dkv);
    if (strstr(name, ".wo.")) return f / sqrtf((float)c->intermediate_size);
    return f; /* shared, lm_head */
}

static void register_backbone(plm_params *p, plm_backbone *bb, const emb_tables *shared, emb_tables *out) {
    if (bb->config.arch == PLM_ARCH_T5) {
        register_t5(p, bb, shared, out);
        return;
    }
    const plm_config *c = &bb->config;
    int C = c->hidden_size, I = c->intermediate_size, E = bb->E, L = c->num_hidden_layers;
    const char *P = bb->prefix;
    bool gpt2 = c->arch == PLM_ARCH_GPT2;
    char n[160];
    bb->w.layers = plm_calloc((size_t)L, sizeof(plm_layer_weights));
    bb->g.layers = plm_calloc((size_t)L, sizeof(plm_layer_weights));
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    /* embeddings: shared tables are views of the first backbone's */
    if (shared) {
        plm_params_alias(p, NAME("%s.embeddings.word_embeddings.weight", P), shared->wte, VIEW(wte));
        plm_params_alias(p, NAME("%s.embeddings.position_embeddings.weight", P), shared->wpe, VIEW(wpe));
        if (c->type_vocab_size)
            plm_params_alias(p, NAME("%s.embeddings.token_type_embeddings.weight", P), shared->wtt, VIEW(wtt));
    } else if (gpt2) {
        out->wte = plm_params_add(p, NAME("%s.wte.weight", P), c->vocab_size, E, 0, VIEW(wte));
        out->wpe = plm_params_add(p, NAME("%s.wpe.weight", P), c->max_position_embeddings, E, 0, VIEW(wpe));
        if (c->type_vocab_size)
            out->wtt = plm_params_add(p, NAME("%s.wtt.weight", P), c->type_vocab_size, E, 0, VIEW(wtt));
    } else {
        out->wte = plm_params_add(p, NAME("%s.embeddings.word_embeddings.weight", P), c->vocab_size, E, 0, VIEW(wte));
        out->wpe = plm_params_add(p, NAME("%s.embeddings.position_embeddings.weight", P), c->max_position_embeddings, E,
                                  0, VIEW(wpe));
        if (c->type_vocab_size)
            out->wtt = plm_params_add(p, NAME("%s.embeddings.token_type_embeddings.weight", P), c->type_vocab_size, E,
                                      0, VIEW(wtt));
    }
    if (!c->pre_layernorm)
        add_norm(p, NAME(gpt2 ? "%s.ln_emb" : "%s.embeddings.LayerNorm", P), E, VIEW(emb_ln_w), VIEW(emb_ln_b));
    if (E != C) add_linear(p, NAME("%s.embeddings_project", P), C, E, 0, VIEW(emb_proj_w), VIEW(emb_proj_b));
    for (int l = 0; l < L; l++) {
#define LV(field) &bb->w.layers[l].field, &bb->g.layers[l].field
        if (gpt2) {
            /* Conv1D weights are [in, out] in HF files: stored transposed */
            int T = PLM_P_TRANSPOSE;
            add_norm(p, NAME("%s.h.%d.ln_1", P, l), C, LV(ln1_w), LV(ln1_b));
            add_linear(p, NAME("%s.h.%d.attn.c_attn", P, l), 3 * C, C, T, LV(qkv_w), LV(qkv_b));
            add_linear(p, NAME("%s.h.%d.attn.c_proj", P, l), C, C, T, LV(attn_proj_w), LV(attn_proj_b));
            add_norm(p, NAME("%s.h.%d.ln_2", P, l), C, LV(ln2_w), LV(ln2_b));
            add_linear(p, NAME("%s.h.%d.mlp.c_fc", P, l), I, C, T, LV(fc_w), LV(fc_b));
            add_linear(p, NAME("%s.h.%d.mlp.c_proj", P, l), C, I, T, LV(proj_w), LV(proj_b));
            if (c->add_cross_attention) {
                /* GPT2Attention(is_cross_attention): q_attn, c_attn = key | value, c_proj */
                add_norm(p, NAME("%s.h.%d.ln_cross_attn", P, l), C, LV(lnc_w), LV(lnc_b));
                add_linear(p, NAME("%s.h.%d.crossattention.q_attn", P, l), C, C, T, LV(cq_w), LV(cq_b));
                add_linear(p, NAME("%s.h.%d.crossattention.c_attn", P, l), 2 * C, C, T, LV(ckv_w), LV(ckv_b));
                add_linear(p, NAME("%s.h.%d.crossattention.c_proj", P, l), C, C, T, LV(cproj_w), LV(cproj_b));
            }
        } else {
            /* query | key | value: one [3C, C] tensor that one GEMM multiplies */
            char lp[96];
            snprintf(lp, sizeof lp, "%s.encoder.layer.%d", P, l);
            add_linear(p, NAME("%s.attention.self.%%s", lp), 3 * C, C, PLM_P_QKV, LV(qkv_w), LV(qkv_b));
            add_linear(p, NAME("%s.attention.output.dense", lp), C, C, 0, LV(attn_proj_w), LV(attn_proj_b));
            add_norm(p, NAME("%s.attention.output.LayerNorm", lp), C, LV(ln1_w), LV(ln1_b));
            add_linear(p, NAME("%s.intermediate.dense", lp), I, C, 0, LV(fc_w), LV(fc_b));
            add_linear(p, NAME("%s.output.dense", lp), C, I, 0, LV(proj_w), LV(proj_b));
            add_norm(p, NAME("%s.output.LayerNorm", lp), C, LV(ln2_w), LV(ln2_b));
            if (c->add_cross_attention) {
                /* BertLayer.crossattention: query, key | value (one tensor), output dense + LN */
                add_linear(p, NAME("%s.crossattention.self.query", lp), C, C, 0, LV(cq_w), LV(cq_b));
                add_linear(p, NAME("%s.crossattention.self.%%s", lp), 2 * C, C, PLM_P_KV, LV(ckv_w), LV(ckv_b));
                add_linear(p, NAME("%s.crossattention.output.dense", lp), C, C, 0, LV(cproj_w), LV(cproj_b));
                add_norm(p, NAME("%s.crossattention.output.LayerNorm", lp), C, LV(lnc_w), LV(lnc_b));
            }
        }
#undef LV
    }
    if (c->pre_layernorm) add_norm(p, NAME(gpt2 ? "%s.ln_f" : "%s.encoder.ln_f", P), C, VIEW(ln_f_w), VIEW(ln_f_b));
    if (bb->pooler) {
        /* optional: a pretraining checkpoint without it loads, the pooler is initialised */
        int saved = p->head;
        p->head = PLM_TENSOR_POOLER;
        add_linear(p, NAME("%s.pooler.dense", P), C, C, 0, VIEW(pool_w), VIEW(pool_b));
        p->head = saved;
    }
#undef NAME
}
#undef VIEW

/* The head's tensors, named as HF's *For* classes name them. pre is "" or the
 * backbone's outer prefix ("generator."). */
static void register_head(plm_params *p, plm_head *h, const plm_backbone *bb, int wte, const char *pre) {
    const plm_config *c = &bb->config;
    int C = c->hidden_size, E = h->in_dim, K = h->K;
    plm_arch arch = c->arch;
    char n[160];
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
#define HV(field) &h->w.field, &h->g.field
    switch (h->spec.kind) {
    case PLM_HEAD_LM: {
        const char *t = arch == PLM_ARCH_ELECTRA ? "generator_predictions" : "cls.predictions.transform";
        if (h->transform) {
            add_linear(p, NAME("%s%s.dense", pre, t), E, C, 0, HV(dense_w), HV(dense_b));
            add_norm(p, NAME("%s%s.LayerNorm", pre, t), E, HV(ln_w), HV(ln_b));
        }
        const char *dec = arch == PLM_ARCH_GPT2 || arch == PLM_ARCH_T5 ? "lm_head"
                          : arch == PLM_ARCH_ELECTRA                   ? "generator_lm_head"
                                                                       : "cls.predictions.decoder";
        if (c->tie_word_embeddings)
            plm_params_alias(p, NAME("%s%s.weight", pre, dec), wte, HV(out_w));
        else
            plm_params_add(p, NAME("%s%s.weight", pre, dec), K, E, 0, HV(out_w));
        if (arch == PLM_ARCH_BERT) {
            int bi = plm_params_add(p, NAME("%scls.predictions.bias", pre), K, 0, 0, HV(out_b));
            plm_params_alias(p, NAME("%scls.predictions.decoder.bias", pre), bi, NULL, NULL);
        } else if (arch == PLM_ARCH_ELECTRA) {
            plm_params_add(p, NAME("%sgenerator_lm_head.bias", pre), K, 0, 0, HV(out_b));
        }
        break;
    }
    case PLM_HEAD_NSP:
        add_linear(p, NAME("%scls.seq_relationship", pre), K, C, 0, HV(out_w), HV(out_b));
        break;
    case PLM_HEAD_SEQ_CLS:
        if (arch == PLM_ARCH_ELECTRA) {
            add_linear(p, NAME("%sclassifier.dense", pre), C, C, 0, HV(dense_w), HV(dense_b));
            add_linear(p, NAME("%sclassifier.out_proj", pre), K, C, 0, HV(out_w), HV(out_b));
        } else if (arch == PLM_ARCH_GPT2) {
            plm_params_add(p, NAME("%sscore.weight", pre), K, C, 0, HV(out_w));
        } else {
            add_linear(p, NAME("%sclassifier", pre), K, C, 0, HV(out_w), HV(out_b));
        }
        break;
    case PLM_HEAD_TOKEN_CLS:
        add_linear(p, NAME("%sclassifier", pre), K, C, 0, HV(out_w), HV(out_b));
        break;
    case PLM_HEAD_QA:
        add_linear(p, NAME("%sqa_outputs", pre), 2, C, 0, HV(out_w), HV(out_b));
        break;
    case PLM_HEAD_RTD:
        add_linear(p, NAME("%sdiscriminator_predictions.dense", pre), C, C, 0, HV(dense_w), HV(dense_b));
        add_linear(p, NAME("%sdiscriminator_predictions.dense_prediction", pre), 1, C, 0, HV(out_w), HV(out_b));
        break;
    }
#undef HV
#undef NAME
}

/* ---------------------------------------------------------------- creation */

static const char *arch_prefix(plm_arch a) {
    return a == PLM_ARCH_GPT2 ? "transformer" : a == PLM_ARCH_ELECTRA ? "electra" : "bert";
}

void plm_model_spec_default(plm_model_spec *s, const plm_config *c) {
    memset(s, 0, sizeof *s);
    s->backbone[0] = *c;
    s->num_backbones = 1;
    if (c->arch == PLM_ARCH_T5) {
        /* T5ForConditionalGeneration: the encoder stack, the decoder stack (causal, with
         * cross-attention, num_decoder_layers) on the same "shared" table, lm_head on it */
        s->backbone[0].is_decoder = s->backbone[0].add_cross_attention = false;
        s->backbone[1] = s->backbone[0];
        s->backbone[1].is_decoder = s->backbone[1].add_cross_attention = true;
        s->backbone[1].num_hidden_layers = c->num_decoder_layers;
        s->prefix[0] = "encoder";
        s->prefix[1] = "decoder";
        s->num_backbones = 2;
        s->share_embeddings = true;
        s->heads[plm_model_spec_add_head(s, PLM_HEAD_LM, 0)].backbone = 1;
        return;
    }
    plm_model_spec_add_head(s, PLM_HEAD_LM, 0);
}

int plm_model_spec_add_head(plm_model_spec *s, plm_head_kind kind, int num_labels) {
    if (s->num_heads == PLM_MAX_HEADS) plm_die("too many heads");
    s->heads[s->num_heads] = (plm_head_spec){kind, 0, num_labels, 1.0f, PLM_SEQ_POOL_DEFAULT};
    return s->num_heads++;
}

static void init_weights(plm_model *m, uint64_t seed, plm_init_mode mode);

static void init_normal(float *p, size_t n, float std, plm_rng *r) {
    for (size_t i = 0; i < n; i++) p[i] = std * plm_rng_normal(r);
}

/* The generator's state after n normals (two uniforms each), without their log and cos. */
static void skip_normal(size_t n, plm_rng *r) {
    for (size_t i = 0; i < 2 * n; i++) plm_rng_next(r);
}

plm_model *plm_model_create_spec(const plm_model_spec *s, uint64_t seed) {
    return plm_model_create_spec_ex(s, seed, PLM_INIT_ALL);
}

plm_model *plm_model_create_spec_ex(const plm_model_spec *s, uint64_t seed, plm_init_mode init) {
    if (s->num_backbones < 1 || s->num_backbones > PLM_MAX_BACKBONES) {
        plm_error("a model has 1 or %d backbones", PLM_MAX_BACKBONES);
        return NULL;
    }
    for (int k = 0; k < s->num_backbones; k++)
        if (plm_config_validate(&s->backbone[k], "config") != 0) return NULL;
    /* whether or not a head reads it: the encoder would run without encoder states */
    for (int k = 0; k < s->num_backbones; k++)
        if (s->backbone[k].add_cross_attention && (k != 1 || s->num_backbones != 2)) {
            plm_error("a cross-attention stack is the second backbone of an encoder-decoder");
            return NULL;
        }
    /* the cross-attention's key/value projection reads the encoder states with the
     * decoder's width (HF would insert enc_to_dec_proj; plm has none) */
    if (s->num_backbones == 2 && s->backbone[1].add_cross_attention &&
        s->backbone[0].hidden_size != s->backbone[1].hidden_size) {
        plm_error("encoder-decoder: encoder hidden_size %d differs from the decoder's %d (no enc_to_dec_proj)",
                  s->backbone[0].hidden_size, s->backbone[1].hidden_size);
        return NULL;
    }
    for (int i = 0; i < s->num_heads; i++) {
        const plm_head_spec *hs = &s->heads[i];
        const plm_config *c = &s->backbone[hs->backbone];
        if (hs->backbone < 0 || hs->backbone >= s->num_backbones) {
            plm_error("head %d reads backbone %d, which does not exist", i, hs->backbone);
            return NULL;
        }
        if (c->add_cross_attention && (hs->backbone == 0 || s->num_backbones != 2)) {
            plm_error("a cross-attention stack is the second backbone of an encoder-decoder");
            return NULL;
        }
        if ((hs->kind == PLM_HEAD_SEQ_CLS || hs->kind == PLM_HEAD_TOKEN_CLS) && hs->num_labels < 1) {
            plm_error("the %s head needs num_labels >= 1", head_kind_name(hs->kind));
            return NULL;
        }
        if (hs->kind == PLM_HEAD_TOKEN_CLS && hs->num_labels < 2) {
            plm_error("token classification needs num_labels >= 2");
            return NULL;
        }
        if (hs->pooling != PLM_SEQ_POOL_DEFAULT && (hs->kind != PLM_HEAD_SEQ_CLS || c->arch == PLM_ARCH_ELECTRA)) {
            plm_error("pooling %s is for a BERT or GPT-2 sequence-classification head (ELECTRA's reads [CLS])",
                      head_pooling_name(hs->pooling));
            return NULL;
        }
        if (hs->kind == PLM_HEAD_NSP && c->arch != PLM_ARCH_BERT) {
            plm_error("next-sentence prediction needs BERT's pooler (model_type bert)");
            return NULL;
        }
    }
    if (s->share_embeddings && s->num_backbones == 2) {
        const plm_config *a = &s->backbone[0], *b = &s->backbone[1];
        int ea = a->embedding_size ? a->embedding_size : a->hidden_size;
        int eb = b->embedding_size ? b->embedding_size : b->hidden_size;
        if (ea != eb || a->vocab_size != b->vocab_size || a->max_position_embeddings != b->max_position_embeddings ||
            a->type_vocab_size != b->type_vocab_size) {
            plm_error("shared embeddings need equal embedding_size, vocab_size, max_position_embeddings and "
                      "type_vocab_size in both models");
            return NULL;
        }
    }
    plm_model *m = plm_calloc(1, sizeof *m);
    m->config = s->backbone[0];
    m->num_backbones = s->num_backbones;
    m->num_heads = s->num_heads;
    plm_params p = {m, 0, -1, NULL, 0, 0};
    emb_tables tables[PLM_MAX_BACKBONES];
    memset(tables, 0xff, sizeof tables);
    for (int k = 0; k < m->num_backbones; k++) {
        plm_backbone *bb = &m->bb[k];
        bb->config = s->backbone[k];
        bb->index = k;
        bb->E = bb->config.embedding_size ? bb->config.embedding_size : bb->config.hidden_size;
        snprintf(bb->prefix, sizeof bb->prefix, "%s", s->prefix[k] ? s->prefix[k] : arch_prefix(bb->config.arch));
        for (int i = 0; i < s->num_heads; i++)
            if (s->heads[i].backbone == k && head_uses_pooler(&s->heads[i], bb->config.arch)) bb->pooler = true;
        p.head = -1;
        register_backbone(&p, bb, k > 0 && s->share_embeddings ? &tables[0] : NULL, &tables[k]);
        if (k > 0 && s->share_embeddings) tables[k] = tables[0];
    }
    for (int i = 0; i < m->num_heads; i++) {
        plm_head *h = &m->heads[i];
        h->index = i;
        plm_backbone *bb = &m->bb[s->heads[i].backbone];
        head_setup(h, &s->heads[i], bb);
        /* heads of a second backbone carry its outer prefix: "generator.electra" -> "generator." */
        char pre[48] = "";
        const char *dot = strrchr(bb->prefix, '.');
        if (dot) snprintf(pre, sizeof pre, "%.*s", (int)(dot - bb->prefix + 1), bb->prefix);
        p.head = i;
        register_head(&p, h, bb, tables[s->heads[i].backbone].wte, pre);
    }
    plm_params_finish(&p);
    if (init != PLM_INIT_NONE) init_weights(m, seed, init);
    plm_model_params_written(m);
    return m;
}

/* Initialisation, in table order so it is reproducible from the seed. */
static void init_weights(plm_model *m, uint64_t seed, plm_init_mode mode) {
    plm_rng r;
    plm_rng_seed(&r, seed, 0x1417);
    for (int i = 0; i < m->num_tensors; i++) {
        plm_tensor *t = &m->tensors[i];
        float *w = m->params + t->offset;
        const char *nm = t->name;
        if (mode == PLM_INIT_BUT_BACKBONE && t->head == PLM_TENSOR_BACKBONE) {
            if (t->ndim > 1) skip_normal(t->numel, &r); /* every matrix below draws numel normals */
            continue;
        }
        const plm_config *c = &m->config;
        for (int k = 1; k < m->num_backbones; k++)
            if (strncmp(nm, m->bb[k].prefix, strlen(m->bb[k].prefix)) == 0) c = &m->bb[k].config;
        /* a head's tensors ("decoder.cls.*", "generator.generator_predictions.*") do not
         * carry the backbone's full prefix: the config of the backbone it reads */
        if (t->head >= 0) c = &m->bb[m->heads[t->head].spec.backbone].config;
        if (c->arch == PLM_ARCH_T5) {
            if (t->ndim == 1) { /* T5LayerNorm weights: factor * 1.0 */
                for (size_t k = 0; k < t->numel; k++) w[k] = c->initializer_range;
            } else {
                size_t cols = (size_t)t->shape[1];
                for (int row = 0; row < t->shape[0]; row++)
                    init_normal(w + row * cols, cols, t5_init_std(c, nm, row), &r);
            }
            continue;
        }
        if (t->ndim == 1) {
            bool is_ln_w = (strstr(nm, "LayerNorm.weight") || strstr(nm, "ln_")) && strstr(nm, ".weight");
            float val = is_ln_w ? 1.0f : 0.0f;
            for (size_t k = 0; k < t->numel; k++) w[k] = val;
        } else {
            float std = c->initializer_range;
            /* GPT-2 scales the residual projections by 1/sqrt(2 L) */
            if (c->arch == PLM_ARCH_GPT2 && strstr(nm, "c_proj.weight"))
                std /= sqrtf(2.0f * (float)c->num_hidden_layers);
            init_normal(w, t->numel, std, &r);
        }
    }
    for (int k = 0; k < m->num_backbones; k++) {
        const plm_config *c = &m->bb[k].config;
        if (c->arch != PLM_ARCH_GPT2 && c->arch != PLM_ARCH_T5 && c->pad_token_id >= 0)
            memset(m->bb[k].w.wte + (size_t)c->pad_token_id * m->bb[k].E, 0, (size_t)m->bb[k].E * sizeof(float));
    }
}

plm_model *plm_model_create(const plm_config *config, uint64_t seed) {
    plm_model_spec s;
    plm_model_spec_default(&s, config);
    return plm_model_create_spec(&s, seed);
}

const plm_tensor *plm_model_find(const plm_model *m, const char *name) {
    for (int i = 0; i < m->num_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

int plm_model_head(const plm_model *m, plm_head_kind kind) {
    for (int i = 0; i < m->num_heads; i++)
        if (m->heads[i].spec.kind == kind) return i;
    return -1;
}

int plm_model_reserve(plm_model *m, int B, int T) {
    for (int k = 0; k < m->num_backbones; k++)
        if (backbone_reserve(&m->bb[k], B, T) != 0) return -1;
    for (int i = 0; i < m->num_heads; i++) head_reserve(&m->heads[i], B, T);
    return 0;
}

void plm_model_zero_grad(plm_model *m) {
    double prof_t0 = plm_prof_begin();
    if (m->grads) memset(m->grads, 0, m->num_params * sizeof(float));
    plm_prof_end("zero grads", prof_t0);
}

void plm_model_free(plm_model *m) {
    if (!m) return;
    for (int k = 0; k < m->num_backbones; k++) backbone_free(&m->bb[k]);
    for (int i = 0; i < m->num_heads; i++) head_free(&m->heads[i]);
    free(m->tensors);
    free(m->aliases);
    plm_gemm_mirror_remove(&m->params16);
    free(m->params16.w);
    free(m->params);
    plm_zeroed_free(m->grads, m->num_params * sizeof(float));
    free(m);
}

void plm_model_params_written(plm_model *m) { plm_bf16_mirror_stale(&m->params16); }

bool plm_model_round_bf16(plm_model *m) {
    plm_bf16_mirror *s = &m->params16;
    if (!plm_gemm_bf16() || !plm_gemm_bf16_reuse() || !plm_gemm_mirror_registered(s)) return false;
    if (!s->w) s->w = plm_aligned_alloc(s->n * sizeof(uint16_t));
    const float *x = s->base;
    uint16_t *w = s->w;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < s->n; i++) w[i] = plm_to_bf16(x[i]);
    s->w_gen = s->gen;
    return true;
}

/* ---------------------------------------------------------------- running */

int plm_model_check_batch(const plm_model *m, int k, const plm_batch *b) {
    const plm_config *c = &m->bb[k].config;
    if (b->B <= 0 || b->T <= 0 || !b->input_ids) {
        plm_error("batch: empty or without input_ids");
        return -1;
    }
    if (b->T > m->bb[k].cap_T || (size_t)b->B * b->T > (size_t)m->bb[k].cap_B * m->bb[k].cap_T) {
        plm_error("batch %dx%d exceeds the reserved %dx%d", b->B, b->T, m->bb[k].cap_B, m->bb[k].cap_T);
        return -1;
    }
    size_t N = (size_t)b->B * b->T;
    if ((b->position_ids || b->seq_idx) &&
        (c->arch == PLM_ARCH_T5 || c->add_cross_attention || plm_model_is_seq2seq(m))) {
        plm_error("batch: packed documents (position_ids, seq_idx) need a self-attention model; this is a %s",
                  plm_model_architecture(m));
        return -1;
    }
    for (size_t i = 0; b->position_ids && i < N; i++)
        if (b->position_ids[i] < 0 || b->position_ids[i] >= c->max_position_embeddings) {
            plm_error("batch: position id %d at position %zu is outside 0..%d (max_position_embeddings)",
                      b->position_ids[i], i, c->max_position_embeddings - 1);
            return -1;
        }
    for (size_t i = 0; b->seq_idx && i < N; i++)
        if (b->seq_idx[i] < 0 || b->seq_idx[i] >= (1 << 24)) { /* exact as floats in attention's saved state */
            plm_error("batch: seq_idx %d at position %zu is outside 0..2^24", b->seq_idx[i], i);
            return -1;
        }
    for (size_t i = 0; i < N; i++) {
        if (b->input_ids[i] < 0 || b->input_ids[i] >= c->vocab_size) {
            plm_error("batch: input id %d at position %zu is outside the vocabulary (%d)", b->input_ids[i], i,
                      c->vocab_size);
            return -1;
        }
        if (b->token_type_ids && (b->token_type_ids[i] < 0 || b->token_type_ids[i] >= PLM_MAX(c->type_vocab_size, 1) ||
                                  (!c->type_vocab_size && b->token_type_ids[i] != 0))) {
            plm_error("batch: token type id %d at position %zu is outside 0..%d (type_vocab_size)",
                      b->token_type_ids[i], i, PLM_MAX(c->type_vocab_size - 1, 0));
            return -1;
        }
    }
    for (int i = 0; i < m->num_heads; i++)
        if (m->heads[i].spec.backbone == k && head_check_labels(&m->heads[i], b, "batch") != 0) return -1;
    return 0;
}

/* The heads on backbone k, after its forward pass: their losses are added to m->loss
 * and, with backward, their input gradients to the backbone's dhidden / dpooled. */
static void run_heads(plm_model *m, int k, const plm_batch *b, bool backward, float loss_scale) {
    plm_backbone *bb = &m->bb[k];
    for (int i = 0; i < m->num_heads; i++) {
        plm_head *h = &m->heads[i];
        if (h->spec.backbone != k) continue;
        plm_prof_set_phase(PLM_PHASE_FWD);
        double prof_t0 = plm_prof_begin();
        head_forward(h, bb, b, backward, loss_scale);
        plm_prof_end("heads (less GEMMs and loss)", prof_t0);
        if (h->result.count) m->loss += h->spec.weight * h->loss;
        if (backward) {
            plm_prof_set_phase(PLM_PHASE_BWD);
            head_backward(h, bb, b);
        }
    }
}

int plm_model_run(plm_model *m, int k, const plm_batch *b, bool backward, float loss_scale) {
    if (plm_model_check_batch(m, k, b) != 0) return -1;
    plm_backbone *bb = &m->bb[k];
    /* under bf16, forward keeps its linear inputs' bf16 copies for dW (gemm.h) */
    plm_gemm_bf16_keep_inputs(backward);
    plm_prof_set_phase(PLM_PHASE_FWD);
    backbone_set_packing(bb, b->position_ids, b->seq_idx);
    backbone_forward(bb, b->B, b->T, b->input_ids, b->token_type_ids, b->attention_mask, b->causal, b->training,
                     b->dropout_seed);
    if (backward) backbone_zero_dhidden(bb);
    m->loss = 0.0;
    run_heads(m, k, b, backward, loss_scale);
    plm_prof_set_phase(PLM_PHASE_BWD);
    if (backward) backbone_backward(bb);
    plm_gemm_bf16_keep_inputs(false);
    plm_prof_set_phase(PLM_PHASE_FWD);
    return 0;
}

const float *plm_model_forward_hidden(plm_model *m, int k, const plm_batch *b, bool for_backward) {
    if (plm_model_check_batch(m, k, b) != 0) return NULL;
    plm_gemm_bf16_keep_inputs(for_backward);
    plm_prof_set_phase(PLM_PHASE_FWD);
    backbone_set_packing(&m->bb[k], b->position_ids, b->seq_idx);
    const float *h = backbone_forward(&m->bb[k], b->B, b->T, b->input_ids, b->token_type_ids, b->attention_mask,
                                      b->causal, b->training, b->dropout_seed);
    if (!for_backward) plm_gemm_bf16_keep_inputs(false);
    return h;
}

void plm_model_backward_hidden(plm_model *m, int k, const plm_batch *b, const float *dhidden) {
    plm_backbone *bb = &m->bb[k];
    backbone_zero_dhidden(bb);
    memcpy(bb->dhidden, dhidden, (size_t)b->B * b->T * bb->config.hidden_size * sizeof(float));
    plm_prof_set_phase(PLM_PHASE_BWD);
    backbone_backward(bb);
    plm_gemm_bf16_keep_inputs(false);
    plm_prof_set_phase(PLM_PHASE_FWD);
}

bool plm_model_is_seq2seq(const plm_model *m) { return m->num_backbones == 2 && m->bb[1].config.add_cross_attention; }

int plm_model_run_seq2seq(plm_model *m, const plm_batch *enc, const plm_batch *dec, bool backward, float loss_scale) {
    if (!plm_model_is_seq2seq(m)) {
        plm_error("not an encoder-decoder model (the second backbone needs add_cross_attention)");
        return -1;
    }
    if (enc->B != dec->B) {
        plm_error("encoder batch has %d sequences, decoder batch %d", enc->B, dec->B);
        return -1;
    }
    if (plm_model_check_batch(m, 0, enc) != 0 || plm_model_check_batch(m, 1, dec) != 0) return -1;
    plm_backbone *eb = &m->bb[0], *db = &m->bb[1];
    plm_gemm_bf16_keep_inputs(backward);
    const float *h = backbone_forward(eb, enc->B, enc->T, enc->input_ids, enc->token_type_ids, enc->attention_mask,
                                      false, enc->training, enc->dropout_seed);
    backbone_set_encoder(db, h, enc->T, enc->attention_mask);
    backbone_forward(db, dec->B, dec->T, dec->input_ids, dec->token_type_ids, dec->attention_mask, dec->causal,
                     dec->training, dec->dropout_seed);
    if (backward) {
        backbone_zero_dhidden(eb);
        backbone_zero_dhidden(db);
    }
    m->loss = 0.0;
    run_heads(m, 0, enc, backward, loss_scale);
    run_heads(m, 1, dec, backward, loss_scale);
    if (backward) {
        /* the decoder's cross-attention hands the encoder its states' gradient */
        backbone_backward(db);
        size_t n = (size_t)enc->B * enc->T * eb->config.hidden_size;
        for (size_t i = 0; i < n; i++) eb->dhidden[i] += db->d_enc[i];
        backbone_backward(eb);
    }
    plm_gemm_bf16_keep_inputs(false);
    return 0;
}

plm_ce_result plm_model_forward(plm_model *m, const plm_batch *b, bool backward, float loss_scale) {
    if (plm_model_run(m, 0, b, backward, loss_scale) != 0) return (plm_ce_result){NAN, 0, 0};
    return m->num_heads ? m->heads[0].result : (plm_ce_result){0.0, 0, 0};
}

const float *plm_model_hidden(const plm_model *m) { return backbone_hidden(&m->bb[0]); }

void plm_model_logits_at(plm_model *m, const int32_t *positions, int n, float *out) {
    int h = plm_model_head(m, PLM_HEAD_LM);
    if (h < 0) plm_die("plm_model_logits_at: the model has no LM head");
    head_lm_logits_at(&m->heads[h], &m->bb[m->heads[h].spec.backbone], positions, n, out);
}

double plm_model_flops(const plm_config *c, int B, int T, int head_rows) {
    double C = c->hidden_size, I = c->intermediate_size, V = c->vocab_size, L = c->num_hidden_layers;
    double E = c->embedding_size ? c->embedding_size : C;
    double N = (double)B * T;
    double layer_params = 3 * C * C + C * C + 2 * C * I; /* qkv, proj, fc, proj */
    double head_params = (c->arch != PLM_ARCH_GPT2 ? C * E : 0.0) + E * V;
    double proj = E != C ? E * C : 0.0;
    double gemm = 6.0 * (N * (L * layer_params + proj) + head_rows * head_params);
    double attn = 12.0 * L * B * (double)T * T * C; /* QK^T and PV: 2 x 2BT^2C fwd, x3 fwd+bwd */
    return gemm + attn;
}

double plm_model_flops_t5(const plm_config *c, int B, int T, int Tt) {
    double h = c->hidden_size, I = c->intermediate_size * (c->gated_act ? 1.5 : 1.0), V = c->vocab_size;
    double Le = c->num_hidden_layers, Ld = c->num_decoder_layers;
    return 6.0 * B * T * Le * (4 * h * h + 2 * h * I) + 6.0 * B * Tt * Ld * (6 * h * h + 2 * h * I) +
           6.0 * B * T * Ld * 2 * h * h + 6.0 * B * Tt * h * V +
           12.0 * h * B * (Le * (double)T * T + Ld * ((double)Tt * Tt + (double)Tt * T));
}

const char *plm_model_architecture(const plm_model *m) {
    static _Thread_local char buf[64];
    const plm_config *c = &m->config;
    const char *base = c->arch == PLM_ARCH_GPT2 ? "GPT2" : c->arch == PLM_ARCH_ELECTRA ? "Electra" : "Bert";
    bool lm = false, nsp = false, rtd = false;
    const char *task = NULL;
    for (int i = 0; i < m->num_heads; i++) switch (m->heads[i].spec.kind) {
        case PLM_HEAD_LM:
            lm = true;
            break;
        case PLM_HEAD_NSP:
            nsp = true;
            break;
        case PLM_HEAD_RTD:
            rtd = true;
            break;
        case PLM_HEAD_SEQ_CLS:
            task = "ForSequenceClassification";
            break;
        case PLM_HEAD_TOKEN_CLS:
            task = "ForTokenClassification";
            break;
        case PLM_HEAD_QA:
            task = "ForQuestionAnswering";
            break;
        }
    if (c->arch == PLM_ARCH_T5) return "T5ForConditionalGeneration";
    if (plm_model_is_seq2seq(m)) return "EncoderDecoderModel";
    if (!task) {
        if (m->num_backbones > 1)
            task = "ForGeneratorDiscriminatorPretraining"; /* plm's own */
        else if (lm && nsp)
            task = "ForPreTraining";
        else if (nsp)
            task = "ForNextSentencePrediction";
        else if (rtd)
            task = "ForPreTraining";
        else if (lm)
            task = c->arch == PLM_ARCH_GPT2 ? "LMHeadModel" : "ForMaskedLM";
        else
            task = "Model";
    }
    bool own = plm_config_is_variant(c) || m->num_backbones > 1;
    snprintf(buf, sizeof buf, "%s%s%s", own ? "Plm" : "", base, task);
    return buf;
}
