/* relpos.c - see relpos.h */
#include "relpos.h"

#include <math.h>
#include <stddef.h>

int relpos_bucket(int relative_position, bool bidirectional, int num_buckets, int max_distance) {
    int bucket = 0, n = relative_position;
    if (bidirectional) {
        num_buckets /= 2;
        if (n > 0) bucket += num_buckets;
        n = n < 0 ? -n : n;
    } else {
        n = n < 0 ? -n : 0; /* future keys all fall in bucket 0 (masked anyway) */
    }
    int max_exact = num_buckets / 2;
    if (n < max_exact) return bucket + n;
    /* HF: max_exact + (log(n / max_exact) / log(max_distance / max_exact) * (num_buckets - max_exact)).long(),
     * the tensor ops in float32 (the Python scalar log rounded to float) */
    float lg = logf((float)n / (float)max_exact) / (float)log((double)max_distance / (double)max_exact);
    int large = max_exact + (int)(lg * (float)(num_buckets - max_exact));
    if (large > num_buckets - 1) large = num_buckets - 1;
    return bucket + large;
}

void relpos_bias_forward(float *bias, const float *table, int NH, int Tq, int Tk, int q_offset, bool bidirectional,
                         int num_buckets, int max_distance) {
    for (int i = 0; i < Tq; i++)
        for (int j = 0; j < Tk; j++) {
            int b = relpos_bucket(j - (i + q_offset), bidirectional, num_buckets, max_distance);
            for (int h = 0; h < NH; h++) bias[((size_t)h * Tq + i) * Tk + j] = table[(size_t)b * NH + h];
        }
}

void relpos_bias_backward(float *dtable, const float *dbias, int NH, int Tq, int Tk, int q_offset, bool bidirectional,
                          int num_buckets, int max_distance) {
    for (int i = 0; i < Tq; i++)
        for (int j = 0; j < Tk; j++) {
            int b = relpos_bucket(j - (i + q_offset), bidirectional, num_buckets, max_distance);
            for (int h = 0; h < NH; h++) dtable[(size_t)b * NH + h] += dbias[((size_t)h * Tq + i) * Tk + j];
        }
}
