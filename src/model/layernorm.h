/* layernorm.h - LayerNorm over the last dimension:
 *     y = (x - mean) * rstd * weight + bias,   rstd = 1 / sqrt(var + eps)
 * The forward pass saves mean and rstd per row for the backward pass. */
#ifndef PLM_LAYERNORM_H
#define PLM_LAYERNORM_H

#include <stdbool.h>

void layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *weight, const float *bias,
                       int N, int C, float eps);

/* dinp = (or += when accumulate) the gradient w.r.t. inp; dweight, dbias += theirs.
 * dweight and dbias are summed in chunks of rows fixed by N: the same bits for any
 * number of threads. */
void layernorm_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, const float *mean, const float *rstd, int N, int C, bool accumulate);

#endif
