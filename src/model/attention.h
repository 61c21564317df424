/* attention.h - multi-head scaled dot-product attention, over a fused qkv tensor
 * (self-attention) or separate queries and keys/values (cross-attention).
 * qkv is [B, T, 3C] holding Q | K | V (each C = NH heads x hs channels). Per head:
 *     S = Q K^T / sqrt(hs), masked;  P = softmax(S);  out = dropout(P) V
 * Masks: causal (key j > query i) and padding (attn_mask[b, j] == 0) both remove keys;
 * with seq_idx (packed documents, self-attention) so does another document's key.
 * Memory is linear in T: scores and probabilities live only in per-thread tiles
 * (flash-attention style, attention.c); the forward pass saves per query row the
 * log-sum-exp of its scores, a copy of the output and the key mask (the "att" buffer,
 * attention_saved_floats), and the backward pass recomputes the probabilities. The
 * dropout mask is recomputed from a counter-based hash of (b, h, i, j). Work is split
 * over threads by (batch, head, query block) forward and (batch, head) backward, with
 * single-threaded GEMMs; under --bf16 on a CPU with AVX512_BF16 the tile products are
 * attn_bf16.h's (bf16 operands, fp32 sums), the softmax and the saved state stay fp32. */
#ifndef PLM_ATTENTION_H
#define PLM_ATTENTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* One attention call in general form: queries [B, Tq, ...] attend to keys and values
 * [B, Tk, ...] (cross-attention: Tq != Tk). Head h reads columns h*hs .. (h+1)*hs - 1 of
 * each row; ld* are the row strides in floats (3C for a fused q|k|v). The scores are
 * scale * Q K^T, plus bias [NH, Tq, Tk] when given (T5's relative positions). */
typedef struct {
    int B, Tq, Tk, NH, hs;
    const float *q, *k, *v;
    int ldq, ldk, ldv;
    const uint8_t *key_mask; /* [B, Tk]: 1 = attend, 0 = padding; NULL: no padding */
    const float *bias;       /* [NH, Tq, Tk] added to the scores, or NULL */
    bool causal;             /* key j is visible to query i iff j <= i */
    /* [B, T] document of each token (self-attention, Tq == Tk), or NULL: one document.
     * Query i sees key j only when seq_idx[b, i] == seq_idx[b, j] (flash-attention's
     * varlen, HF's DataCollatorWithFlattening); a padding query sees nothing. */
    const int32_t *seq_idx;
    float scale;
    float dropout_p;
    uint64_t dropout_key;
} attn_shape;

/* Floats of the state the forward pass saves for the backward pass (att):
 * lse [B, NH, Tq] | out [B, NH, Tq, hs] | key mask [B, Tk] | 1 flag. A row with no
 * visible key has lse = +inf and output 0. With seq_idx the key mask holds
 * seq_idx + 1 (0: padding), so the size does not change. */
size_t attention_saved_floats(int B, int NH, int Tq, int Tk, int hs);

/* out [B, Tq, NH*hs] and the saved state att (attention_saved_floats(B, NH, Tq, Tk, hs)). */
void attention_forward_ex(const attn_shape *a, float *out, float *att);
/* dq, dk, dv (overwritten; same layouts and strides as q, k, v) from dout; a must be the
 * forward's shape. dscores, when not NULL, receives dS [B, NH, Tq, Tk], the gradient of
 * the scores (and of the bias), written tile by tile: the only T x T buffer, and only
 * when asked for. */
void attention_backward_ex(const attn_shape *a, const float *dout, const float *att, float *dq, float *dk, float *dv,
                           float *dscores);

/* attention_backward_ex, and the bias gradients of the linear layers that produced q,
 * k and v: dbq, dbk, dbv [NH*hs] += the column sums of dq, dk, dv (each may be NULL).
 * Summed per (batch, head) by the task that owns those rows while they are in cache,
 * then over the batch in order: deterministic, the same bits for any number of threads
 * (not those of colsum_accumulate, which sums in other chunks). */
void attention_backward_bias(const attn_shape *a, const float *dout, const float *att, float *dq, float *dk, float *dv,
                             float *dscores, float *dbq, float *dbk, float *dbv);

/* The fused self-attention: attn_mask: [B, T] with 1 = real token, 0 = padding; NULL
 * means no padding. */
void attention_forward(float *out, float *att, const float *qkv, const uint8_t *attn_mask, int B, int T, int C, int NH,
                       bool causal, float dropout_p, uint64_t dropout_key);
/* The same over packed documents: seq_idx [B, T] as in attn_shape (NULL: attention_forward).
 * The backward pass reads the documents from att, so attention_backward needs no argument. */
void attention_forward_docs(float *out, float *att, const float *qkv, const uint8_t *attn_mask, const int32_t *seq_idx,
                            int B, int T, int C, int NH, bool causal, float dropout_p, uint64_t dropout_key);

/* dqkv = gradient w.r.t. qkv (overwritten) from dout = gradient w.r.t. out. */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C, int NH,
                        float dropout_p, uint64_t dropout_key);
/* The same, and dqkv_bias [3C] += the column sums of dqkv (attention_backward_bias). */
void attention_backward_qkv_bias(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                                 int C, int NH, float dropout_p, uint64_t dropout_key, float *dqkv_bias);

#endif
