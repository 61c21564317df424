/* linear.h - fully connected layer in nn.Linear's layout: weight is [OC, C],
 *     out[N, OC] = inp[N, C] @ weight^T + bias
 * Both directions are GEMMs (gemm.h); the bias is folded into the output first. */
#ifndef PLM_LINEAR_H
#define PLM_LINEAR_H

#include <stdbool.h>

/* bias may be NULL. */
void linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int C, int OC);

/* dinp = (or += when accumulate) dout @ weight; skipped when dinp is NULL.
 * dweight += dout^T @ inp;  dbias += column sums of dout (skipped when NULL). */
void linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                     const float *weight, int N, int C, int OC, bool accumulate);

/* dbias += column sums of dout[N, OC], summed in chunks of rows fixed by N: the same
 * bits for any number of threads. */
void colsum_accumulate(float *dbias, const float *dout, int N, int OC);

#endif
