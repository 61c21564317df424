/* pairs.c - see pairs.h */
#include "pairs.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"

typedef struct {
    uint64_t *a;
    size_t n, cap;
} u64_vec;

static void push(u64_vec *v, uint64_t x) {
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 1024;
        v->a = plm_realloc(v->a, v->cap * sizeof(uint64_t));
    }
    v->a[v->n++] = x;
}

void plm_documents_free(plm_documents *docs) {
    free(docs->start);
    free(docs->end);
    free(docs->sent);
    free(docs->first_sent);
    memset(docs, 0, sizeof *docs);
}

int plm_documents_build(plm_documents *docs, const plm_token_stream *s, const plm_vocab_info *v) {
    memset(docs, 0, sizeof *docs);
    bool flagged = s->flags || s->shards;
    int32_t sep_tok = v->eos >= 0 ? v->eos : v->sep;
    u64_vec st = {0}, en = {0}, sent = {0}, first = {0};
    enum { BLK = 1 << 16 };
    int32_t *ids = plm_malloc(BLK * sizeof(int32_t));
    uint8_t *fl = plm_malloc(BLK);
    uint64_t doc_start = 0;
    int32_t last_id = -1;
    bool in_doc = false; /* flag mode: a document is open */
    size_t doc_sent0 = 0;
#define CLOSE_DOC(endpos)                                                                                              \
    do {                                                                                                               \
        uint64_t e_ = (endpos);                                                                                        \
        if (flagged && e_ > doc_start && (last_id == v->eos || last_id == v->sep)) e_--; /* the separator */           \
        while (sent.n > doc_sent0 && sent.a[sent.n - 1] >= e_) sent.n--;                                               \
        if (e_ > doc_start) {                                                                                          \
            if (sent.n == doc_sent0 || sent.a[doc_sent0] != doc_start) { /* the document start is a sentence start */  \
                push(&sent, 0);                                                                                        \
                memmove(sent.a + doc_sent0 + 1, sent.a + doc_sent0, (sent.n - 1 - doc_sent0) * sizeof(uint64_t));      \
                sent.a[doc_sent0] = doc_start;                                                                         \
            }                                                                                                          \
            push(&st, doc_start);                                                                                      \
            push(&en, e_);                                                                                             \
            push(&first, doc_sent0);                                                                                   \
        } else {                                                                                                       \
            sent.n = doc_sent0;                                                                                        \
        }                                                                                                              \
        doc_sent0 = sent.n;                                                                                            \
    } while (0)
    for (size_t pos = 0; pos < s->n; pos += BLK) {
        size_t n = PLM_MIN((size_t)BLK, s->n - pos);
        plm_stream_read(s, pos, n, ids, fl);
        for (size_t k = 0; k < n; k++) {
            uint64_t p = pos + k;
            if (flagged) {
                if (fl[k] & PLM_TOK_DOC_START) {
                    if (in_doc) CLOSE_DOC(p);
                    doc_start = p;
                    in_doc = true;
                }
                if (!in_doc) { /* tokens before any document start: a document of their own */
                    doc_start = p;
                    in_doc = true;
                }
                if (fl[k] & PLM_TOK_SENT_START) push(&sent, p);
            } else if (ids[k] == sep_tok) {
                CLOSE_DOC(p);
                doc_start = p + 1;
            }
            last_id = ids[k];
        }
    }
    if (flagged ? in_doc : doc_start < s->n) CLOSE_DOC(s->n);
#undef CLOSE_DOC
    free(ids);
    free(fl);
    push(&first, sent.n);
    docs->start = st.a;
    docs->end = en.a;
    docs->num_docs = st.n;
    docs->sent = sent.a;
    docs->num_sent = sent.n;
    docs->first_sent = first.a;
    if (docs->num_docs == 0) {
        plm_documents_free(docs);
        plm_error("corpus has no document with tokens");
        return -1;
    }
    return 0;
}

size_t plm_chunks_build(const plm_documents *docs, uint32_t L, plm_window **w) {
    size_t n = 0;
    for (size_t d = 0; d < docs->num_docs; d++) n += (docs->end[d] - docs->start[d] + L - 1) / L;
    *w = plm_calloc(n ? n : 1, sizeof(plm_window));
    size_t k = 0;
    for (size_t d = 0; d < docs->num_docs; d++)
        for (uint64_t p = docs->start[d]; p < docs->end[d]; p += L) {
            plm_window *x = &(*w)[k++];
            x->a_start = p;
            x->a_len = (uint32_t)PLM_MIN((uint64_t)L, docs->end[d] - p);
            x->a_doc = x->b_doc = (uint32_t)d;
            x->label = -100;
        }
    return n;
}

static inline uint64_t sent_end(const plm_documents *docs, size_t d, size_t i) {
    return i + 1 < docs->first_sent[d + 1] ? docs->sent[i + 1] : docs->end[d];
}

/* google-research/bert's truncate_seq_pair on token ranges. */
static void truncate_pair(uint64_t *as, uint64_t *al, uint64_t *bs, uint64_t *bl, uint64_t max, plm_rng *r) {
    while (*al + *bl > max) {
        bool a = *al > *bl;
        uint64_t *s = a ? as : bs, *l = a ? al : bl;
        if (plm_rng_uniform(r) < 0.5f) ++*s;
        --*l;
    }
}

static uint64_t draw_target(int max_num, float short_seq_prob, plm_rng *r) {
    if (plm_rng_uniform(r) < short_seq_prob) return 2 + plm_rng_below(r, (uint32_t)(max_num - 1));
    return (uint64_t)max_num;
}

static void push_window(plm_window **w, size_t *cap, size_t *n, plm_window x) {
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 4096;
        *w = plm_realloc(*w, *cap * sizeof(plm_window));
    }
    (*w)[(*n)++] = x;
}

/* Whole sentences of document d from sentence i on (dir +1) or before it (dir -1) until
 * they hold `want` tokens or the document ends. Returns where the gathering stopped: the
 * end (exclusive) forward, the first sentence taken backward. */
static size_t gather(const plm_documents *docs, size_t d, size_t i, int dir, uint64_t want) {
    size_t s0 = docs->first_sent[d], s1 = docs->first_sent[d + 1];
    for (uint64_t got = 0; got < want && (dir > 0 ? i < s1 : i > s0);) {
        size_t k = dir > 0 ? i++ : --i;
        got += sent_end(docs, d, k) - docs->sent[k];
    }
    return i;
}

/* SOP pairs (pairs.h). A pair and its swap must look alike in everything but the order of
 * their text, else the label is read off their shape. Google's chunk (sentences up to the
 * target, A the first a_end of them) always puts the sentence that overshoots the target
 * in B; a chunk of one sentence cut at a token always has the full stop in B; and
 * truncate_seq_pair (the longer loses a token, B on ties) before the swap left the first
 * segment one token longer exactly when the pair was in order. Here A and B are built
 * alike: the target is split at a uniform token (google's a_end is uniform over
 * sentences), each segment gathers whole sentences until it holds its share (both end
 * with an overshooting sentence, at a sentence end), the document is walked forward or
 * backward with p 0.5 (the segment cut short by the document's edge is B or A alike), a
 * document's last unpaired sentence is left out (a cut inside it would show the order),
 * and the swap comes before truncate_pair, as in ALBERT's create_instances, so that the
 * trimming depends on positions only. */
static size_t sop_pairs_build(const plm_documents *docs, int max_num, float short_seq_prob, plm_rng *r, plm_window **w,
                              size_t *cap) {
    size_t n = 0;
    for (size_t d = 0; d < docs->num_docs; d++) {
        size_t s0 = docs->first_sent[d], s1 = docs->first_sent[d + 1];
        int dir = plm_rng_uniform(r) < 0.5f ? -1 : 1;
        size_t p = dir > 0 ? s0 : s1; /* the first unused sentence (forward), the end of the unused ones (backward) */
        while (dir > 0 ? p < s1 : p > s0) {
            uint64_t target = draw_target(max_num, short_seq_prob, r);
            uint64_t first = 1 + plm_rng_below(r, (uint32_t)(target - 1)), second = target - first;
            /* forward: A = sentences [p, m), B = [m, e); backward: B = [m, p), A = [e, m) */
            size_t m = gather(docs, d, p, dir, first), e = gather(docs, d, m, dir, second);
            if (e == m) {                                 /* the document ended in the first segment */
                if ((dir > 0 ? m - p : p - m) < 2) break; /* one sentence: no pair */
                m = dir > 0 ? m - 1 : m + 1;              /* its sentence at the edge is the second */
            }
            size_t a0 = dir > 0 ? p : e, b1 = dir > 0 ? e : p;
            uint64_t as = docs->sent[a0], al = docs->sent[m] - as, bs = docs->sent[m],
                     bl = sent_end(docs, d, b1 - 1) - bs;
            int32_t label = 0;
            if (plm_rng_uniform(r) < 0.5f) {
                uint64_t t = as;
                as = bs, bs = t;
                t = al;
                al = bl, bl = t;
                label = 1;
            }
            /* to the target, not max_num_tokens as google: a segment of whole sentences is
             * often longer than a short target, and short_seq_prob would give no short pair */
            truncate_pair(&as, &al, &bs, &bl, target, r);
            push_window(w, cap, &n,
                        (plm_window){.a_start = as,
                                     .b_start = bs,
                                     .a_len = (uint32_t)al,
                                     .b_len = (uint32_t)bl,
                                     .a_doc = (uint32_t)d,
                                     .b_doc = (uint32_t)d,
                                     .label = label});
            p = e;
        }
    }
    return n;
}

size_t plm_pairs_build(const plm_documents *docs, plm_pair_objective kind, int T, float short_seq_prob, uint64_t key,
                       plm_window **w, size_t *cap) {
    plm_rng r;
    plm_rng_seed(&r, key, 0x9a125ULL);
    int max_num = T - 3;
    if (kind == PLM_PAIR_SOP) return sop_pairs_build(docs, max_num, short_seq_prob, &r, w, cap);
    size_t n = 0; /* NSP */
    for (size_t d = 0; d < docs->num_docs; d++) {
        size_t s0 = docs->first_sent[d], s1 = docs->first_sent[d + 1];
        uint64_t target = draw_target(max_num, short_seq_prob, &r), clen = 0;
        size_t cs = s0; /* first sentence of the current chunk */
        for (size_t i = s0; i < s1; i++) {
            clen += sent_end(docs, d, i) - docs->sent[i];
            if (i + 1 < s1 && clen < target) continue;
            uint64_t cstart = docs->sent[cs], cend = sent_end(docs, d, i);
            size_t nsent = i - cs + 1;
            if (cend - cstart >= 2 || (nsent >= 2)) {
                uint64_t split;
                size_t a_end = i + 1; /* first sentence after A */
                if (nsent >= 2) {
                    a_end = cs + 1 + plm_rng_below(&r, (uint32_t)(nsent - 1));
                    split = docs->sent[a_end];
                } else {
                    split = cstart + 1 + plm_rng_below(&r, (uint32_t)(cend - cstart - 1));
                }
                uint64_t as = cstart, al = split - cstart, bs, bl;
                uint32_t bdoc = (uint32_t)d;
                int32_t label = 0;
                if (plm_rng_uniform(&r) < 0.5f) {
                    uint64_t target_b = target > al ? target - al : 1;
                    size_t rd = plm_rng_below(&r, (uint32_t)(docs->num_docs - 1));
                    if (rd >= d) rd++; /* never the same document */
                    size_t r0 = docs->first_sent[rd], r1 = docs->first_sent[rd + 1];
                    size_t j = r0 + plm_rng_below(&r, (uint32_t)(r1 - r0));
                    if (nsent >= 2) {
                        bs = docs->sent[j];
                        uint64_t be = sent_end(docs, rd, j);
                        while (be - bs < target_b && j + 1 < r1) be = sent_end(docs, rd, ++j);
                        bl = be - bs;
                        i = a_end - 1; /* the unused sentences go back */
                    } else {
                        /* one sentence cut at split: the real next B is its rest, cend - split
                         * tokens inside one sentence up to its end. The random B is the same
                         * number of tokens up to the end of a sentence at least that long (a
                         * few draws; else it reaches back into the sentences before), so that
                         * neither the lengths (a long A leaves a short next B) nor B's edges
                         * tell the label. */
                        uint64_t want = cend - split;
                        for (int k = 0; k < 8 && sent_end(docs, rd, j) - docs->sent[j] < want; k++)
                            j = r0 + plm_rng_below(&r, (uint32_t)(r1 - r0));
                        uint64_t be = sent_end(docs, rd, j);
                        bs = be - PLM_MIN(want, be - docs->start[rd]);
                        bl = be - bs;
                    }
                    bdoc = (uint32_t)rd;
                    label = 1;
                } else {
                    bs = split;
                    bl = cend - split;
                }
                truncate_pair(&as, &al, &bs, &bl, (uint64_t)max_num, &r);
                push_window(w, cap, &n,
                            (plm_window){.a_start = as,
                                         .b_start = bs,
                                         .a_len = (uint32_t)al,
                                         .b_len = (uint32_t)bl,
                                         .a_doc = (uint32_t)d,
                                         .b_doc = bdoc,
                                         .label = label});
            }
            cs = i + 1;
            clen = 0;
            target = draw_target(max_num, short_seq_prob, &r);
        }
    }
    return n;
}
