/* retrieval.c - see retrieval.h. tests/test_retrieval.c checks the metrics on
 * hand-computed cases; tests/retrieval.sh checks them against numpy on random score
 * matrices (with forced ties) and the TF-IDF ranker against scikit-learn. */
#include "tasks/retrieval.h"

#include "core/common.h"
#include "model/gemm.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

/* ---- metrics ------------------------------------------------------------------------ */

long plm_retrieval_rank(const double *scores, int n_docs, int rel) {
    double s = scores[rel];
    if (isnan(s)) return n_docs;
    long r = 1;
    for (int d = 0; d < n_docs; d++) r += d != rel && scores[d] >= s; /* NaN >= s is false */
    return r;
}

double plm_recall_at(long rank, int k) { return rank >= 1 && rank <= k ? 1.0 : 0.0; }

/* DCG@k = sum_i rel_i / log2(i + 1) over the first k positions; with a single relevant
 * document at rank r it is 1 / log2(r + 1), and the ideal ranking (it first) gives 1. */
double plm_ndcg_at(long rank, int k) { return rank >= 1 && rank <= k ? 1.0 / log2((double)rank + 1.0) : 0.0; }

double plm_mrr_at(long rank, int k) { return rank >= 1 && rank <= k ? 1.0 / (double)rank : 0.0; }

void plm_retrieval_score_ranks(const long *ranks, int n, plm_retrieval_scores *out) {
    double r1 = 0, r10 = 0, nd = 0, mrr = 0;
    for (int i = 0; i < n; i++) {
        r1 += plm_recall_at(ranks[i], 1);
        r10 += plm_recall_at(ranks[i], 10);
        nd += plm_ndcg_at(ranks[i], 10);
        mrr += plm_mrr_at(ranks[i], 10);
    }
    double inv = n > 0 ? 1.0 / n : NAN;
    *out = (plm_retrieval_scores){r1 * inv, r10 * inv, nd * inv, mrr * inv, n};
}

void plm_retrieval_rank_dense(const float *q, int nq, const float *d, int nd, int dim, const int *relevant,
                              long *ranks) {
    enum { BLOCK = 256 };
    if (nq <= 0 || nd <= 0) return;
    float *s = plm_malloc((size_t)BLOCK * nd * sizeof *s);
    double *row = plm_malloc((size_t)nd * sizeof *row);
    for (int q0 = 0; q0 < nq; q0 += BLOCK) {
        int m = PLM_MIN(BLOCK, nq - q0);
        /* S[m, nd] = Q[m, dim] D[nd, dim]^T */
        plm_sgemm(false, true, m, nd, dim, 1.0f, q + (size_t)q0 * dim, dim, d, dim, 0.0f, s, nd);
        for (int i = 0; i < m; i++) {
            for (int j = 0; j < nd; j++) row[j] = s[(size_t)i * nd + j];
            ranks[q0 + i] = plm_retrieval_rank(row, nd, relevant[q0 + i]);
        }
    }
    free(s);
    free(row);
}

/* ---- SQuAD as a retrieval set -------------------------------------------------------- */

typedef struct {
    const char *s;
    int index;
} str_index;

static int cmp_str_index(const void *a, const void *b) {
    const str_index *x = a, *y = b;
    int c = strcmp(x->s, y->s);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

void plm_retrieval_from_squad(plm_retrieval_set *out, const plm_squad_set *s, int max_queries) {
    memset(out, 0, sizeof *out);
    int nc = s->n_contexts;
    /* the document of each paragraph: identical strings share the first one's */
    str_index *si = plm_malloc((size_t)(nc + 1) * sizeof *si);
    for (int i = 0; i < nc; i++) si[i] = (str_index){s->contexts[i], i};
    qsort(si, (size_t)nc, sizeof *si, cmp_str_index);
    int *first = plm_malloc((size_t)(nc + 1) * sizeof *first); /* paragraph -> its first duplicate */
    for (int i = 0; i < nc; i++)
        first[si[i].index] = i > 0 && !strcmp(si[i].s, si[i - 1].s) ? first[si[i - 1].index] : si[i].index;
    int *doc_of = plm_malloc((size_t)(nc + 1) * sizeof *doc_of);
    out->docs = plm_malloc((size_t)(nc + 1) * sizeof *out->docs);
    for (int i = 0; i < nc; i++) {
        if (first[i] == i) {
            doc_of[i] = out->n_docs;
            out->docs[out->n_docs++] = s->contexts[i];
        } else {
            doc_of[i] = doc_of[first[i]];
        }
    }
    int nq = max_queries > 0 ? PLM_MIN(max_queries, s->n) : s->n;
    out->queries = plm_malloc((size_t)(nq + 1) * sizeof *out->queries);
    out->relevant = plm_malloc((size_t)(nq + 1) * sizeof *out->relevant);
    for (int i = 0; i < nq; i++) {
        out->queries[i] = s->qs[i].question;
        out->relevant[i] = doc_of[s->qs[i].context];
    }
    out->n_queries = nq;
    free(si);
    free(first);
    free(doc_of);
}

void plm_retrieval_set_free(plm_retrieval_set *r) {
    free(r->queries);
    free(r->docs);
    free(r->relevant);
    memset(r, 0, sizeof *r);
}

/* ---- TF-IDF --------------------------------------------------------------------------- */

struct plm_tfidf {
    /* vocabulary: open addressing, cap a power of two; slot -> term id or -1 */
    int *slots;
    size_t cap;
    char **terms;
    int n_terms, terms_cap;
    double *idf;
    /* postings by term (CSR): documents and their L2-normalised tf-idf weights */
    long *post_off;
    int *post_doc;
    double *post_w;
    int n_docs;
    pcre2_code *re;
};

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

/* The id of term s[0..n), added when add is set; -1 when absent. */
static int term_id(plm_tfidf *t, const char *s, size_t n, bool add) {
    size_t mask = t->cap - 1, i = hash_bytes(s, n) & mask;
    for (; t->slots[i] >= 0; i = (i + 1) & mask) {
        const char *u = t->terms[t->slots[i]];
        if (strlen(u) == n && memcmp(u, s, n) == 0) return t->slots[i];
    }
    if (!add) return -1;
    if (t->n_terms == t->terms_cap) {
        t->terms_cap = t->terms_cap ? 2 * t->terms_cap : 1024;
        t->terms = plm_realloc(t->terms, (size_t)t->terms_cap * sizeof *t->terms);
    }
    char *c = plm_malloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    t->terms[t->n_terms] = c;
    t->slots[i] = t->n_terms;
    if (2 * (size_t)++t->n_terms > t->cap) { /* keep the load under 1/2 */
        size_t ncap = 2 * t->cap;
        int *ns = plm_malloc(ncap * sizeof *ns);
        for (size_t k = 0; k < ncap; k++) ns[k] = -1;
        for (int id = 0; id < t->n_terms; id++) {
            size_t j = hash_bytes(t->terms[id], strlen(t->terms[id])) & (ncap - 1);
            while (ns[j] >= 0) j = (j + 1) & (ncap - 1);
            ns[j] = id;
        }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    return t->n_terms - 1;
}

/* s lowercased code point by code point (utf8proc_tolower); invalid bytes become
 * U+FFFD, so the result is always valid UTF-8. *len gets its length. */
static char *lowercase(const char *s, size_t *len) {
    size_t n = strlen(s), k = 0;
    char *out = plm_malloc(4 * n + 1);
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t m = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &c);
        if (m <= 0) {
            c = 0xFFFD;
            m = 1;
        }
        k += (size_t)utf8proc_encode_char(utf8proc_tolower(c), (utf8proc_uint8_t *)out + k);
        i += (size_t)m;
    }
    out[k] = 0;
    *len = k;
    return out;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The sorted term ids of text's tokens (unknown ones dropped unless add): *n of them. */
static int *tokens(plm_tfidf *t, const char *text, bool add, int *n) {
    size_t len;
    char *low = lowercase(text, &len);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(t->re, NULL);
    int cap = 64, k = 0;
    int *ids = plm_malloc((size_t)cap * sizeof *ids);
    size_t off = 0;
    while (off <= len) {
        int rc = pcre2_match(t->re, (PCRE2_SPTR)low, len, off, PCRE2_NO_UTF_CHECK, md, NULL);
        if (rc < 0) break;
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        int id = term_id(t, low + ov[0], ov[1] - ov[0], add);
        if (id >= 0) {
            if (k == cap) ids = plm_realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            ids[k++] = id;
        }
        off = ov[1] > ov[0] ? ov[1] : ov[1] + 1; /* \w\w+ never matches empty */
    }
    pcre2_match_data_free(md);
    free(low);
    qsort(ids, (size_t)k, sizeof *ids, cmp_int);
    *n = k;
    return ids;
}

plm_tfidf *plm_tfidf_fit(const char *const *docs, int n) {
    int err;
    PCRE2_SIZE eoff;
    pcre2_code *re =
        pcre2_compile((PCRE2_SPTR) "\\b\\w\\w+\\b", PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    if (!re) {
        plm_error("tfidf: cannot compile the token pattern (PCRE2 error %d)", err);
        return NULL;
    }
    plm_tfidf *t = plm_calloc(1, sizeof *t);
    t->re = re;
    t->cap = 4096;
    t->slots = plm_malloc(t->cap * sizeof *t->slots);
    for (size_t i = 0; i < t->cap; i++) t->slots[i] = -1;
    t->n_docs = n;
    int **dt = plm_malloc((size_t)(n + 1) * sizeof *dt), *dn = plm_malloc((size_t)(n + 1) * sizeof *dn);
    for (int d = 0; d < n; d++) dt[d] = tokens(t, docs[d], true, &dn[d]);
    int V = t->n_terms;
    long *df = plm_calloc((size_t)V + 1, sizeof *df);
    for (int d = 0; d < n; d++)
        for (int i = 0; i < dn[d]; i++)
            if (i == 0 || dt[d][i] != dt[d][i - 1]) df[dt[d][i]]++;
    /* smooth_idf: as if one extra document held every term once */
    t->idf = plm_malloc((size_t)(V + 1) * sizeof *t->idf);
    for (int v = 0; v < V; v++) t->idf[v] = log((1.0 + n) / (1.0 + (double)df[v])) + 1.0;
    t->post_off = plm_calloc((size_t)V + 1, sizeof *t->post_off);
    for (int v = 0; v < V; v++) t->post_off[v + 1] = t->post_off[v] + df[v];
    t->post_doc = plm_malloc((size_t)(t->post_off[V] + 1) * sizeof *t->post_doc);
    t->post_w = plm_malloc((size_t)(t->post_off[V] + 1) * sizeof *t->post_w);
    long *fill = plm_malloc((size_t)(V + 1) * sizeof *fill);
    memcpy(fill, t->post_off, (size_t)V * sizeof *fill);
    for (int d = 0; d < n; d++) {
        double norm = 0;
        for (int i = 0, j; i < dn[d]; i = j) {
            for (j = i; j < dn[d] && dt[d][j] == dt[d][i]; j++) {
            }
            double w = (double)(j - i) * t->idf[dt[d][i]];
            norm += w * w;
        }
        double inv = norm > 0 ? 1.0 / sqrt(norm) : 0.0;
        for (int i = 0, j; i < dn[d]; i = j) {
            for (j = i; j < dn[d] && dt[d][j] == dt[d][i]; j++) {
            }
            long p = fill[dt[d][i]]++;
            t->post_doc[p] = d;
            t->post_w[p] = (double)(j - i) * t->idf[dt[d][i]] * inv;
        }
        free(dt[d]);
    }
    free(fill);
    free(df);
    free(dt);
    free(dn);
    return t;
}

void plm_tfidf_scores(const plm_tfidf *t, const char *query, double *scores) {
    int n;
    int *ids = tokens((plm_tfidf *)t, query, false, &n); /* add = false: no change to t */
    for (int d = 0; d < t->n_docs; d++) scores[d] = 0.0;
    double norm = 0;
    for (int i = 0, j; i < n; i = j) {
        for (j = i; j < n && ids[j] == ids[i]; j++) {
        }
        double w = (double)(j - i) * t->idf[ids[i]];
        norm += w * w;
    }
    if (norm > 0) {
        double inv = 1.0 / sqrt(norm);
        for (int i = 0, j; i < n; i = j) {
            for (j = i; j < n && ids[j] == ids[i]; j++) {
            }
            double w = (double)(j - i) * t->idf[ids[i]] * inv;
            for (long p = t->post_off[ids[i]]; p < t->post_off[ids[i] + 1]; p++)
                scores[t->post_doc[p]] += w * t->post_w[p];
        }
    }
    free(ids);
}

int plm_tfidf_vocab_size(const plm_tfidf *t) { return t->n_terms; }

void plm_tfidf_free(plm_tfidf *t) {
    if (!t) return;
    for (int i = 0; i < t->n_terms; i++) free(t->terms[i]);
    free(t->terms);
    free(t->slots);
    free(t->idf);
    free(t->post_off);
    free(t->post_doc);
    free(t->post_w);
    pcre2_code_free(t->re);
    free(t);
}
