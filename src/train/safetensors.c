/* safetensors.c - see safetensors.h */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

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
    free(st->aligned);
    if (!st->mapped)
        free(st->buf);
    else if (st->buf)
        munmap(st->buf, st->len);
    memset(st, 0, sizeof *st);
}

/* The reference implementation's limit: a header is metadata, never the bulk of a file. */
#define MAX_HEADER_BYTES 100000000u
/* Integers a JSON number (a double in cJSON) holds exactly. */
#define MAX_JSON_INT 9007199254740992.0

/* A whole number in [0, max]. cJSON stores every number as a double and lookups of a
 * string or null read as 0, so the type and the fraction are checked here. */
static int get_uint(const cJSON *v, double max, uint64_t *out) {
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= max)) return -1;
    *out = (uint64_t)v->valuedouble;
    return (double)*out == v->valuedouble ? 0 : -1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* cJSON keeps every copy of a repeated key and lookups see only the first, so a header
 * with one would mean two things (and two __metadata__ overflowed the metadata arrays).
 * Returns a repeated key of obj, or NULL. Sorting keeps huge headers fast. */
static const char *find_duplicate(const cJSON *obj) {
    int n = cJSON_GetArraySize(obj), k = 0;
    char **keys = plm_malloc((size_t)n * sizeof *keys);
    const cJSON *it;
    cJSON_ArrayForEach(it, obj) keys[k++] = it->string;
    qsort(keys, (size_t)n, sizeof *keys, cmp_str);
    const char *dup = NULL;
    for (int i = 1; i < n && !dup; i++)
        if (strcmp(keys[i - 1], keys[i]) == 0) dup = keys[i];
    free(keys);
    return dup;
}

static int valid_utf8(const char *s, size_t n) {
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

typedef struct {
    uint64_t begin, end;
    int index;
} span;

static int cmp_span(const void *a, const void *b) {
    const span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

/* Callers read tensor data as float/double arrays, so each tensor must be aligned for
 * its dtype. Files from plm_st_write and from the reference writer are (the header is
 * padded to 8 and larger dtypes come first), and plm_read_file's buffer is malloc'ed;
 * any other layout (odd header length, odd offsets) has its misaligned tensors copied
 * into one aligned allocation, st->aligned, rather than refused: the spec allows it. */
static void align_tensors(plm_safetensors *st) {
    size_t need = 0;
    bool any = false;
    for (int i = 0; i < st->num_tensors; i++) {
        const plm_st_tensor *t = &st->tensors[i];
        if ((uintptr_t)t->data % dtype_sizes[t->dtype] == 0) continue;
        any = true;
        need += (t->nbytes + 7) & ~(size_t)7;
    }
    if (!any) return;
    char *p = st->aligned = plm_aligned_alloc(need);
    for (int i = 0; i < st->num_tensors; i++) {
        plm_st_tensor *t = &st->tensors[i];
        if ((uintptr_t)t->data % dtype_sizes[t->dtype] == 0) continue;
        memcpy(p, t->data, t->nbytes);
        t->data = p;
        p += (t->nbytes + 7) & ~(size_t)7;
    }
}

/* One tensor entry of the header; fills t (but its name) and *sp. */
static int parse_tensor(plm_st_tensor *t, span *sp, const cJSON *it, uint64_t data_len, const char *path) {
    const char *name = it->string, *dup;
    if (!cJSON_IsObject(it)) {
        plm_error("%s: tensor \"%s\" must be an object", path, name);
        return -1;
    }
    if ((dup = find_duplicate(it))) {
        plm_error("%s: tensor \"%s\": duplicate key \"%s\" in the header", path, name, dup);
        return -1;
    }
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(it, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(it, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(it, "data_offsets");
    if (!dt || !sh || !off) {
        plm_error("%s: tensor \"%s\": missing dtype, shape or data_offsets", path, name);
        return -1;
    }
    if (!cJSON_IsString(dt) || parse_dtype(dt->valuestring, &t->dtype) != 0) {
        plm_error("%s: tensor \"%s\": unsupported dtype %s (expected F32, F16, BF16, F64, I32, I64 or U8)", path, name,
                  cJSON_IsString(dt) ? dt->valuestring : "(not a string)");
        return -1;
    }
    if (!cJSON_IsArray(sh)) {
        plm_error("%s: tensor \"%s\": shape must be an array", path, name);
        return -1;
    }
    t->ndim = cJSON_GetArraySize(sh);
    if (t->ndim > 8) {
        plm_error("%s: tensor \"%s\": too many dimensions (%d, at most 8)", path, name, t->ndim);
        return -1;
    }
    /* element count and bytes with overflow checks, in the reference implementation's order */
    uint64_t numel = 1, nbytes;
    for (int d = 0; d < t->ndim; d++) {
        uint64_t dim;
        if (get_uint(cJSON_GetArrayItem(sh, d), MAX_JSON_INT, &dim) != 0) {
            plm_error("%s: tensor \"%s\": shape must hold non-negative integers", path, name);
            return -1;
        }
        if (dim && numel > UINT64_MAX / dim) {
            plm_error("%s: tensor \"%s\": shape overflows 64 bits", path, name);
            return -1;
        }
        t->shape[d] = (int64_t)dim;
        numel *= dim;
    }
    if (numel > UINT64_MAX / dtype_sizes[t->dtype]) {
        plm_error("%s: tensor \"%s\": byte size overflows 64 bits", path, name);
        return -1;
    }
    nbytes = numel * dtype_sizes[t->dtype];
    uint64_t b, e;
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        get_uint(cJSON_GetArrayItem(off, 0), MAX_JSON_INT, &b) != 0 ||
        get_uint(cJSON_GetArrayItem(off, 1), MAX_JSON_INT, &e) != 0 || e < b) {
        plm_error("%s: tensor \"%s\": data_offsets must be two integers [begin, end], 0 <= begin <= end", path, name);
        return -1;
    }
    if (e > data_len) {
        plm_error("%s: tensor \"%s\": data_offsets [%llu, %llu] outside the data (%llu bytes): truncated file?", path,
                  name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)data_len);
        return -1;
    }
    if (nbytes != e - b) {
        plm_error("%s: tensor \"%s\": %llu bytes do not match its shape (%llu bytes)", path, name,
                  (unsigned long long)(e - b), (unsigned long long)nbytes);
        return -1;
    }
    t->nbytes = (size_t)nbytes;
    sp->begin = b;
    sp->end = e;
    return 0;
}

static int parse_metadata(plm_safetensors *st, const cJSON *it, const char *path) {
    const char *dup;
    if (!cJSON_IsObject(it)) {
        plm_error("%s: __metadata__ must be an object", path);
        return -1;
    }
    if ((dup = find_duplicate(it))) {
        plm_error("%s: __metadata__: duplicate key \"%s\" in the header", path, dup);
        return -1;
    }
    int nm = cJSON_GetArraySize(it);
    st->meta_keys = plm_calloc((size_t)nm, sizeof(char *));
    st->meta_values = plm_calloc((size_t)nm, sizeof(char *));
    const cJSON *kv;
    cJSON_ArrayForEach(kv, it) {
        if (!cJSON_IsString(kv)) {
            plm_error("%s: __metadata__ value of \"%s\" must be a string", path, kv->string);
            return -1;
        }
        st->meta_keys[st->num_meta] = plm_strdup(kv->string);
        st->meta_values[st->num_meta++] = plm_strdup(kv->valuestring);
    }
    return 0;
}

/* Validation follows the spec and the reference implementation (huggingface/safetensors):
 * header length within the file and at most 100 MB, UTF-8 JSON object starting with '{'
 * (trailing whitespace only), no repeated keys, known dtypes, at most 8 integer
 * dimensions, integer offsets, sizes matching shapes, string metadata, and tensors that
 * cover the data exactly: sorted by offset they run from 0 to the end with no gap and no
 * overlap. */
static int st_parse(plm_safetensors *st, char *buf, size_t len, bool mapped, const char *path) {
    memset(st, 0, sizeof *st);
    st->buf = buf;
    st->len = len;
    st->mapped = mapped;
    cJSON *root = NULL;
    span *spans = NULL;
    if (len < 8) {
        plm_error("%s: truncated safetensors file (%zu bytes, no header)", path, len);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)buf[i];
    if (hlen > MAX_HEADER_BYTES) {
        plm_error("%s: safetensors header of %llu bytes is over the 100 MB limit (corrupt file?)", path,
                  (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > len - 8) {
        plm_error("%s: truncated or corrupt safetensors file (header length %llu, file %zu bytes)", path,
                  (unsigned long long)hlen, len);
        goto fail;
    }
    const char *header = buf + 8;
    if (hlen == 0 || header[0] != '{') {
        plm_error("%s: corrupt safetensors header (must be a JSON object starting with '{')", path);
        goto fail;
    }
    if (!valid_utf8(header, hlen)) {
        plm_error("%s: corrupt safetensors header (not valid UTF-8)", path);
        goto fail;
    }
    const char *end = NULL;
    root = cJSON_ParseWithLengthOpts(header, hlen, &end, 0);
    if (!root || !cJSON_IsObject(root)) {
        plm_error("%s: corrupt safetensors header (invalid JSON)", path);
        goto fail;
    }
    for (; end < header + hlen; end++)
        if (*end != ' ' && *end != '\t' && *end != '\n' && *end != '\r') {
            plm_error("%s: corrupt safetensors header (bytes after the JSON object)", path);
            goto fail;
        }
    const char *dup = find_duplicate(root);
    if (dup) {
        plm_error("%s: duplicate key \"%s\" in the safetensors header", path, dup);
        goto fail;
    }
    const char *data = header + hlen;
    uint64_t data_len = len - 8 - hlen;
    int n = cJSON_GetArraySize(root);
    st->tensors = plm_calloc((size_t)n, sizeof(plm_st_tensor));
    spans = plm_calloc((size_t)n, sizeof *spans);
    const cJSON *it;
    cJSON_ArrayForEach(it, root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (parse_metadata(st, it, path) != 0) goto fail;
            continue;
        }
        plm_st_tensor *t = &st->tensors[st->num_tensors];
        span *sp = &spans[st->num_tensors];
        if (parse_tensor(t, sp, it, data_len, path) != 0) goto fail;
        t->name = plm_strdup(it->string);
        t->data = data + sp->begin;
        sp->index = st->num_tensors++;
    }
    cJSON_Delete(root);
    root = NULL;
    /* the byte buffer must be entirely indexed: no holes, no overlap */
    qsort(spans, (size_t)st->num_tensors, sizeof *spans, cmp_span);
    uint64_t at = 0;
    for (int i = 0; i < st->num_tensors; i++) {
        const span *s = &spans[i];
        if (s->begin < at) {
            plm_error("%s: tensors \"%s\" and \"%s\" overlap", path, st->tensors[spans[i - 1].index].name,
                      st->tensors[s->index].name);
            goto fail;
        }
        if (s->begin > at) {
            plm_error("%s: data bytes [%llu, %llu) are not in any tensor (before \"%s\")", path, (unsigned long long)at,
                      (unsigned long long)s->begin, st->tensors[s->index].name);
            goto fail;
        }
        at = s->end;
    }
    if (at != data_len) {
        plm_error("%s: data bytes [%llu, %llu) are not in any tensor (at the end)", path, (unsigned long long)at,
                  (unsigned long long)data_len);
        goto fail;
    }
    free(spans);
    align_tensors(st);
    return 0;
fail:
    cJSON_Delete(root);
    free(spans);
    plm_st_free(st);
    return -1;
}

int plm_st_parse(plm_safetensors *st, char *buf, size_t len, const char *path) {
    return st_parse(st, buf, len, false, path);
}

int plm_st_load(plm_safetensors *st, const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) { /* errors are reported by the read below */
        struct stat sb;
        void *p = MAP_FAILED;
        if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size >= (1 << 20))
            p = mmap(NULL, (size_t)sb.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
        close(fd);
        if (p != MAP_FAILED) return st_parse(st, p, (size_t)sb.st_size, true, path);
    }
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) {
        memset(st, 0, sizeof *st);
        return -1;
    }
    return plm_st_parse(st, buf, len, path);
}

void plm_st_release(const plm_safetensors *st, const void *p, size_t n) {
    uintptr_t lo = (uintptr_t)p, hi = lo + n, b = (uintptr_t)st->buf;
    if (!st->mapped || lo < b || hi > b + st->len) return; /* read, or an aligned copy */
    uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
    lo = (lo + page - 1) / page * page, hi = hi / page * page;
    if (hi > lo) madvise((void *)lo, hi - lo, MADV_DONTNEED);
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
    /* Larger dtypes first (stable): with the header padded to 8, every tensor is then
     * aligned for its dtype, as the reference writer does, and the reader never copies. */
    int *order = plm_malloc((size_t)(w->n + 1) * sizeof *order);
    for (int i = 0; i < w->n; i++) {
        int j = i;
        for (; j > 0 && dtype_sizes[w->entries[order[j - 1]].dtype] < dtype_sizes[w->entries[i].dtype]; j--)
            order[j] = order[j - 1];
        order[j] = i;
    }
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const plm_st_entry *e = &w->entries[order[i]];
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
        chunks[i + 1] = w->entries[order[i]].data;
        lens[i + 1] = entry_bytes(&w->entries[order[i]]);
    }
    int rc = plm_write_chunks_atomic(path, (const void *const *)chunks, lens, nchunks);
    free(order);
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
