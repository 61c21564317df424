/* wordpiece_train.c - the WordPiece trainer, as HF tokenizers' WordPieceTrainer: that is
 * HF's BpeTrainer with continuing_subword_prefix "##" run over the words BERT's
 * normaliser and pre-tokenizer produce, whose vocabulary becomes the WordPiece vocab.
 *
 *   1. Stream the files line by line (1 MiB reads), normalise + pre-tokenize each line
 *      and count distinct words: memory is bounded by the distinct words, not the corpus.
 *   2. Vocabulary: special tokens first, then the alphabet (chars weighted by word
 *      counts; limit_alphabet keeps the most frequent) in code point order.
 *   3. Split words into chars, non-initial ones as "##c" (added to the vocab on first use).
 *   4. Repeatedly merge the most frequent adjacent pair (ties: the smaller pair of ids, as
 *      HF's heap), "a" + "##b" -> "ab", "##a" + "##b" -> "##ab", until vocab_size tokens
 *      or no pair occurs min_frequency times. Pair counts are updated incrementally from
 *      the words that contain the merged pair, with a lazy max-heap. */
#include "tokenizer/wordpiece.h"
#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- word counts: open-addressing hash of strings in an arena ---- */
typedef struct {
    uint64_t hash;
    int64_t count;
    uint64_t off; /* in the arena */
    uint32_t len;
} wc_entry;

typedef struct {
    wc_entry *e;
    uint32_t nslots, n;
    char *arena;
    size_t alen, acap;
} wc_map;

static void wc_grow(wc_map *m) {
    uint32_t ns = m->nslots ? 2 * m->nslots : 1u << 16;
    wc_entry *e = plm_calloc(ns, sizeof *e);
    for (uint32_t i = 0; i < m->nslots; i++) {
        if (!m->e[i].count) continue;
        uint32_t j = (uint32_t)m->e[i].hash & (ns - 1);
        while (e[j].count) j = (j + 1) & (ns - 1);
        e[j] = m->e[i];
    }
    free(m->e);
    m->e = e;
    m->nslots = ns;
}

static int wc_add(void *ctx, const char *w, int len, const int32_t *s, const int32_t *en) {
    (void)s, (void)en;
    wc_map *m = ctx;
    if (2 * (m->n + 1) > m->nslots) wc_grow(m);
    uint64_t h = plm_hash_bytes(w, (size_t)len);
    uint32_t j = (uint32_t)h & (m->nslots - 1);
    while (m->e[j].count) {
        if (m->e[j].hash == h && m->e[j].len == (uint32_t)len && !memcmp(m->arena + m->e[j].off, w, (size_t)len)) {
            m->e[j].count++;
            return 0;
        }
        j = (j + 1) & (m->nslots - 1);
    }
    if (m->alen + (size_t)len + 1 > m->acap) {
        m->acap = m->acap ? 2 * m->acap : 1 << 20;
        while (m->alen + (size_t)len + 1 > m->acap) m->acap *= 2;
        m->arena = plm_realloc(m->arena, m->acap);
    }
    memcpy(m->arena + m->alen, w, (size_t)len);
    m->arena[m->alen + (size_t)len] = 0;
    m->e[j] = (wc_entry){h, 1, (uint64_t)m->alen, (uint32_t)len};
    m->alen += (size_t)len + 1;
    m->n++;
    return 0;
}

static int count_file(const plm_wp_norm *nm, const char *path, wc_map *m) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        plm_error("%s: cannot open", path);
        return -1;
    }
    size_t cap = 1 << 20, have = 0;
    char *buf = plm_malloc(cap);
    long line = 0;
    int rc = 0;
    for (;;) {
        if (have == cap) { /* a line longer than the buffer: grow */
            cap *= 2;
            buf = plm_realloc(buf, cap);
        }
        size_t r = fread(buf + have, 1, cap - have, f);
        have += r;
        bool eof = r == 0;
        size_t start = 0;
        for (;;) {
            char *nl = memchr(buf + start, '\n', have - start);
            if (!nl && !(eof && start < have)) break;
            size_t end = nl ? (size_t)(nl - buf) : have;
            line++;
            if (plm_wp_pretokenize(nm, buf + start, end - start, wc_add, m) < 0) {
                plm_error("%s:%ld: invalid UTF-8", path, line);
                rc = -1;
                break;
            }
            start = nl ? end + 1 : have;
        }
        if (rc || eof) break;
        memmove(buf, buf + start, have - start);
        have -= start;
    }
    if (ferror(f) && !rc) {
        plm_error("%s: read error", path);
        rc = -1;
    }
    free(buf);
    fclose(f);
    return rc;
}

/* ---- pairs: hash (a, b) -> count and the words that contain the pair ---- */
typedef struct {
    uint64_t key; /* a << 32 | b; 0 = empty (pair (0, 0) is stored as key ~0) */
    int64_t count;
    int32_t *pos;
    int npos, cappos;
    bool touched;
} pair_t;

typedef struct {
    pair_t *p;
    uint32_t nslots, n;
} pair_map;

static uint64_t pkey(int32_t a, int32_t b) {
    uint64_t k = ((uint64_t)(uint32_t)a << 32) | (uint32_t)b;
    return k ? k : ~0ull;
}

static uint32_t phash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    return (uint32_t)k;
}

static pair_t *pair_get(pair_map *m, int32_t a, int32_t b) {
    if (2 * (m->n + 1) > m->nslots) {
        uint32_t ns = m->nslots ? 2 * m->nslots : 1u << 16;
        pair_t *p = plm_calloc(ns, sizeof *p);
        for (uint32_t i = 0; i < m->nslots; i++) {
            if (!m->p[i].key) continue;
            uint32_t j = phash(m->p[i].key) & (ns - 1);
            while (p[j].key) j = (j + 1) & (ns - 1);
            p[j] = m->p[i];
        }
        free(m->p);
        m->p = p;
        m->nslots = ns;
    }
    uint64_t k = pkey(a, b);
    uint32_t j = phash(k) & (m->nslots - 1);
    while (m->p[j].key && m->p[j].key != k) j = (j + 1) & (m->nslots - 1);
    if (!m->p[j].key) {
        m->p[j].key = k;
        m->n++;
    }
    return &m->p[j];
}

static void pair_addpos(pair_t *p, int32_t w) {
    if (p->npos && p->pos[p->npos - 1] == w) return; /* words are visited in order */
    if (p->npos == p->cappos) {
        p->cappos = p->cappos ? 2 * p->cappos : 4;
        p->pos = plm_realloc(p->pos, (size_t)p->cappos * sizeof *p->pos);
    }
    p->pos[p->npos++] = w;
}

/* ---- lazy max-heap of (count, pair): larger count first, then the smaller pair ---- */
typedef struct {
    int64_t count;
    int32_t a, b;
} hent;

typedef struct {
    hent *h;
    int n, cap;
} heap;

static bool hbefore(const hent *x, const hent *y) {
    if (x->count != y->count) return x->count > y->count;
    if (x->a != y->a) return x->a < y->a;
    return x->b < y->b;
}

static void hpush(heap *h, hent e) {
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 1 << 16;
        h->h = plm_realloc(h->h, (size_t)h->cap * sizeof *h->h);
    }
    int i = h->n++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!hbefore(&e, &h->h[p])) break;
        h->h[i] = h->h[p];
        i = p;
    }
    h->h[i] = e;
}

static hent hpop(heap *h) {
    hent top = h->h[0], x = h->h[--h->n];
    int i = 0;
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        const hent *best = &x;
        if (l < h->n && hbefore(&h->h[l], best)) m = l, best = &h->h[l];
        if (r < h->n && hbefore(&h->h[r], best)) m = r;
        if (m == i) break;
        h->h[i] = h->h[m];
        i = m;
    }
    if (h->n > 0) h->h[i] = x;
    return top;
}

/* ---- the trainer ---- */
typedef struct {
    uint32_t c;
    int64_t n;
} achar;

static int cmp_count(const void *x, const void *y) {
    const achar *a = x, *b = y;
    return a->n < b->n ? -1 : a->n > b->n ? 1 : (a->c < b->c ? -1 : a->c > b->c);
}

static int cmp_cp(const void *x, const void *y) {
    const achar *a = x, *b = y;
    return a->c < b->c ? -1 : a->c > b->c;
}

static int utf8_len(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }

static uint32_t utf8_cp(const unsigned char *s, int k) {
    if (k == 1) return s[0];
    if (k == 2) return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    if (k == 3) return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
           (s[3] & 0x3F);
}

plm_tokenizer *plm_tokenizer_train_wordpiece(const char *const *files, int nfiles, const plm_tokenizer_train_opts *o) {
    plm_tokenizer_train_opts def;
    if (!o) {
        plm_tokenizer_train_opts_default(&def);
        o = &def;
    }
    if (o->vocab_size <= 0) {
        plm_error("wordpiece train: vocab_size must be positive (got %d)", o->vocab_size);
        return NULL;
    }
    double t0 = plm_now();
    plm_wp_norm nm = {true, true, o->lowercase, o->lowercase};
    wc_map wc = {0};
    for (int f = 0; f < nfiles; f++) {
        if (count_file(&nm, files[f], &wc) < 0) {
            free(wc.e);
            free(wc.arena);
            return NULL;
        }
        if (o->show_progress) fprintf(stderr, "\rwordpiece train: counted %d/%d files, %u words", f + 1, nfiles, wc.n);
    }
    if (o->show_progress) fprintf(stderr, " (%.1fs)\n", plm_now() - t0);

    plm_tokenizer *t = plm_tokenizer_new(PLM_TOK_WORDPIECE);
    t->wp_clean_text = t->wp_chinese_chars = true;
    t->wp_lowercase = t->wp_strip_accents = o->lowercase;
    snprintf(t->wp_prefix, sizeof t->wp_prefix, "##");
    t->wp_max_input_chars = 100;
    plm_vocab *v = &t->vocab;
    for (int i = 0; i < o->n_special; i++) plm_vocab_add(v, o->special_tokens[i], strlen(o->special_tokens[i]));

    int nw = 0;
    wc_entry *words = plm_malloc(((size_t)wc.n + 1) * sizeof *words);
    for (uint32_t i = 0; i < wc.nslots; i++)
        if (wc.e[i].count) words[nw++] = wc.e[i];
    free(wc.e);
    /* the alphabet: distinct chars (a hash set), then their counts weighted by word counts */
    int na = 0, capa = 1024;
    achar *alpha = plm_malloc((size_t)capa * sizeof *alpha);
    {
        uint32_t ns = 1 << 12;
        int32_t *slot = plm_malloc(ns * sizeof *slot);
        memset(slot, -1, ns * sizeof *slot);
        for (int w = 0; w < nw; w++) {
            const unsigned char *s = (const unsigned char *)wc.arena + words[w].off;
            for (uint32_t i = 0; i < words[w].len;) {
                int k = utf8_len(s[i]);
                uint32_t c = utf8_cp(s + i, k);
                i += (uint32_t)k;
                uint32_t j = phash(c + 1) & (ns - 1);
                while (slot[j] >= 0 && alpha[slot[j]].c != c) j = (j + 1) & (ns - 1);
                if (slot[j] >= 0) continue;
                if (na == capa) alpha = plm_realloc(alpha, (size_t)(capa *= 2) * sizeof *alpha);
                alpha[na] = (achar){c, 0};
                slot[j] = na++;
                if (2 * (uint32_t)na > ns) { /* grow and rehash */
                    ns *= 2;
                    slot = plm_realloc(slot, ns * sizeof *slot);
                    memset(slot, -1, ns * sizeof *slot);
                    for (int a = 0; a < na; a++) {
                        uint32_t q = phash(alpha[a].c + 1) & (ns - 1);
                        while (slot[q] >= 0) q = (q + 1) & (ns - 1);
                        slot[q] = a;
                    }
                }
            }
        }
        free(slot);
        qsort(alpha, (size_t)na, sizeof *alpha, cmp_cp);
        for (int w = 0; w < nw; w++) {
            const unsigned char *s = (const unsigned char *)wc.arena + words[w].off;
            for (uint32_t i = 0; i < words[w].len;) {
                int k = utf8_len(s[i]);
                uint32_t c = utf8_cp(s + i, k);
                i += (uint32_t)k;
                int lo = 0, hi = na - 1;
                while (lo < hi) {
                    int mid = (lo + hi) / 2;
                    if (alpha[mid].c < c)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                alpha[lo].n += words[w].count;
            }
        }
    }
    if (o->limit_alphabet > 0 && na > o->limit_alphabet) {
        qsort(alpha, (size_t)na, sizeof *alpha, cmp_count);
        int drop = na - o->limit_alphabet;
        memmove(alpha, alpha + drop, (size_t)(na - drop) * sizeof *alpha);
        na -= drop;
        qsort(alpha, (size_t)na, sizeof *alpha, cmp_cp);
    }
    for (int a = 0; a < na; a++) {
        char s[4];
        uint32_t c = alpha[a].c;
        int k = c < 0x80      ? (s[0] = (char)c, 1)
                : c < 0x800   ? (s[0] = (char)(0xC0 | (c >> 6)), s[1] = (char)(0x80 | (c & 0x3F)), 2)
                : c < 0x10000 ? (s[0] = (char)(0xE0 | (c >> 12)), s[1] = (char)(0x80 | ((c >> 6) & 0x3F)),
                                 s[2] = (char)(0x80 | (c & 0x3F)), 3)
                              : (s[0] = (char)(0xF0 | (c >> 18)), s[1] = (char)(0x80 | ((c >> 12) & 0x3F)),
                                 s[2] = (char)(0x80 | ((c >> 6) & 0x3F)), s[3] = (char)(0x80 | (c & 0x3F)), 4);
        plm_vocab_add(v, s, (size_t)k);
    }
    free(alpha);

    /* words as symbol ids; non-initial chars as "##c" */
    size_t nsym = 0;
    for (int w = 0; w < nw; w++) nsym += words[w].len;
    int32_t *sym = plm_malloc((nsym + 1) * sizeof *sym);
    int64_t *woff = plm_malloc(((size_t)nw + 1) * sizeof *woff);
    int32_t *wlen = plm_malloc(((size_t)nw + 1) * sizeof *wlen);
    size_t at = 0;
    for (int w = 0; w < nw; w++) {
        woff[w] = (int64_t)at;
        const char *s = wc.arena + words[w].off;
        for (uint32_t i = 0; i < words[w].len;) {
            int k = utf8_len((unsigned char)s[i]);
            int32_t id = plm_vocab_find(v, s + i, (size_t)k);
            if (id >= 0) {
                if (i > 0) {
                    char buf[8] = "##";
                    memcpy(buf + 2, s + i, (size_t)k);
                    id = plm_vocab_add(v, buf, (size_t)k + 2);
                }
                sym[at++] = id;
            }
            i += (uint32_t)k;
        }
        wlen[w] = (int32_t)(at - (size_t)woff[w]);
    }
    free(wc.arena);

    /* initial pair counts */
    pair_map pm = {0};
    for (int w = 0; w < nw; w++) {
        const int32_t *s = sym + woff[w];
        for (int i = 0; i + 1 < wlen[w]; i++) {
            pair_t *p = pair_get(&pm, s[i], s[i + 1]);
            p->count += words[w].count;
            pair_addpos(p, w);
        }
    }
    heap hp = {0};
    for (uint32_t i = 0; i < pm.nslots; i++) {
        pair_t *p = &pm.p[i];
        if (p->key && p->count > 0) {
            uint64_t k = p->key == ~0ull ? 0 : p->key;
            hpush(&hp, (hent){p->count, (int32_t)(k >> 32), (int32_t)(uint32_t)k});
        }
    }

    /* merges */
    int ntouched = 0, captouched = 1024;
    uint64_t *touched = plm_malloc((size_t)captouched * sizeof *touched); /* keys: entries move on rehash */
    char *tokbuf = NULL;
    size_t tokcap = 0;
    int merges = 0;
    while (v->n < o->vocab_size && hp.n > 0) {
        hent top = hpop(&hp);
        pair_t *tp = pair_get(&pm, top.a, top.b);
        if (top.count != tp->count) {
            if (tp->count > 0) hpush(&hp, (hent){tp->count, top.a, top.b});
            continue;
        }
        if (top.count < 1 || top.count < o->min_frequency) break;
        /* the new token: a + b without b's "##" */
        const char *sa = v->tok[top.a], *sb = v->tok[top.b];
        size_t la = (size_t)v->len[top.a], lb = (size_t)v->len[top.b];
        if (lb >= 2 && sb[0] == '#' && sb[1] == '#') sb += 2, lb -= 2;
        if (la + lb > tokcap) tokbuf = plm_realloc(tokbuf, tokcap = 2 * (la + lb) + 16);
        memcpy(tokbuf, sa, la);
        memcpy(tokbuf + la, sb, lb);
        int32_t nid = plm_vocab_add(v, tokbuf, la + lb);
        merges++;
        /* merge in every word that has (had) the pair; positions are copied because
         * adding positions to other pairs may move the table */
        int npos = tp->npos;
        int32_t *pos = plm_malloc(((size_t)npos + 1) * sizeof *pos);
        memcpy(pos, tp->pos, (size_t)npos * sizeof *pos);
        int32_t a = top.a, b = top.b;
        for (int q = 0; q < npos; q++) {
            int w = pos[q];
            int32_t *s = sym + woff[w];
            int n = wlen[w];
            int64_t cnt = words[w].count;
            for (int i = 0; i + 1 < n; i++) {
                if (s[i] != a || s[i + 1] != b) continue;
                /* HF's Word::merge changes: (prev, a) -1, (prev, new) +1, (b, next) -1, (new, next) +1 */
                if (i > 0) {
                    pair_get(&pm, s[i - 1], a)->count -= cnt;
                    pair_t *p = pair_get(&pm, s[i - 1], nid);
                    p->count += cnt;
                    pair_addpos(p, w);
                    if (!p->touched) {
                        p->touched = true;
                        if (ntouched == captouched)
                            touched = plm_realloc(touched, (size_t)(captouched *= 2) * sizeof *touched);
                        touched[ntouched++] = p->key;
                    }
                }
                s[i] = nid;
                memmove(s + i + 1, s + i + 2, (size_t)(n - i - 2) * sizeof *s);
                n--;
                if (i + 1 < n) {
                    pair_get(&pm, b, s[i + 1])->count -= cnt;
                    pair_t *p = pair_get(&pm, nid, s[i + 1]);
                    p->count += cnt;
                    pair_addpos(p, w);
                    if (!p->touched) {
                        p->touched = true;
                        if (ntouched == captouched)
                            touched = plm_realloc(touched, (size_t)(captouched *= 2) * sizeof *touched);
                        touched[ntouched++] = p->key;
                    }
                }
            }
            wlen[w] = n;
        }
        free(pos);
        for (int i = 0; i < ntouched; i++) {
            uint64_t k = touched[i] == ~0ull ? 0 : touched[i];
            pair_t *p = pair_get(&pm, (int32_t)(k >> 32), (int32_t)(uint32_t)k);
            p->touched = false;
            if (p->count > 0) hpush(&hp, (hent){p->count, (int32_t)(k >> 32), (int32_t)(uint32_t)k});
        }
        ntouched = 0;
        if (o->show_progress && merges % 1000 == 0)
            fprintf(stderr, "\rwordpiece train: %d/%d tokens", v->n, o->vocab_size);
    }
    if (o->show_progress)
        fprintf(stderr, "\rwordpiece train: %d tokens, %d merges (%.1fs)\n", v->n, merges, plm_now() - t0);

    for (uint32_t i = 0; i < pm.nslots; i++) free(pm.p[i].pos);
    free(pm.p);
    free(hp.h);
    free(touched);
    free(tokbuf);
    free(sym);
    free(woff);
    free(wlen);
    free(words);

    t->wp_unk_id = plm_vocab_find(v, "[UNK]", 5);
    for (int i = 0; i < o->n_special; i++) {
        int32_t id = plm_vocab_find(v, o->special_tokens[i], strlen(o->special_tokens[i]));
        if (id >= 0) plm_tokenizer_add_added(t, id, true);
    }
    plm_tokenizer_map_special_roles(t);
    plm_wordpiece_prepare(t);
    return t;
}
