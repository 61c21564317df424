/* span_corruption.c - see span_corruption.h */
#include "span_corruption.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static void lengths_of(int tokens_length, double noise_density, double mean_span, int *in_len, int *out_len) {
    int num_noise = (int)rint(tokens_length * noise_density);
    int num_nonnoise = tokens_length - num_noise;
    int num_spans = (int)rint(num_noise / mean_span);
    /* inputs: non-noise tokens, a sentinel per span and EOS; targets: noise, sentinels, EOS */
    *in_len = num_nonnoise + num_spans + 1;
    *out_len = num_noise + num_spans + 1;
}

void plm_t5_lengths(int inputs_length, double noise_density, double mean_noise_span_length, int *tokens_length,
                    int *targets_length) {
    int n = inputs_length, in, out;
    for (;;) {
        lengths_of(n + 1, noise_density, mean_noise_span_length, &in, &out);
        if (in > inputs_length) break;
        n++;
    }
    lengths_of(n, noise_density, mean_noise_span_length, &in, &out);
    /* HF's hack: targets no longer than inputs at noise_density 0.5 */
    if (noise_density == 0.5 && out > in) {
        n--;
        out--;
    }
    *tokens_length = n;
    *targets_length = out;
}

/* Partitions num_items into num_segments non-empty segments at random: the segment
 * starts are a random (num_segments - 1)-subset of positions 1..num_items-1 (HF
 * shuffles a boolean vector; here Fisher-Yates over the same vector). */
static void random_segmentation(int num_items, int num_segments, int *seg_len, uint8_t *scratch, plm_rng *r) {
    int n = num_items - 1;
    for (int i = 0; i < n; i++) scratch[i] = i < num_segments - 1;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)plm_rng_below(r, (uint32_t)(i + 1));
        uint8_t t = scratch[i];
        scratch[i] = scratch[j];
        scratch[j] = t;
    }
    int s = 0;
    seg_len[0] = 1;
    for (int i = 0; i < n; i++) {
        if (scratch[i]) seg_len[++s] = 0;
        seg_len[s]++;
    }
}

int plm_t5_noise_mask(uint8_t *noise, int length, double noise_density, double mean_noise_span_length, plm_rng *r) {
    int num_noise = (int)rint(length * noise_density);
    num_noise = PLM_MIN(PLM_MAX(num_noise, 1), length - 1); /* no degenerate all/none */
    int num_nonnoise = length - num_noise;
    int num_spans = (int)rint(PLM_MIN(num_noise, num_nonnoise) / mean_noise_span_length);
    num_spans = PLM_MAX(num_spans, 1);
    /* scratch on the stack for short windows, else the heap */
    int stack_len[2 * 512];
    uint8_t stack_scr[1024];
    int *lens = num_spans <= 512 ? stack_len : plm_malloc(2 * (size_t)num_spans * sizeof(int));
    uint8_t *scr = length <= 1024 ? stack_scr : plm_malloc((size_t)length);
    random_segmentation(num_noise, num_spans, lens + num_spans, scr, r);
    random_segmentation(num_nonnoise, num_spans, lens, scr, r);
    /* non-noise span k, then noise span k */
    int t = 0;
    for (int k = 0; k < num_spans; k++) {
        for (int i = 0; i < lens[k]; i++) noise[t++] = 0;
        for (int i = 0; i < lens[num_spans + k]; i++) noise[t++] = 1;
    }
    if (lens != stack_len) free(lens);
    if (scr != stack_scr) free(scr);
    return num_spans;
}

void plm_t5_corrupt(const int32_t *tokens, const uint8_t *noise, int length, int32_t sentinel_top, int32_t eos,
                    int32_t *inputs, int *n_inputs, int32_t *targets, int *n_targets) {
    int ni = 0, nt = 0, in_span = 0, out_span = 0;
    for (int t = 0; t < length; t++) {
        bool start = t == 0 || noise[t] != noise[t - 1];
        if (noise[t]) {
            /* inputs: one sentinel for the whole noise span; targets: the tokens */
            if (start) inputs[ni++] = sentinel_top - in_span++;
            targets[nt++] = tokens[t];
        } else {
            /* targets: one sentinel for the whole non-noise span; inputs: the tokens */
            if (start) targets[nt++] = sentinel_top - out_span++;
            inputs[ni++] = tokens[t];
        }
    }
    inputs[ni++] = eos;
    targets[nt++] = eos;
    *n_inputs = ni;
    *n_targets = nt;
}

void plm_t5_shift_right(const int32_t *targets, int n, int32_t decoder_start_token_id, int32_t *decoder_input_ids) {
    decoder_input_ids[0] = decoder_start_token_id;
    memmove(decoder_input_ids + 1, targets, (size_t)(n - 1) * sizeof(int32_t));
}
