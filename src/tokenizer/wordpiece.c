/* wordpiece.c - BERT WordPiece encoding, exactly as HF tokenizers' BertNormalizer +
 * BertPreTokenizer + WordPiece model, with byte offsets into the original text; and
 * the vocab.txt loader.
 *
 * The pipeline, per segment of input (a stretch with no added token in it):
 *   1. clean_text:    drop NUL, U+FFFD and "other" chars (Cc Cf Co, not \t\n\r; HF's
 *                     tables leave unassigned code points alone); map whitespace to ' '.
 *   2. chinese_chars: put ' ' around CJK ideographs.
 *   3. strip_accents: NFD (with canonical reordering), then drop Mn.
 *   4. lowercase:     Rust char::to_lowercase (full mapping: U+0130 -> "i\u0307").
 *   5. pre-tokenize:  split on whitespace (removed) and on punctuation (isolated).
 *   6. WordPiece:     greedy longest-match-first, "##" continuations, [UNK] for a word
 *                     that cannot be covered or is longer than max_input_chars_per_word.
 * Every normalised character carries the original byte range of the character it came
 * from, assigned exactly as HF's NormalizedString::transform does (positionally, so
 * that canonical reordering moves alignments the way HF's do); a token's offsets are
 * the first byte's start and the last byte's end. */
#include "tokenizer/wordpiece.h"
#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "tokenizer/wordpiece_unicode.h"

/* ------------------------------------------------------------------------------------
 * Character classes. HF uses Rust's std (whitespace, lowercase) and the
 * unicode_categories crate (other, punctuation, Mn), whose tables are older than
 * utf8proc's; wordpiece_unicode.h lists the code points where they disagree, measured
 * against HF over every code point (tests/ref/bert_unicode_dump.js). */

static bool in_ranges(const uint32_t (*r)[2], int n, uint32_t c) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < r[mid][0])
            hi = mid - 1;
        else if (c > r[mid][1])
            lo = mid + 1;
        else
            return true;
    }
    return false;
}

bool plm_wp_is_whitespace(uint32_t c) {
    if (c == ' ' || (c >= 9 && c <= 13)) return true;
    if (c < 0x85) return false;
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

bool plm_wp_is_control(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    if (c < 0x20 || c == 0x7F) return true;
    if (c < 0x80) return false;
    if (in_ranges(wp_other_extra, PLM_ARRAY_LEN(wp_other_extra), c)) return true;
    if (in_ranges(wp_other_missing, PLM_ARRAY_LEN(wp_other_missing), c)) return false;
    /* unicode_categories' "other" has no unassigned (Cn) code points in practice */
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF || k == UTF8PROC_CATEGORY_CO ||
           k == UTF8PROC_CATEGORY_CS;
}

bool plm_wp_is_punct(uint32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    if (in_ranges(wp_punct_extra, PLM_ARRAY_LEN(wp_punct_extra), c)) return true;
    if (in_ranges(wp_punct_missing, PLM_ARRAY_LEN(wp_punct_missing), c)) return false;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
}

/* Mn as the unicode_categories crate has it (drop after NFD when stripping accents). */
static bool is_mn(uint32_t c) {
    if (c < 0x300) return false;
    if (in_ranges(wp_mn_extra, PLM_ARRAY_LEN(wp_mn_extra), c)) return true;
    if (in_ranges(wp_mn_missing, PLM_ARRAY_LEN(wp_mn_missing), c)) return false;
    return utf8proc_category((utf8proc_int32_t)c) == UTF8PROC_CATEGORY_MN;
}

bool plm_wp_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int ccc(uint32_t c) {
    if (c < 0x300) return 0;
    int k = utf8proc_get_property((utf8proc_int32_t)c)->combining_class;
    if (k && in_ranges(wp_ccc_zero, PLM_ARRAY_LEN(wp_ccc_zero), c)) return 0; /* unknown to HF's tables */
    return k;
}

/* Rust's char::to_lowercase for one char whose lowercase is one char. */
static uint32_t lower1(uint32_t c) {
    int lo = 0, hi = (int)PLM_ARRAY_LEN(wp_lower_pairs) - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (c < wp_lower_pairs[mid][0])
            hi = mid - 1;
        else if (c > wp_lower_pairs[mid][0])
            lo = mid + 1;
        else
            return wp_lower_pairs[mid][1];
    }
    return (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
}

/* Strict UTF-8 decoding as Rust's str: no overlongs, surrogates or > U+10FFFF.
 * Returns the sequence length (1-4) or 0 if invalid. */
static int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    if (b < 0xC2) return 0;
    if (b < 0xE0) {
        if (n < 2 || (s[1] & 0xC0) != 0x80) return 0;
        *cp = ((uint32_t)(b & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (b < 0xF0) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
        uint32_t c = ((uint32_t)(b & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        if (c < 0x800 || (c >= 0xD800 && c <= 0xDFFF)) return 0;
        *cp = c;
        return 3;
    }
    if (b < 0xF5) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80) return 0;
        uint32_t c = ((uint32_t)(b & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
                     (s[3] & 0x3F);
        if (c < 0x10000 || c > 0x10FFFF) return 0;
        *cp = c;
        return 4;
    }
    return 0;
}

static int utf8_encode(uint32_t c, char *out) {
    if (c < 0x80) {
        out[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (char)(0xC0 | (c >> 6));
        out[1] = (char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (char)(0xE0 | (c >> 12));
        out[1] = (char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (c >> 18));
    out[1] = (char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

/* ------------------------------------------------------------------------------------
 * Normalisation into a buffer of (code point, original start, original end). */

typedef struct {
    int n, cap;
    uint32_t *cp;
    int32_t *s, *e;
} nbuf;

static void nbuf_push(nbuf *b, uint32_t c, int32_t s, int32_t e) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 256;
        b->cp = plm_realloc(b->cp, (size_t)b->cap * sizeof *b->cp);
        b->s = plm_realloc(b->s, (size_t)b->cap * sizeof *b->s);
        b->e = plm_realloc(b->e, (size_t)b->cap * sizeof *b->e);
    }
    b->cp[b->n] = c;
    b->s[b->n] = s;
    b->e[b->n] = e;
    b->n++;
}

static void nbuf_free(nbuf *b) {
    free(b->cp);
    free(b->s);
    free(b->e);
}

/* ------------------------------------------------------------------------------------
 * Pre-tokenization: whitespace splits (removed), punctuation isolated. */

typedef struct {
    int n, cap;
    char *b;
    int32_t *s, *e;
} wbuf;

static void wbuf_grow(wbuf *w, int need) {
    if (need <= w->cap) return;
    int cap = w->cap ? w->cap : 256;
    while (cap < need) cap *= 2;
    w->b = plm_realloc(w->b, (size_t)cap + 1);
    w->s = plm_realloc(w->s, (size_t)cap * sizeof *w->s);
    w->e = plm_realloc(w->e, (size_t)cap * sizeof *w->e);
    w->cap = cap;
}

static void wbuf_put(wbuf *w, uint32_t c, int32_t s, int32_t e) {
    wbuf_grow(w, w->n + 4);
    int k = utf8_encode(c, w->b + w->n);
    for (int j = 0; j < k; j++) {
        w->s[w->n + j] = s;
        w->e[w->n + j] = e;
    }
    w->n += k;
}

/* The pending NFD run: decomposed chars since the last starter, each with HF's
 * "change" (0 = replaces the next input char, 1 = inserted) and combining class. */
typedef struct {
    uint32_t cp;
    uint8_t chg;
    uint8_t ccc;
} pend;

typedef struct {
    const plm_wp_norm *nm;
    nbuf *out; /* normalise-only mode: collect the normalised chars here */
    /* otherwise pre-tokenize on the fly: the word being built and where words go */
    wbuf w;
    plm_wp_word_fn fn;
    void *ctx;
    int rc;
    /* NFD stage */
    int np, cap_p;
    pend *p;
    int nin, cap_in; /* alignments of the input chars consumed by the pending run */
    int32_t (*in)[2];
    int32_t last_s, last_e; /* alignment of the last input char consumed (HF's idx - 1) */
    bool any_consumed;
    /* CJK stage: alignment of the previous char, for the inserted leading space */
    int32_t prev_s, prev_e;
    bool any_prev;
} normst;

static void flush_word(normst *st) {
    if (st->w.n > 0 && st->rc == 0) {
        st->w.b[st->w.n] = 0;
        st->rc = st->fn(st->ctx, st->w.b, st->w.n, st->w.s, st->w.e);
    }
    st->w.n = 0;
}

/* Stage 5, the pre-tokenizer: whitespace ends a word, punctuation is a word of its own. */
static void sink(normst *st, uint32_t c, int32_t s, int32_t e) {
    if (st->out) {
        nbuf_push(st->out, c, s, e);
    } else if (plm_wp_is_whitespace(c)) {
        flush_word(st);
    } else if (plm_wp_is_punct(c)) {
        flush_word(st);
        wbuf_put(&st->w, c, s, e);
        flush_word(st);
    } else {
        wbuf_put(&st->w, c, s, e);
    }
}

/* Stage 4 (lowercase). */
static void emit_lower(normst *st, uint32_t c, int32_t s, int32_t e) {
    if (st->nm->lowercase) {
        if (c < 0x80) {
            if (c >= 'A' && c <= 'Z') c += 32;
        } else if (c == 0x130) { /* the one unconditional multi-char lowercase mapping */
            sink(st, 'i', s, e);
            sink(st, 0x307, s, e);
            return;
        } else {
            c = lower1(c);
        }
    }
    sink(st, c, s, e);
}

/* Sorts the pending run's non-starters by combining class (stable), then assigns each
 * char the alignment HF's transform would give it, drops Mn and passes it on. */
static void nfd_flush(normst *st) {
    pend *p = st->p;
    int n = st->np;
    for (int i = 1; i < n; i++) { /* insertion sort: runs are tiny */
        pend x = p[i];
        if (x.ccc == 0) continue;
        int j = i - 1;
        while (j >= 0 && p[j].ccc > x.ccc) {
            p[j + 1] = p[j];
            j--;
        }
        p[j + 1] = x;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        int32_t s, e;
        if (p[i].chg == 0) {
            s = st->in[k][0];
            e = st->in[k][1];
            k++;
            st->last_s = s;
            st->last_e = e;
            st->any_consumed = true;
        } else if (st->any_consumed) {
            s = st->last_s;
            e = st->last_e;
        } else {
            s = e = 0;
        }
        if (!is_mn(p[i].cp)) emit_lower(st, p[i].cp, s, e);
    }
    st->np = 0;
    st->nin = 0;
}

static void pend_push(normst *st, uint32_t c, int chg) {
    int cl = ccc(c);
    if (cl == 0 && st->np > 0) {
        /* a starter: everything before it is final once reordered. Flushing requires the
         * consumed inputs to be exactly those of the pending run, which holds because a
         * starter is pushed before its own input alignment is recorded (see nfd_char). */
        nfd_flush(st);
    }
    if (st->np == st->cap_p) {
        st->cap_p = st->cap_p ? 2 * st->cap_p : 16;
        st->p = plm_realloc(st->p, (size_t)st->cap_p * sizeof *st->p);
    }
    st->p[st->np++] = (pend){c, (uint8_t)chg, (uint8_t)cl};
}

/* Stage 3: NFD one input char (with its alignment) into the pending run. */
/* A char inserted by an earlier stage (CJK spaces) is an input char of this transform
 * like any other: it consumes its own alignment slot. */
static void nfd_char(normst *st, uint32_t c, int32_t s, int32_t e) {
    utf8proc_int32_t d[8];
    int nd;
    if (c < 0xC0 || in_ranges(wp_nfd_none, PLM_ARRAY_LEN(wp_nfd_none), c)) {
        d[0] = (utf8proc_int32_t)c;
        nd = 1;
    } else {
        int bound = 0;
        utf8proc_ssize_t r = utf8proc_decompose_char((utf8proc_int32_t)c, d, 8, UTF8PROC_DECOMPOSE, &bound);
        if (r < 1 || r > 8) {
            d[0] = (utf8proc_int32_t)c;
            nd = 1;
        } else {
            nd = (int)r;
        }
    }
    for (int i = 0; i < nd; i++) {
        pend_push(st, (uint32_t)d[i], i > 0);
        if (i == 0) { /* record this input's alignment after a possible flush */
            if (st->nin == st->cap_in) {
                st->cap_in = st->cap_in ? 2 * st->cap_in : 16;
                st->in = plm_realloc(st->in, (size_t)st->cap_in * sizeof *st->in);
            }
            st->in[st->nin][0] = s;
            st->in[st->nin][1] = e;
            st->nin++;
        }
    }
}

/* Stages 2-4 for one char that survived clean_text. */
static void stage_cjk(normst *st, uint32_t c, int32_t s, int32_t e) {
    if (st->nm->chinese_chars && plm_wp_is_cjk(c)) {
        /* HF: (' ', +1), (c, 0), (' ', +1): inserted chars take the previous char's alignment */
        int32_t ps = st->any_prev ? st->prev_s : 0, pe = st->any_prev ? st->prev_e : 0;
        if (st->nm->strip_accents) {
            nfd_char(st, ' ', ps, pe);
            nfd_char(st, c, s, e);
            nfd_char(st, ' ', s, e);
        } else {
            emit_lower(st, ' ', ps, pe);
            emit_lower(st, c, s, e);
            emit_lower(st, ' ', s, e);
        }
    } else if (st->nm->strip_accents) {
        nfd_char(st, c, s, e);
    } else {
        emit_lower(st, c, s, e);
    }
    st->prev_s = s;
    st->prev_e = e;
    st->any_prev = true;
}

plm_wp_norm plm_wp_norm_of(const plm_tokenizer *t) {
    return (plm_wp_norm){t->wp_clean_text, t->wp_chinese_chars, t->wp_lowercase, t->wp_strip_accents};
}

/* ASCII classes for the fast path: what clean_text + the pre-tokenizer do with a byte. */
enum { A_DROP, A_SPACE, A_PUNCT, A_WORD };

static inline int ascii_class(unsigned char b, bool clean) {
    if (b >= 'a' ? b <= 'z' : (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z')) return A_WORD; /* the common case */
    if (b == ' ' || (b >= 9 && b <= 13)) return clean && (b == 11 || b == 12) ? A_DROP : A_SPACE;
    if (b < 0x20 || b == 0x7F) return clean ? A_DROP : A_WORD;
    return A_PUNCT; /* every other printable ASCII char is BERT punctuation */
}

/* Normalises text[0..len) and, unless st->out is set, pre-tokenizes it into words.
 * Returns 0, the word callback's non-zero value, or -1 (invalid UTF-8, plm_error set). */
static int run(normst *st, const char *text, size_t len) {
    const plm_wp_norm *nm = st->nm;
    const unsigned char *u = (const unsigned char *)text;
    size_t i = 0;
    int rc = 0;
    while (i < len && st->rc == 0) {
        uint32_t c;
        int n;
        if (u[i] < 0x80) {
            if (!st->out) {
                /* fast path: an ASCII char is a starter without decomposition, so it only
                 * closes a pending NFD run and updates the alignments later stages use */
                unsigned char b = u[i];
                int32_t s = (int32_t)i;
                i++;
                int k = ascii_class(b, nm->clean_text);
                if (k == A_DROP) continue;
                if (st->np > 0) nfd_flush(st);
                st->last_s = st->prev_s = s;
                st->last_e = st->prev_e = s + 1;
                st->any_consumed = st->any_prev = true;
                if (k == A_SPACE) {
                    flush_word(st);
                } else if (k == A_PUNCT) {
                    flush_word(st);
                    wbuf_put(&st->w, b, s, s + 1);
                    flush_word(st);
                } else {
                    if (nm->lowercase && b >= 'A' && b <= 'Z') b += 32;
                    wbuf *w = &st->w;
                    if (w->n + 1 > w->cap) wbuf_grow(w, w->n + 1);
                    w->b[w->n] = (char)b;
                    w->s[w->n] = s;
                    w->e[w->n] = s + 1;
                    w->n++;
                }
                continue;
            }
            c = u[i];
            n = 1;
        } else {
            n = utf8_decode(u + i, len - i, &c);
            if (n == 0) {
                plm_error("wordpiece: invalid UTF-8 at byte %zu of the input", i);
                rc = -1;
                break;
            }
        }
        int32_t s = (int32_t)i, e = (int32_t)(i + (size_t)n);
        i += (size_t)n;
        if (nm->clean_text) {
            if (c == 0 || c == 0xFFFD || plm_wp_is_control(c)) continue;
            if (plm_wp_is_whitespace(c)) c = ' ';
        }
        stage_cjk(st, c, s, e);
    }
    if (rc == 0) {
        if (st->np > 0) nfd_flush(st);
        if (!st->out) flush_word(st);
    }
    free(st->p);
    free(st->in);
    free(st->w.b);
    free(st->w.s);
    free(st->w.e);
    return rc ? rc : st->rc;
}

char *plm_wp_normalize(const plm_wp_norm *nm, const char *text, size_t len, size_t *outlen) {
    nbuf nb = {0};
    normst st = {0};
    st.nm = nm;
    st.out = &nb;
    if (run(&st, text, len) < 0) {
        nbuf_free(&nb);
        return NULL;
    }
    char *o = plm_malloc(4 * (size_t)nb.n + 1);
    size_t k = 0;
    for (int i = 0; i < nb.n; i++) k += (size_t)utf8_encode(nb.cp[i], o + k);
    o[k] = 0;
    *outlen = k;
    nbuf_free(&nb);
    return o;
}

int plm_wp_pretokenize(const plm_wp_norm *nm, const char *text, size_t len, plm_wp_word_fn fn, void *ctx) {
    if (len > INT32_MAX / 2) {
        plm_error("wordpiece: input of %zu bytes is too long", len);
        return -1;
    }
    normst st = {0};
    st.nm = nm;
    st.fn = fn;
    st.ctx = ctx;
    return run(&st, text, len);
}

/* ------------------------------------------------------------------------------------
 * WordPiece model. */

/* Derived data for fast matching: a byte trie of the vocabulary with two roots, node 0
 * for tokens as they are (a word's first piece) and node 1 for what follows the prefix
 * in continuation tokens ("##ing" -> "ing"). Greedy longest-match-first is then one walk
 * down the trie remembering the last token seen, instead of one hash lookup per
 * candidate length. Children live in one open-addressing table keyed by (node, byte). */
struct trie_slot {
    uint32_t key; /* (node << 8 | byte) + 1; 0 = empty */
    int32_t child;
};

typedef struct {
    int max_token_len; /* longest vocabulary token in bytes */
    int ndense;        /* nodes below this (the roots and their children) have dense rows */
    int32_t *dense;    /* ndense * 256 children, -1 = none: the hot top of the trie */
    int nnodes, capnodes;
    int32_t *term;          /* node -> token id, -1 if no token ends here */
    uint32_t nslots;        /* power of two */
    struct trie_slot *slot; /* key and child side by side: one cache line per probe */
} wp_data;

static uint32_t trie_slot(uint32_t k, uint32_t nslots) { return (k * 0x9E3779B1u) >> 7 & (nslots - 1); }

static int32_t trie_next(const wp_data *d, int32_t node, unsigned char b) {
    if (node < d->ndense) return d->dense[node * 256 + b];
    uint32_t k = ((uint32_t)node << 8 | b) + 1;
    for (uint32_t j = trie_slot(k, d->nslots);; j = (j + 1) & (d->nslots - 1)) {
        if (d->slot[j].key == k) return d->slot[j].child;
        if (d->slot[j].key == 0) return -1;
    }
}

static void trie_insert(wp_data *d, int32_t root, const char *s, int n, int32_t id) {
    int32_t node = root;
    for (int i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int32_t nx = trie_next(d, node, c);
        if (nx < 0) {
            if (d->nnodes == d->capnodes) {
                d->capnodes *= 2;
                d->term = plm_realloc(d->term, (size_t)d->capnodes * sizeof *d->term);
            }
            nx = d->nnodes++;
            d->term[nx] = -1;
            if (node < d->ndense) {
                d->dense[node * 256 + c] = nx;
            } else {
                uint32_t k = ((uint32_t)node << 8 | c) + 1;
                uint32_t j = trie_slot(k, d->nslots);
                while (d->slot[j].key) j = (j + 1) & (d->nslots - 1);
                d->slot[j] = (struct trie_slot){k, nx};
            }
        }
        node = nx;
    }
    if (id >= 0 && d->term[node] < 0) d->term[node] = id;
}

void plm_wordpiece_prepare(plm_tokenizer *t) {
    free(t->wp_data); /* one block (tokenizer.c frees it with free()) */
    t->wp_data = NULL;
    wp_data b = {0}; /* built in temporaries, then packed into one block */
    size_t total = 2;
    for (int i = 0; i < t->vocab.n; i++)
        if (t->vocab.tok[i]) {
            total += (size_t)t->vocab.len[i];
            if (t->vocab.len[i] > b.max_token_len) b.max_token_len = t->vocab.len[i];
        }
    if (total * 2 >= (1u << 23)) { /* too big for 24-bit node ids: plain lookups */
        wp_data *d = plm_calloc(1, sizeof *d);
        d->max_token_len = b.max_token_len;
        t->wp_data = d;
        return;
    }
    b.nslots = 1024;
    while (b.nslots < 2 * total) b.nslots *= 2;
    b.slot = plm_calloc(b.nslots, sizeof *b.slot);
    b.capnodes = 1024;
    b.term = plm_malloc((size_t)b.capnodes * sizeof *b.term);
    b.nnodes = 2;
    b.term[0] = b.term[1] = -1;
    size_t P = strlen(t->wp_prefix);
    /* the roots' children first, so that the dense rows are nodes 0..ndense-1 */
    b.ndense = 2 + 2 * 256;
    b.dense = plm_malloc((size_t)b.ndense * 256 * sizeof *b.dense);
    memset(b.dense, 0xFF, (size_t)b.ndense * 256 * sizeof *b.dense);
    for (int i = 0; i < t->vocab.n; i++) {
        const char *tok = t->vocab.tok[i];
        int n = t->vocab.len[i];
        if (!tok || n == 0) continue;
        trie_insert(&b, 0, tok, 1, -1);
        if (P > 0 && (size_t)n > P && !memcmp(tok, t->wp_prefix, P)) trie_insert(&b, 1, tok + P, 1, -1);
    }
    b.ndense = b.nnodes;
    for (int i = 0; i < t->vocab.n; i++) {
        const char *tok = t->vocab.tok[i];
        int n = t->vocab.len[i];
        if (!tok || n == 0) continue;
        trie_insert(&b, 0, tok, n, i);
        if (P > 0 && (size_t)n > P && !memcmp(tok, t->wp_prefix, P)) trie_insert(&b, 1, tok + P, n - (int)P, i);
    }
    size_t hdr = (sizeof b + 15) & ~(size_t)15;
    /* the final table is sized by the nodes actually in it (load <= 1/2), to stay small in cache */
    uint32_t nsl = 1024;
    while (nsl < 2 * (uint32_t)(b.nnodes - b.ndense)) nsl *= 2;
    size_t ndense = (size_t)b.ndense * 256;
    char *blk = plm_malloc(hdr + nsl * sizeof *b.slot + ndense * sizeof *b.dense + (size_t)b.nnodes * sizeof *b.term);
    wp_data *d = (wp_data *)blk;
    *d = b;
    d->slot = (struct trie_slot *)(blk + hdr);
    d->nslots = nsl;
    d->dense = (int32_t *)(d->slot + nsl);
    d->term = d->dense + ndense;
    d->capnodes = b.nnodes;
    memset(d->slot, 0, nsl * sizeof *d->slot);
    for (uint32_t i = 0; i < b.nslots; i++) {
        if (!b.slot[i].key) continue;
        uint32_t j = trie_slot(b.slot[i].key, nsl);
        while (d->slot[j].key) j = (j + 1) & (nsl - 1);
        d->slot[j] = b.slot[i];
    }
    memcpy(d->dense, b.dense, ndense * sizeof *b.dense);
    memcpy(d->term, b.term, (size_t)b.nnodes * sizeof *b.term);
    free(b.dense);
    free(b.slot);
    free(b.term);
    t->wp_data = d;
}

typedef struct {
    const plm_tokenizer *t;
    plm_encoding *out;
    int32_t base;
    int32_t *word;
    char *buf; /* prefix headroom + word */
    int cap;
    int max_len;
    const wp_data *trie; /* NULL: match with hash lookups */
} enc_ctx;

static int utf8_count(const char *s, int n) {
    int k = 0;
    for (int i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

static int encode_word(void *vctx, const char *word, int len, const int32_t *st, const int32_t *en) {
    enc_ctx *c = vctx;
    const plm_tokenizer *t = c->t;
    int32_t wid = (*c->word)++;
    int P = c->trie ? 0 : (int)strlen(t->wp_prefix);
    int first = c->out->n;
    if (c->trie && utf8_count(word, len) <= t->wp_max_input_chars) {
        const wp_data *d = c->trie;
        int start = 0;
        while (start < len) {
            int32_t node = start > 0, id = -1;
            int end = start;
            for (int i = start; i < len; i++) {
                node = trie_next(d, node, (unsigned char)word[i]);
                if (node < 0) break;
                if (d->term[node] >= 0) id = d->term[node], end = i + 1;
            }
            if (id < 0) break;
            plm_encoding_push(c->out, id, c->base + st[start], c->base + en[end - 1], wid);
            start = end;
        }
        if (start >= len) return 0;
        c->out->n = first;
    } else if (!c->trie && utf8_count(word, len) <= t->wp_max_input_chars) {
        if (P + len > c->cap) {
            c->cap = 2 * (P + len);
            c->buf = plm_realloc(c->buf, (size_t)c->cap);
        }
        char *w = c->buf + P; /* w[-P..-1] is room for the prefix of the first continuation */
        memcpy(w, word, (size_t)len);
        int start = 0;
        while (start < len) {
            /* w[start-P..start) is consumed, so the prefix can be written in place */
            char *q = w + start;
            int pre = 0;
            if (start > 0) {
                memcpy(q - P, t->wp_prefix, (size_t)P);
                q -= P;
                pre = P;
            }
            int end = len;
            if (c->max_len > 0 && end - start + pre > c->max_len) {
                end = start + c->max_len - pre;
                while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--; /* char boundary */
            }
            int32_t id = -1;
            while (end > start) {
                id = plm_vocab_find(&t->vocab, q, (size_t)(end - start + pre));
                if (id >= 0) break;
                end--;
                while (end > start && ((unsigned char)w[end] & 0xC0) == 0x80) end--;
            }
            if (id < 0) break;
            plm_encoding_push(c->out, id, c->base + st[start], c->base + en[end - 1], wid);
            start = end;
        }
        if (start >= len) return 0;
        c->out->n = first; /* a piece could not be matched: the whole word is [UNK] */
    }
    if (t->wp_unk_id < 0) {
        plm_error("wordpiece: the vocabulary has no unk token for the word \"%.*s\"", PLM_MIN(len, 40), word);
        return -1;
    }
    plm_encoding_push(c->out, t->wp_unk_id, c->base + st[0], c->base + en[len - 1], wid);
    return 0;
}

int plm_wordpiece_encode_segment(const plm_tokenizer *t, const char *text, size_t len, int32_t base, int32_t *word,
                                 plm_encoding *out) {
    plm_wp_norm nm = plm_wp_norm_of(t);
    const wp_data *d = t->wp_data;
    enc_ctx c = {t, out, base, word, NULL, 0, d ? d->max_token_len : 0, d && d->slot ? d : NULL};
    int rc = plm_wp_pretokenize(&nm, text, len, encode_word, &c);
    free(c.buf);
    return rc ? -1 : 0;
}

/* ------------------------------------------------------------------------------------
 * vocab.txt: one token per line, id = line number - 1. */

plm_tokenizer *plm_wordpiece_from_vocab_text(const char *name, const char *data, size_t len, bool lowercase) {
    plm_tokenizer *t = plm_tokenizer_new(PLM_TOK_WORDPIECE);
    if (!t) return NULL;
    t->wp_clean_text = true;
    t->wp_chinese_chars = true;
    t->wp_lowercase = lowercase;
    t->wp_strip_accents = lowercase; /* HF: strip_accents follows lowercase when unset */
    snprintf(t->wp_prefix, sizeof t->wp_prefix, "##");
    t->wp_max_input_chars = 100;
    size_t i = 0;
    int line = 0;
    while (i < len) {
        line++;
        size_t j = i;
        while (j < len && data[j] != '\n') j++;
        size_t k = j;
        /* HF trims trailing whitespace (Rust's trim_end: any White_Space char, so also a
         * CRLF's \r and U+00A0, U+3000, ...) */
        while (k > i) {
            size_t q = k - 1; /* start of the last char */
            while (q > i && ((unsigned char)data[q] & 0xC0) == 0x80 && k - q < 4) q--;
            uint32_t cp;
            if (utf8_decode((const unsigned char *)data + q, k - q, &cp) != (int)(k - q) || !plm_wp_is_whitespace(cp))
                break;
            k = q;
        }
        const char *tok = data + i;
        size_t n = k - i;
        i = j + 1;
        if (n == 0) {
            plm_error("%s:%d: empty line (every line must hold one token)", name, line);
            goto fail;
        }
        if (memchr(tok, 0, n)) {
            plm_error("%s:%d: NUL byte in token", name, line);
            goto fail;
        }
        for (size_t p = 0; p < n;) {
            uint32_t cp;
            int m = utf8_decode((const unsigned char *)tok + p, n - p, &cp);
            if (m == 0) {
                plm_error("%s:%d: invalid UTF-8 at byte %zu of the line", name, line, p + 1);
                goto fail;
            }
            p += (size_t)m;
        }
        if (n > 1024) {
            plm_error("%s:%d: token of %zu bytes is too long", name, line, n);
            goto fail;
        }
        int32_t prev = plm_vocab_find(&t->vocab, tok, n);
        if (prev >= 0) {
            plm_error("%s:%d: duplicate token \"%.*s\" (first on line %d)", name, line, (int)n, tok, prev + 1);
            goto fail;
        }
        plm_vocab_add(&t->vocab, tok, n);
    }
    if (line == 0) {
        plm_error("%s: empty vocabulary", name);
        goto fail;
    }
    t->wp_unk_id = plm_vocab_find(&t->vocab, "[UNK]", 5);
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    for (size_t s = 0; s < PLM_ARRAY_LEN(specials); s++) {
        int32_t id = plm_vocab_find(&t->vocab, specials[s], strlen(specials[s]));
        if (id >= 0) plm_tokenizer_add_added(t, id, true);
    }
    plm_tokenizer_map_special_roles(t);
    plm_wordpiece_prepare(t);
    return t;
fail:
    plm_tokenizer_free(t);
    return NULL;
}

plm_tokenizer *plm_tokenizer_load_wordpiece(const char *vocab_txt, bool lowercase) {
    size_t len;
    char *data = plm_read_file(vocab_txt, &len);
    if (!data) return NULL;
    plm_tokenizer *t = plm_wordpiece_from_vocab_text(vocab_txt, data, len, lowercase);
    free(data);
    return t;
}
