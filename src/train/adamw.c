/* adamw.c - see adamw.h */
#include "adamw.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/profile.h"
#include "model/gemm.h"

plm_adamw_hparams plm_adamw_defaults(float learning_rate) {
    return (plm_adamw_hparams){
        .learning_rate = learning_rate, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
}

void plm_adamw_init(plm_adamw *o, size_t n) { plm_adamw_init_slice(o, 0, n); }

void plm_adamw_init_slice(plm_adamw *o, size_t offset, size_t n) {
    o->n = n;
    o->offset = offset;
    o->step = 0;
    o->lr_scale = NULL;
    o->m = plm_aligned_alloc(n * sizeof(float));
    o->v = plm_aligned_alloc(n * sizeof(float));
    memset(o->m, 0, n * sizeof(float));
    memset(o->v, 0, n * sizeof(float));
}

void plm_adamw_free(plm_adamw *o) {
    free(o->m);
    free(o->v);
    free(o->lr_scale);
    memset(o, 0, sizeof *o);
}

/* One element: m, v and the parameter updated in place; returns the new parameter.
 * p <- p (1 - lr wd) - lr / bc1 * m / (sqrt(v / bc2) + eps). */
static inline float adamw_elem(float *p, float *m, float *v, float g, float b1, float b2, float decay, float step_size,
                               float inv_sqrt_bc2, float eps) {
    float mk = b1 * *m + (1.0f - b1) * g;
    float vk = b2 * *v + (1.0f - b2) * g * g;
    *m = mk;
    *v = vk;
    return *p = *p * decay - step_size * mk / (sqrtf(vk) * inv_sqrt_bc2 + eps);
}

void plm_adamw_step(plm_adamw *o, plm_model *model, const plm_adamw_hparams *h, float lr) {
    plm_prof_set_phase(PLM_PHASE_OPT);
    double prof_t0 = plm_prof_begin();
    o->step++;
    float b1 = h->beta1, b2 = h->beta2, eps = h->eps;
    float bc1 = 1.0f - powf(b1, (float)o->step), bc2 = 1.0f - powf(b2, (float)o->step);
    float inv_sqrt_bc2 = 1.0f / sqrtf(bc2);
    /* Under bf16 the same pass writes the weights' bf16 mirror (model.h params16), so the
     * GEMMs read it instead of rounding every weight again in forward and in backward.
     * Only a whole-model update refreshes it: a ZeRO-1 slice leaves the rest to the
     * all-gather, after which the mirror is stale and the GEMMs round for themselves. */
    plm_bf16_mirror *mir = &model->params16;
    uint16_t *w16 = NULL;
    if (plm_gemm_bf16() && plm_gemm_bf16_reuse() && o->offset == 0 && o->n == model->num_params &&
        plm_gemm_mirror_registered(mir) && mir->base == model->params && mir->n == model->num_params) {
        if (!mir->w) { /* once per model; zeroed so the gaps between tensors are defined */
            mir->w = plm_aligned_alloc(model->num_params * sizeof(uint16_t));
            memset(mir->w, 0, model->num_params * sizeof(uint16_t));
        }
        w16 = mir->w;
    }
    /* One parallel region for the whole update: every tensor's loop is split over the
     * team without a barrier between tensors (nowait), so ~16 tensors per layer cost one
     * fork/join instead of one each (the small ones used to run serially). The update is
     * elementwise, so the bits do not depend on the split. */
#pragma omp parallel
    for (int i = 0; i < model->num_tensors; i++) {
        const plm_tensor *t = &model->tensors[i];
        float tlr = o->lr_scale ? lr * o->lr_scale[i] : lr;
        float decay = t->no_decay ? 1.0f : 1.0f - tlr * h->weight_decay, step_size = tlr / bc1;
        /* the part of the tensor inside [o->offset, o->offset + o->n) */
        size_t lo = PLM_MAX(t->offset, o->offset), hi = PLM_MIN(t->offset + t->numel, o->offset + o->n);
        if (lo >= hi) continue;
        float *p = model->params + lo, *g = model->grads + lo;
        float *m = o->m + (lo - o->offset), *v = o->v + (lo - o->offset);
        size_t n = hi - lo;
        if (w16) { /* the same update, plus the rounded new value */
            uint16_t *w = w16 + lo;
#pragma omp for simd schedule(static) nowait
            for (size_t k = 0; k < n; k++)
                w[k] = plm_to_bf16(adamw_elem(p + k, m + k, v + k, g[k], b1, b2, decay, step_size, inv_sqrt_bc2, eps));
        } else {
#pragma omp for simd schedule(static) nowait
            for (size_t k = 0; k < n; k++)
                adamw_elem(p + k, m + k, v + k, g[k], b1, b2, decay, step_size, inv_sqrt_bc2, eps);
        }
    }
    if (w16)
        mir->w_gen = mir->gen; /* every tensor was rewritten together with its copy */
    else
        plm_bf16_mirror_stale(mir); /* rewritten without it (fp32, a slice, reuse off) */
    plm_prof_end("adamw", prof_t0);
}

/* The number after "KEY." in name (as "layer.3." gives 3), or -1. */
static int index_after(const char *name, const char *key) {
    for (const char *p = strstr(name, key); p; p = strstr(p + 1, key)) {
        if (p != name && p[-1] != '.') continue; /* a whole name component: ".h." not "...ch." */
        const char *d = p + strlen(key);
        if (*d < '0' || *d > '9') continue;
        int v = 0;
        while (*d >= '0' && *d <= '9') v = v * 10 + (*d++ - '0');
        if (*d == '.') return v;
    }
    return -1;
}

int plm_tensor_depth(const plm_model *m, int i) {
    const char *name = m->tensors[i].name;
    int L = m->config.num_hidden_layers, l;
    /* T5's "block.N.layer.K" before BERT's "layer.N": the block is the layer */
    if ((l = index_after(name, "block.")) >= 0 || (l = index_after(name, "layer.")) >= 0 ||
        (l = index_after(name, "h.")) >= 0)
        return PLM_MIN(l, L - 1) + 1;
    if (strstr(name, "embeddings") || strstr(name, "embed_tokens") || strstr(name, ".wte.") || strstr(name, ".wpe.") ||
        strstr(name, ".wtt.") || strstr(name, ".ln_emb.") || !strncmp(name, "wte.", 4) || !strncmp(name, "wpe.", 4) ||
        !strcmp(name, "shared.weight"))
        return 0;
    return L + 2;
}

int plm_adamw_layerwise_decay(plm_adamw *o, const plm_model *m, float decay) {
    if (!(decay > 0.0f && decay <= 1.0f)) {
        plm_error("layerwise_lr_decay must be in (0, 1], got %g", decay);
        return -1;
    }
    free(o->lr_scale);
    o->lr_scale = NULL;
    if (decay == 1.0f) return 0;
    int L = m->config.num_hidden_layers;
    o->lr_scale = plm_malloc((size_t)m->num_tensors * sizeof(float));
    for (int i = 0; i < m->num_tensors; i++) {
        int depth = plm_tensor_depth(m, i);
        o->lr_scale[i] = depth > L ? 1.0f : powf(decay, (float)(L + 2 - depth));
    }
    return 0;
}

/* The squares are summed in GN_CHUNKS fixed blocks of the gradient, in double, and the
 * blocks added in order: the same bits for any number of threads, and no per-thread
 * array that a larger team could overrun. */
#define GN_CHUNKS 256

double plm_grad_norm(const plm_model *m) {
    double prof_t0 = plm_prof_begin();
    double part[GN_CHUNKS];
    size_t n = m->num_params;
    const float *g = m->grads;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < GN_CHUNKS; ch++) {
        size_t lo = n * (size_t)ch / GN_CHUNKS, hi = n * (size_t)(ch + 1) / GN_CHUNKS;
        double s = 0.0; /* in vector lanes: a fixed order per build, the same bits every run */
#pragma omp simd reduction(+ : s)
        for (size_t i = lo; i < hi; i++) s += (double)g[i] * g[i];
        part[ch] = s;
    }
    double s = 0.0;
    for (int ch = 0; ch < GN_CHUNKS; ch++) s += part[ch];
    plm_prof_end("grad norm", prof_t0);
    return sqrt(s);
}

int plm_first_nonfinite(const plm_model *m, const float *buf) {
    for (int i = 0; i < m->num_tensors; i++) {
        const float *x = buf + m->tensors[i].offset;
        size_t n = m->tensors[i].numel;
        /* |x| <= FLT_MAX is false exactly for NaN and +-inf; OR-reduced so it vectorises */
        int bad = 0;
#pragma omp simd reduction(| : bad)
        for (size_t k = 0; k < n; k++) bad |= !(fabsf(x[k]) <= FLT_MAX);
        if (bad) return i;
    }
    return -1;
}

double plm_clip_grad_norm(plm_model *m, double max_norm) {
    plm_prof_set_phase(PLM_PHASE_OPT);
    double norm = plm_grad_norm(m);
    if (max_norm > 0.0) {
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            double prof_t0 = plm_prof_begin();
            float c = (float)coef;
            float *g = m->grads;
#pragma omp parallel for simd schedule(static)
            for (size_t i = 0; i < m->num_params; i++) g[i] *= c;
            plm_prof_end("grad clip (scale)", prof_t0);
        }
    }
    return norm;
}

float plm_lr_at(plm_scheduler s, float base_lr, long step, long warmup, long total) {
    if (s == PLM_SCHED_WSD) return plm_lr_wsd(base_lr, step, warmup, total, 0.2, PLM_DECAY_1SQRT);
    if (step < warmup) return base_lr * (float)step / (float)(warmup > 0 ? warmup : 1);
    if (s == PLM_SCHED_CONSTANT) return base_lr;
    double progress = (double)(step - warmup) / (double)(total - warmup > 0 ? total - warmup : 1);
    if (progress > 1.0) progress = 1.0;
    if (s == PLM_SCHED_COSINE) return base_lr * (float)(0.5 * (1.0 + cos(M_PI * progress)));
    return base_lr * (float)(1.0 - progress);
}

float plm_lr_wsd(float base_lr, long step, long warmup, long total, double decay_fraction, plm_decay_shape shape) {
    if (step < warmup) return base_lr * (float)step / (float)(warmup > 0 ? warmup : 1);
    long decay = lround(decay_fraction * (double)total);
    if (decay > total - warmup) decay = total - warmup;
    long start = total - decay; /* first step of the decay */
    if (decay <= 0 || step < start) return base_lr;
    double p = (double)(step - start) / (double)decay;
    if (p > 1.0) p = 1.0;
    double f = shape == PLM_DECAY_LINEAR ? 1.0 - p : 1.0 - sqrt(p);
    return base_lr * (float)f;
}
