/* crossentropy.h - softmax cross-entropy over the vocabulary, fused with its backward
 * pass: the logits buffer is overwritten by dloss/dlogits, so the [rows, V] matrix is
 * stored once. Targets equal to -100 (PLM_IGNORE_INDEX, as PyTorch) are skipped. */
#ifndef PLM_CROSSENTROPY_H
#define PLM_CROSSENTROPY_H

#include <stdbool.h>
#include <stdint.h>

#define PLM_IGNORE_INDEX (-100)

typedef struct {
    double loss_sum; /* sum of -log p(target) over counted rows */
    int count;       /* rows with a target */
    int correct;     /* rows whose argmax equals the target */
} plm_ce_result;

/* logits: [M, V]. With backward, logits becomes (softmax - onehot(target)) * grad_scale
 * on counted rows and 0 on ignored rows. */
plm_ce_result crossentropy_forward_backward(float *logits, const int32_t *targets, int M, int V, bool backward,
                                            float grad_scale);
/* The same with a weight per row: row i's gradient is scaled by grad_scale * row_weight[i]
 * (row_weight NULL: 1), the gradient of sum_i row_weight[i] * loss_i (DPO's per-sequence
 * weights); row_loss (may be NULL) gets each row's -log p(target) (0 on ignored rows); and
 * with backward, dlogits16 (may be NULL) gets the gradient rounded to bf16, written while
 * each row is in cache: the LM head's dY under --bf16 (plm_gemm_bf16_hold_begin), which
 * then needs no rounding pass of its own over [M, V]. */
plm_ce_result crossentropy_forward_backward_ex(float *logits, const int32_t *targets, int M, int V, bool backward,
                                               float grad_scale, const float *row_weight, double *row_loss,
                                               uint16_t *dlogits16);

#endif
