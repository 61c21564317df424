/* dpo.h - Direct Preference Optimization (Rafailov et al. 2023) of a causal LM (plm dpo),
 * as TRL's DPOTrainer with its loss_type sigmoid (the default), hinge or ipo, on the
 * fine-tuning loop of finetune.h. Owns the encoded preference pairs with their reference
 * log-probabilities, the DPO losses and their per-sequence weights, and the reward
 * statistics.
 *
 *   z = (logp_c - ref_c) - (logp_r - ref_r)
 *   sigmoid  loss = -log sigmoid(beta z)                 (DPO)
 *   hinge    loss = max(0, 1 - beta z)                   (SLiC, Zhao et al. 2023)
 *   ipo      loss = (z - 1 / (2 beta))^2                 (IPO, Azar et al. 2023, eq. 17)
 *
 * logp: the sum of the log-probabilities of a response's tokens (the assistant tokens of
 * the chat template, sft.h) under the model being trained; ref: the same under the frozen
 * reference model, the starting checkpoint, computed once per sequence before training
 * (TRL's precompute_ref_log_probs). For ipo both are the mean over the response's tokens
 * instead of the sum, as TRL averages them for ipo. The loss is the mean over the pairs of
 * a batch; at z with loss'(z) its derivative (sigmoid: -beta sigmoid(-beta z); hinge: -beta
 * where 1 - beta z > 0, else 0, as torch.relu's; ipo: 2 (z - 1 / (2 beta))).
 *
 * Gradient. logp = -sum_t CE_t over the n_s response tokens of sequence s (the mean:
 * divided by n_s), so
 *   d loss / d CE_t = -loss'(z) / (n k_c)  on the chosen response's tokens,
 *                     +loss'(z) / (n k_r)  on the rejected one's
 * (n pairs; k = 1 for a sum, n_s for a mean): the gradient of the LM loss with one weight
 * per sequence. A training step is therefore a forward pass for the log-probs, then the LM
 * loss with those label_weights (batch.h) through the usual forward and backward pass; no
 * separate backward path.
 *
 * Dropout is off in training, as TRL's disable_dropout (its default): at the first step the
 * policy is the reference and z = 0 (the sigmoid loss log 2, the hinge loss 1).
 *
 * Reported as TRL does: rewards/chosen = beta (logp_c - ref_c), rewards/rejected likewise,
 * rewards/accuracies (the share of pairs whose chosen reward is higher), rewards/margins
 * (chosen - rejected), logps/chosen, logps/rejected (means for ipo); all means over the
 * pairs. */
#ifndef PLM_DPO_H
#define PLM_DPO_H

#include <stdbool.h>
#include <stdint.h>

#include "finetune.h"
#include "sft.h"

/* TRL's loss_type. */
typedef enum { PLM_DPO_SIGMOID = 0, PLM_DPO_HINGE, PLM_DPO_IPO } plm_dpo_loss_type;

/* "sigmoid", "hinge", "ipo"; parse returns 0 or -1. */
const char *plm_dpo_loss_name(plm_dpo_loss_type t);
int plm_dpo_loss_of(const char *name, plm_dpo_loss_type *out);

typedef struct {
    plm_sft_data seqs; /* sequence 2i: pair i's chosen conversation; 2i + 1: its rejected one */
    double *ref_logp;  /* [2 n] reference log-probs (plm_dpo_logps of the reference), or NULL */
    int n;             /* pairs */
} plm_dpo_data;

/* Encodes pair i as chosen->items[i] and rejected->items[i] with template t, each cut at
 * max_len tokens. Returns 0 or -1 (error set, "name:line: ..."). */
int plm_dpo_encode(plm_dpo_data *out, const plm_chat_set *chosen, const plm_chat_set *rejected, const char *name,
                   const plm_tokenizer *tok, plm_chat_template t, int max_len);
void plm_dpo_data_free(plm_dpo_data *d);
/* Moves round(fraction * n) pairs (a seeded draw) from d into valid. Returns how many. */
int plm_dpo_split(plm_dpo_data *d, double fraction, uint64_t seed, plm_dpo_data *valid);

/* The summed response log-probs of every sequence of seqs under m (dropout off), in
 * batches of B sequences: out[seqs->n]. Returns 0 or -1 (error set). */
int plm_dpo_logps(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, double *out);
/* The same with the caller's buffers (a training step's, reserved before its loop): bb
 * (grow-only) and rows [B]. */
int plm_dpo_logps_buf(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, plm_sft_batch *bb, int *rows,
                      double *out);

typedef struct {
    double loss;             /* mean DPO loss */
    double chosen, rejected; /* mean rewards */
    double accuracy, margin; /* share of chosen > rejected; mean chosen - rejected */
    double logp_chosen, logp_rejected;
    int pairs;
} plm_dpo_stats;

/* The loss of this type and the statistics of n pairs from their summed log-probs logp[2n]
 * and ref[2n] (chosen at 2i) and their response tokens ntok[2n] (ipo's means; may be NULL
 * for the others). w (may be NULL) gets each sequence's weight d loss / d CE_t, [2n]. */
void plm_dpo_loss(const double *logp, const double *ref, const int *ntok, int n, float beta, plm_dpo_loss_type type,
                  plm_dpo_stats *st, float *w);
/* The response tokens (labelled positions) of sequence i of seqs. */
int plm_dpo_response_tokens(const plm_sft_data *seqs, int i);

/* Buffers of a DPO batch (grown on demand). */
typedef struct {
    plm_sft_batch bb;
    int *rows;
    double *logp, *ref;
    int *ntok;
    float *seq_w, *tok_w;
    size_t cap_rows, cap_tok;
} plm_dpo_buf;

void plm_dpo_buf_free(plm_dpo_buf *b);
/* Makes room for batches of up to pairs pairs of sequences of up to max_len tokens:
 * plm_dpo_train reserves before the loop, so no training step allocates. */
void plm_dpo_buf_reserve(plm_dpo_buf *b, int pairs, int max_len);

/* One training batch of pairs[0..n) of d (which has ref_logp): 2n rows (each pair's chosen
 * then rejected), a forward pass for their log-probs (dropout as the batch will run it:
 * training, seed), the loss and statistics in *st, and *out: the batch with label_weights,
 * so that plm_model_run(backward) adds d loss / d params. Returns 0 or -1 (error set). */
int plm_dpo_batch(plm_model *m, const plm_dpo_data *d, const int *pairs, int n, float beta, plm_dpo_loss_type type,
                  int32_t pad, bool training, uint64_t seed, plm_dpo_buf *buf, plm_batch *out, plm_dpo_stats *st);

/* Scores every pair of d (dropout off). Returns 0 or -1 (error set). */
int plm_dpo_evaluate(plm_model *m, const plm_dpo_data *d, int B, float beta, plm_dpo_loss_type type, int32_t pad,
                     plm_dpo_stats *out);

/* The metrics plm_dpo_train reports at evaluation (eval_rewards/accuracies, ...), in
 * plm_ft_scores.value order; the best model is the one with the highest reward accuracy. */
extern const char *const plm_dpo_metrics[3];

/* Trains m on train's pairs (with reference log-probs) with the DPO loss of this type at this
 * beta, evaluating on valid (may be NULL); writes output_dir as the fine-tuning loop does,
 * config.json recording the template, beta and loss_type. Returns 0 or an exit code with
 * the error set. */
int plm_dpo_train(plm_model *m, const plm_tokenizer *tok, const plm_dpo_data *train, const plm_dpo_data *valid,
                  float beta, plm_dpo_loss_type type, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best);

#endif
