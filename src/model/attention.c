/* attention.c - see attention.h */
#include "attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "fastmath.h"
#include "gemm.h"

/* Each thread takes its T x T tiles from its own grow-only scratch inside the parallel
 * region, so they always match the team that runs (omp_set_num_threads may have been
 * raised since the caller sized its buffers), and a warm step allocates nothing. */
/* Dropout on one T x T probability tile: dst = src * mask / (1 - p). The element index
 * is global over [B, NH, T, T] so the mask is the same in forward and backward. */
static void dropout_tile(float *dst, const float *src, int T, float p, uint64_t key, size_t base) {
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < (size_t)T * T; i++) dst[i] = plm_hash_uniform(key, base + i) >= p ? src[i] * scale : 0.0f;
}

void attention_forward(float *out, float *att, const float *qkv, const uint8_t *attn_mask, int B, int T, int C, int NH,
                       bool causal, float dropout_p, uint64_t dropout_key) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel
    {
        float *tile = NULL; /* this thread's dropout tile, T x T */
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
            float *p = att + (size_t)bh * T * T;
            const uint8_t *m = attn_mask ? attn_mask + (size_t)b * T : NULL;
            plm_sgemm(false, true, T, T, hs, scale, q, C3, k, C3, 0.0f, p, T);
            for (int i = 0; i < T; i++) {
                float *row = p + (size_t)i * T;
                int jmax = causal ? i + 1 : T; /* keys j < jmax are visible, minus padding */
                float mx = -INFINITY;
                for (int j = 0; j < jmax; j++)
                    if ((!m || m[j]) && row[j] > mx) mx = row[j];
                if (mx == -INFINITY) { /* no visible key: the row attends to nothing */
                    memset(row, 0, (size_t)T * sizeof(float));
                    continue;
                }
                float sum = 0.0f;
                if (m) {
                    for (int j = 0; j < jmax; j++) {
                        float e = m[j] ? plm_expf(row[j] - mx) : 0.0f;
                        row[j] = e;
                        sum += e;
                    }
                } else {
#pragma omp simd reduction(+ : sum)
                    for (int j = 0; j < jmax; j++) sum += row[j] = plm_expf(row[j] - mx);
                }
                float inv = 1.0f / sum;
                for (int j = 0; j < jmax; j++) row[j] *= inv;
                for (int j = jmax; j < T; j++) row[j] = 0.0f;
            }
            const float *pd = p;
            if (dropout_p > 0.0f) {
                if (!tile) tile = plm_thread_scratch(2, (size_t)T * T);
                dropout_tile(tile, p, T, dropout_p, dropout_key, (size_t)bh * T * T);
                pd = tile;
            }
            plm_sgemm(false, false, T, hs, T, 1.0f, pd, T, v, C3, 0.0f, out + (size_t)b * T * C + h * hs, C);
        }
    }
}

/* With Pd = dropout(P), O = Pd V:
 *   dV = Pd^T dO,  dPd = dO V^T,  dP = dropout(dPd),
 *   dS = P * (dP - rowsum(dP * P)),  dQ = dS K / sqrt(hs),  dK = dS^T Q / sqrt(hs). */
void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C, int NH,
                        float dropout_p, uint64_t dropout_key) {
    int hs = C / NH, C3 = 3 * C;
    float scale = 1.0f / sqrtf((float)hs);
#pragma omp parallel
    {
        float *dp = NULL, *tile = NULL; /* this thread's dP / dS tile and dropout tile */
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = qkv + (size_t)b * T * C3 + h * hs, *k = q + C, *v = q + 2 * C;
            float *dq = dqkv + (size_t)b * T * C3 + h * hs, *dk = dq + C, *dv = dq + 2 * C;
            const float *p = att + (size_t)bh * T * T, *dO = dout + (size_t)b * T * C + h * hs;
            if (!dp) {
                dp = plm_thread_scratch(3, 2 * (size_t)T * T);
                tile = dp + (size_t)T * T;
            }
            const float *pd = p;
            if (dropout_p > 0.0f) {
                dropout_tile(tile, p, T, dropout_p, dropout_key, (size_t)bh * T * T);
                pd = tile;
            }
            plm_sgemm(true, false, T, hs, T, 1.0f, pd, T, dO, C, 0.0f, dv, C3);
            plm_sgemm(false, true, T, T, hs, 1.0f, dO, C, v, C3, 0.0f, dp, T);
            if (dropout_p > 0.0f) dropout_tile(dp, dp, T, dropout_p, dropout_key, (size_t)bh * T * T);
            for (int i = 0; i < T; i++) {
                float *dr = dp + (size_t)i * T;
                const float *pr = p + (size_t)i * T;
                float dot = 0.0f;
                for (int j = 0; j < T; j++) dot += dr[j] * pr[j];
                for (int j = 0; j < T; j++) dr[j] = pr[j] * (dr[j] - dot);
            }
            plm_sgemm(false, false, T, hs, T, scale, dp, T, k, C3, 0.0f, dq, C3);
            plm_sgemm(true, false, T, hs, T, scale, dp, T, q, C3, 0.0f, dk, C3);
        }
    }
}
