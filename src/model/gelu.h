/* gelu.h - the feed-forward activations: GELU in its two forms, ReLU, and their gated
 * forms (T5 v1.1's DenseGatedActDense):
 *   "gelu"     (BERT):  x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
 *   "gelu_new" (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
 *   "relu"     (T5 v1.0): max(x, 0)
 *   gated: out = act(x0) * x1 for x = [x0 | x1] (wi_0 and wi_1 of one fused GEMM) */
#ifndef PLM_GELU_H
#define PLM_GELU_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PLM_GELU_ERF = 0, PLM_GELU_TANH = 1, PLM_ACT_RELU = 2 } plm_gelu_kind;

void gelu_forward(float *out, const float *inp, size_t n, plm_gelu_kind kind);
/* The same, and out16[i] = plm_to_bf16(out[i]) (gemm.h) when out16 is not NULL: the bf16
 * copy of the next linear layer's input (plm_gemm_bf16_keep_begin), made while out is in
 * cache instead of by a pass of its own. */
void gelu_forward_bf16(float *out, uint16_t *out16, const float *inp, size_t n, plm_gelu_kind kind);
/* dinp = dout * gelu'(inp); dinp may alias dout. */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, plm_gelu_kind kind);

/* The pair the backbone's feed-forward block runs. Forward: out = act(x), and x is
 * overwritten by act'(x), all the backward pass needs of x: the backward then multiplies
 * instead of evaluating erf or tanh again, and act' costs the forward only a few products
 * on top of the erf (with its exponential) or tanh it already computes. out16 as in
 * gelu_forward_bf16 (may be NULL). The values have the bits of gelu_forward and, in the
 * backward pass, of gelu_backward. */
void gelu_forward_dact(float *out, uint16_t *out16, float *x, size_t n, plm_gelu_kind kind);
/* Backward over [N, I] rows, fused with the bias gradient of the linear layer that made x
 * (linear.h): dinp = dout * act'(x), from dact = act'(x) as gelu_forward_dact left it, and
 * dbias += column sums of dinp with the bits of colsum_accumulate(dbias, dinp). dinp16 =
 * dinp rounded to bf16 when not NULL (plm_gemm_bf16_hold_begin). dinp may alias dout. */
void gelu_backward_dact_colsum(float *dinp, uint16_t *dinp16, const float *dact, const float *dout, int N, int I,
                               plm_gelu_kind kind, float *dbias);

/* inp [N, 2I] rows [x0 | x1] -> out [N, I] = act(x0) * x1. */
void gated_act_forward(float *out, const float *inp, int N, int I, plm_gelu_kind kind);
/* dinp [N, 2I] = [dout * x1 * act'(x0) | dout * act(x0)] (overwritten). */
void gated_act_backward(float *dinp, const float *inp, const float *dout, int N, int I, plm_gelu_kind kind);

#endif
