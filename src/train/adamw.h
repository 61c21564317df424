/* adamw.h - AdamW (Loshchilov & Hutter) with decoupled weight decay, as torch.optim.AdamW:
 *     p -= lr * wd * p                       (skipped for biases and LayerNorm weights)
 *     m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
 *     p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
 * plus global-norm gradient clipping and the learning-rate schedules. Owns the moments. */
#ifndef PLM_ADAMW_H
#define PLM_ADAMW_H

#include <stddef.h>

#include "model/model.h"

typedef struct {
    float learning_rate, beta1, beta2, eps, weight_decay;
} plm_adamw_hparams;

/* torch.optim.AdamW's defaults (betas 0.9 / 0.999, eps 1e-8, weight decay 0.01) at the
 * given learning rate. */
plm_adamw_hparams plm_adamw_defaults(float learning_rate);

typedef struct {
    float *m, *v; /* first and second moments, one per parameter */
    size_t n;
    long step;       /* updates done */
    size_t offset;   /* moments of parameters [offset, offset + n): 0 unless sharded (ZeRO-1) */
    float *lr_scale; /* per tensor (m->tensors order): its learning rate is lr x lr_scale[i]; NULL: 1 */
} plm_adamw;

void plm_adamw_init(plm_adamw *o, size_t num_params);
/* Moments of parameters [offset, offset + n) only: a ZeRO-1 slice (dist.h). */
void plm_adamw_init_slice(plm_adamw *o, size_t offset, size_t n);
void plm_adamw_free(plm_adamw *o);
/* Layer-wise learning-rate decay (ELECTRA, Clark et al. 2020: layerwise_lr_decay, as
 * google-research/electra's _get_layer_lrs). Each tensor gets a depth: 0 for the
 * embeddings (and embeddings_project), l + 1 for transformer layer l, L + 2 for the rest
 * (the task's head), L the number of layers; its learning rate is then
 *     lr x decay^(L + 2 - depth),
 * so the head trains at the full rate and each layer below at a geometrically smaller
 * one, keeping the pretrained lower layers close to where pretraining left them. A
 * tensor outside these (BERT's pooler, GPT-2's ln_f) keeps the full rate, as in ELECTRA.
 * decay = 1 turns it off (lr_scale freed). Returns 0, or -1 (error set) for a decay
 * outside (0, 1]. */
int plm_adamw_layerwise_decay(plm_adamw *o, const plm_model *m, float decay);
/* The depth above of tensor i of m. */
int plm_tensor_depth(const plm_model *m, int i);

/* One update of every parameter of the model (of the slice) with learning rate lr
 * (times the tensor's lr_scale when set). */
void plm_adamw_step(plm_adamw *o, plm_model *m, const plm_adamw_hparams *h, float lr);

/* L2 norm of all gradients, summed in double in a fixed order: the same bits for any
 * number of threads. */
double plm_grad_norm(const plm_model *m);
/* Scales gradients so their global norm is at most max_norm (torch's clip_grad_norm_:
 * coefficient max_norm / (norm + 1e-6), applied only when below 1). Returns the norm. */
double plm_clip_grad_norm(plm_model *m, double max_norm);

/* Index into m->tensors of the first tensor whose values in buf (m->params or
 * m->grads) include a NaN or an infinity, or -1 when all are finite: names the tensor
 * where training diverged. */
int plm_first_nonfinite(const plm_model *m, const float *buf);

typedef enum { PLM_SCHED_LINEAR = 0, PLM_SCHED_COSINE = 1, PLM_SCHED_CONSTANT = 2, PLM_SCHED_WSD = 3 } plm_scheduler;
/* Learning rate before update number `step` (0-based), as HF's schedules with warmup:
 * linear warmup from 0, then linear decay to 0 at total_steps, cosine decay, or constant.
 * PLM_SCHED_WSD here is plm_lr_wsd with decay_fraction 0.2 and the 1-sqrt shape. */
float plm_lr_at(plm_scheduler s, float base_lr, long step, long warmup_steps, long total_steps);

/* The shape of warmup-stable-decay's final decay. */
typedef enum { PLM_DECAY_1SQRT = 0, PLM_DECAY_LINEAR = 1 } plm_decay_shape;

/* Warmup-stable-decay (MiniCPM, Hu et al. 2024; Hägele et al. 2024; the 2025 MLM-vs-CLM
 * encoder study), as HF's get_wsd_schedule with min_lr_ratio 0:
 *   step < warmup:                      lr = base * step / warmup
 *   warmup <= step < total - decay:     lr = base                       (stable)
 *   total - decay <= step:              p = (step - (total - decay)) / decay,
 *                                       lr = base * (1 - sqrt(p))  or  base * (1 - p)
 * with decay = round(decay_fraction * total) steps (at most total - warmup). 1-sqrt keeps
 * the rate high longer and drops it fast at the end; Hägele et al. found it better than
 * linear at equal decay length. */
float plm_lr_wsd(float base_lr, long step, long warmup_steps, long total_steps, double decay_fraction,
                 plm_decay_shape shape);

#endif
