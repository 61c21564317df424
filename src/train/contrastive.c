/* contrastive.c - see contrastive.h. tests/test_contrastive_dump.c + tests/ref/
 * retrieval_ref.py check the loss and every parameter gradient against float64 PyTorch. */
#include "train/contrastive.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

void plm_contrastive_init(plm_contrastive *c, int cap, int C) {
    memset(c, 0, sizeof *c);
    c->cap = cap;
    c->C = C;
    c->u = plm_malloc((size_t)2 * cap * C * sizeof *c->u);
    c->e = plm_malloc((size_t)2 * cap * C * sizeof *c->e);
    c->de = plm_malloc((size_t)2 * cap * C * sizeof *c->de);
    c->norm = plm_malloc((size_t)2 * cap * sizeof *c->norm);
    c->p = plm_malloc((size_t)cap * cap * sizeof *c->p);
}

void plm_contrastive_free(plm_contrastive *c) {
    free(c->u);
    free(c->e);
    free(c->de);
    free(c->norm);
    free(c->p);
    memset(c, 0, sizeof *c);
}

static bool allowed(const int *group, int i, int j) { return i == j || !group || group[i] != group[j]; }

double plm_contrastive_forward(plm_contrastive *c, const float *h, const int *lengths, int n, int T, const int *group,
                               float tau, plm_pooling pooling) {
    if (n > c->cap) plm_die("plm_contrastive_forward: %d pairs, room for %d", n, c->cap);
    int C = c->C, R = 2 * n;
    c->n = n;
    plm_pool(h, lengths, R, T, C, pooling, c->u);
    for (int r = 0; r < R; r++) {
        const float *u = c->u + (size_t)r * C;
        double s = 0;
        for (int k = 0; k < C; k++) s += (double)u[k] * u[k];
        c->norm[r] = sqrt(s);
        double inv = s > 0 ? 1.0 / c->norm[r] : 0.0;
        for (int k = 0; k < C; k++) c->e[(size_t)r * C + k] = (float)(u[k] * inv);
    }
    double loss = 0;
    int correct = 0;
    for (int i = 0; i < n; i++) {
        const float *q = c->e + (size_t)i * C;
        double *p = c->p + (size_t)i * n, mx = -INFINITY;
        for (int j = 0; j < n; j++) {
            if (!allowed(group, i, j)) {
                p[j] = -INFINITY;
                continue;
            }
            const float *d = c->e + (size_t)(n + j) * C;
            double s = 0;
            for (int k = 0; k < C; k++) s += (double)q[k] * d[k];
            p[j] = s / tau;
            mx = fmax(mx, p[j]);
        }
        bool best = true;
        for (int j = 0; j < n; j++) best &= j == i || !(p[j] >= p[i]);
        correct += best;
        double z = 0, own = p[i];
        for (int j = 0; j < n; j++) z += isinf(p[j]) ? 0.0 : exp(p[j] - mx);
        for (int j = 0; j < n; j++) p[j] = isinf(p[j]) ? 0.0 : exp(p[j] - mx) / z;
        loss += mx + log(z) - own;
    }
    c->loss = loss / n;
    c->correct = correct;
    return c->loss;
}

void plm_contrastive_backward(plm_contrastive *c, const int *lengths, int T, float tau, plm_pooling pooling,
                              float *dh) {
    int n = c->n, C = c->C, R = 2 * n;
    /* de_q and de_p from dS = (P - I) / n, scaled by 1 / tau */
    for (int r = 0; r < R; r++) {
        float *de = c->de + (size_t)r * C;
        for (int k = 0; k < C; k++) de[k] = 0.0f;
        for (int o = 0; o < n; o++) {
            /* query row r = i pairs with passage o; passage row r = n + j pairs with query o */
            double ds = r < n ? c->p[(size_t)r * n + o] - (r == o) : c->p[(size_t)o * n + (r - n)] - (o == r - n);
            if (ds == 0.0) continue;
            const float *other = c->e + (size_t)(r < n ? n + o : o) * C;
            float w = (float)(ds / ((double)n * tau));
            for (int k = 0; k < C; k++) de[k] += w * other[k];
        }
        /* through the normalisation: du = (de - e (e . de)) / |u| */
        const float *e = c->e + (size_t)r * C;
        double dot = 0;
        for (int k = 0; k < C; k++) dot += (double)e[k] * de[k];
        double inv = c->norm[r] > 0 ? 1.0 / c->norm[r] : 0.0;
        for (int k = 0; k < C; k++) de[k] = (float)((de[k] - e[k] * dot) * inv);
        /* through the pooling */
        int len = lengths[r];
        if (len <= 0) continue;
        float *row = dh + (size_t)r * T * C;
        if (pooling == PLM_POOL_MEAN) {
            float s = 1.0f / (float)len;
            for (int t = 0; t < len; t++)
                for (int k = 0; k < C; k++) row[(size_t)t * C + k] += de[k] * s;
        } else {
            float *dst = row + (size_t)(pooling == PLM_POOL_CLS ? 0 : len - 1) * C;
            for (int k = 0; k < C; k++) dst[k] += de[k];
        }
    }
}
