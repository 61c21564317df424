/* gelu.h - the GELU activation in its two forms:
 *   "gelu"     (BERT):  x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))
 *   "gelu_new" (GPT-2): 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
#ifndef PLM_GELU_H
#define PLM_GELU_H

#include <stddef.h>

typedef enum { PLM_GELU_ERF = 0, PLM_GELU_TANH = 1 } plm_gelu_kind;

void gelu_forward(float *out, const float *inp, size_t n, plm_gelu_kind kind);
/* dinp = dout * gelu'(inp); dinp may alias dout. */
void gelu_backward(float *dinp, const float *inp, const float *dout, size_t n, plm_gelu_kind kind);

#endif
