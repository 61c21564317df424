/* crossentropy.c - see crossentropy.h */
#include "crossentropy.h"

#include "fastmath.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define MAX_THREADS 256

plm_ce_result crossentropy_forward_backward(float *logits, const int32_t *targets, int M, int V, bool backward,
                                            float grad_scale) {
    /* Each thread sums a fixed contiguous block of rows; blocks are added in thread
     * order afterwards, so the result is bit-reproducible for a given thread count. */
    double part_loss[MAX_THREADS] = {0};
    int part_count[MAX_THREADS] = {0}, part_correct[MAX_THREADS] = {0};
    int nthreads = 1;
#pragma omp parallel
    {
        int t = omp_get_thread_num(), n = omp_get_num_threads();
        if (t == 0) nthreads = n;
        int lo = (int)((long)M * t / n), hi = (int)((long)M * (t + 1) / n);
        double ls = 0.0;
        int cnt = 0, cor = 0;
        for (int i = lo; i < hi; i++) {
            float *z = logits + (size_t)i * V;
            int y = targets[i];
            if (y == PLM_IGNORE_INDEX || y < 0 || y >= V) {
                if (backward) memset(z, 0, (size_t)V * sizeof(float));
                continue;
            }
            float mx = z[0];
            for (int v = 1; v < V; v++) mx = z[v] > mx ? z[v] : mx;
            int arg = 0; /* first index of the maximum */
            while (z[arg] != mx) arg++;
            float zy = z[y], sum = 0.0f;
            if (backward) { /* keep e^(z - max) in place: the gradient is a rescale of it */
#pragma omp simd reduction(+ : sum)
                for (int v = 0; v < V; v++) sum += z[v] = plm_expf(z[v] - mx);
            } else {
#pragma omp simd reduction(+ : sum)
                for (int v = 0; v < V; v++) sum += plm_expf(z[v] - mx);
            }
            ls += (double)(mx + logf(sum) - zy);
            cnt++;
            cor += arg == y;
            if (backward) {
                float inv = grad_scale / sum;
#pragma omp simd
                for (int v = 0; v < V; v++) z[v] *= inv;
                z[y] -= grad_scale;
            }
        }
        if (t < MAX_THREADS) {
            part_loss[t] = ls;
            part_count[t] = cnt;
            part_correct[t] = cor;
        }
    }
    plm_ce_result r = {0.0, 0, 0};
    for (int t = 0; t < nthreads && t < MAX_THREADS; t++) {
        r.loss_sum += part_loss[t];
        r.count += part_count[t];
        r.correct += part_correct[t];
    }
    return r;
}
