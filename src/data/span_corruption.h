/* span_corruption.h - T5's span-corruption objective, as HF's run_t5_mlm_flax
 * (FlaxDataCollatorForT5MLM). A window of expanded_inputs_length tokens is split into
 * alternating non-noise and noise spans (starting with non-noise, ending with noise):
 * num_noise = round(length * noise_density), num_spans = round(num_noise /
 * mean_noise_span_length), each side partitioned into num_spans non-empty segments at
 * random. Sentinels count down from the top of the tokenizer: span k (0-based) is
 * <extra_id_k> = sentinel_top - k (sentinel_top = len(tokenizer) - 1).
 *     inputs  = non-noise spans, each followed by its sentinel, then EOS
 *     targets = each sentinel followed by its noise span, then EOS
 * so inputs and targets interleave back to the window. The decoder reads the targets
 * shifted right behind decoder_start_token_id. compute_input_and_target_lengths picks
 * the expanded length whose inputs are exactly inputs_length tokens. Python's round is
 * half-to-even; so is rint here. */
#ifndef PLM_SPAN_CORRUPTION_H
#define PLM_SPAN_CORRUPTION_H

#include <stdint.h>

#include "core/rng.h"

/* HF's compute_input_and_target_lengths: the window length (tokens_length) whose
 * corrupted inputs have inputs_length tokens, and the targets' length. */
void plm_t5_lengths(int inputs_length, double noise_density, double mean_noise_span_length, int *tokens_length,
                    int *targets_length);

/* HF's random_spans_noise_mask: noise[0..length) = 1 on noise tokens. Returns the number
 * of noise spans. */
int plm_t5_noise_mask(uint8_t *noise, int length, double noise_density, double mean_noise_span_length, plm_rng *r);

/* Builds inputs and targets (each ending in eos) from tokens and the noise mask; their
 * lengths go to *n_inputs and *n_targets. */
void plm_t5_corrupt(const int32_t *tokens, const uint8_t *noise, int length, int32_t sentinel_top, int32_t eos,
                    int32_t *inputs, int *n_inputs, int32_t *targets, int *n_targets);

/* decoder_input_ids = [start] + targets[0..n-1) (HF's shift_tokens_right; labels never
 * hold -100 here, so no pad replacement is needed). */
void plm_t5_shift_right(const int32_t *targets, int n, int32_t decoder_start_token_id, int32_t *decoder_input_ids);

#endif
