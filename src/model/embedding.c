/* embedding.c - see embedding.h */
#include "embedding.h"

#include <omp.h>
#include "core/profile.h"

void embedding_forward(float *out, const int32_t *ids, const int32_t *type_ids, const int32_t *position_ids,
                       const float *wte, const float *wpe, const float *wtt, int B, int T, int C, int pos_offset) {
    double prof_t0 = plm_prof_begin();
#pragma omp parallel for schedule(static)
    for (int i = 0; i < B * T; i++) {
        int t = position_ids ? position_ids[i] : i % T;
        const float *e = wte + (size_t)ids[i] * C, *p = wpe + (size_t)(pos_offset + t) * C;
        float *o = out + (size_t)i * C;
        if (wtt) { /* no type_ids: every token is segment 0 */
            const float *s = wtt + (size_t)(type_ids ? type_ids[i] : 0) * C;
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c] + s[c];
        } else {
            for (int c = 0; c < C; c++) o[c] = e[c] + p[c];
        }
    }
    plm_prof_end("embedding", prof_t0);
}

void embedding_backward(float *dwte, float *dwpe, float *dwtt, const float *dout, const int32_t *ids,
                        const int32_t *type_ids, const int32_t *position_ids, int B, int T, int C, int pos_offset,
                        int padding_idx) {
    double prof_t0 = plm_prof_begin();
#pragma omp parallel
    {
        int th = omp_get_thread_num(), n = omp_get_num_threads();
        int lo = (int)((long)C * th / n), hi = (int)((long)C * (th + 1) / n);
        for (int i = 0; i < B * T; i++) {
            int t = position_ids ? position_ids[i] : i % T; /* tokens at one position add up */
            const float *d = dout + (size_t)i * C;
            float *e = dwte + (size_t)ids[i] * C, *p = dwpe + (size_t)(pos_offset + t) * C;
            if (ids[i] != padding_idx)
                for (int c = lo; c < hi; c++) e[c] += d[c];
            for (int c = lo; c < hi; c++) p[c] += d[c];
            if (dwtt) {
                float *s = dwtt + (size_t)(type_ids ? type_ids[i] : 0) * C;
                for (int c = lo; c < hi; c++) s[c] += d[c];
            }
        }
    }
    plm_prof_end("embedding", prof_t0);
}
