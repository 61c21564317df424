/* rloo.h - online RLHF from a reward model (plm rloo), as TRL's RLOOTrainer: REINFORCE with
 * the leave-one-out baseline (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE
 * Style Optimization for Learning from Human Feedback in LLMs"), no value head and no PPO
 * clipping (one update per batch of samples, so the ratio is 1). Owns the prompts, the k
 * sampled completions of each, the RLOO rewards, advantages and per-sequence weights, the
 * training step and the held-out evaluation on the fine-tuning loop of finetune.h (seeded
 * prompt order, AdamW with linear decay, clipping, metrics.jsonl, checkpoints, the final
 * model directory).
 *
 * A step, for a batch of n prompts (rendered with the chat template and its generation
 * prompt, tasks/chat.h):
 *   - k completions y_i per prompt sampled from the policy (infer/generate.h: one batch,
 *     each sequence with its own seed hash(step seed, i)), up to max_new_tokens, EOS ends one;
 *   - score_i = RM(prompt + y_i), the reward model's output (train/reward.h);
 *   - logp_i = sum over y_i's tokens of log pi(y_t | ...), under the policy, and ref_i the
 *     same under the frozen starting policy (the summed response log-probs of dpo.h);
 *   - kl_i = logp_i - ref_i (TRL's default sequence-level k1 estimator), and the reward
 *     r_i = score_i - beta kl_i (TRL's rlhf_reward);
 *   - the leave-one-out advantage A_i = r_i - (1 / (k - 1)) sum_{j != i} r_j over the k
 *     completions of the same prompt;
 *   - loss = -(1 / N) sum_i A_i logp_i over the N = n k completions (A_i a constant, as
 *     TRL computes it without gradient).
 * Gradient: logp_i = -sum_t CE_t over y_i's tokens, so d loss / d CE_t = A_i / N on every
 * token of y_i: the LM loss with one weight per sequence (batch.h label_weights), as DPO's;
 * no backward code of its own.
 *
 * Memory: the step's own buffers are sized before the loop, but a step still allocates in
 * the generator (its KV cache, per call) and in the scoring passes (plm_reward_score's and
 * plm_dpo_logps's batch buffers), unlike the other fine-tuning steps.
 *
 * Dropout is off (TRL's disable_dropout); log-probs are at temperature 1, the policy's own
 * distribution, so sample with --temperature 1 (the default) for the unbiased REINFORCE
 * gradient. Reported per step: score (mean RM output), kl, reward (mean r), advantage (mean
 * |A|), completion_length (mean tokens, EOS included). */
#ifndef PLM_RLOO_H
#define PLM_RLOO_H

#include <stdint.h>

#include "finetune.h"
#include "infer/generate.h"
#include "sft.h"

typedef struct {
    double loss;      /* -(1/N) sum A_i logp_i */
    double score;     /* mean reward-model output */
    double kl;        /* mean logp - ref */
    double reward;    /* mean score - beta kl */
    double advantage; /* mean |A_i| */
    double length;    /* mean completion tokens */
    int n;            /* completions */
} plm_rloo_stats;

/* RLOO over n prompts with k >= 2 completions each (completion j of prompt i at i k + j):
 * from the reward-model scores, the policy's and the reference's summed completion
 * log-probs and the completion lengths len (may be NULL: length 0), the loss and
 * statistics in *st; adv (may be NULL) gets each A_i, w (may be NULL) each completion's
 * weight d loss / d CE_t = A_i / N. */
void plm_rloo_loss(const float *score, const double *logp, const double *ref, const int *len, int n, int k, float beta,
                   plm_rloo_stats *st, double *adv, float *w);

/* The policy's half of a training batch on completions already sampled and scored: the
 * n k sequences rows[0..n k) of seqs (completion j of prompt i at row i k + j; completion
 * tokens trained) as one causal batch (bb), a forward pass (dropout off) for their summed
 * completion log-probs logp[n k], the loss and statistics from score, ref and len
 * (plm_rloo_loss) in *st, each sequence's weight in seq_w[n k] and, per token, in tok_w
 * (room for n k x the longest row): *out is the batch with those label_weights, so that
 * plm_model_run(backward) adds d loss / d params. Returns 0 or -1 (error set). */
int plm_rloo_policy_batch(plm_model *m, const plm_sft_data *seqs, int n, int k, const float *score, const double *ref,
                          const int *len, float beta, int32_t pad, const int *rows, plm_sft_batch *bb, double *logp,
                          float *seq_w, float *tok_w, plm_batch *out, plm_rloo_stats *st);

/* TRL's missing_eos_penalty (RLOOConfig, PPOConfig): subtracts penalty (0: off) from the
 * score of each of the n responses whose kept tokens gen[i stride .. i stride + len[i]) hold
 * no eos (cut at max_new_tokens or at the length limit), a push towards ending responses. */
void plm_missing_eos_penalty(float *score, const int32_t *gen, int stride, const int *len, int n, int32_t eos,
                             float penalty);

/* What plm rloo samples and optimises besides the fine-tuning arguments. */
typedef struct {
    int k;                     /* rloo_k: completions per prompt, >= 2 (TRL's default 2) */
    float beta;                /* KL coefficient (TRL's kl_coef, default 0.05) */
    float missing_eos_penalty; /* plm_missing_eos_penalty; 0: off (TRL's default None) */
    plm_sampling s;            /* max_new_tokens, temperature, top_k, top_p; seed and eos set per step */
    plm_model *ref;            /* the frozen reference policy (the starting checkpoint) */
    plm_model *rm;             /* the reward model (plm_reward_check_model) */
    int32_t rm_pad;            /* its pad id */
    const char *rm_dir;        /* recorded in config.json */
} plm_rloo_args;

/* The prompts of set rendered with template t and the generation prompt, as plm_sft_data
 * (no trained token). A prompt of max_len tokens or more is an error "name:line: ...".
 * Returns 0 or -1 (error set). */
int plm_rloo_encode_prompts(plm_sft_data *out, const plm_chat_set *set, const char *name, const plm_tokenizer *tok,
                            plm_chat_template t, int max_len);

/* Trains the policy m (a causal LM, its tokenizer tok) on prompts with RLOO, evaluating on
 * valid (may be NULL) every epoch or a->eval_steps: eval_reward, eval_score, eval_kl and
 * eval_loss over k completions of each held-out prompt, sampled with the run's seed (the
 * same draws each time); the model with the highest eval_reward is kept, and checkpoints
 * are written at evaluations (resumed bit for bit). Without valid the last model is kept
 * and no checkpoint is written. Writes output_dir as the fine-tuning loop does
 * (config.json records the template, k, beta and the reward model). Returns 0 or an exit
 * code with the error set. */
int plm_rloo_train(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *prompts, const plm_sft_data *valid,
                   const plm_rloo_args *r, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best);

/* The metrics plm_rloo_train reports at evaluation (eval_reward, ...), in plm_ft_scores.value
 * order; the best model is the one with the highest mean reward. */
extern const char *const plm_rloo_metrics[3];

#endif
