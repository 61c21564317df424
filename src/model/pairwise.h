/* pairwise.h - the Bradley-Terry preference loss of a reward model (TRL's RewardTrainer),
 * on the scalar outputs of a regression head: rows 2i and 2i + 1 of a batch are pair i's
 * chosen and rejected sequences, r_c = r[2i], r_r = r[2i + 1]. Owns the loss, its
 * gradient and the pair statistics; the head (heads.h) reads the rewards, this module
 * turns them into a loss.
 *
 *   loss = (1/n) sum_i [ -log sigmoid(r_c - r_r) + c (r_c + r_r)^2 ]
 *
 * over n pairs; c is TRL's center_rewards_coefficient (Eisenstein et al. 2023: it keeps
 * the rewards centred on zero, which the first term alone leaves free; 0 turns it off).
 * With d = r_c - r_r and s = r_c + r_r,
 *   d loss / d r_c = (-sigmoid(-d) + 2 c s) / n,   d loss / d r_r = (+sigmoid(-d) + 2 c s) / n.
 * -log sigmoid(d) = log1p(exp(-d)) for d >= 0 and -d + log1p(exp(d)) below: no overflow
 * for any finite d. Sums run in double. A pair counts as correct when r_c > r_r strictly
 * (TRL's accuracy: a tie is wrong). */
#ifndef PLM_PAIRWISE_H
#define PLM_PAIRWISE_H

#include <stdbool.h>

/* Statistics of n pairs (sums: divide by pairs for the means TRL logs). */
typedef struct {
    double loss_sum;                 /* sum over pairs of the pair's loss (both terms) */
    double margin_sum;               /* sum of r_c - r_r */
    double chosen_sum, rejected_sum; /* sums of r_c and of r_r */
    double min_reward, max_reward;   /* over all 2n rewards (NaN when n == 0) */
    int pairs;                       /* n */
    int correct;                     /* pairs with r_c > r_r */
} plm_pairwise_stats;

/* The loss and statistics of the n pairs of r[2n]. */
void pairwise_forward(const float *r, int n, float center, plm_pairwise_stats *st);
/* dr[2n] = d(grad_scale * loss_sum)/dr: the gradient of the mean loss when grad_scale is
 * 1/n. dr may be r (each pair is read before it is written). */
void pairwise_backward(float *dr, const float *r, int n, float center, float grad_scale);

#endif
