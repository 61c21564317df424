/* model_io.c - see model_io.h */
#include "model_io.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "train/safetensors.h"

uint64_t plm_fnv1a(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    if (h == 0) h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

static void transpose(float *dst, const float *src, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

int plm_model_save_weights(const plm_model *m, const char *path, const char *const *meta_kv, int n_meta) {
    plm_st_writer w;
    plm_st_writer_init(&w);
    uint64_t sum = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        const float *data = m->params + t->offset;
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        if (t->transpose) {
            float *tr = plm_malloc(t->numel * sizeof(float));
            transpose(tr, data, t->shape[0], t->shape[1]);
            shape[0] = t->shape[1];
            shape[1] = t->shape[0];
            plm_st_add_copy_f32(&w, t->name, 2, shape, tr);
            sum = plm_fnv1a(tr, t->numel * sizeof(float), sum);
            free(tr);
        } else {
            plm_st_add(&w, t->name, PLM_DT_F32, t->ndim, shape, data);
            sum = plm_fnv1a(data, t->numel * sizeof(float), sum);
        }
    }
    char buf[32];
    snprintf(buf, sizeof buf, "%016" PRIx64, sum);
    plm_st_add_meta(&w, "plm_checksum", buf);
    for (int i = 0; i < n_meta; i++) plm_st_add_meta(&w, meta_kv[2 * i], meta_kv[2 * i + 1]);
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    return rc;
}

/* GPT-2 files from the original conversion lack the "transformer." prefix. */
static const plm_st_tensor *find_tensor(const plm_safetensors *st, const char *name) {
    const plm_st_tensor *t = plm_st_find(st, name);
    if (!t && strncmp(name, "transformer.", 12) == 0) t = plm_st_find(st, name + 12);
    return t;
}

static void format_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %" PRId64 : "%" PRId64, shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

int plm_model_load_weights(plm_model *m, const char *path) {
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    int rc = -1;
    uint64_t sum = 0;
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        const plm_st_tensor *s = find_tensor(&st, t->name);
        if (!s) {
            plm_error("%s: missing tensor \"%s\" (checkpoint does not match config.json)", path, t->name);
            goto done;
        }
        int64_t want0 = t->transpose ? t->shape[1] : t->shape[0], want1 = t->transpose ? t->shape[0] : t->shape[1];
        bool ok = s->dtype == PLM_DT_F32 && s->ndim == t->ndim && s->shape[0] == want0 &&
                  (t->ndim == 1 || s->shape[1] == want1);
        if (!ok) {
            char got[64], exp[64];
            format_shape(got, sizeof got, s->shape, s->ndim);
            int64_t w[2] = {want0, want1};
            format_shape(exp, sizeof exp, w, t->ndim);
            plm_error("%s: tensor \"%s\" is %s %s, expected F32 %s", path, t->name,
                      s->dtype == PLM_DT_F32 ? "F32" : "not F32", got, exp);
            goto done;
        }
        float *dst = m->params + t->offset;
        if (t->transpose)
            transpose(dst, s->data, t->shape[1], t->shape[0]);
        else
            memcpy(dst, s->data, t->numel * sizeof(float));
        sum = plm_fnv1a(s->data, s->nbytes, sum);
    }
    const char *want = plm_st_meta(&st, "plm_checksum");
    if (want) {
        char got[32];
        snprintf(got, sizeof got, "%016" PRIx64, sum);
        if (strcmp(got, want) != 0) {
            plm_error("%s: checksum mismatch (file corrupted)", path);
            goto done;
        }
    }
    rc = 0;
done:
    plm_st_free(&st);
    return rc;
}

int plm_model_save(const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    if (plm_mkdirs(dir) != 0) return -1;
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (plm_config_save(&m->config, path) != 0) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return plm_model_save_weights(m, path, meta_kv, n_meta);
}

plm_model *plm_model_load(const char *dir) {
    char path[4096];
    plm_config c;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (plm_config_load(&c, path) != 0) return NULL;
    plm_model *m = plm_model_create(&c, 0);
    if (!m) return NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (plm_model_load_weights(m, path) != 0) {
        plm_model_free(m);
        return NULL;
    }
    return m;
}
