/* tokenizer.c - the common tokenizer layer: vocabulary table, special-token roles,
 * added tokens, encodings, model inputs (special tokens, truncation, padding) and
 * decoding. Kind-specific work is dispatched to bpe.c and wordpiece.c. */
#include "tokenizer/internal.h"
#include "tokenizer/bpe.h"
#include "core/common.h"

#include <stdlib.h>
#include <string.h>

/* ---- vocabulary table ---- */

void plm_vocab_init(plm_vocab *v) { memset(v, 0, sizeof *v); }

void plm_vocab_free(plm_vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->tok[i]);
    free(v->tok);
    free(v->len);
    free(v->slots);
    memset(v, 0, sizeof *v);
}

uint64_t plm_hash_bytes(const void *p, size_t n) {
    const uint8_t *s = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ULL;
    return h;
}

static void vocab_rehash(plm_vocab *v, uint32_t nslots) {
    free(v->slots);
    v->slots = plm_malloc(nslots * sizeof *v->slots);
    v->nslots = nslots;
    for (uint32_t i = 0; i < nslots; i++) v->slots[i] = -1;
    for (int id = 0; id < v->n; id++) {
        if (!v->tok[id]) continue;
        uint32_t h = (uint32_t)plm_hash_bytes(v->tok[id], (size_t)v->len[id]) & (nslots - 1);
        while (v->slots[h] >= 0) h = (h + 1) & (nslots - 1);
        v->slots[h] = id;
    }
}

int32_t plm_vocab_find(const plm_vocab *v, const char *s, size_t len) {
    if (!v->nslots) return -1;
    uint32_t h = (uint32_t)plm_hash_bytes(s, len) & (v->nslots - 1);
    for (;;) {
        int32_t id = v->slots[h];
        if (id < 0) return -1;
        if ((size_t)v->len[id] == len && memcmp(v->tok[id], s, len) == 0) return id;
        h = (h + 1) & (v->nslots - 1);
    }
}

static void vocab_grow(plm_vocab *v, int n) {
    if (n <= v->cap) return;
    int cap = v->cap ? v->cap : 256;
    while (cap < n) cap *= 2;
    v->tok = plm_realloc(v->tok, (size_t)cap * sizeof *v->tok);
    v->len = plm_realloc(v->len, (size_t)cap * sizeof *v->len);
    v->cap = cap;
}

int plm_vocab_put(plm_vocab *v, int32_t id, const char *s, size_t len) {
    if (id < 0 || len > INT32_MAX / 2) return -1;
    if (id < v->n && v->tok[id]) return -1;
    if (plm_vocab_find(v, s, len) >= 0) return -1;
    if (id >= v->n) {
        vocab_grow(v, id + 1);
        for (int i = v->n; i <= id; i++) {
            v->tok[i] = NULL;
            v->len[i] = 0;
        }
        v->n = id + 1;
    }
    char *c = plm_malloc(len + 1);
    memcpy(c, s, len);
    c[len] = 0;
    v->tok[id] = c;
    v->len[id] = (int32_t)len;
    if ((uint32_t)v->n * 2 > v->nslots) {
        uint32_t ns = v->nslots ? v->nslots : 1024;
        while (ns < (uint32_t)v->n * 2) ns *= 2;
        vocab_rehash(v, ns);
    } else {
        uint32_t h = (uint32_t)plm_hash_bytes(s, len) & (v->nslots - 1);
        while (v->slots[h] >= 0) h = (h + 1) & (v->nslots - 1);
        v->slots[h] = id;
    }
    return 0;
}

int32_t plm_vocab_add(plm_vocab *v, const char *s, size_t len) {
    int32_t id = plm_vocab_find(v, s, len);
    if (id >= 0) return id;
    id = v->n;
    if (plm_vocab_put(v, id, s, len) != 0) return -1;
    return id;
}

/* ---- tokenizer object ---- */

plm_tokenizer *plm_tokenizer_new(plm_tok_kind kind) {
    plm_tokenizer *t = plm_calloc(1, sizeof *t);
    t->kind = kind;
    plm_vocab_init(&t->vocab);
    for (int r = 0; r < PLM_SPECIAL_COUNT; r++) t->special[r] = -1;
    t->wp_clean_text = true;
    t->wp_chinese_chars = true;
    t->wp_lowercase = true;
    t->wp_strip_accents = true;
    t->wp_unk_id = -1;
    strcpy(t->wp_prefix, "##");
    t->wp_max_input_chars = 100;
    return t;
}

void plm_tokenizer_free(plm_tokenizer *t) {
    if (!t) return;
    plm_vocab_free(&t->vocab);
    free(t->added);
    plm_bpe_free(t->bpe);
    free(t->wp_data);
    free(t);
}

void plm_tokenizer_add_added(plm_tokenizer *t, int32_t id, bool special) {
    if (id < 0 || id >= t->vocab.n || !t->vocab.tok[id] || t->vocab.len[id] == 0) return;
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].id == id) {
            t->added[i].special |= special;
            return;
        }
    }
    if (t->n_added == t->cap_added) {
        t->cap_added = t->cap_added ? t->cap_added * 2 : 16;
        t->added = plm_realloc(t->added, (size_t)t->cap_added * sizeof *t->added);
    }
    t->added[t->n_added++] = (plm_added_token){.id = id, .special = special};
    t->added_first[(uint8_t)t->vocab.tok[id][0]] = 1;
}

void plm_tokenizer_set_added_strip(plm_tokenizer *t, int32_t id, bool lstrip, bool rstrip) {
    for (int i = 0; i < t->n_added; i++) {
        if (t->added[i].id == id) {
            t->added[i].lstrip = lstrip;
            t->added[i].rstrip = rstrip;
        }
    }
}

void plm_tokenizer_map_special_roles(plm_tokenizer *t) {
    static const struct {
        const char *name;
        plm_special_role role;
    } names[] = {
        {"<|endoftext|>", PLM_SPECIAL_BOS}, {"<|endoftext|>", PLM_SPECIAL_EOS}, {"[PAD]", PLM_SPECIAL_PAD},
        {"[UNK]", PLM_SPECIAL_UNK},         {"[CLS]", PLM_SPECIAL_CLS},         {"[SEP]", PLM_SPECIAL_SEP},
        {"[MASK]", PLM_SPECIAL_MASK},       {"<pad>", PLM_SPECIAL_PAD},         {"<unk>", PLM_SPECIAL_UNK},
        {"<s>", PLM_SPECIAL_BOS},           {"</s>", PLM_SPECIAL_EOS},          {"<mask>", PLM_SPECIAL_MASK},
        {"<|padding|>", PLM_SPECIAL_PAD},
    };
    for (size_t i = 0; i < PLM_ARRAY_LEN(names); i++) {
        if (t->special[names[i].role] >= 0) continue;
        t->special[names[i].role] = plm_vocab_find(&t->vocab, names[i].name, strlen(names[i].name));
    }
    if (t->kind == PLM_TOK_WORDPIECE && t->wp_unk_id < 0) t->wp_unk_id = t->special[PLM_SPECIAL_UNK];
}

plm_tok_kind plm_tokenizer_kind(const plm_tokenizer *t) { return t->kind; }
int plm_tokenizer_vocab_size(const plm_tokenizer *t) { return t->vocab.n; }

const char *plm_tokenizer_id_to_token(const plm_tokenizer *t, int id) {
    if (id < 0 || id >= t->vocab.n) return NULL;
    return t->vocab.tok[id];
}

int plm_tokenizer_token_to_id(const plm_tokenizer *t, const char *token) {
    return plm_vocab_find(&t->vocab, token, strlen(token));
}

int plm_tokenizer_special(const plm_tokenizer *t, plm_special_role role) {
    if ((int)role < 0 || role >= PLM_SPECIAL_COUNT) return -1;
    return t->special[role];
}

int plm_tokenizer_add_special(plm_tokenizer *t, const char *token) {
    size_t n = strlen(token);
    if (n == 0) {
        plm_error("add_special: empty token");
        return -1;
    }
    int32_t id = plm_vocab_add(&t->vocab, token, n);
    if (id < 0) {
        plm_error("add_special: cannot add \"%s\"", token);
        return -1;
    }
    plm_tokenizer_add_added(t, id, true);
    plm_tokenizer_map_special_roles(t);
    if (t->kind == PLM_TOK_BPE && plm_bpe_finish(t) != 0) return -1;
    return id;
}

int plm_tokenizer_set_special(plm_tokenizer *t, plm_special_role role, const char *token) {
    if ((int)role < 0 || role >= PLM_SPECIAL_COUNT) {
        plm_error("set_special: bad role %d", (int)role);
        return -1;
    }
    int32_t id = plm_vocab_find(&t->vocab, token, strlen(token));
    if (id < 0) {
        plm_error("set_special: \"%s\" is not in the vocabulary", token);
        return -1;
    }
    t->special[role] = id;
    if (role == PLM_SPECIAL_UNK && t->kind == PLM_TOK_WORDPIECE) t->wp_unk_id = id;
    return id;
}

void plm_tokenizer_train_opts_default(plm_tokenizer_train_opts *o) {
    memset(o, 0, sizeof *o);
    o->vocab_size = 30000;
    o->min_frequency = 0;
    o->lowercase = true;
}

void plm_encode_opts_default(plm_encode_opts *o) {
    memset(o, 0, sizeof *o);
    o->add_special_tokens = true;
    o->truncation = PLM_TRUNC_LONGEST_FIRST;
}

/* ---- encodings ---- */

void plm_encoding_init(plm_encoding *e) { memset(e, 0, sizeof *e); }

void plm_encoding_free(plm_encoding *e) {
    free(e->ids);
    free(e->type_ids);
    free(e->attention_mask);
    free(e->special_mask);
    free(e->offsets);
    free(e->word_ids);
    free(e->seq_ids);
    memset(e, 0, sizeof *e);
}

void plm_encoding_clear(plm_encoding *e) { e->n = 0; }

void plm_encoding_reserve(plm_encoding *e, int n) {
    if (n <= e->cap) return;
    int cap = e->cap ? e->cap : 64;
    while (cap < n) cap *= 2;
    e->ids = plm_realloc(e->ids, (size_t)cap * sizeof *e->ids);
    e->type_ids = plm_realloc(e->type_ids, (size_t)cap * sizeof *e->type_ids);
    e->attention_mask = plm_realloc(e->attention_mask, (size_t)cap);
    e->special_mask = plm_realloc(e->special_mask, (size_t)cap);
    e->offsets = plm_realloc(e->offsets, (size_t)cap * 2 * sizeof *e->offsets);
    e->word_ids = plm_realloc(e->word_ids, (size_t)cap * sizeof *e->word_ids);
    e->seq_ids = plm_realloc(e->seq_ids, (size_t)cap);
    e->cap = cap;
}

void plm_encoding_push(plm_encoding *e, int32_t id, int32_t start, int32_t end, int32_t word_id) {
    if (e->n == e->cap) plm_encoding_reserve(e, e->n + 1);
    int i = e->n++;
    e->ids[i] = id;
    e->type_ids[i] = 0;
    e->attention_mask[i] = 1;
    e->special_mask[i] = 0;
    e->offsets[2 * i] = start;
    e->offsets[2 * i + 1] = end;
    e->word_ids[i] = word_id;
    e->seq_ids[i] = 0;
}

/* Pushes a special (post-processing) or pad token. */
static void push_special(plm_encoding *e, int32_t id, int32_t type_id, bool pad) {
    plm_encoding_push(e, id, 0, 0, -1);
    int i = e->n - 1;
    e->type_ids[i] = type_id;
    e->attention_mask[i] = pad ? 0 : 1;
    e->special_mask[i] = 1;
    e->seq_ids[i] = -1;
}

/* Index in t->added of the longest added token matching at s[i..], or -1. */
static int match_added(const plm_tokenizer *t, const char *s, size_t len, size_t i, size_t *mlen) {
    int best = -1;
    size_t bl = 0;
    for (int k = 0; k < t->n_added; k++) {
        int32_t id = t->added[k].id;
        size_t n = (size_t)t->vocab.len[id];
        if (n > bl && n <= len - i && memcmp(s + i, t->vocab.tok[id], n) == 0) {
            best = k;
            bl = n;
        }
    }
    *mlen = bl;
    return best;
}

/* Length in bytes of the Unicode White_Space char at s[0..n) (Rust's char::is_whitespace,
 * which HF's lstrip/rstrip use), 0 if s does not start with one. Invalid UTF-8 is not
 * whitespace. */
static size_t space_len(const char *s, size_t n) {
    const uint8_t *p = (const uint8_t *)s;
    if (n == 0) return 0;
    if (p[0] == ' ' || (p[0] >= '\t' && p[0] <= '\r')) return 1;
    if (n >= 2 && p[0] == 0xC2 && (p[1] == 0x85 || p[1] == 0xA0)) return 2; /* U+0085, U+00A0 */
    if (n < 3) return 0;
    uint32_t cp = (uint32_t)(p[0] & 0x0F) << 12 | (uint32_t)(p[1] & 0x3F) << 6 | (p[2] & 0x3F);
    if ((p[0] & 0xF0) != 0xE0 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
    bool ws = cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
              cp == 0x205F || cp == 0x3000;
    return ws ? 3 : 0;
}

/* Start of the whitespace run that ends at s[end] within s[from..end): HF's lstrip. */
static size_t space_run_before(const char *s, size_t from, size_t end) {
    size_t run = from; /* just after the last non-space char seen */
    for (size_t i = from; i < end;) {
        size_t w = space_len(s + i, end - i);
        if (w) {
            i += w;
        } else {
            i++;
            run = i;
        }
    }
    return run;
}

static int encode_segment(const plm_tokenizer *t, const char *s, size_t len, int32_t base, int32_t *word,
                          plm_encoding *out) {
    if (len == 0) return 0;
    if (t->kind == PLM_TOK_BPE) return plm_bpe_encode_segment(t, s, len, base, word, out);
    return plm_wordpiece_encode_segment(t, s, len, base, word, out);
}

int plm_tokenizer_encode(const plm_tokenizer *t, const char *text, size_t len, plm_encoding *out) {
    if (len > (size_t)INT32_MAX / 2) {
        plm_error("encode: text of %zu bytes is too long", len);
        return -1;
    }
    int32_t word = 0;
    size_t seg = 0;
    if (t->n_added > 0) {
        /* Added tokens split the text first (leftmost-longest), as HF's AddedVocabulary;
         * an lstrip/rstrip token's span (and offsets) also covers the whitespace beside
         * it, but never reaches back into the previous added token. */
        for (size_t i = 0; i < len; i++) {
            if (!t->added_first[(uint8_t)text[i]]) continue;
            size_t ml;
            int k = match_added(t, text, len, i, &ml);
            if (k < 0) continue;
            size_t start = i, stop = i + ml, w;
            if (t->added[k].lstrip) start = space_run_before(text, seg, i);
            if (t->added[k].rstrip)
                while ((w = space_len(text + stop, len - stop)) > 0) stop += w;
            if (encode_segment(t, text + seg, start - seg, (int32_t)seg, &word, out) != 0) return -1;
            plm_encoding_push(out, t->added[k].id, (int32_t)start, (int32_t)stop, word++);
            i = stop - 1;
            seg = stop;
        }
    }
    return encode_segment(t, text + seg, len - seg, (int32_t)seg, &word, out);
}

/* Keeps the first n tokens of e. */
static void truncate_to(plm_encoding *e, int n) {
    if (n < e->n) e->n = n;
}

static void append(plm_encoding *dst, const plm_encoding *src, int32_t type_id, int8_t seq) {
    plm_encoding_reserve(dst, dst->n + src->n);
    for (int i = 0; i < src->n; i++) {
        plm_encoding_push(dst, src->ids[i], src->offsets[2 * i], src->offsets[2 * i + 1], src->word_ids[i]);
        dst->type_ids[dst->n - 1] = type_id;
        dst->seq_ids[dst->n - 1] = seq;
    }
}

int plm_tokenizer_encode_full(const plm_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                              const plm_encode_opts *o, plm_encoding *out) {
    plm_encode_opts def;
    if (!o) {
        plm_encode_opts_default(&def);
        o = &def;
    }
    plm_encoding_clear(out);
    plm_encoding ea, eb;
    plm_encoding_init(&ea);
    plm_encoding_init(&eb);
    int rc = -1;
    if (plm_tokenizer_encode(t, a, alen, &ea) != 0) goto done;
    if (b && plm_tokenizer_encode(t, b, blen, &eb) != 0) goto done;
    /* BERT adds [CLS] A [SEP] (B [SEP]); byte-level BPE adds nothing, as HF's ByteLevel
     * post-processor. */
    bool bert = o->add_special_tokens && t->kind == PLM_TOK_WORDPIECE;
    int32_t cls = t->special[PLM_SPECIAL_CLS], sep = t->special[PLM_SPECIAL_SEP];
    if (bert && (cls < 0 || sep < 0)) {
        plm_error("encode: the vocabulary has no [CLS]/[SEP] token");
        goto done;
    }
    int nspecial = bert ? (b ? 3 : 2) : 0;
    if (o->max_length > 0 && ea.n + eb.n + nspecial > o->max_length) {
        int max = o->max_length - nspecial;
        if (max < 0) {
            plm_error("encode: max_length %d is shorter than the %d special tokens", o->max_length, nspecial);
            goto done;
        }
        int to_remove = ea.n + eb.n - max;
        if (o->truncation == PLM_TRUNC_LONGEST_FIRST) {
            if (b) { /* HF's split: the shorter keeps its length if it can */
                int n1 = ea.n, n2 = eb.n;
                bool swap = n1 > n2;
                if (swap) n1 = eb.n, n2 = ea.n;
                n2 = n1 > max ? n1 : PLM_MAX(n1, max - n1);
                if (n1 + n2 > max) {
                    n1 = max / 2;
                    n2 = n1 + max % 2;
                }
                if (swap) {
                    int tmp = n1;
                    n1 = n2;
                    n2 = tmp;
                }
                truncate_to(&ea, n1);
                truncate_to(&eb, n2);
            } else {
                truncate_to(&ea, max);
            }
        } else {
            plm_encoding *target = o->truncation == PLM_TRUNC_ONLY_FIRST ? &ea : (b ? &eb : NULL);
            if (!target) {
                plm_error("encode: truncation only_second needs a second sequence");
                goto done;
            }
            if (target->n <= to_remove) {
                plm_error("encode: sequence to truncate is too short to respect max_length %d", o->max_length);
                goto done;
            }
            truncate_to(target, target->n - to_remove);
        }
    }
    plm_encoding_reserve(out, ea.n + eb.n + nspecial + PLM_MAX(o->max_length, 0));
    if (bert) push_special(out, cls, 0, false);
    append(out, &ea, 0, 0);
    if (bert) push_special(out, sep, 0, false);
    if (b) {
        append(out, &eb, 1, 1);
        if (bert) push_special(out, sep, 1, false);
    }
    if (o->pad_to_max_length && o->max_length > 0) {
        int32_t pad = t->special[PLM_SPECIAL_PAD];
        if (pad < 0) pad = t->special[PLM_SPECIAL_EOS];
        if (pad < 0 && out->n < o->max_length) {
            plm_error("encode: padding needs a pad token");
            goto done;
        }
        while (out->n < o->max_length) push_special(out, pad, 0, true);
    }
    rc = 0;
done:
    plm_encoding_free(&ea);
    plm_encoding_free(&eb);
    return rc;
}

/* ---- decoding ---- */

static bool is_special_id(const plm_tokenizer *t, int32_t id) {
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id == id) return t->added[i].special;
    return false;
}

typedef struct {
    char *p;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = PLM_MAX(b->cap * 2, b->n + n + 64);
        b->p = plm_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = 0;
}

/* HF's WordPiece decoder cleanup, applied per token (" ." -> ".", ...). */
static void wp_cleanup_put(sbuf *b, const char *s, size_t n) {
    static const char *from[] = {" .", " ?", " !", " ,", " ' ", " n't", " 'm", " do not", " 's", " 've", " 're"};
    static const char *to[] = {".", "?", "!", ",", "'", "n't", "'m", " don't", "'s", "'ve", "'re"};
    for (size_t i = 0; i < n;) {
        size_t k;
        for (k = 0; k < PLM_ARRAY_LEN(from); k++) {
            size_t fl = strlen(from[k]);
            if (fl <= n - i && memcmp(s + i, from[k], fl) == 0) {
                sb_put(b, to[k], strlen(to[k]));
                i += fl;
                break;
            }
        }
        if (k == PLM_ARRAY_LEN(from)) sb_put(b, s + i++, 1);
    }
}

char *plm_tokenizer_decode(const plm_tokenizer *t, const int32_t *ids, int n, bool skip_special, size_t *len) {
    sbuf b = {0};
    sb_put(&b, "", 0);
    size_t pl = strlen(t->wp_prefix);
    char *tmp = NULL;
    size_t tmpcap = 0;
    int emitted = 0;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= t->vocab.n || !t->vocab.tok[id]) {
            plm_error("decode: id %d out of range (vocabulary of %d)", (int)id, t->vocab.n);
            free(b.p);
            free(tmp);
            return NULL;
        }
        if (skip_special && is_special_id(t, id)) continue;
        if (t->kind == PLM_TOK_BPE) {
            sb_put(&b, t->bpe->raw[id], (size_t)t->bpe->rawlen[id]);
        } else {
            const char *s = t->vocab.tok[id];
            size_t sl = (size_t)t->vocab.len[id];
            if (tmpcap < sl + 2) tmp = plm_realloc(tmp, tmpcap = sl + 64);
            size_t k = 0;
            if (emitted > 0 && pl > 0 && sl >= pl && memcmp(s, t->wp_prefix, pl) == 0) {
                s += pl;
                sl -= pl;
            } else if (emitted > 0) {
                tmp[k++] = ' ';
            }
            memcpy(tmp + k, s, sl);
            wp_cleanup_put(&b, tmp, k + sl);
        }
        emitted++;
    }
    free(tmp);
    if (len) *len = b.n;
    return b.p;
}
