/* bpe.c - byte-level BPE: byte map, GPT-2 pre-tokenizer, merges, loaders. See bpe.h. */
#include "tokenizer/bpe.h"
#include "tokenizer/bpe_unicode.h"
#include "core/common.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- byte <-> unicode map ---- */

static char byte_chars[256][3]; /* UTF-8 of each byte's char, NUL-terminated */
static uint8_t byte_char_len[256];
static int16_t char_to_byte[324]; /* codepoint (< 324) -> byte, -1 if not a byte char */
static pthread_once_t byte_map_once = PTHREAD_ONCE_INIT;

static void byte_map_init(void) {
    /* GPT-2's bytes_to_unicode(): printable bytes keep their codepoint, the others get
     * 256, 257, ... in byte order, so every byte has a visible, non-space char. */
    int next = 256;
    for (int i = 0; i < 324; i++) char_to_byte[i] = -1;
    for (int b = 0; b < 256; b++) {
        int cp = ((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF)) ? b : next++;
        char_to_byte[cp] = (int16_t)b;
        if (cp < 0x80) {
            byte_chars[b][0] = (char)cp;
            byte_char_len[b] = 1;
        } else {
            byte_chars[b][0] = (char)(0xC0 | (cp >> 6));
            byte_chars[b][1] = (char)(0x80 | (cp & 0x3F));
            byte_char_len[b] = 2;
        }
    }
}

const char *plm_bpe_byte_char(uint8_t b, int *len) {
    pthread_once(&byte_map_once, byte_map_init);
    if (len) *len = byte_char_len[b];
    return byte_chars[b];
}

int plm_bpe_unbyte(const char *s, size_t len, char *out) {
    pthread_once(&byte_map_once, byte_map_init);
    const uint8_t *p = (const uint8_t *)s;
    int n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        if (p[i] < 0x80) {
            cp = p[i++];
        } else if ((p[i] & 0xE0) == 0xC0 && i + 1 < len && (p[i + 1] & 0xC0) == 0x80) {
            cp = ((uint32_t)(p[i] & 0x1F) << 6) | (p[i + 1] & 0x3F);
            i += 2;
        } else {
            return -1;
        }
        if (cp >= 324 || char_to_byte[cp] < 0) return -1;
        out[n++] = (char)char_to_byte[cp];
    }
    return n;
}

char *plm_bpe_to_byte_level(const char *raw, size_t len, size_t *outlen) {
    pthread_once(&byte_map_once, byte_map_init);
    char *o = plm_malloc(2 * len + 1);
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)raw[i];
        memcpy(o + n, byte_chars[b], byte_char_len[b]);
        n += byte_char_len[b];
    }
    o[n] = 0;
    if (outlen) *outlen = n;
    return o;
}

/* ---- GPT-2 pre-tokenizer ---- */

enum { C_L = 1, C_N, C_S, C_O };

static uint8_t ascii_class[128];
/* Classes of code points >= 128 as HF's Oniguruma sees them (bpe_unicode.h, generated
 * by asking HF about every code point): utf8proc's tables lag or lead HF's Unicode
 * version, and a single differing letter changes the split. Zero means C_O. */
static uint8_t cp_classes[0x110000];
static pthread_once_t class_once = PTHREAD_ONCE_INIT;
static void class_init(void) {
    for (size_t r = 0; r < PLM_ARRAY_LEN(bpe_class_ranges); r++)
        for (uint32_t c = bpe_class_ranges[r][0]; c <= bpe_class_ranges[r][1]; c++)
            cp_classes[c] = (uint8_t)bpe_class_ranges[r][2]; /* 1 L, 2 N, 3 S as C_L.. */
    for (int c = 0; c < 128; c++) {
        int k = C_O;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
            k = C_L;
        else if (c >= '0' && c <= '9')
            k = C_N;
        else if (c == ' ' || (c >= 9 && c <= 13))
            k = C_S;
        ascii_class[c] = (uint8_t)k;
    }
}

/* Strict UTF-8 (as Rust's str): returns the length of the char at s, or 0 if the
 * bytes there are not valid UTF-8. */
static inline int utf8_char(const uint8_t *s, size_t n, uint32_t *cp) {
    uint8_t c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    if (c < 0xC2) return 0;
    if (c < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(c & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (c < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        uint32_t v = ((uint32_t)(c & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (v < 0x800 || (v >= 0xD800 && v <= 0xDFFF)) return 0;
        *cp = v;
        return 3;
    }
    if (c < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        uint32_t v = ((uint32_t)(c & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
                     (s[3] & 0x3F);
        if (v < 0x10000 || v > 0x10FFFF) return 0;
        *cp = v;
        return 4;
    }
    return 0;
}

static inline int cp_class(uint32_t cp) {
    if (cp < 128) return ascii_class[cp];
    int k = cp_classes[cp];
    return k ? k : C_O;
}

/* Class and length of the char at s[i]; an invalid byte is one C_O char. */
static inline int class_at(const uint8_t *s, size_t len, size_t i, int *clen) {
    if (s[i] < 0x80) {
        *clen = 1;
        return ascii_class[s[i]];
    }
    uint32_t cp;
    int n = utf8_char(s + i, len - i, &cp);
    if (!n) {
        *clen = 1;
        return C_O;
    }
    *clen = n;
    return cp_class(cp);
}

/* End of the run of chars of class k starting at i. */
static inline size_t run_end(const uint8_t *s, size_t len, size_t i, int k) {
    while (i < len) {
        if (s[i] < 0x80) {
            if (ascii_class[s[i]] != k) break;
            i++;
            continue;
        }
        int cl;
        if (class_at(s, len, i, &cl) != k) break;
        i += (size_t)cl;
    }
    return i;
}

size_t plm_bpe_pretok_next(const uint8_t *s, size_t len, size_t i) {
    pthread_once(&class_once, class_init);
    /* 's|'t|'re|'ve|'m|'ll|'d */
    if (s[i] == '\'' && i + 1 < len) {
        uint8_t c = s[i + 1];
        if (c == 's' || c == 't' || c == 'm' || c == 'd') return i + 2;
        if (i + 2 < len) {
            uint8_t d = s[i + 2];
            if ((c == 'r' && d == 'e') || (c == 'v' && d == 'e') || (c == 'l' && d == 'l')) return i + 3;
        }
    }
    int l0;
    int k0 = class_at(s, len, i, &l0);
    /*  ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+ : an optional ' ' then a run of one class */
    if (s[i] == ' ' && i + 1 < len) {
        int l1;
        int k1 = class_at(s, len, i + 1, &l1);
        if (k1 != C_S) return run_end(s, len, i + 1 + (size_t)l1, k1);
    }
    if (k0 != C_S) return run_end(s, len, i + (size_t)l0, k0);
    /* \s+(?!\S)|\s+ : a whitespace run; if a non-space follows it, the first
     * alternative backtracks one char so that char can prefix the next word. */
    size_t j = i, last = i;
    while (j < len) {
        int cl;
        if (class_at(s, len, j, &cl) != C_S) break;
        last = j;
        j += (size_t)cl;
    }
    if (j == len || last == i) return j;
    return last;
}

/* ---- merge table ---- */

#define EMPTY_KEY UINT64_MAX

plm_bpe *plm_bpe_new(void) {
    plm_bpe *b = plm_calloc(1, sizeof *b);
    for (int i = 0; i < 256; i++) b->byte_id[i] = -1;
    for (int i = 0; i < PLM_BPE_NCACHE; i++) atomic_flag_clear(&b->cache_busy[i]);
    return b;
}

void plm_bpe_free(plm_bpe *b) {
    if (!b) return;
    free(b->mkey);
    free(b->mrank);
    free(b->mnew);
    free(b->mleft);
    free(b->mright);
    for (int i = 0; i < b->nraw; i++) free(b->raw[i]);
    free(b->raw);
    free(b->rawlen);
    for (int i = 0; i < PLM_BPE_NCACHE; i++) free(b->cache[i]);
    free(b);
}

static inline uint32_t pair_hash(uint64_t key) {
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdULL;
    key ^= key >> 33;
    return (uint32_t)key;
}

static void merge_table_grow(plm_bpe *b) {
    uint32_t ns = b->mslots ? b->mslots * 2 : 1024;
    uint64_t *k = plm_malloc(ns * sizeof *k);
    int32_t *r = plm_malloc(ns * sizeof *r), *m = plm_malloc(ns * sizeof *m);
    for (uint32_t i = 0; i < ns; i++) k[i] = EMPTY_KEY;
    for (uint32_t i = 0; i < b->mslots; i++) {
        if (b->mkey[i] == EMPTY_KEY) continue;
        uint32_t h = pair_hash(b->mkey[i]) & (ns - 1);
        while (k[h] != EMPTY_KEY) h = (h + 1) & (ns - 1);
        k[h] = b->mkey[i];
        r[h] = b->mrank[i];
        m[h] = b->mnew[i];
    }
    free(b->mkey);
    free(b->mrank);
    free(b->mnew);
    b->mkey = k;
    b->mrank = r;
    b->mnew = m;
    b->mslots = ns;
}

int32_t plm_bpe_pair(const plm_bpe *b, int32_t left, int32_t right, int32_t *merged) {
    if (!b->mslots) return -1;
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint32_t h = pair_hash(key) & (b->mslots - 1);
    for (;;) {
        uint64_t k = b->mkey[h];
        if (k == key) {
            *merged = b->mnew[h];
            return b->mrank[h];
        }
        if (k == EMPTY_KEY) return -1;
        h = (h + 1) & (b->mslots - 1);
    }
}

int plm_bpe_add_merge(plm_bpe *b, int32_t left, int32_t right, int32_t merged, int32_t rank) {
    if ((b->nmerges + 1) * 2 > (int64_t)b->mslots) merge_table_grow(b);
    uint64_t key = (uint64_t)(uint32_t)left << 32 | (uint32_t)right;
    uint32_t h = pair_hash(key) & (b->mslots - 1);
    if (rank < 0) rank = b->nlist;
    while (b->mkey[h] != EMPTY_KEY) {
        if (b->mkey[h] == key) break;
        h = (h + 1) & (b->mslots - 1);
    }
    /* A repeated pair takes the later rank, as HF builds its merge map from the list. */
    if (b->mkey[h] == EMPTY_KEY) b->nmerges++;
    b->mkey[h] = key;
    b->mrank[h] = rank;
    b->mnew[h] = merged;
    if (b->nlist == b->caplist) {
        b->caplist = b->caplist ? b->caplist * 2 : 1024;
        b->mleft = plm_realloc(b->mleft, (size_t)b->caplist * sizeof *b->mleft);
        b->mright = plm_realloc(b->mright, (size_t)b->caplist * sizeof *b->mright);
    }
    b->mleft[b->nlist] = left;
    b->mright[b->nlist] = right;
    b->nlist++;
    return 0;
}

int plm_bpe_finish(plm_tokenizer *t) {
    plm_bpe *b = t->bpe;
    for (int i = 0; i < b->nraw; i++) free(b->raw[i]);
    b->nraw = t->vocab.n;
    b->raw = plm_realloc(b->raw, (size_t)(b->nraw ? b->nraw : 1) * sizeof *b->raw);
    b->rawlen = plm_realloc(b->rawlen, (size_t)(b->nraw ? b->nraw : 1) * sizeof *b->rawlen);
    bool *is_added = plm_calloc((size_t)b->nraw + 1, 1);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id < b->nraw) is_added[t->added[i].id] = true;
    for (int id = 0; id < b->nraw; id++) {
        const char *s = t->vocab.tok[id];
        if (!s) {
            b->raw[id] = NULL;
            b->rawlen[id] = 0;
            continue;
        }
        size_t n = (size_t)t->vocab.len[id];
        char *r = plm_malloc(n + 1);
        int m = is_added[id] ? -1 : plm_bpe_unbyte(s, n, r);
        if (m < 0) { /* added tokens and non-byte-level strings decode as themselves */
            memcpy(r, s, n);
            m = (int)n;
        }
        r[m] = 0;
        b->raw[id] = r;
        b->rawlen[id] = m;
    }
    free(is_added);
    for (int c = 0; c < 256; c++) {
        int l;
        const char *s = plm_bpe_byte_char((uint8_t)c, &l);
        b->byte_id[c] = plm_vocab_find(&t->vocab, s, (size_t)l);
    }
    /* A merge whose parts or result are out of range would index past raw[]. */
    return 0;
}

/* ---- applying merges ---- */

/* Words up to this many bytes merge with a simple quadratic scan, longer ones with a
 * heap over a linked list (whitespace or digit runs can be megabytes long). */
#define SMALL_WORD 48

typedef struct {
    int32_t rank, pos;
} heap_ent;

static void heap_push(heap_ent *h, int *n, heap_ent e) {
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (h[p].rank < e.rank || (h[p].rank == e.rank && h[p].pos < e.pos)) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static heap_ent heap_pop(heap_ent *h, int *n) {
    heap_ent top = h[0], e = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && (h[c + 1].rank < h[c].rank || (h[c + 1].rank == h[c].rank && h[c + 1].pos < h[c].pos))) c++;
        if (e.rank < h[c].rank || (e.rank == h[c].rank && e.pos < h[c].pos)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = e;
    return top;
}

static int merge_long(const plm_bpe *b, const uint8_t *w, int len, int32_t *ids, int32_t *starts) {
    /* Symbols live at their starting byte position; next/prev link live ones. */
    int32_t *id = plm_malloc((size_t)len * sizeof *id);
    int32_t *next = plm_malloc((size_t)len * sizeof *next);
    int32_t *prev = plm_malloc((size_t)len * sizeof *prev);
    heap_ent *heap = plm_malloc((size_t)len * 3 * sizeof *heap); /* <= len-1 initial + 2 per merge */
    int nh = 0, first = -1, last = -1;
    for (int i = 0; i < len; i++) {
        id[i] = b->byte_id[w[i]];
        next[i] = prev[i] = -1;
        if (id[i] < 0) continue; /* a byte the vocabulary lacks is dropped, as HF without unk */
        prev[i] = last;
        if (last >= 0)
            next[last] = i;
        else
            first = i;
        last = i;
    }
    for (int i = first; i >= 0 && next[i] >= 0; i = next[i]) {
        int32_t m = -1, r = plm_bpe_pair(b, id[i], id[next[i]], &m);
        if (r >= 0) heap_push(heap, &nh, (heap_ent){r, i});
    }
    while (nh > 0) {
        heap_ent e = heap_pop(heap, &nh);
        int i = e.pos;
        if (id[i] < 0 || next[i] < 0) continue; /* merged away */
        int32_t m = -1, r = plm_bpe_pair(b, id[i], id[next[i]], &m);
        if (r != e.rank) continue; /* stale */
        int j = next[i];
        id[i] = m;
        id[j] = -1;
        next[i] = next[j];
        if (next[j] >= 0) prev[next[j]] = i;
        if (prev[i] >= 0) {
            int32_t m2 = -1, r2 = plm_bpe_pair(b, id[prev[i]], id[i], &m2);
            if (r2 >= 0) heap_push(heap, &nh, (heap_ent){r2, prev[i]});
        }
        if (next[i] >= 0) {
            int32_t m2 = -1, r2 = plm_bpe_pair(b, id[i], id[next[i]], &m2);
            if (r2 >= 0) heap_push(heap, &nh, (heap_ent){r2, i});
        }
    }
    int n = 0;
    for (int i = first; i >= 0; i = next[i]) {
        ids[n] = id[i];
        starts[n++] = i;
    }
    free(id);
    free(next);
    free(prev);
    free(heap);
    return n;
}

int plm_bpe_merge_word(const plm_bpe *b, const uint8_t *w, int len, int32_t *ids, int32_t *starts) {
    if (len > SMALL_WORD) return merge_long(b, w, len, ids, starts);
    int n = 0;
    for (int i = 0; i < len; i++) {
        int32_t id = b->byte_id[w[i]];
        if (id < 0) continue;
        ids[n] = id;
        starts[n++] = i;
    }
    int32_t rank[SMALL_WORD], merged[SMALL_WORD];
    for (int i = 0; i + 1 < n; i++) {
        rank[i] = plm_bpe_pair(b, ids[i], ids[i + 1], &merged[i]);
        if (rank[i] < 0) rank[i] = INT32_MAX;
    }
    while (n > 1) {
        int best = -1;
        int32_t br = INT32_MAX;
        for (int i = 0; i + 1 < n; i++)
            if (rank[i] < br) br = rank[best = i];
        if (best < 0) break;
        ids[best] = merged[best];
        for (int i = best + 1; i + 1 < n; i++) {
            ids[i] = ids[i + 1];
            starts[i] = starts[i + 1];
            rank[i] = rank[i + 1];
            merged[i] = merged[i + 1];
        }
        n--;
        if (best > 0) {
            rank[best - 1] = plm_bpe_pair(b, ids[best - 1], ids[best], &merged[best - 1]);
            if (rank[best - 1] < 0) rank[best - 1] = INT32_MAX;
        }
        if (best + 1 < n) {
            rank[best] = plm_bpe_pair(b, ids[best], ids[best + 1], &merged[best]);
            if (rank[best] < 0) rank[best] = INT32_MAX;
        }
    }
    return n;
}

/* ---- word cache: direct-mapped, short words only ---- */

#define CACHE_SLOTS (1 << 15)
#define CACHE_KEY   23
#define CACHE_IDS   10

struct plm_bpe_cache {
    struct {
        uint64_t hash;
        uint8_t klen, n;
        char key[CACHE_KEY];
        int32_t ids[CACHE_IDS];
    } e[CACHE_SLOTS];
};

static inline uint64_t word_hash(const uint8_t *s, int n) {
    return plm_word_hash(s, (size_t)n) | 1; /* 0 marks an empty slot */
}

/* Expands a token's byte span to whole chars, as HF's byte-level alignments do:
 * a token holding part of a multi-byte char covers the whole char. */
static void char_align(const uint8_t *s, size_t len, int32_t *a, int32_t *e) {
    size_t st = (size_t)*a, en = (size_t)*e;
    if (st < len && (s[st] & 0xC0) == 0x80) {
        for (size_t k = 1; k <= 3 && k <= st; k++) {
            uint32_t cp;
            int n = utf8_char(s + st - k, len - (st - k), &cp);
            if (n > (int)k) {
                st -= k;
                break;
            }
            if (!((s[st - k] & 0xC0) == 0x80)) break;
        }
    }
    if (en > 0 && en < len && (s[en] & 0xC0) == 0x80) {
        for (size_t k = 1; k <= 4 && k <= en; k++) {
            uint32_t cp;
            size_t p = en - k;
            int n = utf8_char(s + p, len - p, &cp);
            if (n > 0) {
                if (p + (size_t)n > en) en = p + (size_t)n;
                break;
            }
            if (!((s[p] & 0xC0) == 0x80)) break;
        }
    }
    *a = (int32_t)st;
    *e = (int32_t)en;
}

int plm_bpe_encode_segment(const plm_tokenizer *t, const char *text, size_t len, int32_t base, int32_t *word,
                           plm_encoding *out) {
    plm_bpe *b = t->bpe;
    const uint8_t *s = (const uint8_t *)text;
    pthread_once(&class_once, class_init);
    /* Take a free cache, if any. */
    plm_bpe_cache *cache = NULL;
    int ci = -1;
    for (int k = 0; k < PLM_BPE_NCACHE; k++) {
        if (!atomic_flag_test_and_set_explicit(&b->cache_busy[k], memory_order_acquire)) {
            ci = k;
            if (!b->cache[k]) b->cache[k] = plm_calloc(1, sizeof(plm_bpe_cache));
            cache = b->cache[k];
            break;
        }
    }
    int32_t sbuf_ids[SMALL_WORD], sbuf_st[SMALL_WORD];
    int32_t *ids = sbuf_ids, *st = sbuf_st;
    int idcap = SMALL_WORD;
    size_t i = 0;
    while (i < len) {
        size_t j = plm_bpe_pretok_next(s, len, i);
        int wl = (int)(j - i);
        if (j - i > (size_t)INT32_MAX / 2) {
            plm_error("text too long for one pre-token (%zu bytes)", j - i);
            if (ci >= 0) atomic_flag_clear_explicit(&b->cache_busy[ci], memory_order_release);
            if (ids != sbuf_ids) free(ids), free(st);
            return -1;
        }
        const uint8_t *w = s + i;
        int n = -1;
        uint64_t h = 0;
        if (cache && wl <= CACHE_KEY) {
            h = word_hash(w, wl);
            __typeof__(&cache->e[0]) ce = &cache->e[h & (CACHE_SLOTS - 1)];
            if (ce->hash == h && ce->klen == wl && memcmp(ce->key, w, (size_t)wl) == 0) {
                plm_encoding_reserve(out, out->n + ce->n);
                int32_t p = 0;
                for (int k = 0; k < ce->n; k++) {
                    int32_t id = ce->ids[k], l = b->rawlen[id];
                    int32_t a = p, e = p + l;
                    p = e;
                    int32_t A = (int32_t)i + a, E = (int32_t)i + e;
                    if (w[a] >= 0x80 || (e < wl && w[e] >= 0x80)) char_align(s, len, &A, &E);
                    plm_encoding_push(out, id, base + A, base + E, *word);
                }
                (*word)++;
                i = j;
                continue;
            }
        }
        if (wl > idcap) {
            if (ids != sbuf_ids) free(ids), free(st);
            idcap = PLM_MAX(wl, 2 * idcap);
            ids = plm_malloc((size_t)idcap * sizeof *ids);
            st = plm_malloc((size_t)idcap * sizeof *st);
        }
        n = plm_bpe_merge_word(b, w, wl, ids, st);
        plm_encoding_reserve(out, out->n + n);
        for (int k = 0; k < n; k++) {
            int32_t A = (int32_t)i + st[k], E = A + b->rawlen[ids[k]];
            if (w[st[k]] >= 0x80 || ((size_t)E < j && s[E] >= 0x80)) char_align(s, len, &A, &E);
            plm_encoding_push(out, ids[k], base + A, base + E, *word);
        }
        if (cache && wl <= CACHE_KEY && n <= CACHE_IDS) {
            int32_t sum = 0;
            for (int k = 0; k < n; k++) sum += b->rawlen[ids[k]];
            if (sum == wl) { /* no dropped bytes, so offsets follow from token lengths */
                __typeof__(&cache->e[0]) ce = &cache->e[h & (CACHE_SLOTS - 1)];
                ce->hash = h;
                ce->klen = (uint8_t)wl;
                ce->n = (uint8_t)n;
                memcpy(ce->key, w, (size_t)wl);
                memcpy(ce->ids, ids, (size_t)n * sizeof *ids);
            }
        }
        (*word)++;
        i = j;
    }
    if (ids != sbuf_ids) free(ids), free(st);
    if (ci >= 0) atomic_flag_clear_explicit(&b->cache_busy[ci], memory_order_release);
    return 0;
}

/* ---- loaders ---- */

/* 1-based line of a position in a buffer. */
static int line_of(const char *buf, const char *p) {
    int line = 1;
    for (const char *q = buf; q < p; q++) line += *q == '\n';
    return line;
}

/* Parses JSON, reporting a syntax error as path:line. */
cJSON *plm_json_parse(const char *path, const char *buf, size_t len) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, false);
    if (!j) {
        const char *e = end ? end : cJSON_GetErrorPtr();
        if (!e || e < buf || e > buf + len) e = buf;
        plm_error("%s:%d: invalid JSON", path, line_of(buf, e));
    }
    return j;
}

static plm_tokenizer *new_bpe_tokenizer(void) {
    plm_tokenizer *t = plm_tokenizer_new(PLM_TOK_BPE);
    t->bpe = plm_bpe_new();
    return t;
}

/* Finishes a loaded BPE tokenizer: <|endoftext|> special, roles, raw bytes. */
static plm_tokenizer *finish_loaded(plm_tokenizer *t) {
    int32_t eot = plm_vocab_find(&t->vocab, "<|endoftext|>", 13);
    if (eot >= 0) plm_tokenizer_add_added(t, eot, true);
    plm_tokenizer_map_special_roles(t);
    if (plm_bpe_finish(t) != 0) {
        plm_tokenizer_free(t);
        return NULL;
    }
    return t;
}

int plm_bpe_load_merges_text(plm_tokenizer *t, const char *path, const char *buf, size_t len) {
    const char *p = buf, *end = buf + len;
    int line = 0;
    char *tmp = NULL;
    size_t tmpcap = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r') n--;
        if (!(line == 1 && n >= 8 && memcmp(p, "#version", 8) == 0) && n > 0) {
            const char *sp = memchr(p, ' ', n);
            if (!sp || sp == p || sp == p + n - 1 || memchr(sp + 1, ' ', (size_t)(p + n - sp - 1))) {
                plm_error("%s:%d: expected two tokens separated by one space", path, line);
                free(tmp);
                return -1;
            }
            size_t la = (size_t)(sp - p), lb = n - la - 1;
            int32_t a = plm_vocab_find(&t->vocab, p, la), b = plm_vocab_find(&t->vocab, sp + 1, lb);
            if (a < 0 || b < 0) {
                plm_error("%s:%d: merge of a token not in the vocabulary: \"%.*s\"", path, line, (int)PLM_MIN(n, 200),
                          p);
                free(tmp);
                return -1;
            }
            if (la + lb + 1 > tmpcap) tmp = plm_realloc(tmp, tmpcap = la + lb + 64);
            memcpy(tmp, p, la);
            memcpy(tmp + la, sp + 1, lb);
            int32_t m = plm_vocab_find(&t->vocab, tmp, la + lb);
            if (m < 0) {
                plm_error("%s:%d: merged token \"%.*s\" not in the vocabulary", path, line, (int)PLM_MIN(la + lb, 200),
                          tmp);
                free(tmp);
                return -1;
            }
            plm_bpe_add_merge(t->bpe, a, b, m, -1);
        }
        p = nl ? nl + 1 : end;
    }
    free(tmp);
    return 0;
}

plm_tokenizer *plm_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe) {
    size_t n;
    char *buf = plm_read_file(encoder_json, &n);
    if (!buf) return NULL;
    cJSON *j = plm_json_parse(encoder_json, buf, n);
    if (!j) {
        free(buf);
        return NULL;
    }
    plm_tokenizer *t = new_bpe_tokenizer();
    if (!cJSON_IsObject(j)) {
        plm_error("%s:1: expected a JSON object token -> id", encoder_json);
        goto fail;
    }
    int k = 0;
    for (cJSON *e = j->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0 || e->valuedouble > 16777216 ||
            e->valuedouble != (double)(int32_t)e->valuedouble) {
            plm_error("%s:%d: entry %d (\"%.100s\"): id must be an integer in 0..16777216", encoder_json,
                      line_of(buf, strstr(buf, e->string) ? strstr(buf, e->string) : buf), k, e->string);
            goto fail;
        }
        if (plm_vocab_put(&t->vocab, (int32_t)e->valuedouble, e->string, strlen(e->string)) != 0) {
            plm_error("%s: entry %d (\"%.100s\"): duplicate token or id %d", encoder_json, k, e->string,
                      (int)e->valuedouble);
            goto fail;
        }
    }
    cJSON_Delete(j);
    j = NULL;
    free(buf);
    buf = plm_read_file(vocab_bpe, &n);
    if (!buf) goto fail;
    if (plm_bpe_load_merges_text(t, vocab_bpe, buf, n) != 0) goto fail;
    free(buf);
    return finish_loaded(t);
fail:
    cJSON_Delete(j);
    free(buf);
    plm_tokenizer_free(t);
    return NULL;
}

static int b64val(int c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Decodes base64 (with optional '=' padding); -1 on a bad char. */
static int b64decode(const char *s, size_t n, uint8_t *out) {
    while (n > 0 && s[n - 1] == '=') n--;
    int o = 0, bits = 0;
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64val((unsigned char)s[i]);
        if (v < 0) return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    return o;
}

plm_tokenizer *plm_tokenizer_load_tiktoken(const char *path) {
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return NULL;
    plm_tokenizer *t = new_bpe_tokenizer();
    plm_vocab rawv; /* raw bytes -> id, to derive the merges */
    plm_vocab_init(&rawv);
    const char *p = buf, *end = buf + len;
    int line = 0;
    uint8_t *raw = NULL;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        line++;
        size_t n = (size_t)(le - p);
        if (n && p[n - 1] == '\r') n--;
        if (n > 0) {
            const char *sp = memchr(p, ' ', n);
            char *rend;
            long rank = sp ? strtol(sp + 1, &rend, 10) : -1;
            if (!sp || sp == p || rank < 0 || rank > 16777216 || rend != p + n) {
                plm_error("%s:%d: expected \"base64 rank\"", path, line);
                goto fail;
            }
            raw = plm_realloc(raw, (size_t)(sp - p));
            int rl = b64decode(p, (size_t)(sp - p), raw);
            if (rl <= 0) {
                plm_error("%s:%d: bad base64 token", path, line);
                goto fail;
            }
            size_t bl;
            char *bls = plm_bpe_to_byte_level((char *)raw, (size_t)rl, &bl);
            int r1 = plm_vocab_put(&t->vocab, (int32_t)rank, bls, bl);
            free(bls);
            if (r1 != 0 || plm_vocab_put(&rawv, (int32_t)rank, (char *)raw, (size_t)rl) != 0) {
                plm_error("%s:%d: duplicate token or rank %ld", path, line, rank);
                goto fail;
            }
        }
        p = nl ? nl + 1 : end;
    }
    /* tiktoken merges the adjacent pair whose concatenation has the lowest rank. That
     * is BPE with a merge (a, b) of rank r for every split a|b of every token of rank r. */
    for (int id = 0; id < rawv.n; id++) {
        if (!rawv.tok[id]) {
            plm_error("%s: rank %d missing", path, id);
            goto fail;
        }
        for (int k = 1; k < rawv.len[id]; k++) {
            int32_t a = plm_vocab_find(&rawv, rawv.tok[id], (size_t)k);
            int32_t b = plm_vocab_find(&rawv, rawv.tok[id] + k, (size_t)(rawv.len[id] - k));
            if (a >= 0 && b >= 0) plm_bpe_add_merge(t->bpe, a, b, id, id);
        }
    }
    if (plm_vocab_find(&t->vocab, "<|endoftext|>", 13) < 0) plm_vocab_add(&t->vocab, "<|endoftext|>", 13);
    free(raw);
    plm_vocab_free(&rawv);
    free(buf);
    return finish_loaded(t);
fail:
    free(raw);
    plm_vocab_free(&rawv);
    free(buf);
    plm_tokenizer_free(t);
    return NULL;
}
