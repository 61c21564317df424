/* ppo.h - online RLHF with a value model (plm ppo), as TRL's PPOTrainer (PPOv2, trl 0.11 /
 * 0.12 ppo_trainer.py): the policy and a value model trained together by PPO's clipped
 * objective on advantages from GAE. Owns the rollout (samples, per-token log-probs of the
 * policy and of the frozen reference, values, reward-model scores), the per-token rewards,
 * GAE and whitening, the PPO loss with its analytic per-token gradients, the value head's
 * backward pass and the training step on the fine-tuning loop of finetune.h.
 *
 * Models: the policy pi (a causal LM, from the SFT checkpoint), the frozen reference pi_ref
 * (the same start), the frozen reward model RM (plm reward's output) and the value model V:
 * a GPT-2 body with a linear `score` head (no bias, one output) read at EVERY position,
 * initialised from the reward model directory as TRL's examples do. pi and V are one
 * optimizer's parameters (TRL's PolicyAndValueWrapper): AdamW is elementwise, so one AdamW
 * state per model stepped with the same learning rate is the same optimizer; the gradient
 * is clipped by the norm over both models together.
 *
 * Rollout, for a batch of N prompts x_i (one completion each):
 *   - y_i sampled from pi at temperature tau (default 0.7, TRL's), EOS ends it (the stop
 *     token: nothing follows it), at most max_new_tokens; L_i its tokens, EOS included;
 *     G = max_i L_i the response width (HF's generate pads to the longest);
 *   - logprob[i,t] = log softmax(z / (tau + 1e-7))[y_t] from the policy's logits z at the
 *     position before y_t, as TRL computes the new log-probs and the reference's (TRL 0.11
 *     takes the rollout's from the sampler's logits / tau, the same up to that 1e-7 and the
 *     numerics of a separate pass); ref_logprob[i,t] the same under pi_ref;
 *   - values[i,t] = score . h_V(position before y_t): the value of the state that y_t is
 *     taken from; values[i,L_i] reads the last response token's state;
 *   - score_i = RM(x_i + y_i) (train/reward.h), minus missing_eos_penalty when y_i has no
 *     EOS (TRL's missing_eos_penalty; off by default).
 * Masks as TRL's, with TRL's sequence_length s_i = L_i - 1 (the last response token):
 *   padding_mask[i,t] = t > s_i, padding_mask_p1[i,t] = t > s_i + 1. Log-probs past s_i are
 *   INVALID_LOGPROB (1), values past s_i + 1 are 0: one value beyond the response is kept,
 *   the state after its last token, which receives the score.
 * Rewards: r[i,t] = -kl_coef (logprob - ref_logprob) (0 on padding), plus score_i at
 *   actual_end_i = s_i + 1 when s_i + 1 < G, else s_i. With whiten_rewards, r is whitened
 *   without shifting its mean over the tokens t <= s_i + 1 and zeroed past them.
 * GAE (gamma default 1, lam 0.95), over the whole width G, right to left:
 *   delta_t = r_t + gamma V_{t+1} - V_t (V_G = 0),  A_t = delta_t + gamma lam A_{t+1},
 *   returns_t = A_t + V_t; then A is whitened over the tokens t <= s_i (mean 0, unit
 *   variance with Bessel's correction; TRL's masked_whiten) and zeroed past them.
 * Whitening: mu = mean over the mask, var = mean((x - mu)^2) n / (n - 1) (n > 1), x' =
 *   (x - mu) / sqrt(var + 1e-8) (+ mu without shifting the mean).
 *
 * The update, num_ppo_epochs (4) passes over the batch, each in a seeded shuffle split into
 * num_mini_batches (1) minibatches (parts of n / num_mini_batches sequences, rounded; TRL
 * requires an exact division), one optimizer step each, all at the step's learning rate
 * (TRL steps its scheduler once per batch; a loop step here is one batch); on a minibatch with new
 * log-probs l'_t and values v_t (masked as above), old ones l_t and V_t:
 *   ratio_t = exp(l'_t - l_t),  c = clamp(ratio_t, 1 - eps, 1 + eps)   (eps = cliprange 0.2)
 *   pg_loss = mean_{t <= s} max(-A_t ratio_t, -A_t c)
 *   vc_t = clamp(v_t, V_t - eps_v, V_t + eps_v)                        (eps_v = cliprange_value 0.2)
 *   vf_loss = 0.5 mean_{t <= s + 1} max((v_t - R_t)^2, (vc_t - R_t)^2)  (R = returns)
 *   loss = pg_loss + vf_coef vf_loss                                   (vf_coef 0.1)
 * The gradients, per token, with n_pg and n_vf the sizes of the two masks:
 *   d loss / d l'_t = -A_t ratio_t / n_pg when -A_t ratio_t >= -A_t c, else 0 (the clipped
 *     branch is flat: outside the range clamp has no gradient, inside the branches agree);
 *   d loss / d v_t = vf_coef (v_t - R_t) / n_vf when (v - R)^2 > (vc - R)^2 or v is inside
 *     the clip range (there vc = v); 0 when the clipped branch is larger (v outside the
 *     range, where clamp has no gradient); vf_coef (v - R) / (2 n_vf) on an exact tie
 *     outside it (torch.maximum splits a tie's gradient in halves).
 * They enter the models' own backward passes: l'_t = -CE_t of the LM head (its input scaled
 * by 1 / (tau + 1e-7), the head's in_scale), so the LM loss with label_weights w_t =
 * -d loss / d l'_t gives sum_t w_t CE_t, whose gradient is the PPO policy gradient; the
 * value head v_t = score . h_t adds d score += sum_t dv_t h_t and hands the body dh_t =
 * dv_t score (model.h plm_model_backward_hidden).
 *
 * Reported per step as TRL logs them (means over the step's batch; the policy/ and loss/
 * entries averaged over its updates): objective/kl (mean per-sequence sum of logprob -
 * ref), objective/entropy (mean per-sequence sum of -logprob over the response tokens; TRL's
 * sum also adds -1 for each padded INVALID_LOGPROB), objective/non_score_reward,
 * objective/rlhf_reward (non_score_reward + scores), objective/scores, policy/approxkl_avg
 * (0.5 mean (l' - l)^2), policy/clipfrac_avg, loss/policy_avg, loss/value_avg,
 * val/clipfrac_avg, val/ratio (mean ratio), val/num_eos_tokens; TRL's approxkl and ratio
 * are means over the whole width G, padding (ratio 1) included, and so are these.
 *
 * Dropout is off in every model (TRL's PPO disables it). Memory: the step's buffers are
 * sized before the loop; the generator and the scoring passes allocate, as rloo's. */
#ifndef PLM_PPO_H
#define PLM_PPO_H

#include <stdbool.h>
#include <stdint.h>

#include "finetune.h"
#include "infer/generate.h"
#include "sft.h"

#define PLM_PPO_INVALID_LOGPROB 1.0f /* TRL's INVALID_LOGPROB: a padded token's log-prob */

/* GAE and the rewards of a rollout of N sequences of width G ([N, G] row-major arrays). */
typedef struct {
    float kl_coef;       /* default 0.05 */
    float gamma, lam;    /* 1, 0.95 */
    bool whiten_rewards; /* default false */
} plm_ppo_gae_args;

/* From logprob, ref (the reference's log-probs) and values (raw, any value past the masks
 * ignored), the responses' lengths L[N] (>= 1) and scores[N]: masks logprob and ref in place
 * (INVALID_LOGPROB past s_i) and values (0 past s_i + 1), and fills rewards, advantages and
 * returns [N, G] as above. *kl_sum / *nsr_sum (may be NULL) get the sums of logprob - ref and
 * of the non-score rewards over the batch. */
void plm_ppo_advantages(float *logprob, float *ref, float *values, const int *L, const float *scores, int N, int G,
                        const plm_ppo_gae_args *a, float *rewards, float *advantages, float *returns, double *kl_sum,
                        double *nsr_sum);

/* TRL's masked_whiten of x[n] over mask[n] (x = (x - mu) / sqrt(var + 1e-8), + mu when
 * !shift_mean; Bessel's correction when the mask holds more than one value); x outside the
 * mask is whitened too (TRL then masks it). */
void plm_ppo_whiten(float *x, const uint8_t *mask, int n, bool shift_mean);

/* The clip ranges and the value loss' weight. */
typedef struct {
    float cliprange, cliprange_value, vf_coef; /* 0.2, 0.2, 0.1 */
} plm_ppo_clip_args;

/* One minibatch's statistics. */
typedef struct {
    double loss, pg_loss, vf_loss;
    double pg_clipfrac, vf_clipfrac;
    double approxkl, ratio; /* over all n G positions, as TRL's */
} plm_ppo_mb_stats;

/* The PPO loss of n sequences of width G: new log-probs and values (raw, masked here as
 * TRL does), the rollout's old logprob, old values (masked), returns and advantages, the
 * lengths L. dlogp[n G] gets d loss / d new logprob and dv[n G] d loss / d value (0 on
 * masked tokens); either may be NULL. */
void plm_ppo_loss(const float *new_logprob, const float *new_values, const float *old_logprob, const float *old_values,
                  const float *returns, const float *advantages, const int *L, int n, int G, const plm_ppo_clip_args *a,
                  plm_ppo_mb_stats *st, float *dlogp, float *dv);

/* ---------------------------------------------------------------- the models' passes */

/* The value head of a value model vm (one sequence head of one output, score): after a
 * forward pass of its body on a batch of B x T (hidden states h), values[i G + t] = score .
 * h[i, pos_i + t] for t <= min(L_i, G - 1) with pos_i = prompt length - 1, and 0 past it.
 * Returns 0 or -1 (error set). */
int plm_ppo_values(plm_model *vm, const plm_batch *b, const int *plen, const int *L, int n, int G, float *values,
                   bool for_backward);
/* The value head's backward pass after plm_ppo_values(for_backward): dv[n G] (d loss /
 * d value) into score's gradient and, through dh (room for B T C floats), the body's. */
void plm_ppo_values_backward(plm_model *vm, const plm_batch *b, const int *plen, const int *L, int n, int G,
                             const float *dv, float *dh);

/* The per-token log-probs at temperature tau of the n responses of batch b (built by
 * plm_sft_collate: labels on the response tokens) under the causal LM m: logp[i G + t] for
 * t < L_i, INVALID_LOGPROB past it. Dropout off. With backward and w (room for B T), the
 * batch's label_weights become w[position of token t] = -dlogp[i G + t] and the backward
 * pass adds d loss / d params (the forward runs again). Returns 0 or -1. */
int plm_ppo_logprobs(plm_model *m, plm_batch *b, const int *plen, const int *L, int n, int G, float tau, float *logp);
int plm_ppo_policy_backward(plm_model *m, plm_batch *b, const int *plen, const int *L, int n, int G, float tau,
                            const float *dlogp, float *w);

/* ---------------------------------------------------------------- training */

/* What plm ppo samples and optimises besides the fine-tuning arguments. */
typedef struct {
    plm_ppo_gae_args gae;
    plm_ppo_clip_args clip;
    int num_ppo_epochs;        /* default 4 */
    int num_mini_batches;      /* default 1 */
    float missing_eos_penalty; /* subtracted from the score of a response without EOS; 0: off */
    plm_sampling s;            /* max_new_tokens, temperature (0.7); seed and eos set per step */
    plm_model *ref;            /* the frozen reference policy */
    plm_model *rm;             /* the reward model (plm_reward_check_model) */
    int32_t rm_pad;
    plm_model *vm;             /* the value model (plm_ppo_check_value_model); trained */
    const plm_tokenizer *vtok; /* its tokenizer, saved with it */
    const char *rm_dir;        /* recorded in config.json */
} plm_ppo_args;

/* Checks that vm can be a value model: a causal GPT-2 body with one sequence head of one
 * output. Returns 0, or -1 with the error set. */
int plm_ppo_check_value_model(const plm_model *vm);

/* Trains the policy m and the value model r->vm with PPO on prompts (plm_rloo_encode_prompts),
 * evaluating on valid (may be NULL) every epoch or a->eval_steps: eval_reward (score - kl_coef
 * kl), eval_score, eval_kl of one completion per held-out prompt sampled with the run's seed;
 * eval_loss is -eval_reward. The best models (highest eval_reward) are kept; checkpoints hold
 * both models and both optimizers (resumed bit for bit). Writes output_dir as the fine-tuning
 * loop does, and the value model to output_dir/value_model. Returns 0 or an exit code. */
int plm_ppo_train(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *prompts, const plm_sft_data *valid,
                  const plm_ppo_args *r, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best);

extern const char *const plm_ppo_metrics[3];

#endif
