/* reward.h - reward model training (plm reward), as TRL's RewardTrainer on
 * AutoModelForSequenceClassification with num_labels = 1: a causal LM's body with HF's
 * GPT2ForSequenceClassification head, r = score . h_last (no bias; h_last the final
 * hidden state, after ln_f, of the sequence's last token), trained on the preference
 * pairs plm dpo reads (plm_dpo_encode: the chat template renders prompt + response) with
 * the Bradley-Terry loss of model/pairwise.h, on the fine-tuning loop of finetune.h
 * (seeded epochs, AdamW with linear decay, evaluation, the best model kept, checkpoints
 * that resume bit for bit). Owns the reward batches, the scoring of conversations and
 * the evaluation.
 *
 * The token read. HF reads the last token that is not padding by pad_token_id, which for
 * GPT-2 is EOS; TRL appends EOS to every text and pads with it, so the reward is read at
 * the last token before the final EOS. plm's template ends every response with EOS too,
 * so a reward batch takes a row's trailing pad-id tokens out of its attention mask (the
 * head reads the last token the mask keeps): the same token HF reads, and, attention
 * being causal, the same hidden state.
 *
 * Dropout is off, as TRL's disable_dropout (its default). Reported as TRL does: accuracy
 * (the share of pairs with r_chosen > r_rejected), margin (mean r_chosen - r_rejected),
 * mean_reward, min_reward, max_reward. */
#ifndef PLM_REWARD_H
#define PLM_REWARD_H

#include <stdint.h>

#include "dpo.h"
#include "finetune.h"
#include "sft.h"

/* Buffers of reward batches (grown on demand; plm_reward_train reserves them first). */
typedef struct {
    plm_sft_batch bb;
    int *rows;
    float *zeros; /* the regression head's seq_targets when scoring (ignored) */
    size_t cap_rows;
} plm_reward_buf;

void plm_reward_buf_free(plm_reward_buf *b);
void plm_reward_buf_reserve(plm_reward_buf *b, int rows, int max_len);

/* Sequences rows[0..n) of seqs as one causal batch, right-padded with pad, each row's
 * trailing pad tokens out of the mask (above). */
void plm_reward_collate(const plm_sft_data *seqs, const int *rows, int n, int32_t pad, plm_reward_buf *buf,
                        plm_batch *out);

/* Pairs pairs[0..n) of d as one pairwise batch of 2n rows (each pair's chosen, then its
 * rejected sequence), dropout off: plm_model_run gives the loss, with backward its
 * gradient. */
void plm_reward_batch(const plm_dpo_data *d, const int *pairs, int n, int32_t pad, float center, plm_reward_buf *buf,
                      plm_batch *out);

/* The reward of every sequence of seqs under m (a one-output sequence head), in batches
 * of B: out[seqs->n]; progress (may be NULL) labels a progress bar. Returns 0 or -1
 * (error set). */
int plm_reward_score(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, const char *progress, float *out);
/* The same with the caller's buffer (a training step's, reserved before its loop for B
 * rows of seqs->max_len: then it allocates nothing). */
int plm_reward_score_buf(plm_model *m, const plm_sft_data *seqs, int B, int32_t pad, const char *progress,
                         plm_reward_buf *buf, float *out);

/* Scores every pair of d (batches of B pairs): the loss and statistics. Returns 0 or -1. */
int plm_reward_evaluate(plm_model *m, const plm_dpo_data *d, int B, int32_t pad, float center, plm_pairwise_stats *out);

/* Checks that m is a reward model plm can train and score: one causal GPT-2 body with a
 * sequence head of one output. Returns 0, or -1 with the error set (naming what it is). */
int plm_reward_check_model(const plm_model *m);

/* The metrics plm_reward_train reports at evaluation, in plm_ft_scores.value order; the
 * best model is the one with the highest accuracy. */
extern const char *const plm_reward_metrics[3];

/* Trains m (plm_reward_check_model) on train's pairs, evaluating on valid (may be NULL),
 * with TRL's center_rewards_coefficient center (0: off); writes output_dir as the
 * fine-tuning loop does, config.json recording the template. Returns 0 or an exit code
 * with the error set. */
int plm_reward_train(plm_model *m, const plm_tokenizer *tok, const plm_dpo_data *train, const plm_dpo_data *valid,
                     float center, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best);

#endif
