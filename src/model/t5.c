/* t5.c - see t5.h */
#include "t5.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "attention.h"
#include "core/common.h"
#include "dropout.h"
#include "gelu.h"
#include "linear.h"
#include "relpos.h"
#include "rmsnorm.h"

static int ffn_in(const plm_config *c) { return c->gated_act ? 2 * c->intermediate_size : c->intermediate_size; }

/* The attention's inner width num_heads x d_kv (T5 lets it differ from d_model). */
static int inner(const plm_config *c) { return c->num_attention_heads * plm_config_d_kv(c); }

static const float *layer_input(const plm_backbone *bb, int l) { return l == 0 ? bb->x0 : bb->acts[l - 1].res2; }

static attn_shape self_shape(const plm_backbone *bb, const plm_layer_acts *a, int l, float pa) {
    const plm_config *c = &bb->config;
    int D = inner(c), NH = c->num_attention_heads;
    return (attn_shape){.B = bb->B,
                        .Tq = bb->T,
                        .Tk = bb->T,
                        .NH = NH,
                        .hs = D / NH,
                        .q = a->qkv,
                        .k = a->qkv + D,
                        .v = a->qkv + 2 * D,
                        .ldq = 3 * D,
                        .ldk = 3 * D,
                        .ldv = 3 * D,
                        .key_mask = bb->attention_mask,
                        .bias = bb->pos_bias,
                        .causal = bb->causal,
                        .scale = 1.0f,
                        .dropout_p = pa,
                        .dropout_key = backbone_drop_key(bb, l, 0)};
}

static attn_shape cross_shape(const plm_backbone *bb, const plm_layer_acts *a, int l, float pa) {
    const plm_config *c = &bb->config;
    int D = inner(c), NH = c->num_attention_heads;
    return (attn_shape){.B = bb->B,
                        .Tq = bb->T,
                        .Tk = bb->Tk,
                        .NH = NH,
                        .hs = D / NH,
                        .q = a->cq,
                        .k = a->ckv,
                        .v = a->ckv + D,
                        .ldq = D,
                        .ldk = 2 * D,
                        .ldv = 2 * D,
                        .key_mask = bb->enc_mask,
                        .scale = 1.0f,
                        .dropout_p = pa,
                        .dropout_key = backbone_drop_key(bb, l, 3)};
}

const float *t5_forward(plm_backbone *bb, int B, int T, const int32_t *ids, const uint8_t *mask, bool causal,
                        bool training, uint64_t dropout_seed) {
    const plm_config *c = &bb->config;
    int C = c->hidden_size, D = inner(c), I = c->intermediate_size, I2 = ffn_in(c), NH = c->num_attention_heads;
    size_t N = (size_t)B * T;
    backbone_bind(bb, B, T, ids, NULL, mask, causal, training, dropout_seed);
    bool cross = c->add_cross_attention;
    float pd = training ? c->hidden_dropout_prob : 0.0f;
    float pa = training ? c->attention_probs_dropout_prob : 0.0f;
    float eps = c->layer_norm_eps;

    /* x0 = drop(shared[ids]) */
    for (size_t i = 0; i < N; i++) memcpy(bb->emb + i * C, bb->w.wte + (size_t)ids[i] * C, (size_t)C * sizeof(float));
    dropout_forward(bb->x0, bb->emb, N * C, pd, backbone_drop_key(bb, -1, 0));
    /* one bias for every layer (HF computes it in block 0 and passes it on) */
    relpos_bias_forward(bb->pos_bias, bb->w.rel_bias, NH, T, T, 0, !c->is_decoder, c->relative_attention_num_buckets,
                        c->relative_attention_max_distance);

    for (int l = 0; l < c->num_hidden_layers; l++) {
        const plm_layer_weights *w = &bb->w.layers[l];
        plm_layer_acts *a = &bb->acts[l];
        const float *x = layer_input(bb, l);
        rmsnorm_forward(a->ln1, a->ln1_rstd, x, w->ln1_w, (int)N, C, eps);
        linear_forward(a->qkv, a->ln1, w->qkv_w, NULL, (int)N, C, 3 * D);
        attn_shape ss = self_shape(bb, a, l, pa);
        attention_forward_ex(&ss, a->atty, a->att);
        linear_forward(a->res1, a->atty, w->attn_proj_w, NULL, (int)N, D, C);
        residual_dropout_forward(a->res1, x, a->res1, N * C, pd, backbone_drop_key(bb, l, 1));
        const float *mid = a->res1;
        if (cross) {
            rmsnorm_forward(a->lnc, a->lnc_rstd, a->res1, w->lnc_w, (int)N, C, eps);
            linear_forward(a->cq, a->lnc, w->cq_w, NULL, (int)N, C, D);
            linear_forward(a->ckv, bb->enc, w->ckv_w, NULL, B * bb->Tk, C, 2 * D);
            attn_shape cs = cross_shape(bb, a, l, pa);
            attention_forward_ex(&cs, a->caty, a->catt);
            linear_forward(a->resc, a->caty, w->cproj_w, NULL, (int)N, D, C);
            residual_dropout_forward(a->resc, a->res1, a->resc, N * C, pd, backbone_drop_key(bb, l, 4));
            mid = a->resc;
        }
        rmsnorm_forward(a->ln2, a->ln2_rstd, mid, w->ln2_w, (int)N, C, eps);
        linear_forward(a->fch, a->ln2, w->fc_w, NULL, (int)N, C, I2);
        if (c->gated_act)
            gated_act_forward(a->fch_gelu, a->fch, (int)N, I, c->hidden_act);
        else
            gelu_forward(a->fch_gelu, a->fch, N * I, c->hidden_act);
        dropout_forward(a->fch_gelu, a->fch_gelu, N * I, pd, backbone_drop_key(bb, l, 5));
        linear_forward(a->res2, a->fch_gelu, w->proj_w, NULL, (int)N, I, C);
        residual_dropout_forward(a->res2, mid, a->res2, N * C, pd, backbone_drop_key(bb, l, 2));
    }
    const plm_layer_acts *last = &bb->acts[c->num_hidden_layers - 1];
    rmsnorm_forward(bb->lnf, bb->lnf_rstd, last->res2, bb->w.ln_f_w, (int)N, C, eps);
    dropout_forward(bb->t5_out, bb->lnf, N * C, pd, backbone_drop_key(bb, -1, 1));
    return bb->t5_out;
}

void t5_backward(plm_backbone *bb) {
    const plm_config *c = &bb->config;
    int B = bb->B, T = bb->T, C = c->hidden_size, D = inner(c), I = c->intermediate_size, I2 = ffn_in(c);
    int NH = c->num_attention_heads;
    size_t N = (size_t)B * T, TT = (size_t)T * T;
    float pd = bb->training ? c->hidden_dropout_prob : 0.0f;
    float pa = bb->training ? c->attention_probs_dropout_prob : 0.0f;
    bool cross = c->add_cross_attention;
    if (cross) memset(bb->d_enc, 0, (size_t)B * bb->Tk * C * sizeof(float));
    memset(bb->dpos_bias, 0, NH * TT * sizeof(float));

    /* hidden = drop(RMS_final(res2)) */
    const plm_layer_acts *last = &bb->acts[c->num_hidden_layers - 1];
    dropout_backward(bb->g_b, bb->dhidden, N * C, pd, backbone_drop_key(bb, -1, 1));
    rmsnorm_backward(bb->g_resid, bb->g.ln_f_w, bb->g_b, last->res2, bb->w.ln_f_w, bb->lnf_rstd, (int)N, C, false);

    for (int l = c->num_hidden_layers - 1; l >= 0; l--) {
        const plm_layer_weights *w = &bb->w.layers[l];
        plm_layer_weights *g = &bb->g.layers[l];
        plm_layer_acts *a = &bb->acts[l];
        const float *x = layer_input(bb, l);
        const float *mid = cross ? a->resc : a->res1;
        /* g_resid = d res2. FFN: res2 = mid + drop(wo(drop(act(wi(RMS(mid)))))) */
        dropout_backward(bb->g_b, bb->g_resid, N * C, pd, backbone_drop_key(bb, l, 2));
        linear_backward(bb->g_act, g->proj_w, NULL, bb->g_b, a->fch_gelu, w->proj_w, (int)N, I, C, false);
        dropout_backward(bb->g_act, bb->g_act, N * I, pd, backbone_drop_key(bb, l, 5));
        if (c->gated_act)
            gated_act_backward(bb->g_fch, a->fch, bb->g_act, (int)N, I, c->hidden_act);
        else
            gelu_backward(bb->g_fch, a->fch, bb->g_act, N * I, c->hidden_act);
        linear_backward(bb->g_a, g->fc_w, NULL, bb->g_fch, a->ln2, w->fc_w, (int)N, C, I2, false);
        rmsnorm_backward(bb->g_resid, g->ln2_w, bb->g_a, mid, w->ln2_w, a->ln2_rstd, (int)N, C, true);
        if (cross) {
            /* g_resid = d resc. resc = res1 + drop(o'(attn(q' RMS(res1), k' v' enc))) */
            dropout_backward(bb->g_b, bb->g_resid, N * C, pd, backbone_drop_key(bb, l, 4));
            linear_backward(bb->g_atty, g->cproj_w, NULL, bb->g_b, a->caty, w->cproj_w, (int)N, D, C, false);
            attn_shape cs = cross_shape(bb, a, l, pa);
            attention_backward_ex(&cs, bb->g_atty, a->catt, bb->g_cq, bb->g_ckv, bb->g_ckv + D, NULL);
            linear_backward(bb->g_a, g->cq_w, NULL, bb->g_cq, a->lnc, w->cq_w, (int)N, C, D, false);
            linear_backward(bb->d_enc, g->ckv_w, NULL, bb->g_ckv, bb->enc, w->ckv_w, B * bb->Tk, C, 2 * D, true);
            rmsnorm_backward(bb->g_resid, g->lnc_w, bb->g_a, a->res1, w->lnc_w, a->lnc_rstd, (int)N, C, true);
        }
        /* g_resid = d res1. res1 = x + drop(o(attn(qkv(RMS(x)) + pos_bias))) */
        dropout_backward(bb->g_b, bb->g_resid, N * C, pd, backbone_drop_key(bb, l, 1));
        linear_backward(bb->g_atty, g->attn_proj_w, NULL, bb->g_b, a->atty, w->attn_proj_w, (int)N, D, C, false);
        attn_shape ss = self_shape(bb, a, l, pa);
        attention_backward_ex(&ss, bb->g_atty, a->att, bb->g_qkv, bb->g_qkv + D, bb->g_qkv + 2 * D, bb->g_scores);
        /* the bias is shared by the batch and by every layer: its gradient is the sum */
#pragma omp parallel for schedule(static)
        for (int h = 0; h < NH; h++)
            for (int b = 0; b < B; b++) {
                const float *src = bb->g_scores + ((size_t)b * NH + h) * TT;
                float *dst = bb->dpos_bias + (size_t)h * TT;
                for (size_t k = 0; k < TT; k++) dst[k] += src[k];
            }
        linear_backward(bb->g_a, g->qkv_w, NULL, bb->g_qkv, a->ln1, w->qkv_w, (int)N, C, 3 * D, false);
        rmsnorm_backward(bb->g_resid, g->ln1_w, bb->g_a, x, w->ln1_w, a->ln1_rstd, (int)N, C, true);
    }
    relpos_bias_backward(bb->g.rel_bias, bb->dpos_bias, NH, T, T, 0, !c->is_decoder, c->relative_attention_num_buckets,
                         c->relative_attention_max_distance);
    /* x0 = drop(shared[ids]): scatter-add; T5's embedding has no padding_idx. Threads
     * split the channels: no races, a fixed order. */
    dropout_backward(bb->g_resid, bb->g_resid, N * C, pd, backbone_drop_key(bb, -1, 0));
    const int32_t *ids = bb->input_ids;
    float *dw = bb->g.wte;
    const float *d = bb->g_resid;
#pragma omp parallel
    {
        int th = omp_get_thread_num(), nt = omp_get_num_threads();
        int lo = (int)((long)C * th / nt), hi = (int)((long)C * (th + 1) / nt);
        for (size_t i = 0; i < N; i++) {
            float *e = dw + (size_t)ids[i] * C;
            const float *s = d + i * C;
            for (int k = lo; k < hi; k++) e[k] += s[k];
        }
    }
}

/* ---------------------------------------------------------------- cached decoding */

void t5_cache_begin(t5_cache *kc, const plm_backbone *dec, const float *enc, const uint8_t *enc_mask, int B, int Tk,
                    int cap_T) {
    const plm_config *c = &dec->config;
    size_t C = c->hidden_size, D = inner(c), L = c->num_hidden_layers, NH = c->num_attention_heads;
    size_t I = c->intermediate_size, I2 = ffn_in(c);
    memset(kc, 0, sizeof *kc);
    kc->B = B, kc->Tk = Tk, kc->cap_T = cap_T, kc->enc_mask = enc_mask;
    kc->self_kv = plm_malloc(L * B * cap_T * 2 * D * sizeof(float));
    kc->cross_kv = plm_malloc(L * B * Tk * 2 * D * sizeof(float));
    kc->x = plm_malloc(B * C * sizeof(float));
    kc->n = plm_malloc(B * C * sizeof(float));
    kc->q = plm_malloc(B * 3 * D * sizeof(float));
    kc->y = plm_malloc(B * D * sizeof(float));
    kc->a = plm_malloc(B * C * sizeof(float));
    kc->h = plm_malloc(B * sizeof(float)); /* rstd of the step's rows */
    kc->f = plm_malloc(B * I2 * sizeof(float));
    kc->g = plm_malloc(B * I * sizeof(float));
    size_t tk = (size_t)PLM_MAX(cap_T, Tk);
    kc->bias = plm_malloc(NH * tk * sizeof(float));
    kc->att =
        plm_malloc(attention_saved_floats(1, (int)NH, 1, (int)tk, (int)(D / NH)) * sizeof(float)); /* attention.h */
    kc->out = plm_malloc(B * C * sizeof(float));
    /* the encoder's keys and values, once per layer */
    for (size_t l = 0; l < L; l++)
        linear_forward(kc->cross_kv + l * B * Tk * 2 * D, enc, dec->w.layers[l].ckv_w, NULL, B * Tk, (int)C,
                       (int)(2 * D));
}

void t5_cache_free(t5_cache *kc) {
    float *p[] = {kc->self_kv, kc->cross_kv, kc->x, kc->n,    kc->q,   kc->y,  kc->a,
                  kc->h,       kc->f,        kc->g, kc->bias, kc->att, kc->out};
    for (size_t i = 0; i < PLM_ARRAY_LEN(p); i++) free(p[i]);
    memset(kc, 0, sizeof *kc);
}

/* y[b] = attention of query q[b] (row stride ldq) over Tk cached keys | values of sequence b. */
static void step_attention(t5_cache *kc, const plm_config *c, const float *q, int ldq, const float *kv, int Tk,
                           size_t kv_stride, const float *bias, const uint8_t *mask) {
    int D = inner(c), NH = c->num_attention_heads;
    for (int b = 0; b < kc->B; b++) {
        const float *k = kv + (size_t)b * kv_stride;
        attn_shape s = {.B = 1,
                        .Tq = 1,
                        .Tk = Tk,
                        .NH = NH,
                        .hs = D / NH,
                        .q = q + (size_t)b * ldq,
                        .k = k,
                        .v = k + D,
                        .ldq = ldq,
                        .ldk = 2 * D,
                        .ldv = 2 * D,
                        .key_mask = mask ? mask + (size_t)b * Tk : NULL,
                        .bias = bias,
                        .scale = 1.0f};
        attention_forward_ex(&s, kc->y + (size_t)b * D, kc->att);
    }
}

const float *t5_cache_step(t5_cache *kc, const plm_backbone *dec, const int32_t *ids) {
    const plm_config *c = &dec->config;
    int B = kc->B, C = c->hidden_size, D = inner(c), I = c->intermediate_size, I2 = ffn_in(c);
    int NH = c->num_attention_heads;
    int pos = kc->pos, Tk = pos + 1;
    float eps = c->layer_norm_eps;
    if (pos >= kc->cap_T) plm_die("t5_cache_step: more than %d steps", kc->cap_T);
    for (int b = 0; b < B; b++) memcpy(kc->x + (size_t)b * C, dec->w.wte + (size_t)ids[b] * C, C * sizeof(float));
    relpos_bias_forward(kc->bias, dec->w.rel_bias, NH, 1, Tk, pos, false, c->relative_attention_num_buckets,
                        c->relative_attention_max_distance);
    size_t self_stride = (size_t)kc->cap_T * 2 * D, cross_stride = (size_t)kc->Tk * 2 * D;
    for (int l = 0; l < c->num_hidden_layers; l++) {
        const plm_layer_weights *w = &dec->w.layers[l];
        float *skv = kc->self_kv + (size_t)l * B * self_stride;
        /* self-attention over the cache plus this step's key and value */
        rmsnorm_forward(kc->n, kc->h, kc->x, w->ln1_w, B, C, eps);
        linear_forward(kc->q, kc->n, w->qkv_w, NULL, B, C, 3 * D);
        for (int b = 0; b < B; b++)
            memcpy(skv + b * self_stride + (size_t)pos * 2 * D, kc->q + (size_t)b * 3 * D + D, 2 * D * sizeof(float));
        step_attention(kc, c, kc->q, 3 * D, skv, Tk, self_stride, kc->bias, NULL);
        linear_forward(kc->a, kc->y, w->attn_proj_w, NULL, B, D, C);
        for (size_t i = 0; i < (size_t)B * C; i++) kc->x[i] += kc->a[i];
        /* cross-attention over the cached encoder keys and values */
        rmsnorm_forward(kc->n, kc->h, kc->x, w->lnc_w, B, C, eps);
        linear_forward(kc->q, kc->n, w->cq_w, NULL, B, C, D);
        step_attention(kc, c, kc->q, D, kc->cross_kv + (size_t)l * B * cross_stride, kc->Tk, cross_stride, NULL,
                       kc->enc_mask);
        linear_forward(kc->a, kc->y, w->cproj_w, NULL, B, D, C);
        for (size_t i = 0; i < (size_t)B * C; i++) kc->x[i] += kc->a[i];
        /* feed-forward */
        rmsnorm_forward(kc->n, kc->h, kc->x, w->ln2_w, B, C, eps);
        linear_forward(kc->f, kc->n, w->fc_w, NULL, B, C, I2);
        if (c->gated_act)
            gated_act_forward(kc->g, kc->f, B, I, c->hidden_act);
        else
            gelu_forward(kc->g, kc->f, (size_t)B * I, c->hidden_act);
        linear_forward(kc->a, kc->g, w->proj_w, NULL, B, I, C);
        for (size_t i = 0; i < (size_t)B * C; i++) kc->x[i] += kc->a[i];
    }
    rmsnorm_forward(kc->out, kc->h, kc->x, dec->w.ln_f_w, B, C, eps);
    kc->pos++;
    return kc->out;
}
