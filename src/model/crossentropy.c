/* crossentropy.c - see crossentropy.h */
#include "crossentropy.h"

#include "fastmath.h"
#include "gemm.h"

#include <math.h>
#include <omp.h>
#include <string.h>
#include "core/profile.h"

/* Rows are summed in CE_CHUNKS fixed blocks, whatever the number of threads: each
 * block's partial sums land in its own slot and the slots are added in block order,
 * so the result has the same bits for any thread count (and no thread's share can
 * be lost, as it was with one slot per thread and more threads than slots). */
#define CE_CHUNKS 256

/* max(z[0..V-1]) with the semantics of the scalar loop m = z[0]; m = z[v] > m ? z[v] : m
 * (a NaN in z[0] gives NaN, later NaNs are skipped; the maximum of numbers does not
 * depend on the order), in CE_LANES vector lanes that each start at z[0]. */
#define CE_LANES 16
static float row_max(const float *z, int V) {
    float lane[CE_LANES];
    for (int l = 0; l < CE_LANES; l++) lane[l] = z[0];
    int v = 0;
    for (; v + CE_LANES <= V; v += CE_LANES) {
#pragma omp simd
        for (int l = 0; l < CE_LANES; l++) lane[l] = z[v + l] > lane[l] ? z[v + l] : lane[l];
    }
    float m = z[0];
    for (int l = 0; l < CE_LANES; l++) m = lane[l] > m ? lane[l] : m;
    for (; v < V; v++) m = z[v] > m ? z[v] : m;
    return m;
}

/* The first v with z[v] == x, or V: blocks of 64 tested in vector lanes, then the block
 * with a hit scanned in order. */
static int first_equal(const float *z, int V, float x) {
    for (int v0 = 0; v0 < V; v0 += 64) {
        int hi = v0 + 64 < V ? v0 + 64 : V, hit = 0;
#pragma omp simd reduction(| : hit)
        for (int v = v0; v < hi; v++) hit |= z[v] == x;
        if (hit)
            for (int v = v0; v < hi; v++)
                if (z[v] == x) return v;
    }
    return V;
}

plm_ce_result crossentropy_forward_backward(float *logits, const int32_t *targets, int M, int V, bool backward,
                                            float grad_scale) {
    return crossentropy_forward_backward_ex(logits, targets, M, V, backward, grad_scale, NULL, NULL, NULL);
}

plm_ce_result crossentropy_forward_backward_ex(float *logits, const int32_t *targets, int M, int V, bool backward,
                                               float grad_scale, const float *row_weight, double *row_loss,
                                               uint16_t *dlogits16) {
    double prof_t0 = plm_prof_begin();
    double part_loss[CE_CHUNKS] = {0};
    int part_count[CE_CHUNKS] = {0}, part_correct[CE_CHUNKS] = {0};
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < CE_CHUNKS; ch++) {
        int lo = (int)((long)M * ch / CE_CHUNKS), hi = (int)((long)M * (ch + 1) / CE_CHUNKS);
        double ls = 0.0;
        int cnt = 0, cor = 0;
        for (int i = lo; i < hi; i++) {
            float *z = logits + (size_t)i * V;
            int y = targets[i];
            uint16_t *z16 = backward && dlogits16 ? dlogits16 + (size_t)i * V : NULL;
            if (y == PLM_IGNORE_INDEX || y < 0 || y >= V) {
                if (backward) memset(z, 0, (size_t)V * sizeof(float));
                if (z16) memset(z16, 0, (size_t)V * sizeof(uint16_t)); /* bf16 +0 is 0x0000 */
                if (row_loss) row_loss[i] = 0.0;
                continue;
            }
            float mx = row_max(z, V);
            /* first index of the maximum; bounded, because with NaN logits mx may be NaN
             * (equal to nothing): the row then has no argmax and counts as wrong */
            int arg = first_equal(z, V, mx);
            /* NaN or inf logits need no special path: e^(NaN) is NaN and inf - inf is NaN,
             * so the sum, the loss and the gradients come out NaN (the caller sees a
             * non-finite loss); a target logit of -inf gives a loss of +inf. */
            float zy = z[y], sum = 0.0f;
            if (backward) { /* keep e^(z - max) in place: the gradient is a rescale of it */
#pragma omp simd reduction(+ : sum)
                for (int v = 0; v < V; v++) sum += z[v] = plm_expf(z[v] - mx);
            } else {
#pragma omp simd reduction(+ : sum)
                for (int v = 0; v < V; v++) sum += plm_expf(z[v] - mx);
            }
            double li = (double)(mx + logf(sum) - zy);
            ls += li;
            if (row_loss) row_loss[i] = li;
            cnt++;
            cor += arg == y;
            if (backward) {
                float gs = row_weight ? grad_scale * row_weight[i] : grad_scale;
                float inv = gs / sum;
                if (z16) {
#pragma omp simd
                    for (int v = 0; v < V; v++) {
                        float g = z[v] * inv;
                        z[v] = g;
                        z16[v] = plm_to_bf16(g);
                    }
                    z[y] -= gs;
                    z16[y] = plm_to_bf16(z[y]);
                } else {
#pragma omp simd
                    for (int v = 0; v < V; v++) z[v] *= inv;
                    z[y] -= gs;
                }
            }
        }
        part_loss[ch] = ls;
        part_count[ch] = cnt;
        part_correct[ch] = cor;
    }
    plm_ce_result r = {0.0, 0, 0};
    for (int ch = 0; ch < CE_CHUNKS; ch++) {
        r.loss_sum += part_loss[ch];
        r.count += part_count[ch];
        r.correct += part_correct[ch];
    }
    plm_prof_end("loss (cross-entropy)", prof_t0);
    return r;
}
