/* safetensors.c - see safetensors.h */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

static const char *dtype_names[] = {"F32", "F16", "BF16", "F64", "I32", "I64", "U8"};
static const size_t dtype_sizes[] = {4, 2, 2, 8, 4, 8, 1};

size_t plm_dtype_size(plm_dtype d) { return dtype_sizes[d]; }

static int parse_dtype(const char *s, plm_dtype *d) {
    for (size_t i = 0; i < PLM_ARRAY_LEN(dtype_names); i++)
        if (strcmp(s, dtype_names[i]) == 0) {
            *d = (plm_dtype)i;
            return 0;
        }
    return -1;
}

void plm_st_free(plm_safetensors *st) {
    for (int i = 0; i < st->num_tensors; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->num_meta; i++) {
        free(st->meta_keys[i]);
        free(st->meta_values[i]);
    }
    free(st->tensors);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->buf);
    memset(st, 0, sizeof *st);
}

static int cmp_by_offset(const void *a, const void *b) {
    const plm_st_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

int plm_st_parse(plm_safetensors *st, char *buf, size_t len, const char *path) {
    memset(st, 0, sizeof *st);
    st->buf = buf;
    st->len = len;
    if (len < 8) {
        plm_error("%s: truncated safetensors file (%zu bytes, no header)", path, len);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)buf[i];
    if (hlen > len - 8 || hlen > (100u << 20)) {
        plm_error("%s: truncated or corrupt safetensors file (header length %llu, file %zu bytes)", path,
                  (unsigned long long)hlen, len);
        goto fail;
    }
    cJSON *root = cJSON_ParseWithLength(buf + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        plm_error("%s: corrupt safetensors header (invalid JSON)", path);
        cJSON_Delete(root);
        goto fail;
    }
    const char *data = buf + 8 + hlen;
    size_t data_len = len - 8 - hlen;
    int n = cJSON_GetArraySize(root);
    st->tensors = plm_calloc((size_t)n, sizeof(plm_st_tensor));
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(it)) {
                plm_error("%s: __metadata__ must be an object", path);
                goto fail_json;
            }
            int nm = cJSON_GetArraySize(it);
            st->meta_keys = plm_calloc((size_t)nm, sizeof(char *));
            st->meta_values = plm_calloc((size_t)nm, sizeof(char *));
            const cJSON *kv;
            cJSON_ArrayForEach(kv, it) {
                if (!cJSON_IsString(kv)) {
                    plm_error("%s: __metadata__ value of \"%s\" must be a string", path, kv->string);
                    goto fail_json;
                }
                st->meta_keys[st->num_meta] = plm_strdup(kv->string);
                st->meta_values[st->num_meta++] = plm_strdup(kv->valuestring);
            }
            continue;
        }
        plm_st_tensor *t = &st->tensors[st->num_tensors];
        const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
        const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
        if (!cJSON_IsObject(it) || !cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) ||
            cJSON_GetArraySize(off) != 2) {
            plm_error("%s: tensor \"%s\": missing dtype, shape or data_offsets", path, it->string);
            goto fail_json;
        }
        if (parse_dtype(dt->valuestring, &t->dtype) != 0) {
            plm_error("%s: tensor \"%s\": unsupported dtype %s", path, it->string, dt->valuestring);
            goto fail_json;
        }
        t->ndim = cJSON_GetArraySize(sh);
        if (t->ndim > 8) {
            plm_error("%s: tensor \"%s\": too many dimensions", path, it->string);
            goto fail_json;
        }
        double numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            const cJSON *v = cJSON_GetArrayItem(sh, d);
            if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e12) {
                plm_error("%s: tensor \"%s\": bad shape", path, it->string);
                goto fail_json;
            }
            t->shape[d] = (int64_t)v->valuedouble;
            numel *= (double)t->shape[d];
        }
        double b = cJSON_GetArrayItem(off, 0)->valuedouble, e = cJSON_GetArrayItem(off, 1)->valuedouble;
        if (!(b >= 0 && e >= b && e <= (double)data_len)) {
            plm_error("%s: tensor \"%s\": data_offsets [%.0f, %.0f] outside the data (%zu bytes): truncated file?",
                      path, it->string, b, e, data_len);
            goto fail_json;
        }
        if (numel * (double)dtype_sizes[t->dtype] != e - b) {
            plm_error("%s: tensor \"%s\": %.0f bytes do not match its shape", path, it->string, e - b);
            goto fail_json;
        }
        t->name = plm_strdup(it->string);
        t->data = data + (size_t)b;
        t->nbytes = (size_t)(e - b);
        st->num_tensors++;
    }
    cJSON_Delete(root);
    /* no two tensors may overlap */
    plm_st_tensor *sorted = plm_malloc((size_t)st->num_tensors * sizeof *sorted + 1);
    memcpy(sorted, st->tensors, (size_t)st->num_tensors * sizeof *sorted);
    qsort(sorted, (size_t)st->num_tensors, sizeof *sorted, cmp_by_offset);
    for (int i = 1; i < st->num_tensors; i++)
        if ((const char *)sorted[i - 1].data + sorted[i - 1].nbytes > (const char *)sorted[i].data) {
            plm_error("%s: tensors \"%s\" and \"%s\" overlap", path, sorted[i - 1].name, sorted[i].name);
            free(sorted);
            goto fail;
        }
    free(sorted);
    return 0;
fail_json:
    cJSON_Delete(root);
fail:
    plm_st_free(st);
    return -1;
}

int plm_st_load(plm_safetensors *st, const char *path) {
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) {
        memset(st, 0, sizeof *st);
        return -1;
    }
    return plm_st_parse(st, buf, len, path);
}

const plm_st_tensor *plm_st_find(const plm_safetensors *st, const char *name) {
    for (int i = 0; i < st->num_tensors; i++)
        if (strcmp(st->tensors[i].name, name) == 0) return &st->tensors[i];
    return NULL;
}

const char *plm_st_meta(const plm_safetensors *st, const char *key) {
    for (int i = 0; i < st->num_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

void plm_st_writer_init(plm_st_writer *w) { memset(w, 0, sizeof *w); }

void plm_st_add(plm_st_writer *w, const char *name, plm_dtype dtype, int ndim, const int64_t *shape, const void *data) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 64;
        w->entries = plm_realloc(w->entries, (size_t)w->cap * sizeof *w->entries);
    }
    plm_st_entry *e = &w->entries[w->n++];
    e->name = name;
    e->dtype = dtype;
    e->ndim = ndim;
    memcpy(e->shape, shape, (size_t)ndim * sizeof(int64_t));
    e->data = data;
}

void plm_st_add_copy_f32(plm_st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data) {
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)shape[d];
    float *copy = plm_malloc(n * sizeof(float));
    memcpy(copy, data, n * sizeof(float));
    w->owned = plm_realloc(w->owned, (size_t)(w->num_owned + 1) * sizeof(void *));
    w->owned[w->num_owned++] = copy;
    plm_st_add(w, name, PLM_DT_F32, ndim, shape, copy);
}

void plm_st_add_meta(plm_st_writer *w, const char *key, const char *value) {
    w->meta_keys = plm_realloc(w->meta_keys, (size_t)(w->num_meta + 1) * sizeof(char *));
    w->meta_values = plm_realloc(w->meta_values, (size_t)(w->num_meta + 1) * sizeof(char *));
    w->meta_keys[w->num_meta] = plm_strdup(key);
    w->meta_values[w->num_meta++] = plm_strdup(value);
}

static size_t entry_bytes(const plm_st_entry *e) {
    size_t n = dtype_sizes[e->dtype];
    for (int d = 0; d < e->ndim; d++) n *= (size_t)e->shape[d];
    return n;
}

int plm_st_write(plm_st_writer *w, const char *path) {
    cJSON *root = cJSON_CreateObject();
    cJSON *meta = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(meta, "format", "pt");
    for (int i = 0; i < w->num_meta; i++)
        if (strcmp(w->meta_keys[i], "format") != 0) cJSON_AddStringToObject(meta, w->meta_keys[i], w->meta_values[i]);
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const plm_st_entry *e = &w->entries[i];
        cJSON *t = cJSON_AddObjectToObject(root, e->name);
        cJSON_AddStringToObject(t, "dtype", dtype_names[e->dtype]);
        cJSON *sh = cJSON_AddArrayToObject(t, "shape");
        for (int d = 0; d < e->ndim; d++) cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)e->shape[d]));
        cJSON *o = cJSON_AddArrayToObject(t, "data_offsets");
        size_t nb = entry_bytes(e);
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(o, cJSON_CreateNumber((double)(off + nb)));
        off += nb;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    size_t jl = strlen(json), padded = (jl + 7) & ~(size_t)7; /* data starts 8-byte aligned */
    char *header = plm_malloc(8 + padded);
    for (int i = 0; i < 8; i++) header[i] = (char)((uint64_t)padded >> (8 * i));
    memcpy(header + 8, json, jl);
    memset(header + 8 + jl, ' ', padded - jl);
    free(json);
    int nchunks = w->n + 1;
    const void **chunks = plm_malloc((size_t)nchunks * sizeof(void *));
    size_t *lens = plm_malloc((size_t)nchunks * sizeof(size_t));
    chunks[0] = header;
    lens[0] = 8 + padded;
    for (int i = 0; i < w->n; i++) {
        chunks[i + 1] = w->entries[i].data;
        lens[i + 1] = entry_bytes(&w->entries[i]);
    }
    int rc = plm_write_chunks_atomic(path, (const void *const *)chunks, lens, nchunks);
    free(chunks);
    free(lens);
    free(header);
    return rc;
}

void plm_st_writer_free(plm_st_writer *w) {
    for (int i = 0; i < w->num_owned; i++) free(w->owned[i]);
    for (int i = 0; i < w->num_meta; i++) {
        free(w->meta_keys[i]);
        free(w->meta_values[i]);
    }
    free(w->owned);
    free(w->meta_keys);
    free(w->meta_values);
    free(w->entries);
    memset(w, 0, sizeof *w);
}
