/* backbone.c - see backbone.h */
#include "backbone.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "core/common.h"
#include "core/rng.h"
#include "dropout.h"
#include "embedding.h"
#include "gelu.h"
#include "gemm.h"
#include "layernorm.h"
#include "linear.h"
#include "t5.h"

/* ---------------------------------------------------------------- activations */

int backbone_reserve(plm_backbone *bb, int B, int T) {
    const plm_config *c = &bb->config;
    if (T > c->max_position_embeddings) {
        plm_error("sequence length %d exceeds max_position_embeddings %d", T, c->max_position_embeddings);
        return -1;
    }
    if (bb->cap_B >= B && bb->cap_T >= T) return 0;
    B = PLM_MAX(B, bb->cap_B);
    T = PLM_MAX(T, bb->cap_T);
    plm_zeroed_free(bb->act_block, bb->act_bytes); /* growing: the old activations go */
    bb->cap_B = B;
    bb->cap_T = T;
    size_t N = (size_t)B * T, C = c->hidden_size, I = c->intermediate_size, E = bb->E;
    size_t NH = c->num_attention_heads, L = c->num_hidden_layers;
    bool t5 = c->arch == PLM_ARCH_T5;
    /* T5's attention width num_heads x d_kv may exceed d_model: every buffer that width */
    if (t5) C = PLM_MAX(C, NH * (size_t)plm_config_d_kv(c));
    size_t I2 = t5 && c->gated_act ? 2 * I : I; /* the FFN's first GEMM: wi, or wi_0 | wi_1 */
    /* attention's saved state: linear in T (attention.h); heads of C / NH channels */
    size_t natt = attention_saved_floats(B, (int)NH, T, T, (int)(C / NH));
    /* One allocation for every activation, carved into views. */
    size_t per_layer = N * C * 5 + N * 3 * C + natt + N * I + N * I2 + 4 * N;
    bool cross = c->add_cross_attention;
    if (cross) per_layer += N * C * 4 + N * 2 * C + natt + 2 * N; /* lnc, cq, caty, resc; ckv; catt */
    size_t emb = N * E * 3 + 2 * N + N * C;
    size_t total = emb + per_layer * L + N * C + 2 * N + (size_t)B * C * 3 + N * C * 6 + N * 3 * C + N * I2 + 2 * N * E;
    if (cross) total += N * C * 2 + N * 2 * C;                    /* g_cq, d_enc; g_ckv */
    if (t5) total += 2 * NH * T * T + NH * N * T + N * C + N * I; /* pos_bias, dpos_bias, g_scores, t5_out, g_act */
    size_t views = 16 + 21 * L + 24 + 5;
    total += 16 * views; /* each view is rounded up to 16 floats */
    /* zero pages the kernel maps on first touch: a buffer a run never writes (the
     * gradients' under inference) costs no memory and no time */
    float *p = plm_zeroed_alloc(total * sizeof(float));
    bb->act_block = p;
    bb->act_bytes = total * sizeof(float);
#define TAKE(n) (p += (((n) + 15) & ~(size_t)15), p - (((n) + 15) & ~(size_t)15))
    bb->emb = TAKE(N * E);
    bb->emb_ln = TAKE(N * E);
    bb->emb_mean = TAKE(N);
    bb->emb_rstd = TAKE(N);
    bb->emb_drop = TAKE(N * E);
    bb->x0 = E == C ? bb->emb_drop : TAKE(N * C);
    free(bb->acts);
    bb->acts = plm_calloc(L, sizeof(plm_layer_acts));
    for (size_t l = 0; l < L; l++) {
        plm_layer_acts *a = &bb->acts[l];
        a->ln1 = TAKE(N * C);
        a->ln1_mean = TAKE(N);
        a->ln1_rstd = TAKE(N);
        a->qkv = TAKE(N * 3 * C);
        a->att = TAKE(natt);
        a->atty = TAKE(N * C);
        a->res1 = TAKE(N * C);
        a->ln2 = TAKE(N * C);
        a->ln2_mean = TAKE(N);
        a->ln2_rstd = TAKE(N);
        a->fch = TAKE(N * I2);
        a->fch_gelu = TAKE(N * I);
        a->res2 = TAKE(N * C);
        if (cross) {
            a->lnc = TAKE(N * C);
            a->lnc_mean = TAKE(N);
            a->lnc_rstd = TAKE(N);
            a->cq = TAKE(N * C);
            a->ckv = TAKE(N * 2 * C); /* Tk <= cap_T rows per sequence */
            a->catt = TAKE(natt);
            a->caty = TAKE(N * C);
            a->resc = TAKE(N * C);
        }
    }
    bb->lnf = TAKE(N * C);
    bb->lnf_mean = TAKE(N);
    bb->lnf_rstd = TAKE(N);
    bb->cls = TAKE((size_t)B * C);
    bb->pooled = TAKE((size_t)B * C);
    bb->dpooled = TAKE((size_t)B * C);
    bb->dhidden = TAKE(N * C);
    bb->g_resid = TAKE(N * C);
    bb->g_a = TAKE(N * C);
    bb->g_b = TAKE(N * C);
    bb->g_atty = TAKE(N * C);
    bb->g_qkv = TAKE(N * 3 * C);
    bb->g_fch = TAKE(N * I2);
    bb->g_emb = TAKE(N * E);
    bb->g_emb2 = TAKE(N * E);
    if (cross) {
        bb->g_cq = TAKE(N * C);
        bb->g_ckv = TAKE(N * 2 * C);
        bb->d_enc = TAKE(N * C);
    }
    if (t5) {
        bb->pos_bias = TAKE(NH * T * T);
        bb->dpos_bias = TAKE(NH * T * T);
        bb->g_scores = TAKE(NH * N * T);
        bb->t5_out = TAKE(N * C);
        bb->g_act = TAKE(N * I);
    }
#undef TAKE
    if ((size_t)(p - bb->act_block) > total) plm_die("activation layout overflow");
    return 0;
}

void backbone_free(plm_backbone *bb) {
    free(bb->w.layers);
    free(bb->g.layers);
    plm_zeroed_free(bb->act_block, bb->act_bytes);
    free(bb->acts);
    memset(bb, 0, sizeof *bb);
}

/* ---------------------------------------------------------------- forward */

/* Dropout sites get independent masks: key = f(seed, layer, site); a second backbone
 * (ELECTRA's discriminator) draws from other keys. */
uint64_t backbone_drop_key(const plm_backbone *bb, int layer, int site) {
    uint64_t k = (uint64_t)(layer + 1) * 16 + (uint64_t)site;
    if (bb->index) k += (uint64_t)bb->index << 40;
    return plm_hash_combine(bb->dropout_seed, k);
}

static const float *layer_input(const plm_backbone *bb, int l) {
    if (l == 0) return bb->x0;
    const plm_layer_acts *a = &bb->acts[l - 1];
    return bb->config.pre_layernorm ? a->res2 : a->ln2;
}

const float *backbone_hidden(const plm_backbone *bb) {
    if (bb->config.arch == PLM_ARCH_T5) return bb->t5_out;
    int L = bb->config.num_hidden_layers;
    return bb->config.pre_layernorm ? bb->lnf : bb->acts[L - 1].ln2;
}

void backbone_set_encoder(plm_backbone *bb, const float *enc, int Tk, const uint8_t *enc_mask) {
    bb->enc = enc;
    bb->Tk = Tk;
    bb->enc_mask = enc_mask;
}

/* The cross-attention call of layer l: queries cq [B, T, C], keys | values ckv [B, Tk, 2C]. */
static attn_shape cross_shape(const plm_backbone *bb, const plm_layer_acts *a, int l, float pa) {
    const plm_config *c = &bb->config;
    int C = c->hidden_size, NH = c->num_attention_heads, hs = C / NH;
    return (attn_shape){.B = bb->B,
                        .Tq = bb->T,
                        .Tk = bb->Tk,
                        .NH = NH,
                        .hs = hs,
                        .q = a->cq,
                        .k = a->ckv,
                        .v = a->ckv + C,
                        .ldq = C,
                        .ldk = 2 * C,
                        .ldv = 2 * C,
                        .key_mask = bb->enc_mask,
                        .scale = 1.0f / sqrtf((float)hs),
                        .dropout_p = pa,
                        .dropout_key = backbone_drop_key(bb, l, 3)};
}

void backbone_set_packing(plm_backbone *bb, const int32_t *position_ids, const int32_t *seq_idx) {
    bb->pending_position_ids = position_ids;
    bb->pending_seq_idx = seq_idx;
}

void backbone_bind(plm_backbone *bb, int B, int T, const int32_t *ids, const int32_t *type_ids, const uint8_t *mask,
                   bool causal, bool training, uint64_t dropout_seed) {
    if (T > bb->cap_T || (size_t)B * T > (size_t)bb->cap_B * bb->cap_T)
        plm_die("batch %dx%d exceeds reserved size", B, T);
    if (bb->config.add_cross_attention && (!bb->enc || bb->Tk <= 0 || bb->Tk > bb->cap_T))
        plm_die("cross-attention without encoder states (backbone_set_encoder)");
    bb->B = B;
    bb->T = T;
    bb->input_ids = ids;
    bb->token_type_ids = type_ids;
    bb->attention_mask = mask;
    bb->position_ids = bb->pending_position_ids;
    bb->seq_idx = bb->pending_seq_idx;
    bb->pending_position_ids = bb->pending_seq_idx = NULL;
    if ((bb->position_ids || bb->seq_idx) && (bb->config.arch == PLM_ARCH_T5 || bb->config.add_cross_attention))
        plm_die("packed documents need a self-attention stack (not T5, not cross-attention)");
    bb->causal = causal;
    bb->training = training;
    bb->dropout_seed = dropout_seed;
}

const float *backbone_forward(plm_backbone *bb, int B, int T, const int32_t *ids, const int32_t *type_ids,
                              const uint8_t *mask, bool causal, bool training, uint64_t dropout_seed) {
    if (bb->config.arch == PLM_ARCH_T5) return t5_forward(bb, B, T, ids, mask, causal, training, dropout_seed);
    const plm_config *c = &bb->config;
    int C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads, E = bb->E;
    size_t N = (size_t)B * T;
    backbone_bind(bb, B, T, ids, type_ids, mask, causal, training, dropout_seed);
    bool cross = c->add_cross_attention;
    float pd = training ? c->hidden_dropout_prob : 0.0f;
    float pa = training ? c->attention_probs_dropout_prob : 0.0f;

    /* embeddings -> x0 */
    embedding_forward(bb->emb, ids, type_ids, bb->position_ids, bb->w.wte, bb->w.wpe, bb->w.wtt, B, T, E, 0);
    const float *e = bb->emb;
    if (!c->pre_layernorm) {
        layernorm_forward(bb->emb_ln, bb->emb_mean, bb->emb_rstd, bb->emb, bb->w.emb_ln_w, bb->w.emb_ln_b, (int)N, E,
                          c->layer_norm_eps);
        e = bb->emb_ln;
    }
    dropout_forward(bb->emb_drop, e, N * E, pd, backbone_drop_key(bb, -1, 0));
    if (E != C) linear_forward(bb->x0, bb->emb_drop, bb->w.emb_proj_w, bb->w.emb_proj_b, (int)N, E, C);

    for (int l = 0; l < c->num_hidden_layers; l++) {
        const plm_layer_weights *w = &bb->w.layers[l];
        plm_layer_acts *a = &bb->acts[l];
        const float *x = layer_input(bb, l);
        if (c->pre_layernorm) {
            layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, x, w->ln1_w, w->ln1_b, (int)N, C, c->layer_norm_eps);
            linear_forward(a->qkv, a->ln1, w->qkv_w, w->qkv_b, (int)N, C, 3 * C);
        } else {
            linear_forward(a->qkv, x, w->qkv_w, w->qkv_b, (int)N, C, 3 * C);
        }
        attention_forward_docs(a->atty, a->att, a->qkv, mask, bb->seq_idx, B, T, C, NH, causal, pa,
                               backbone_drop_key(bb, l, 0));
        linear_forward(a->res1, a->atty, w->attn_proj_w, w->attn_proj_b, (int)N, C, C);
        residual_dropout_forward(a->res1, x, a->res1, N * C, pd, backbone_drop_key(bb, l, 1));
        /* pre-LN: mid is the stream the MLP adds to (resc after a cross block) and the MLP
         * reads LN(mid); post-LN: the MLP reads ln1 = LN(res1), or lnc after a cross block */
        const float *mid = a->res1, *mlp_in = NULL;
        if (!c->pre_layernorm) {
            layernorm_forward(a->ln1, a->ln1_mean, a->ln1_rstd, a->res1, w->ln1_w, w->ln1_b, (int)N, C,
                              c->layer_norm_eps);
            mlp_in = a->ln1;
        }
        if (cross) {
            /* pre-LN:  resc = res1 + drop(Wo attn(Wq LN(res1), Wkv enc))
             * post-LN: resc = ln1 + drop(Wo attn(Wq ln1, Wkv enc)); lnc = LN(resc) */
            const float *cin = mlp_in;
            if (c->pre_layernorm) {
                layernorm_forward(a->lnc, a->lnc_mean, a->lnc_rstd, a->res1, w->lnc_w, w->lnc_b, (int)N, C,
                                  c->layer_norm_eps);
                cin = a->lnc;
            }
            linear_forward(a->cq, cin, w->cq_w, w->cq_b, (int)N, C, C);
            linear_forward(a->ckv, bb->enc, w->ckv_w, w->ckv_b, B * bb->Tk, C, 2 * C);
            attn_shape cs = cross_shape(bb, a, l, pa);
            attention_forward_ex(&cs, a->caty, a->catt);
            linear_forward(a->resc, a->caty, w->cproj_w, w->cproj_b, (int)N, C, C);
            residual_dropout_forward(a->resc, c->pre_layernorm ? a->res1 : mlp_in, a->resc, N * C, pd,
                                     backbone_drop_key(bb, l, 4));
            if (c->pre_layernorm) {
                mid = a->resc;
            } else {
                layernorm_forward(a->lnc, a->lnc_mean, a->lnc_rstd, a->resc, w->lnc_w, w->lnc_b, (int)N, C,
                                  c->layer_norm_eps);
                mlp_in = a->lnc;
            }
        }
        if (c->pre_layernorm) {
            layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, mid, w->ln2_w, w->ln2_b, (int)N, C, c->layer_norm_eps);
            mlp_in = a->ln2;
        }
        linear_forward(a->fch, mlp_in, w->fc_w, w->fc_b, (int)N, C, I);
        /* fch becomes gelu'(fch) for the backward pass; under bf16 the activation's rounded
         * copy, which the next product reads, comes out of the same pass */
        gelu_forward_dact(a->fch_gelu, plm_gemm_bf16_keep_begin(a->fch_gelu, N * I), a->fch, N * I, c->hidden_act);
        linear_forward(a->res2, a->fch_gelu, w->proj_w, w->proj_b, (int)N, I, C);
        /* the MLP's residual: pre-LN adds the sub-layer input res1, post-LN the LN output */
        residual_dropout_forward(a->res2, c->pre_layernorm ? mid : mlp_in, a->res2, N * C, pd,
                                 backbone_drop_key(bb, l, 2));
        if (!c->pre_layernorm)
            layernorm_forward(a->ln2, a->ln2_mean, a->ln2_rstd, a->res2, w->ln2_w, w->ln2_b, (int)N, C,
                              c->layer_norm_eps);
    }
    if (c->pre_layernorm) {
        const plm_layer_acts *a = &bb->acts[c->num_hidden_layers - 1];
        layernorm_forward(bb->lnf, bb->lnf_mean, bb->lnf_rstd, a->res2, bb->w.ln_f_w, bb->w.ln_f_b, (int)N, C,
                          c->layer_norm_eps);
    }
    const float *h = backbone_hidden(bb);
    if (bb->pooler) {
        /* pooled = tanh(W h[:, 0] + b) */
        for (int b = 0; b < B; b++) memcpy(bb->cls + (size_t)b * C, h + (size_t)b * T * C, C * sizeof(float));
        linear_forward(bb->pooled, bb->cls, bb->w.pool_w, bb->w.pool_b, B, C, C);
        for (size_t i = 0; i < (size_t)B * C; i++) bb->pooled[i] = tanhf(bb->pooled[i]);
    }
    return h;
}

void backbone_zero_dhidden(plm_backbone *bb) {
    size_t N = (size_t)bb->B * bb->T, C = bb->config.hidden_size;
    memset(bb->dhidden, 0, N * C * sizeof(float));
    if (bb->pooler) memset(bb->dpooled, 0, (size_t)bb->B * C * sizeof(float));
}

/* ---------------------------------------------------------------- backward */

/* The cross-attention block of layer l backward, from g_resid = d resc: adds the query
 * path's gradient to g_a (d of the block's input: LN(res1) pre-LN, ln1 post-LN; g_a
 * must hold what is already known), and the key/value path's to d_enc. */
static void cross_backward(plm_backbone *bb, int l, float pd, float pa) {
    const plm_config *c = &bb->config;
    int C = c->hidden_size;
    size_t N = (size_t)bb->B * bb->T;
    const plm_layer_weights *w = &bb->w.layers[l];
    plm_layer_weights *g = &bb->g.layers[l];
    plm_layer_acts *a = &bb->acts[l];
    /* the output projection's bias gradient is summed in the dropout's backward pass */
    float *dcross = pd > 0.0f ? bb->g_b : bb->g_resid;
    dropout_backward_colsum(dcross, bb->g_resid, (int)N, C, pd, backbone_drop_key(bb, l, 4), g->cproj_b);
    linear_backward(bb->g_atty, g->cproj_w, NULL, dcross, a->caty, w->cproj_w, (int)N, C, C, false);
    attn_shape cs = cross_shape(bb, a, l, pa);
    /* the query, key and value biases' gradients are summed in attention's backward pass */
    attention_backward_bias(&cs, bb->g_atty, a->catt, bb->g_cq, bb->g_ckv, bb->g_ckv + C, NULL, g->cq_b, g->ckv_b,
                            g->ckv_b + C);
    const float *cin = c->pre_layernorm ? a->lnc : a->ln1;
    if (c->pre_layernorm) {
        /* g_a becomes d LN(res1); the caller runs that LayerNorm backward */
        linear_backward(bb->g_a, g->cq_w, NULL, bb->g_cq, cin, w->cq_w, (int)N, C, C, false);
    } else {
        linear_backward(bb->g_a, g->cq_w, NULL, bb->g_cq, cin, w->cq_w, (int)N, C, C, true);
    }
    linear_backward(bb->d_enc, g->ckv_w, NULL, bb->g_ckv, bb->enc, w->ckv_w, bb->B * bb->Tk, C, 2 * C, true);
}

void backbone_backward(plm_backbone *bb) {
    if (bb->config.arch == PLM_ARCH_T5) {
        t5_backward(bb);
        return;
    }
    const plm_config *c = &bb->config;
    int B = bb->B, T = bb->T, C = c->hidden_size, I = c->intermediate_size, NH = c->num_attention_heads, E = bb->E;
    size_t N = (size_t)B * T;
    float pd = bb->training ? c->hidden_dropout_prob : 0.0f;
    float pa = bb->training ? c->attention_probs_dropout_prob : 0.0f;
    bool cross = c->add_cross_attention;
    if (cross) memset(bb->d_enc, 0, (size_t)B * bb->Tk * C * sizeof(float));

    /* pooler: dcls = (dpooled * (1 - pooled^2)) @ W, added to dhidden[:, 0] */
    if (bb->pooler) {
        for (size_t i = 0; i < (size_t)B * C; i++) bb->dpooled[i] *= 1.0f - bb->pooled[i] * bb->pooled[i];
        linear_backward(bb->g_a, bb->g.pool_w, bb->g.pool_b, bb->dpooled, bb->cls, bb->w.pool_w, B, C, C, false);
        for (int b = 0; b < B; b++)
            for (int i = 0; i < C; i++) bb->dhidden[(size_t)b * T * C + i] += bb->g_a[(size_t)b * C + i];
    }
    /* g_resid carries d(layer output) down the stack */
    if (c->pre_layernorm) {
        const plm_layer_acts *a = &bb->acts[c->num_hidden_layers - 1];
        layernorm_backward(bb->g_resid, bb->g.ln_f_w, bb->g.ln_f_b, bb->dhidden, a->res2, bb->w.ln_f_w, bb->lnf_mean,
                           bb->lnf_rstd, (int)N, C, false);
    } else {
        memcpy(bb->g_resid, bb->dhidden, N * C * sizeof(float));
    }

    for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
        const plm_layer_weights *w = &bb->w.layers[l];
        plm_layer_weights *g = &bb->g.layers[l];
        plm_layer_acts *a = &bb->acts[l];
        const float *x = layer_input(bb, l);
        if (c->pre_layernorm) {
            /* g_resid = d res2. MLP branch: res2 = res1 + drop(proj(gelu(fc(ln2)))) */
            /* the MLP's bias gradients are summed in the dropout's and GELU's backward passes */
            float *dmlp = pd > 0.0f ? bb->g_b : bb->g_resid;
            dropout_backward_colsum(dmlp, bb->g_resid, (int)N, C, pd, backbone_drop_key(bb, l, 2), g->proj_b);
            linear_backward(bb->g_fch, g->proj_w, NULL, dmlp, a->fch_gelu, w->proj_w, (int)N, I, C, false);
            gelu_backward_dact_colsum(bb->g_fch, plm_gemm_bf16_hold_begin(bb->g_fch, N * I), a->fch, bb->g_fch, (int)N,
                                      I, c->hidden_act, g->fc_b);
            linear_backward(bb->g_a, g->fc_w, NULL, bb->g_fch, a->ln2, w->fc_w, (int)N, C, I, false);
            layernorm_backward(bb->g_resid, g->ln2_w, g->ln2_b, bb->g_a, cross ? a->resc : a->res1, w->ln2_w,
                               a->ln2_mean, a->ln2_rstd, (int)N, C, true);
            if (cross) {
                /* g_resid = d resc. Cross branch: resc = res1 + drop(Wo attn(Wq LN(res1), Wkv enc)) */
                cross_backward(bb, l, pd, pa);
                layernorm_backward(bb->g_resid, g->lnc_w, g->lnc_b, bb->g_a, a->res1, w->lnc_w, a->lnc_mean,
                                   a->lnc_rstd, (int)N, C, true);
            }
            /* g_resid = d res1. Attention branch: res1 = x + drop(proj(attn(qkv(ln1)))) */
            float *dattn = pd > 0.0f ? bb->g_b : bb->g_resid;
            dropout_backward_colsum(dattn, bb->g_resid, (int)N, C, pd, backbone_drop_key(bb, l, 1), g->attn_proj_b);
            linear_backward(bb->g_atty, g->attn_proj_w, NULL, dattn, a->atty, w->attn_proj_w, (int)N, C, C, false);
            /* the qkv bias gradient is summed in attention's backward pass */
            attention_backward_qkv_bias(bb->g_qkv, bb->g_atty, a->qkv, a->att, B, T, C, NH, pa,
                                        backbone_drop_key(bb, l, 0), g->qkv_b);
            linear_backward(bb->g_a, g->qkv_w, NULL, bb->g_qkv, a->ln1, w->qkv_w, (int)N, C, 3 * C, false);
            layernorm_backward(bb->g_resid, g->ln1_w, g->ln1_b, bb->g_a, x, w->ln1_w, a->ln1_mean, a->ln1_rstd, (int)N,
                               C, true);
        } else {
            /* g_resid = d ln2 = d out. res2 = ln1 + drop(mlp(ln1)); ln2 = LN(res2) */
            layernorm_backward(bb->g_a, g->ln2_w, g->ln2_b, bb->g_resid, a->res2, w->ln2_w, a->ln2_mean, a->ln2_rstd,
                               (int)N, C, false);
            float *dmlp = pd > 0.0f ? bb->g_b : bb->g_a;
            dropout_backward_colsum(dmlp, bb->g_a, (int)N, C, pd, backbone_drop_key(bb, l, 2), g->proj_b);
            linear_backward(bb->g_fch, g->proj_w, NULL, dmlp, a->fch_gelu, w->proj_w, (int)N, I, C, false);
            gelu_backward_dact_colsum(bb->g_fch, plm_gemm_bf16_hold_begin(bb->g_fch, N * I), a->fch, bb->g_fch, (int)N,
                                      I, c->hidden_act, g->fc_b);
            /* g_a = d res2 (identity path) + the MLP path = d ln1 (d lnc with cross-attention) */
            linear_backward(bb->g_a, g->fc_w, NULL, bb->g_fch, cross ? a->lnc : a->ln1, w->fc_w, (int)N, C, I, true);
            if (cross) {
                /* lnc = LN(resc), resc = ln1 + drop(Wo attn(Wq ln1, Wkv enc)) */
                layernorm_backward(bb->g_resid, g->lnc_w, g->lnc_b, bb->g_a, a->resc, w->lnc_w, a->lnc_mean,
                                   a->lnc_rstd, (int)N, C, false);
                memcpy(bb->g_a, bb->g_resid, N * C * sizeof(float)); /* the identity path to ln1 */
                cross_backward(bb, l, pd, pa);
            }
            /* res1 = x + drop(attn(x)); ln1 = LN(res1) */
            layernorm_backward(bb->g_resid, g->ln1_w, g->ln1_b, bb->g_a, a->res1, w->ln1_w, a->ln1_mean, a->ln1_rstd,
                               (int)N, C, false);
            float *dattn = pd > 0.0f ? bb->g_b : bb->g_resid;
            dropout_backward_colsum(dattn, bb->g_resid, (int)N, C, pd, backbone_drop_key(bb, l, 1), g->attn_proj_b);
            linear_backward(bb->g_atty, g->attn_proj_w, NULL, dattn, a->atty, w->attn_proj_w, (int)N, C, C, false);
            attention_backward_qkv_bias(bb->g_qkv, bb->g_atty, a->qkv, a->att, B, T, C, NH, pa,
                                        backbone_drop_key(bb, l, 0), g->qkv_b);
            linear_backward(bb->g_resid, g->qkv_w, NULL, bb->g_qkv, x, w->qkv_w, (int)N, C, 3 * C, true);
        }
        if (bb->layer_grads_done) bb->layer_grads_done(bb->layer_grads_ctx, l);
    }

    /* embeddings: x0 = proj(drop(LN(emb))) (post-LN) or proj(drop(emb)) (pre-LN) */
    float *de = bb->g_resid;
    if (E != C) {
        linear_backward(bb->g_emb, bb->g.emb_proj_w, bb->g.emb_proj_b, bb->g_resid, bb->emb_drop, bb->w.emb_proj_w,
                        (int)N, E, C, false);
        de = bb->g_emb;
    }
    if (pd > 0.0f) dropout_backward(de, de, N * E, pd, backbone_drop_key(bb, -1, 0));
    const float *demb = de;
    if (!c->pre_layernorm) {
        float *dst = de == bb->g_emb ? bb->g_emb2 : bb->g_emb;
        layernorm_backward(dst, bb->g.emb_ln_w, bb->g.emb_ln_b, de, bb->emb, bb->w.emb_ln_w, bb->emb_mean, bb->emb_rstd,
                           (int)N, E, false);
        demb = dst;
    }
    /* BERT's word embedding has padding_idx = pad_token_id (nn.Embedding semantics):
     * the padding row gets no gradient from the lookup. */
    int padding_idx = c->arch != PLM_ARCH_GPT2 ? c->pad_token_id : -1;
    embedding_backward(bb->g.wte, bb->g.wpe, bb->g.wtt, demb, bb->input_ids, bb->token_type_ids, bb->position_ids, B, T,
                       E, 0, padding_idx);
}
