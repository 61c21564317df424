/* t5.h - a T5 stack (HF T5Stack: encoder, or decoder with cross-attention) on the
 * backbone's weights and activations (backbone.h, arch T5). Per layer, pre-norm with
 * T5's RMS norm (rmsnorm.h), no biases anywhere, attention scores NOT scaled by
 * 1/sqrt(d_kv) (T5 folds that into the init of q), plus the relative position bias of
 * block 0 (relpos.h) in every self-attention layer:
 *     x0  = drop(shared[ids])
 *     h   = x + drop(o(attn(q, k, v of RMS(x); + pos_bias)))
 *     h   = h + drop(o'(attn(q' RMS(h), k' v' enc)))          (decoder: EncDecAttention)
 *     out = h + drop(wo(drop(act(wi RMS(h)))))                 (v1.1: act(wi_0 .) * wi_1 .)
 *     hidden = drop(RMS_final(out_last))
 * The decoder is causal with unidirectional buckets; the encoder bidirectional.
 * Dropout sites per layer: 0 self probs, 1 self residual, 3 cross probs, 4 cross
 * residual, 5 FFN inner, 2 FFN residual; layer -1: 0 embeddings, 1 final. */
#ifndef PLM_T5_H
#define PLM_T5_H

#include <stdbool.h>
#include <stdint.h>

#include "backbone.h"

const float *t5_forward(plm_backbone *bb, int B, int T, const int32_t *ids, const uint8_t *mask, bool causal,
                        bool training, uint64_t dropout_seed);
void t5_backward(plm_backbone *bb);

/* Incremental decoding of a T5 decoder stack (inference, no dropout): the cross-attention
 * keys/values of the encoder states are computed once (t5_cache_begin), each step runs
 * one new token per sequence at position pos and appends its self-attention keys/values
 * to the cache. */
typedef struct {
    int B, Tk, cap_T, pos; /* pos: tokens decoded so far */
    float *self_kv;        /* [L, B, cap_T, 2C]: k | v of every decoded position */
    float *cross_kv;       /* [L, B, Tk, 2C] */
    const uint8_t *enc_mask;
    float *x, *n, *q, *y, *a, *h, *f, *g, *bias, *att; /* one step's activations */
    float *out;                                        /* [B, C]: the step's hidden states (before lm_head) */
} t5_cache;

/* enc [B, Tk, C] (the encoder's output), enc_mask [B, Tk] or NULL. cap_T: most steps. */
void t5_cache_begin(t5_cache *kc, const plm_backbone *dec, const float *enc, const uint8_t *enc_mask, int B, int Tk,
                    int cap_T);
/* One step: ids [B] at position kc->pos; returns the hidden states [B, C]. */
const float *t5_cache_step(t5_cache *kc, const plm_backbone *dec, const int32_t *ids);
void t5_cache_free(t5_cache *kc);

#endif
