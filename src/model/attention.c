/* attention.c - see attention.h */
#include "attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "fastmath.h"
#include "gemm.h"
#include "core/profile.h"

/* Each thread takes its T x T tiles from its own grow-only scratch inside the parallel
 * region, so they always match the team that runs (omp_set_num_threads may have been
 * raised since the caller sized its buffers), and a warm step allocates nothing.
 *
 * Dropout on one T x T probability tile: dst = src * mask / (1 - p). The element index
 * is global over [B, NH, Tq, Tk] so the mask is the same in forward and backward. */
static void dropout_tile(float *dst, const float *src, size_t n, float p, uint64_t key, size_t base) {
    float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++) dst[i] = plm_hash_uniform(key, base + i) >= p ? src[i] * scale : 0.0f;
}

void attention_forward_ex(const attn_shape *a, float *out, float *att) {
    double prof_t0 = plm_prof_begin();
    int B = a->B, Tq = a->Tq, Tk = a->Tk, NH = a->NH, hs = a->hs, ldo = NH * hs;
    size_t tile_n = (size_t)Tq * Tk;
#pragma omp parallel
    {
        float *tile = NULL; /* this thread's dropout tile, Tq x Tk */
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = a->q + (size_t)b * Tq * a->ldq + h * hs;
            const float *k = a->k + (size_t)b * Tk * a->ldk + h * hs, *v = a->v + (size_t)b * Tk * a->ldv + h * hs;
            float *p = att + (size_t)bh * tile_n;
            const uint8_t *m = a->key_mask ? a->key_mask + (size_t)b * Tk : NULL;
            plm_sgemm(false, true, Tq, Tk, hs, a->scale, q, a->ldq, k, a->ldk, 0.0f, p, Tk);
            for (int i = 0; i < Tq; i++) {
                float *row = p + (size_t)i * Tk;
                int jmax = a->causal ? PLM_MIN(i + 1, Tk) : Tk; /* keys j < jmax are visible, minus padding */
                if (a->bias) {
                    const float *br = a->bias + ((size_t)h * Tq + i) * Tk;
                    for (int j = 0; j < jmax; j++) row[j] += br[j];
                }
                float mx = -INFINITY;
                for (int j = 0; j < jmax; j++)
                    if ((!m || m[j]) && row[j] > mx) mx = row[j];
                if (mx == -INFINITY) { /* no visible key: the row attends to nothing */
                    memset(row, 0, (size_t)Tk * sizeof(float));
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
                for (int j = jmax; j < Tk; j++) row[j] = 0.0f;
            }
            const float *pd = p;
            if (a->dropout_p > 0.0f) {
                if (!tile) tile = plm_thread_scratch(2, tile_n);
                dropout_tile(tile, p, tile_n, a->dropout_p, a->dropout_key, (size_t)bh * tile_n);
                pd = tile;
            }
            plm_sgemm(false, false, Tq, hs, Tk, 1.0f, pd, Tk, v, a->ldv, 0.0f, out + (size_t)b * Tq * ldo + h * hs,
                      ldo);
        }
    }
    plm_prof_end("attention", prof_t0);
}

/* With Pd = dropout(P), O = Pd V:
 *   dV = Pd^T dO,  dPd = dO V^T,  dP = dropout(dPd),
 *   dS = P * (dP - rowsum(dP * P)),  dQ = scale dS K,  dK = scale dS^T Q,
 * and the additive bias gets dS itself (summed over the batch by the caller). */
void attention_backward_ex(const attn_shape *a, const float *dout, const float *att, float *dq, float *dk, float *dv,
                           float *dscores) {
    double prof_t0 = plm_prof_begin();
    int B = a->B, Tq = a->Tq, Tk = a->Tk, NH = a->NH, hs = a->hs, ldo = NH * hs;
    size_t tile_n = (size_t)Tq * Tk;
#pragma omp parallel
    {
        float *dp = NULL, *tile = NULL; /* this thread's dP / dS tile and dropout tile */
#pragma omp for schedule(static)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = a->q + (size_t)b * Tq * a->ldq + h * hs;
            const float *k = a->k + (size_t)b * Tk * a->ldk + h * hs, *v = a->v + (size_t)b * Tk * a->ldv + h * hs;
            float *dqh = dq + (size_t)b * Tq * a->ldq + h * hs;
            float *dkh = dk + (size_t)b * Tk * a->ldk + h * hs, *dvh = dv + (size_t)b * Tk * a->ldv + h * hs;
            const float *p = att + (size_t)bh * tile_n, *dO = dout + (size_t)b * Tq * ldo + h * hs;
            if (!dp) {
                dp = plm_thread_scratch(3, 2 * tile_n);
                tile = dp + tile_n;
            }
            float *ds = dscores ? dscores + (size_t)bh * tile_n : dp;
            const float *pd = p;
            if (a->dropout_p > 0.0f) {
                dropout_tile(tile, p, tile_n, a->dropout_p, a->dropout_key, (size_t)bh * tile_n);
                pd = tile;
            }
            plm_sgemm(true, false, Tk, hs, Tq, 1.0f, pd, Tk, dO, ldo, 0.0f, dvh, a->ldv);
            plm_sgemm(false, true, Tq, Tk, hs, 1.0f, dO, ldo, v, a->ldv, 0.0f, ds, Tk);
            if (a->dropout_p > 0.0f) dropout_tile(ds, ds, tile_n, a->dropout_p, a->dropout_key, (size_t)bh * tile_n);
            for (int i = 0; i < Tq; i++) {
                float *dr = ds + (size_t)i * Tk;
                const float *pr = p + (size_t)i * Tk;
                float dot = 0.0f;
                for (int j = 0; j < Tk; j++) dot += dr[j] * pr[j];
                for (int j = 0; j < Tk; j++) dr[j] = pr[j] * (dr[j] - dot);
            }
            plm_sgemm(false, false, Tq, hs, Tk, a->scale, ds, Tk, k, a->ldk, 0.0f, dqh, a->ldq);
            plm_sgemm(true, false, Tk, hs, Tq, a->scale, ds, Tk, q, a->ldq, 0.0f, dkh, a->ldk);
        }
    }
    plm_prof_end("attention", prof_t0);
}

static attn_shape fused_shape(const float *qkv, const uint8_t *attn_mask, int B, int T, int C, int NH, bool causal,
                              float dropout_p, uint64_t dropout_key) {
    int hs = C / NH;
    return (attn_shape){.B = B,
                        .Tq = T,
                        .Tk = T,
                        .NH = NH,
                        .hs = hs,
                        .q = qkv,
                        .k = qkv + C,
                        .v = qkv + 2 * C,
                        .ldq = 3 * C,
                        .ldk = 3 * C,
                        .ldv = 3 * C,
                        .key_mask = attn_mask,
                        .causal = causal,
                        .scale = 1.0f / sqrtf((float)hs),
                        .dropout_p = dropout_p,
                        .dropout_key = dropout_key};
}

void attention_forward(float *out, float *att, const float *qkv, const uint8_t *attn_mask, int B, int T, int C, int NH,
                       bool causal, float dropout_p, uint64_t dropout_key) {
    attn_shape a = fused_shape(qkv, attn_mask, B, T, C, NH, causal, dropout_p, dropout_key);
    attention_forward_ex(&a, out, att);
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C, int NH,
                        float dropout_p, uint64_t dropout_key) {
    attn_shape a = fused_shape(qkv, NULL, B, T, C, NH, false, dropout_p, dropout_key);
    attention_backward_ex(&a, dout, att, dqkv, dqkv + C, dqkv + 2 * C, NULL);
}
