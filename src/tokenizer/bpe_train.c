/* bpe_train.c - byte-level BPE trainer, equivalent to HF tokenizers' BpeTrainer with the
 * ByteLevel pre-tokenizer: files are read line by line (each line keeps its "\n", as
 * HF's train_from_files), pre-tokenized with GPT-2's pattern and counted while
 * streaming, so memory holds only the distinct words. Then pairs are merged by count,
 * ties going to the smallest (left id, right id) as HF's merge queue orders them. */
#include "tokenizer/bpe.h"
#include "core/common.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- word counts ---- */

typedef struct {
    int32_t *slots; /* entry index, -1 empty */
    uint32_t nslots;
    int32_t n, cap;
    uint64_t *hash, *count, *off;
    uint32_t *len;
    char *arena;
    size_t alen, acap;
} word_table;

static void wt_rehash(word_table *t, uint32_t ns) {
    free(t->slots);
    t->slots = plm_malloc(ns * sizeof *t->slots);
    memset(t->slots, 0xff, ns * sizeof *t->slots);
    t->nslots = ns;
    for (int32_t e = 0; e < t->n; e++) {
        uint32_t h = (uint32_t)t->hash[e] & (ns - 1);
        while (t->slots[h] >= 0) h = (h + 1) & (ns - 1);
        t->slots[h] = e;
    }
}

static void wt_add(word_table *t, const uint8_t *s, size_t n, uint64_t hash, uint64_t count) {
    if ((uint32_t)t->n * 2 >= t->nslots) wt_rehash(t, t->nslots ? t->nslots * 2 : 1 << 16);
    uint32_t h = (uint32_t)hash & (t->nslots - 1);
    for (;;) {
        int32_t e = t->slots[h];
        if (e < 0) break;
        if (t->hash[e] == hash && t->len[e] == n && memcmp(t->arena + t->off[e], s, n) == 0) {
            t->count[e] += count;
            return;
        }
        h = (h + 1) & (t->nslots - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1 << 15;
        t->hash = plm_realloc(t->hash, (size_t)t->cap * sizeof *t->hash);
        t->count = plm_realloc(t->count, (size_t)t->cap * sizeof *t->count);
        t->off = plm_realloc(t->off, (size_t)t->cap * sizeof *t->off);
        t->len = plm_realloc(t->len, (size_t)t->cap * sizeof *t->len);
    }
    if (t->alen + n > t->acap) {
        t->acap = PLM_MAX(t->acap * 2, t->alen + n + (1 << 20));
        t->arena = plm_realloc(t->arena, t->acap);
    }
    memcpy(t->arena + t->alen, s, n);
    int32_t e = t->n++;
    t->hash[e] = hash;
    t->count[e] = count;
    t->off[e] = t->alen;
    t->len[e] = (uint32_t)n;
    t->alen += n;
    t->slots[h] = e;
}

static void wt_free(word_table *t) {
    free(t->slots);
    free(t->hash);
    free(t->count);
    free(t->off);
    free(t->len);
    free(t->arena);
    memset(t, 0, sizeof *t);
}

/* Counts the words of text[0..n), which holds whole lines. */
static void count_lines(word_table *t, const uint8_t *s, size_t n) {
    size_t p = 0;
    while (p < n) {
        const uint8_t *nl = memchr(s + p, '\n', n - p);
        size_t le = nl ? (size_t)(nl - s) + 1 : n; /* the line keeps its newline */
        size_t i = p;
        while (i < le) {
            size_t j = plm_bpe_pretok_next(s, le, i);
            wt_add(t, s + i, j - i, plm_word_hash(s + i, j - i), 1);
            i = j;
        }
        p = le;
    }
}

#define CHUNK (8u << 20)

/* Streams the files in chunks cut at newlines, counting on nthreads threads. */
static int count_files(const char *const *files, int nfiles, int nthreads, bool progress, word_table *out) {
    word_table *tabs = plm_calloc((size_t)nthreads, sizeof *tabs);
    char *buf = plm_malloc(CHUNK + 1);
    size_t total = 0;
    double t0 = plm_now();
    int rc = 0;
    for (int f = 0; f < nfiles && rc == 0; f++) {
        FILE *fp = fopen(files[f], "rb");
        if (!fp) {
            plm_error("%s: %s", files[f], strerror(errno));
            rc = -1;
            break;
        }
        size_t have = 0;
        for (;;) {
            size_t got = fread(buf + have, 1, CHUNK - have, fp);
            size_t n = have + got;
            if (n == 0) break;
            bool eof = got < CHUNK - have;
            size_t cut = n;
            if (!eof) { /* keep the partial last line for the next chunk */
                while (cut > 0 && buf[cut - 1] != '\n') cut--;
                if (cut == 0) cut = n; /* a line longer than the chunk is split */
            }
            /* Split [0, cut) into nthreads pieces at newlines. */
            size_t bounds[65];
            int nt = PLM_MIN(nthreads, 64);
            bounds[0] = 0;
            for (int k = 1; k < nt; k++) {
                size_t b = PLM_MAX(bounds[k - 1], cut * (size_t)k / (size_t)nt);
                while (b < cut && b > 0 && buf[b - 1] != '\n') b++;
                bounds[k] = b;
            }
            bounds[nt] = cut;
#pragma omp parallel for num_threads(nt) schedule(static, 1)
            for (int k = 0; k < nt; k++)
                count_lines(&tabs[k], (const uint8_t *)buf + bounds[k], bounds[k + 1] - bounds[k]);
            total += cut;
            memmove(buf, buf + cut, n - cut);
            have = n - cut;
            if (progress)
                fprintf(stderr, "\rcounting words: %.1f MB, %d distinct (%.1fs)", (double)total / 1e6, tabs[0].n,
                        plm_now() - t0);
            if (eof && have == 0) break;
        }
        if (ferror(fp)) {
            plm_error("%s: read error", files[f]);
            rc = -1;
        }
        fclose(fp);
    }
    free(buf);
    if (progress) fputc('\n', stderr);
    /* Merge the per-thread tables into the first. */
    for (int k = 1; k < nthreads; k++) {
        for (int32_t e = 0; e < tabs[k].n; e++)
            wt_add(&tabs[0], (const uint8_t *)tabs[k].arena + tabs[k].off[e], tabs[k].len[e], tabs[k].hash[e],
                   tabs[k].count[e]);
        wt_free(&tabs[k]);
    }
    *out = tabs[0];
    free(tabs);
    return rc;
}

/* ---- pairs ---- */

typedef struct {
    uint64_t *key; /* slots: a << 32 | b, UINT64_MAX empty */
    int32_t *idx;
    uint32_t nslots;
    int32_t n, cap;
    int64_t *count;
    int32_t **pos; /* words where the pair was seen (may hold stale entries) */
    int32_t *npos, *cappos;
    uint64_t *pk; /* pair key per index */
} pair_table;

static inline uint32_t mix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return (uint32_t)k;
}

static void pt_rehash(pair_table *t, uint32_t ns) {
    free(t->key);
    free(t->idx);
    t->key = plm_malloc(ns * sizeof *t->key);
    t->idx = plm_malloc(ns * sizeof *t->idx);
    memset(t->key, 0xff, ns * sizeof *t->key);
    t->nslots = ns;
    for (int32_t p = 0; p < t->n; p++) {
        uint32_t h = mix64(t->pk[p]) & (ns - 1);
        while (t->key[h] != UINT64_MAX) h = (h + 1) & (ns - 1);
        t->key[h] = t->pk[p];
        t->idx[h] = p;
    }
}

static int32_t pt_get(pair_table *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    if ((uint32_t)t->n * 2 >= t->nslots) pt_rehash(t, t->nslots ? t->nslots * 2 : 1 << 16);
    uint32_t h = mix64(key) & (t->nslots - 1);
    while (t->key[h] != UINT64_MAX) {
        if (t->key[h] == key) return t->idx[h];
        h = (h + 1) & (t->nslots - 1);
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 1 << 16;
        t->count = plm_realloc(t->count, (size_t)t->cap * sizeof *t->count);
        t->pos = plm_realloc(t->pos, (size_t)t->cap * sizeof *t->pos);
        t->npos = plm_realloc(t->npos, (size_t)t->cap * sizeof *t->npos);
        t->cappos = plm_realloc(t->cappos, (size_t)t->cap * sizeof *t->cappos);
        t->pk = plm_realloc(t->pk, (size_t)t->cap * sizeof *t->pk);
    }
    int32_t p = t->n++;
    t->count[p] = 0;
    t->pos[p] = NULL;
    t->npos[p] = t->cappos[p] = 0;
    t->pk[p] = key;
    t->key[h] = key;
    t->idx[h] = p;
    return p;
}

static void pt_add_pos(pair_table *t, int32_t p, int32_t w) {
    if (t->npos[p] > 0 && t->pos[p][t->npos[p] - 1] == w) return;
    if (t->npos[p] == t->cappos[p]) {
        t->cappos[p] = t->cappos[p] ? t->cappos[p] * 2 : 4;
        t->pos[p] = plm_realloc(t->pos[p], (size_t)t->cappos[p] * sizeof **t->pos);
    }
    t->pos[p][t->npos[p]++] = w;
}

static void pt_free(pair_table *t) {
    for (int32_t p = 0; p < t->n; p++) free(t->pos[p]);
    free(t->key);
    free(t->idx);
    free(t->count);
    free(t->pos);
    free(t->npos);
    free(t->cappos);
    free(t->pk);
}

/* Max-heap of (count, pair): higher count first, then the smaller pair (a, b). */
typedef struct {
    int64_t count;
    uint64_t key;
} qent;

static inline bool q_before(qent x, qent y) { return x.count > y.count || (x.count == y.count && x.key < y.key); }

typedef struct {
    qent *e;
    size_t n, cap;
} queue;

static void q_push(queue *q, qent x) {
    if (q->n == q->cap) {
        q->cap = q->cap ? q->cap * 2 : 1 << 16;
        q->e = plm_realloc(q->e, q->cap * sizeof *q->e);
    }
    size_t i = q->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!q_before(x, q->e[p])) break;
        q->e[i] = q->e[p];
        i = p;
    }
    q->e[i] = x;
}

static qent q_pop(queue *q) {
    qent top = q->e[0], x = q->e[--q->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= q->n) break;
        if (c + 1 < q->n && q_before(q->e[c + 1], q->e[c])) c++;
        if (!q_before(q->e[c], x)) break;
        q->e[i] = q->e[c];
        i = c;
    }
    if (q->n) q->e[i] = x;
    return top;
}

/* ---- training ---- */

typedef struct {
    int32_t *sym; /* symbols of all words, word w at sym + start[w] */
    int64_t *start;
    int32_t *len;
    uint64_t *count;
    int32_t n;
} words_t;

plm_tokenizer *plm_tokenizer_train_bpe(const char *const *files, int nfiles, const plm_tokenizer_train_opts *o) {
    plm_tokenizer_train_opts def;
    if (!o) {
        plm_tokenizer_train_opts_default(&def);
        o = &def;
    }
    if (nfiles <= 0) {
        plm_error("train: no input files");
        return NULL;
    }
    int nthreads = o->num_threads > 0 ? o->num_threads : omp_get_num_procs();
    nthreads = PLM_MAX(1, PLM_MIN(nthreads, 64));
    double t0 = plm_now();
    word_table wt = {0};
    if (count_files(files, nfiles, nthreads, o->show_progress, &wt) != 0) {
        wt_free(&wt);
        return NULL;
    }

    plm_tokenizer *t = plm_tokenizer_new(PLM_TOK_BPE);
    t->bpe = plm_bpe_new();
    plm_vocab *v = &t->vocab;
    /* 1. special tokens, in order */
    for (int i = 0; i < o->n_special; i++) {
        if (!o->special_tokens[i] || !o->special_tokens[i][0]) continue;
        int32_t id = plm_vocab_add(v, o->special_tokens[i], strlen(o->special_tokens[i]));
        plm_tokenizer_add_added(t, id, true);
    }
    /* 2. alphabet: the byte chars (all 256, or those seen), sorted by codepoint as HF */
    bool seen[256] = {0};
    if (o->bpe_observed_alphabet) {
        for (int32_t e = 0; e < wt.n; e++)
            for (uint32_t k = 0; k < wt.len[e]; k++) seen[(uint8_t)wt.arena[wt.off[e] + k]] = true;
    } else {
        for (int b = 0; b < 256; b++) seen[b] = true;
    }
    int order[256], no = 0;
    uint32_t cpof[256];
    for (int b = 0; b < 256; b++) {
        int l;
        const uint8_t *c = (const uint8_t *)plm_bpe_byte_char((uint8_t)b, &l);
        cpof[b] = l == 1 ? c[0] : (uint32_t)((c[0] & 0x1F) << 6 | (c[1] & 0x3F));
        if (seen[b]) order[no++] = b;
    }
    for (int i = 1; i < no; i++) /* insertion sort by codepoint */
        for (int k = i; k > 0 && cpof[order[k]] < cpof[order[k - 1]]; k--) {
            int tmp = order[k];
            order[k] = order[k - 1];
            order[k - 1] = tmp;
        }
    int32_t byte_sym[256];
    for (int b = 0; b < 256; b++) byte_sym[b] = -1;
    for (int i = 0; i < no; i++) {
        int l;
        const char *c = plm_bpe_byte_char((uint8_t)order[i], &l);
        byte_sym[order[i]] = plm_vocab_add(v, c, (size_t)l);
    }

    /* 3. words as symbol sequences */
    words_t W = {0};
    W.n = wt.n;
    W.start = plm_malloc(((size_t)W.n + 1) * sizeof *W.start);
    W.len = plm_malloc(((size_t)W.n + 1) * sizeof *W.len);
    W.count = plm_malloc(((size_t)W.n + 1) * sizeof *W.count);
    W.sym = plm_malloc((wt.alen + 1) * sizeof *W.sym);
    int64_t ns = 0;
    for (int32_t e = 0; e < wt.n; e++) {
        W.start[e] = ns;
        W.count[e] = wt.count[e];
        int32_t l = 0;
        for (uint32_t k = 0; k < wt.len[e]; k++) {
            int32_t s = byte_sym[(uint8_t)wt.arena[wt.off[e] + k]];
            if (s >= 0) W.sym[ns + l++] = s;
        }
        W.len[e] = l;
        ns += l;
    }
    wt_free(&wt);

    /* 4. pair counts and where they occur */
    pair_table P = {0};
    for (int32_t w = 0; w < W.n; w++) {
        int32_t *s = W.sym + W.start[w];
        for (int32_t i = 0; i + 1 < W.len[w]; i++) {
            int32_t p = pt_get(&P, s[i], s[i + 1]);
            P.count[p] += (int64_t)W.count[w];
            pt_add_pos(&P, p, w);
        }
    }
    queue Q = {0};
    for (int32_t p = 0; p < P.n; p++)
        if (P.count[p] > 0) q_push(&Q, (qent){P.count[p], P.pk[p]});

    /* 5. merges */
    int32_t *stamp = plm_malloc(((size_t)W.n + 1) * sizeof *stamp);
    memset(stamp, 0xff, ((size_t)W.n + 1) * sizeof *stamp);
    int32_t *touched = NULL;
    uint8_t *is_touched = NULL;
    int ntouched = 0, captouched = 0, captflag = 0;
    char *tmp = NULL;
    size_t tmpcap = 0;
    int iter = 0;
    int target = PLM_MAX(o->vocab_size, 0);
    while (v->n < target && Q.n > 0) {
        qent top = q_pop(&Q);
        int32_t a = (int32_t)(top.key >> 32), b = (int32_t)(uint32_t)top.key;
        int32_t p = pt_get(&P, a, b);
        if (top.count != P.count[p]) { /* stale: requeue with the current count */
            if (P.count[p] > 0) q_push(&Q, (qent){P.count[p], top.key});
            continue;
        }
        if (top.count < 1 || (int64_t)o->min_frequency > top.count) break;
        size_t la = (size_t)v->len[a], lb = (size_t)v->len[b];
        if (la + lb > tmpcap) tmp = plm_realloc(tmp, tmpcap = la + lb + 256);
        memcpy(tmp, v->tok[a], la);
        memcpy(tmp + la, v->tok[b], lb);
        int32_t nid = plm_vocab_add(v, tmp, la + lb);
        plm_bpe_add_merge(t->bpe, a, b, nid, -1);
        /* Merge the pair in every word that holds it, as HF's Word::merge, updating the
         * counts of the neighbouring pairs. */
        int32_t *pos = P.pos[p];
        int32_t npos = P.npos[p];
        P.pos[p] = NULL;
        P.npos[p] = P.cappos[p] = 0;
        ntouched = 0;
        for (int32_t k = 0; k < npos; k++) {
            int32_t w = pos[k];
            if (stamp[w] == iter) continue;
            stamp[w] = iter;
            int32_t *s = W.sym + W.start[w];
            int32_t n = W.len[w];
            int64_t c = (int64_t)W.count[w];
            for (int32_t i = 0; i < n; i++) {
                if (!(s[i] == a && i + 1 < n && s[i + 1] == b)) continue;
                int32_t q[2] = {-1, -1};
                /* (pt_get may grow the table: index P.count only after it returns) */
                if (i > 0) {
                    int32_t r = pt_get(&P, s[i - 1], a);
                    P.count[r] -= c;
                    q[0] = pt_get(&P, s[i - 1], nid);
                }
                s[i] = nid;
                memmove(s + i + 1, s + i + 2, (size_t)(n - i - 2) * sizeof *s);
                n--;
                if (i < n - 1) {
                    int32_t r = pt_get(&P, b, s[i + 1]);
                    P.count[r] -= c;
                    q[1] = pt_get(&P, nid, s[i + 1]);
                }
                for (int z = 0; z < 2; z++) {
                    if (q[z] < 0) continue;
                    P.count[q[z]] += c;
                    pt_add_pos(&P, q[z], w);
                    if (q[z] >= captflag) {
                        int nc = PLM_MAX(P.cap, captflag * 2);
                        is_touched = plm_realloc(is_touched, (size_t)nc);
                        memset(is_touched + captflag, 0, (size_t)(nc - captflag));
                        captflag = nc;
                    }
                    if (!is_touched[q[z]]) {
                        is_touched[q[z]] = 1;
                        if (ntouched == captouched) {
                            captouched = captouched ? captouched * 2 : 1024;
                            touched = plm_realloc(touched, (size_t)captouched * sizeof *touched);
                        }
                        touched[ntouched++] = q[z];
                    }
                }
            }
            W.len[w] = n;
        }
        free(pos);
        P.count[p] = 0; /* merged everywhere */
        for (int k = 0; k < ntouched; k++) {
            int32_t q = touched[k];
            is_touched[q] = 0;
            if (P.count[q] > 0) q_push(&Q, (qent){P.count[q], P.pk[q]});
        }
        iter++;
        if (o->show_progress && (iter % 500 == 0 || v->n >= target))
            fprintf(stderr, "\rmerges: %d, vocabulary %d/%d (%.1fs)", iter, v->n, target, plm_now() - t0);
    }
    if (o->show_progress)
        fprintf(stderr, "\rmerges: %d, vocabulary %d/%d (%.1fs)\n", iter, v->n, target, plm_now() - t0);
    free(tmp);
    free(touched);
    free(is_touched);
    free(stamp);
    free(Q.e);
    pt_free(&P);
    free(W.sym);
    free(W.start);
    free(W.len);
    free(W.count);
    plm_tokenizer_map_special_roles(t);
    /* The mask takes the space before it, as RoBERTa's <mask> (lstrip): in training a
     * masked word "Ġcat" became one [MASK]; "The [MASK] of" must not add a lone "Ġ". */
    plm_tokenizer_set_added_strip(t, t->special[PLM_SPECIAL_MASK], true, false);
    if (plm_bpe_finish(t) != 0) {
        plm_tokenizer_free(t);
        return NULL;
    }
    return t;
}
