/* relpos.h - T5's bucketed relative position bias (HF T5Attention.compute_bias). A table
 * [num_buckets, NH] (relative_attention_bias.weight, owned by block 0 and reused by
 * every layer of its stack) gives each head a scalar per bucket of the relative position
 * key - query, added to the attention scores:
 *     bias[h, i, j] = table[bucket(j - (i + q_offset)), h]
 * Buckets: bidirectional (encoder) splits the buckets between negative and positive
 * offsets; unidirectional (decoder) keeps only past keys. Half of each side's buckets
 * are exact offsets, the other half logarithmic up to max_distance, beyond which all
 * share the last bucket. The log is evaluated in float32 as HF does (its bucket edges). */
#ifndef PLM_RELPOS_H
#define PLM_RELPOS_H

#include <stdbool.h>

int relpos_bucket(int relative_position, bool bidirectional, int num_buckets, int max_distance);

/* bias [NH, Tq, Tk] from the table; query i sits at position q_offset + i (cached decoding). */
void relpos_bias_forward(float *bias, const float *table, int NH, int Tq, int Tk, int q_offset, bool bidirectional,
                         int num_buckets, int max_distance);
/* dtable += the scatter of dbias [NH, Tq, Tk] into the buckets (a fixed summation order). */
void relpos_bias_backward(float *dtable, const float *dbias, int NH, int Tq, int Tk, int q_offset, bool bidirectional,
                          int num_buckets, int max_distance);

#endif
