/* embedding.h - input embeddings: the sum of learned token, position and (optional)
 * segment embeddings,  out[b,t] = wte[id] + wpe[pos_offset + t] + wtt[type]. */
#ifndef PLM_EMBEDDING_H
#define PLM_EMBEDDING_H

#include <stddef.h>
#include <stdint.h>

/* wtt may be NULL (no segment embeddings, as GPT-2). type_ids may be NULL: every token
 * is then segment 0 (HF's default token_type_ids), i.e. wtt[0] is added. position_ids
 * [B, T] may be NULL: token t is at position t. */
void embedding_forward(float *out, const int32_t *ids, const int32_t *type_ids, const int32_t *position_ids,
                       const float *wte, const float *wpe, const float *wtt, int B, int T, int C, int pos_offset);

/* Scatter-adds dout into the tables. Threads split the channels, so there are no
 * races and the sum order is fixed. Tokens equal to padding_idx (>= 0) add nothing to
 * dwte, as nn.Embedding(padding_idx=...). */
void embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout, const int32_t *ids,
                        const int32_t *type_ids, const int32_t *position_ids, int B, int T, int C, int pos_offset,
                        int padding_idx);

#endif
