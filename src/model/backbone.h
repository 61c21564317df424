/* backbone.h - the transformer body: embeddings, num_hidden_layers blocks and, for
 * pre-LN, the final LayerNorm. Its forward pass ends in hidden states [B, T, C]; its
 * backward pass starts from dhidden, the gradient the heads added. Owns its
 * activations and the views of its tensors in the model's parameter buffer.
 *
 *   embeddings: e = wte[id] + wpe[t] (+ wtt[type]), width embedding_size E;
 *               post-LN: e = LN(e); then dropout; E != C: x0 = e @ Wp^T + bp
 *   post-LN (BERT):  h = LN(x + Attn(x));     out = LN(h + MLP(h))
 *   pre-LN (GPT-2):  h = x + Attn(LN(x));     out = h + MLP(LN(h)),  ln_f after the last
 * and an optional pooler on the first token (BERT's): pooled = tanh(W h[:, 0] + b).
 * T5 stacks (arch T5) run the same layer structure with T5's modules: t5.h. */
#ifndef PLM_BACKBONE_H
#define PLM_BACKBONE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

typedef struct {
    float *ln1_w, *ln1_b; /* pre-LN: before attention; post-LN: attention.output.LayerNorm */
    float *qkv_w, *qkv_b; /* [3C, C]: query | key | value rows, one tensor */
    float *attn_proj_w, *attn_proj_b;
    float *ln2_w, *ln2_b;   /* pre-LN: before the MLP; post-LN: output.LayerNorm */
    float *fc_w, *fc_b;     /* [I, C] */
    float *proj_w, *proj_b; /* [C, I] */
    /* cross-attention (add_cross_attention): queries from this stack, keys and values
     * from the encoder's hidden states */
    float *lnc_w, *lnc_b;     /* post-LN: crossattention.output.LayerNorm; pre-LN: ln_cross_attn */
    float *cq_w, *cq_b;       /* [C, C] */
    float *ckv_w, *ckv_b;     /* [2C, C]: key | value rows, one tensor */
    float *cproj_w, *cproj_b; /* [C, C] */
} plm_layer_weights;

typedef struct {
    float *wte, *wpe, *wtt;         /* [V, E], [P, E], [types, E]; wtt NULL without segments */
    float *emb_ln_w, *emb_ln_b;     /* post-LN only, width E */
    float *emb_proj_w, *emb_proj_b; /* [C, E] when embedding_size != hidden_size */
    plm_layer_weights *layers;
    float *ln_f_w, *ln_f_b; /* pre-LN only */
    float *rel_bias;        /* T5: relative_attention_bias [num_buckets, NH] of block 0 */
    float *pool_w, *pool_b; /* pooler, when a head needs it */
} plm_backbone_weights;

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv, *att, *atty;
    float *res1;
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu; /* FFN pre-activation (then its gelu', gelu_forward_dact), activation */
    float *res2;
    float *lnc, *lnc_mean, *lnc_rstd, *cq, *ckv, *catt, *caty, *resc; /* cross-attention */
} plm_layer_acts;

typedef struct plm_backbone {
    plm_config config;
    int E;                     /* embedding width: embedding_size, or hidden_size */
    char prefix[48];           /* "bert", "transformer", "electra", "generator.electra" */
    bool pooler;               /* has bert.pooler */
    plm_backbone_weights w, g; /* views into params and grads */

    /* activations, sized by backbone_reserve for up to cap_B x cap_T */
    int cap_B, cap_T;
    float *emb, *emb_ln, *emb_mean, *emb_rstd, *emb_drop, *x0;
    plm_layer_acts *acts;
    float *lnf, *lnf_mean, *lnf_rstd;
    float *cls, *pooled, *dpooled; /* [B, C]: first-token states, pooler output, its gradient */
    float *dhidden;                /* [B, T, C]: gradient of the hidden states (heads add) */
    float *g_resid, *g_a, *g_b, *g_atty, *g_qkv, *g_fch, *g_emb, *g_emb2;
    float *g_cq, *g_ckv, *d_enc; /* cross-attention gradients; d_enc [B, Tk, C] goes to the encoder */
    /* the encoder states the cross-attention reads (set by backbone_set_encoder) */
    const float *enc;
    const uint8_t *enc_mask;
    int Tk;
    /* T5 (t5.h): the relative position bias [NH, T, T] and its gradient, the attention
     * scores' gradient [B, NH, T, T] of one layer, the stack's output after the final
     * norm's dropout, the FFN activation's gradient */
    float *pos_bias, *dpos_bias, *g_scores, *t5_out, *g_act;
    float *act_block; /* the one allocation behind every activation */
    size_t act_bytes;
    /* the batch of the last forward pass */
    int B, T;
    const int32_t *input_ids, *token_type_ids;
    const uint8_t *attention_mask;
    const int32_t *position_ids, *seq_idx;                 /* packed documents, or NULL (batch.h) */
    const int32_t *pending_position_ids, *pending_seq_idx; /* for the next backbone_bind */
    bool causal, training;
    uint64_t dropout_seed;
    int index; /* which backbone of the model (dropout keys differ) */
    /* called by backbone_backward once layer l's gradients are final (data parallelism
     * starts reducing them while the layers below run, train/dist.c); NULL: none */
    void (*layer_grads_done)(void *ctx, int layer);
    void *layer_grads_ctx;
} plm_backbone;

/* Sizes the activations for B x T. Returns 0 or -1 (T too long). */
int backbone_reserve(plm_backbone *bb, int B, int T);
void backbone_free(plm_backbone *bb);

/* The encoder hidden states [B, Tk, C] (and their padding mask, may be NULL) that the
 * next forward pass of a cross-attention stack reads. */
void backbone_set_encoder(plm_backbone *bb, const float *enc, int Tk, const uint8_t *enc_mask);
/* Packed documents (batch.h: position_ids, seq_idx, each may be NULL) for the next forward
 * pass only: backbone_bind takes them and clears them, so a forward pass that was not
 * given any runs unpacked. Self-attention stacks only (not T5, not cross-attention). */
void backbone_set_packing(plm_backbone *bb, const int32_t *position_ids, const int32_t *seq_idx);
/* Checks a batch against the reserved size (and cross-attention's encoder states) and
 * records it in bb for the backward pass; the first step of every forward pass. */
void backbone_bind(plm_backbone *bb, int B, int T, const int32_t *ids, const int32_t *type_ids, const uint8_t *mask,
                   bool causal, bool training, uint64_t dropout_seed);
/* Forward pass; returns the final hidden states [B, T, C]. Also runs the pooler. */
const float *backbone_forward(plm_backbone *bb, int B, int T, const int32_t *ids, const int32_t *type_ids,
                              const uint8_t *mask, bool causal, bool training, uint64_t dropout_seed);
/* Clears dhidden and dpooled before the heads add to them. */
void backbone_zero_dhidden(plm_backbone *bb);
/* Backward pass from dhidden (and dpooled): gradients are added to bb->g; a
 * cross-attention stack also leaves the encoder states' gradient in d_enc. */
void backbone_backward(plm_backbone *bb);
/* The hidden states of the last forward pass. */
const float *backbone_hidden(const plm_backbone *bb);

/* Dropout key of site `site` in layer `layer` (-1: embeddings, L: heads). */
uint64_t backbone_drop_key(const plm_backbone *bb, int layer, int site);

#endif
