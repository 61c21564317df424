/* unmask.h - non-autoregressive generation from a masked language model by iterative
 * unmasking: Mask-Predict (Ghazvininejad et al. 2019, "Mask-Predict: Parallel Decoding
 * of Conditional Masked Language Models") and its confidence-ordered variant. Owns the
 * schedule, the re-masking rule and the decoding loop over a batch of sequences; the
 * model (any backbone with an MLM head) is the caller's.
 *
 * A sequence's L mask tokens are the positions to generate; every other token is given
 * and never changes. With N iterations (t = 0 .. N-1):
 *   t = 0:   every one of the L positions is masked and predicted at once;
 *   t >= 1:  n_t = floor(L (N - t) / N) positions are masked again and predicted with
 *            all the others as context.
 * Each prediction stores its token and that token's probability p_j; a position keeps the
 * probability of the iteration that last predicted it (the paper's P). Which n_t are
 * masked again:
 *   mask-predict:  the n_t lowest p_j among all L generated positions (a token kept at
 *                  t-1 may be revised at t);
 *   confidence:    the n_t lowest p_j among the positions predicted at t-1 only: the
 *                  others are final once kept ("easy first", MaskGIT's order): the most
 *                  confident predictions are committed, a few more each iteration.
 * Ties go to the earlier position (the one masked again first). The schedule decreases
 * linearly to n_N = 0; an iteration with n_t = 0 runs nothing.
 *
 * Decoding per position is greedy (argmax) or sampled (plm_sample of generate.h:
 * temperature, top-k, top-p), each sequence drawing from its own stream of the seed, the
 * stream of its index among all the caller's inputs (first_index + its place in the
 * batch): its output does not depend on the rest of the batch, and two copies of one
 * input are two different samples. The confidence p_j is always the
 * model's own probability softmax(z)_j of the chosen token (temperature 1, unfiltered).
 * The mask token itself is never predicted (its logit is dropped from the softmax): the
 * output has no masks left. */
#ifndef PLM_UNMASK_H
#define PLM_UNMASK_H

#include <stdbool.h>
#include <stdint.h>

#include "generate.h"
#include "model/model.h"

typedef enum { PLM_UNMASK_MASK_PREDICT = 0, PLM_UNMASK_CONFIDENCE = 1 } plm_unmask_strategy;

typedef struct {
    int iterations; /* N >= 1 */
    plm_unmask_strategy strategy;
    plm_sampling sampling; /* do_sample false: greedy; else temperature, top_k, top_p, seed */
    int32_t mask_token_id; /* the positions to generate */
    int32_t pad_token_id;  /* fills the padding of shorter sequences in a batch (masked out); < 0: 0 */
    long first_index;      /* sampling: the index of the batch's first sequence among all inputs (default 0) */
} plm_unmask_opts;

/* N = 10, mask-predict, greedy; the token ids must be set by the caller (-1 here). */
void plm_unmask_opts_default(plm_unmask_opts *o);

/* "mask-predict" or "confidence"; -1 for anything else. */
int plm_unmask_strategy_parse(const char *name);
const char *plm_unmask_strategy_name(plm_unmask_strategy s);

/* n_t = floor(L (N - t) / N): positions masked at iteration t of N (L at t = 0, 0 at t = N). */
int plm_unmask_count(int L, int t, int N);

/* The re-masking rule: clears masked[0..L) and sets it for the n positions j with the
 * lowest prob[j] among those with candidate[j] (candidate NULL: all L), ties to the
 * lower j. Returns the number set: min(n, candidates). */
int plm_unmask_select(const float *prob, const uint8_t *candidate, int L, int n, uint8_t *masked);

/* One iteration's choice for one sequence: on entry masked[0..L) holds the positions
 * iteration t-1 masked (ignored at t = 0), on return iteration t's: all L at t = 0, else
 * the plm_unmask_count(L, t, N) lowest prob among all L (mask-predict) or among the ones
 * masked at t-1 (confidence). prev: room for L bytes. Returns how many are masked. */
int plm_unmask_next(plm_unmask_strategy s, int t, int N, int L, const float *prob, uint8_t *masked, uint8_t *prev);

/* Called after each iteration that predicted something, for one sequence: ids [n] with
 * the new predictions written in, masked [n] (1 at the positions this iteration's input
 * showed as the mask token, i.e. the ones just predicted), prob [n] (each generated
 * position's current probability, 0 at given positions). */
typedef void (*plm_unmask_step_fn)(int seq, int iteration, const int32_t *ids, const uint8_t *masked, const float *prob,
                                   int n, void *ctx);

/* Runs the unmasking on count sequences as one batch per iteration: ids[i] (n[i] tokens,
 * usually [CLS] ... [SEP]) is read and overwritten with the result; prob[i] (NULL, or
 * each entry NULL, to skip) receives each position's final probability (0 where given).
 * All sequences are right-padded to the longest, with an attention mask; every model
 * call runs every sequence that still has masked positions. The model runs backbone
 * spec.backbone of its LM head, which must not be causal. Returns 0, or -1 with the
 * error set (no LM head, a causal model, a sequence longer than the positions, an id
 * outside the vocabulary). */
int plm_unmask_batch(plm_model *m, int32_t *const *ids, const int *n, int count, const plm_unmask_opts *o,
                     float *const *prob, plm_unmask_step_fn on_step, void *ctx);

/* Pseudo-log-likelihood (Salazar et al. 2020) of positions pos[0..np) of one sequence:
 * sum_j log p(ids[pos_j] | ids with pos_j masked), the np copies run as one batch.
 * Returns NAN with the error set on failure (no LM head, n outside 1..max_position_embeddings,
 * a position outside the sequence, a scored id or the mask id outside the vocabulary). */
double plm_pseudo_log_likelihood(plm_model *m, const int32_t *ids, int n, const int *pos, int np, int32_t mask_id);

#endif
