/* shards.c - see shards.h (reading; the writer is prepare.c) */
#include "shards.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <nettle/sha2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"

#define HEADER_BYTES 16

typedef struct {
    const uint8_t *map; /* whole file */
    size_t map_len;
    size_t n;      /* tokens */
    size_t offset; /* of its first token in the split */
} shard;

struct plm_shards {
    int width; /* 2 or 4 */
    int num;
    shard *s;
};

static void hex(const uint8_t *d, int n, char *out) {
    for (int i = 0; i < n; i++) snprintf(out + 2 * i, 3, "%02x", d[i]);
}

void plm_tokenizer_hash(const plm_tokenizer *t, char out[65]) {
    struct sha256_ctx c;
    sha256_init(&c);
    uint8_t kind = (uint8_t)plm_tokenizer_kind(t);
    sha256_update(&c, 1, &kind);
    int V = plm_tokenizer_vocab_size(t);
    for (int i = 0; i < V; i++) {
        const char *s = plm_tokenizer_id_to_token(t, i);
        if (!s) s = "";
        sha256_update(&c, strlen(s) + 1, (const uint8_t *)s);
    }
    uint8_t d[SHA256_DIGEST_SIZE];
    sha256_digest(&c, sizeof d, d);
    hex(d, SHA256_DIGEST_SIZE, out);
}

void plm_shards_read(const plm_shards *s, size_t pos, size_t n, int32_t *ids, uint8_t *flags) {
    /* the shard holding pos: binary search on the offsets */
    int lo = 0, hi = s->num;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (s->s[mid].offset <= pos)
            lo = mid;
        else
            hi = mid;
    }
    for (int k = lo; n > 0 && k < s->num; k++) {
        const shard *h = &s->s[k];
        size_t at = pos - h->offset, take = PLM_MIN(n, h->n - at);
        const uint8_t *base = h->map + HEADER_BYTES;
        if (s->width == 2) {
            const uint16_t *src = (const uint16_t *)base + at;
            for (size_t i = 0; i < take; i++) ids[i] = src[i];
        } else {
            memcpy(ids, (const uint32_t *)base + at, take * sizeof(int32_t));
        }
        if (flags) memcpy(flags, base + h->n * (size_t)s->width + at, take);
        ids += take;
        if (flags) flags += take;
        pos += take;
        n -= take;
    }
}

void plm_shards_close(plm_token_stream *st) {
    plm_shards *s = (plm_shards *)st->shards;
    if (s) {
        for (int k = 0; k < s->num; k++)
            if (s->s[k].map) munmap((void *)s->s[k].map, s->s[k].map_len);
        free(s->s);
        free(s);
    }
    memset(st, 0, sizeof *st);
}

static int map_shard(const char *path, shard *h, int width, size_t tokens, const char *sha, bool verify) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        plm_error("%s: %s (listed in manifest.json)", path, strerror(errno));
        return -1;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        plm_error("%s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    size_t want = HEADER_BYTES + tokens * (size_t)(width + 1);
    if ((size_t)sb.st_size != want) {
        plm_error("%s: %zu bytes, manifest.json says %zu tokens = %zu bytes (truncated or foreign shard)", path,
                  (size_t)sb.st_size, tokens, want);
        close(fd);
        return -1;
    }
    void *m = mmap(NULL, want, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (m == MAP_FAILED) {
        plm_error("%s: mmap: %s", path, strerror(errno));
        return -1;
    }
    h->map = m;
    h->map_len = want;
    h->n = tokens;
    uint32_t w;
    memcpy(&w, h->map + 8, 4);
    if (memcmp(h->map, "PLMSHRD1", 8) != 0 || w != (uint32_t)width) {
        plm_error("%s: not a plm shard of %d-byte ids (bad header)", path, width);
        return -1;
    }
    if (verify) {
        struct sha256_ctx c;
        sha256_init(&c);
        sha256_update(&c, want, h->map);
        uint8_t d[SHA256_DIGEST_SIZE];
        char got[65];
        sha256_digest(&c, sizeof d, d);
        hex(d, SHA256_DIGEST_SIZE, got);
        if (!sha || strcmp(sha, got) != 0) {
            plm_error("%s: sha256 %s does not match manifest.json (%s): the shard changed", path, got,
                      sha ? sha : "none");
            return -1;
        }
    }
    madvise(m, want, MADV_RANDOM);
    return 0;
}

int plm_shards_open(const char *dir, const char *split, const plm_tokenizer *tok, bool verify, plm_token_stream *out) {
    memset(out, 0, sizeof *out);
    char path[4096];
    snprintf(path, sizeof path, "%s/manifest.json", dir);
    size_t len;
    char *text = plm_read_file(path, &len);
    if (!text) {
        plm_error("%s: no manifest.json: not a directory written by plm prepare (or an unfinished one)", dir);
        return -1;
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    plm_shards *s = plm_calloc(1, sizeof *s);
    out->shards = s;
    int rc = -1;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(root, "tokenizer_sha256");
    const cJSON *splits = cJSON_GetObjectItemCaseSensitive(root, "splits");
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(splits, split);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(sp, "shards");
    if (!root || !cJSON_IsString(fmt) || strcmp(fmt->valuestring, "plm-shards") != 0 || !cJSON_IsString(dtype) ||
        !cJSON_IsString(th) || !cJSON_IsArray(list)) {
        plm_error("%s: not a plm-shards manifest (format, dtype, tokenizer_sha256, splits.%s.shards)", path, split);
        goto done;
    }
    if (strcmp(dtype->valuestring, "uint16") == 0)
        s->width = 2;
    else if (strcmp(dtype->valuestring, "uint32") == 0)
        s->width = 4;
    else {
        plm_error("%s: dtype \"%s\" (expected uint16 or uint32)", path, dtype->valuestring);
        goto done;
    }
    if (tok) {
        char h[65];
        plm_tokenizer_hash(tok, h);
        if (strcmp(h, th->valuestring) != 0) {
            plm_error("%s: the data was prepared with another tokenizer (tokenizer_sha256 %.16s..., this one "
                      "%.16s...): run plm prepare again with this tokenizer",
                      path, th->valuestring, h);
            goto done;
        }
        if (s->width == 2 && plm_tokenizer_vocab_size(tok) > 65536) {
            plm_error("%s: uint16 shards but the tokenizer has %d tokens", path, plm_tokenizer_vocab_size(tok));
            goto done;
        }
    }
    s->num = cJSON_GetArraySize(list);
    s->s = plm_calloc(s->num ? (size_t)s->num : 1, sizeof(shard));
    size_t total = 0;
    for (int k = 0; k < s->num; k++) {
        const cJSON *e = cJSON_GetArrayItem(list, k);
        const cJSON *f = cJSON_GetObjectItemCaseSensitive(e, "file"),
                    *n = cJSON_GetObjectItemCaseSensitive(e, "tokens");
        const cJSON *sha = cJSON_GetObjectItemCaseSensitive(e, "sha256");
        if (!cJSON_IsString(f) || strchr(f->valuestring, '/') || !cJSON_IsNumber(n) || n->valuedouble < 0) {
            plm_error("%s: splits.%s.shards[%d] needs a plain \"file\" name and \"tokens\"", path, split, k);
            goto done;
        }
        char sp_path[4096];
        snprintf(sp_path, sizeof sp_path, "%s/%s", dir, f->valuestring);
        s->s[k].offset = total;
        if (map_shard(sp_path, &s->s[k], s->width, (size_t)n->valuedouble,
                      cJSON_IsString(sha) ? sha->valuestring : NULL, verify) != 0)
            goto done;
        total += s->s[k].n;
    }
    const cJSON *ntok = cJSON_GetObjectItemCaseSensitive(sp, "tokens");
    if (!cJSON_IsNumber(ntok) || (size_t)ntok->valuedouble != total) {
        plm_error("%s: splits.%s.tokens does not match the sum of its shards (%zu)", path, split, total);
        goto done;
    }
    out->n = total;
    rc = 0;
done:
    cJSON_Delete(root);
    if (rc != 0) plm_shards_close(out);
    return rc;
}
