/* dropout.h - inverted dropout and the residual add it usually feeds. The mask is a
 * pure function of (key, element index) (rng.h), so the backward pass recomputes it
 * instead of storing it: keep element i iff uniform(key, i) >= p, scale by 1/(1-p). */
#ifndef PLM_DROPOUT_H
#define PLM_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

/* out = x * mask / (1 - p); out may alias x. p == 0 copies. */
void dropout_forward(float *out, const float *x, size_t n, float p, uint64_t key);
/* dx = dout * mask / (1 - p); dx may alias dout. */
void dropout_backward(float *dx, const float *dout, size_t n, float p, uint64_t key);
/* out = res + dropout(x); out may alias res or x. The backward pass of a residual add
 * is the identity for res and dropout_backward for x. */
void residual_dropout_forward(float *out, const float *res, const float *x, size_t n, float p, uint64_t key);

/* Fused with the bias gradient of the linear layer whose output the dropout read (linear.h),
 * over [N, C]: dx = dropout_backward(dout) and dbias += column sums of dx, with the bits of
 * colsum_accumulate(dbias, dx); dx may alias dout; p == 0 copies (or, aliased, only sums). */
void dropout_backward_colsum(float *dx, const float *dout, int N, int C, float p, uint64_t key, float *dbias);

#endif
