/* batch.h - one batch of model inputs and the labels of every head. */
#ifndef PLM_BATCH_H
#define PLM_BATCH_H

#include <stdbool.h>
#include <stdint.h>

/* One batch of model inputs, [B, T] row-major, and the labels its heads use. */
typedef struct {
    int B, T;
    const int32_t *input_ids;
    const int32_t *token_type_ids;                  /* NULL: all segment 0 */
    const uint8_t *attention_mask;                  /* NULL: no padding */
    const int32_t *labels;                          /* [B, T] per-token target or -100: LM (pre-shifted for CLM),
                                                       token classification, replaced-token detection (0/1) */
    const float *label_weights;                     /* [B, T] LM head only, or NULL: the loss is sum_t w_t * CE_t
                                                       over the labelled tokens instead of their mean (DPO's
                                                       per-sequence weights on the response tokens) */
    const int32_t *seq_labels;                      /* [B] class of each sequence (classification, NSP), or -100 */
    const float *seq_targets;                       /* [B] regression targets (num_labels == 1) */
    const int32_t *start_positions, *end_positions; /* [B] extractive QA spans */
    bool causal;                                    /* causal self-attention */
    bool training;                                  /* dropout on */
    uint64_t dropout_seed;                          /* dropout masks are a function of this seed */

    /* a reward model (pairwise.h): for the regression sequence head (num_labels 1) only, rows
     * 2i and 2i + 1 are a preference pair (chosen, rejected) and the loss is Bradley-Terry's,
     * not the squared error on seq_targets; center_rewards is TRL's center_rewards_coefficient */
    bool pairwise;
    float center_rewards; /* with pairwise; 0: off */

    /* packed documents (sft --packing; HF's DataCollatorWithFlattening), self-attention
     * models only: position_ids [B, T] index the position embeddings (NULL: 0..T-1; each
     * document restarts at 0), seq_idx [B, T] the document of each token (NULL: one per
     * row); a token attends only to tokens of its own document */
    const int32_t *position_ids;
    const int32_t *seq_idx;
} plm_batch;

#endif
