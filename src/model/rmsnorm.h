/* rmsnorm.h - T5's LayerNorm (HF T5LayerNorm): a root-mean-square norm over the last
 * dimension, without mean subtraction and without bias:
 *     y = x * rstd * weight,   rstd = 1 / sqrt(mean(x^2) + eps)
 * The forward pass saves rstd per row for the backward pass. */
#ifndef PLM_RMSNORM_H
#define PLM_RMSNORM_H

#include <stdbool.h>

void rmsnorm_forward(float *out, float *rstd, const float *inp, const float *weight, int N, int C, float eps);

/* dinp = (or += when accumulate) the gradient w.r.t. inp; dweight += its own. dweight is
 * summed in chunks of rows fixed by N: the same bits for any number of threads. */
void rmsnorm_backward(float *dinp, float *dweight, const float *dout, const float *inp, const float *weight,
                      const float *rstd, int N, int C, bool accumulate);

#endif
