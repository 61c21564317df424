/* attention.h - multi-head scaled dot-product attention over a fused qkv tensor.
 * qkv is [B, T, 3C] holding Q | K | V (each C = NH heads x hs channels). Per head:
 *     S = Q K^T / sqrt(hs), masked;  P = softmax(S);  out = dropout(P) V
 * Masks: causal (key j > query i) and padding (attn_mask[b, j] == 0) both remove keys.
 * P is saved ([B, NH, T, T]) for the backward pass; the dropout mask is recomputed.
 * Each (batch, head) pair runs on one thread with single-threaded GEMMs. */
#ifndef PLM_ATTENTION_H
#define PLM_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* attn_mask: [B, T] with 1 = real token, 0 = padding; NULL means no padding. */
void attention_forward(float *out, float *att, const float *qkv, const uint8_t *attn_mask, int B, int T, int C, int NH,
                       bool causal, float dropout_p, uint64_t dropout_key);

/* dqkv = gradient w.r.t. qkv (overwritten) from dout = gradient w.r.t. out. */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C, int NH,
                        float dropout_p, uint64_t dropout_key);

#endif
