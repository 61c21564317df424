/* metrics.c - task metrics as sklearn, SciPy, SQuAD's evaluate-v1.1.py and conlleval
 * compute them. tests/metrics_conformance.sh checks every function here against those
 * references on random inputs. */
#include "tasks/metrics.h"

#include "core/common.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

/* ---- classification ---------------------------------------------------------------- */

double plm_accuracy(const int *gold, const int *pred, size_t n) {
    if (n == 0) return NAN;
    size_t hit = 0;
    for (size_t i = 0; i < n; i++) hit += gold[i] == pred[i];
    return (double)hit / (double)n;
}

double plm_token_accuracy(const int *gold, const int *pred, size_t n, int ignore_index) {
    size_t hit = 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        if (gold[i] == ignore_index) continue;
        total++;
        hit += gold[i] == pred[i];
    }
    return total ? (double)hit / (double)total : NAN;
}

double plm_f1_binary(const int *gold, const int *pred, size_t n) {
    /* 2 P R / (P + R) with P = TP / (TP + FP), R = TP / (TP + FN) is 2 TP / (2 TP + FP + FN)
     * whenever TP > 0, and sklearn gives 0 in every case where TP == 0. */
    size_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        tp += gold[i] == 1 && pred[i] == 1;
        fp += gold[i] != 1 && pred[i] == 1;
        fn += gold[i] == 1 && pred[i] != 1;
    }
    return tp ? 2.0 * (double)tp / (double)(2 * tp + fp + fn) : 0.0;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* The sorted distinct labels of gold and pred (sklearn's unique_labels), and for each
 * label k its gold count t[k], predicted count p[k] and true positives tp[k]. Returns
 * the number of labels; the caller frees *labels (the counts live in the same block). */
typedef struct {
    int *labels;
    size_t *t, *p, *tp;
    size_t k;
} label_counts;

static void count_labels(const int *gold, const int *pred, size_t n, label_counts *c) {
    int *all = plm_malloc((2 * n + 1) * sizeof *all);
    memcpy(all, gold, n * sizeof *all);
    memcpy(all + n, pred, n * sizeof *all);
    qsort(all, 2 * n, sizeof *all, cmp_int);
    size_t k = 0;
    for (size_t i = 0; i < 2 * n; i++)
        if (k == 0 || all[i] != all[k - 1]) all[k++] = all[i];
    c->labels = all;
    c->k = k;
    c->t = plm_calloc(3 * (k + 1), sizeof(size_t));
    c->p = c->t + k + 1;
    c->tp = c->p + k + 1;
    for (size_t i = 0; i < n; i++) {
        size_t g = (size_t)((int *)bsearch(&gold[i], all, k, sizeof *all, cmp_int) - all);
        size_t q = (size_t)((int *)bsearch(&pred[i], all, k, sizeof *all, cmp_int) - all);
        c->t[g]++;
        c->p[q]++;
        c->tp[g] += g == q;
    }
}

static void free_labels(label_counts *c) {
    free(c->labels);
    free(c->t);
}

double plm_f1_macro(const int *gold, const int *pred, size_t n) {
    if (n == 0) return NAN;
    label_counts c;
    count_labels(gold, pred, n, &c);
    /* Per class, FP = p - tp and FN = t - tp, so 2 TP + FP + FN = t + p (> 0: the label
     * occurs somewhere). */
    double sum = 0;
    for (size_t k = 0; k < c.k; k++) sum += 2.0 * (double)c.tp[k] / (double)(c.t[k] + c.p[k]);
    double f1 = sum / (double)c.k;
    free_labels(&c);
    return f1;
}

double plm_matthews_corrcoef(const int *gold, const int *pred, size_t n) {
    if (n == 0) return 0.0;
    label_counts c;
    count_labels(gold, pred, n, &c);
    /* In float64 as sklearn does: the covariances are exact while n^2 < 2^53. */
    double s = (double)n, correct = 0, tp = 0, pp = 0, tt = 0;
    for (size_t k = 0; k < c.k; k++) {
        correct += (double)c.tp[k];
        tp += (double)c.t[k] * (double)c.p[k];
        pp += (double)c.p[k] * (double)c.p[k];
        tt += (double)c.t[k] * (double)c.t[k];
    }
    free_labels(&c);
    double cov_tp = correct * s - tp, cov_pp = s * s - pp, cov_tt = s * s - tt;
    if (cov_pp * cov_tt == 0) return 0.0;
    return cov_tp / sqrt(cov_tt * cov_pp);
}

/* ---- correlation ------------------------------------------------------------------- */

/* NaN when SciPy returns NaN: fewer than two points, a NaN, or a constant input. */
static bool correlation_undefined(const double *x, const double *y, size_t n) {
    if (n < 2) return true;
    bool xconst = true, yconst = true;
    for (size_t i = 0; i < n; i++) {
        if (isnan(x[i]) || isnan(y[i])) return true;
        xconst = xconst && x[i] == x[0];
        yconst = yconst && y[i] == y[0];
    }
    return xconst || yconst;
}

/* r = sum (x - mx)(y - my) / (|x - mx| |y - my|), on centered data like scipy.stats.pearsonr
 * (centering first keeps the sums from cancelling). */
static double pearson_defined(const double *x, const double *y, size_t n) {
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) mx += x[i], my += y[i];
    mx /= (double)n;
    my /= (double)n;
    double sxx = 0, syy = 0, sxy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxx += dx * dx;
        syy += dy * dy;
        sxy += dx * dy;
    }
    double r = sxy / (sqrt(sxx) * sqrt(syy));
    return r > 1.0 ? 1.0 : r < -1.0 ? -1.0 : r;
}

double plm_pearson(const double *x, const double *y, size_t n) {
    return correlation_undefined(x, y, n) ? NAN : pearson_defined(x, y, n);
}

typedef struct {
    double v;
    size_t i;
} ranked;

static int cmp_ranked(const void *a, const void *b) {
    double x = ((const ranked *)a)->v, y = ((const ranked *)b)->v;
    return (x > y) - (x < y);
}

/* scipy.stats.rankdata(method="average"): ranks 1..n, a run of ties at sorted positions
 * i..j-1 all get the mean of ranks i+1..j, (i + 1 + j) / 2. */
static void average_ranks(const double *v, size_t n, double *rank) {
    ranked *r = plm_malloc(n * sizeof *r);
    for (size_t i = 0; i < n; i++) r[i] = (ranked){v[i], i};
    qsort(r, n, sizeof *r, cmp_ranked);
    for (size_t i = 0, j; i < n; i = j) {
        for (j = i + 1; j < n && r[j].v == r[i].v; j++) {
        }
        for (size_t k = i; k < j; k++) rank[r[k].i] = (double)(i + 1 + j) / 2.0;
    }
    free(r);
}

double plm_spearman(const double *x, const double *y, size_t n) {
    if (correlation_undefined(x, y, n)) return NAN;
    double *rx = plm_malloc(2 * n * sizeof *rx), *ry = rx + n;
    average_ranks(x, n, rx);
    average_ranks(y, n, ry);
    double rho = pearson_defined(rx, ry, n);
    free(rx);
    return rho;
}

/* ---- SQuAD v1.1 -------------------------------------------------------------------- */

/* Text is handled as code points. A byte that is not valid UTF-8 becomes RAW + byte: a
 * "character" with no case, not a letter, not a space, written back as that byte. */
#define RAW 0x110000

static const char ascii_punctuation[] = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"; /* string.punctuation */

/* Python's str.isspace(), which str.split() splits on: bidirectional class WS, B or S, or
 * category Zs. */
static bool py_isspace(int32_t c) {
    if (c < 0x80) return c == ' ' || (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x1F);
    return c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* A word character of Python's re (\w, so also \b): str.isalnum() or '_'; isalnum is a
 * letter (L*) or a number (N*). Combining marks are not word characters. */
static bool py_isword(int32_t c) {
    if (c >= RAW) return false;
    if (c == '_') return true;
    utf8proc_category_t k = utf8proc_category(c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* Unicode's Cased property (what the final-sigma rule looks at): upper, lower and title
 * case letters, whatever else has a case mapping (circled letters, Roman numerals), and
 * the Other_Lowercase / Other_Uppercase characters without one that are not already
 * case-ignorable: the ordinal indicators and the squared, negative circled and negative
 * squared Latin capitals. (tests/metrics_conformance.sh checks every code point.) */
static bool is_cased(int32_t c) {
    if (c >= RAW) return false;
    if (c == 0xAA || c == 0xBA || (c >= 0x1F130 && c <= 0x1F149) || (c >= 0x1F150 && c <= 0x1F169) ||
        (c >= 0x1F170 && c <= 0x1F189))
        return true;
    utf8proc_category_t k = utf8proc_category(c);
    if (k == UTF8PROC_CATEGORY_LU || k == UTF8PROC_CATEGORY_LL || k == UTF8PROC_CATEGORY_LT) return true;
    return utf8proc_tolower(c) != c || utf8proc_toupper(c) != c;
}

/* Unicode's Case_Ignorable: categories Mn, Me, Cf, Lm, Sk, and Word_Break MidLetter,
 * MidNumLet and Single_Quote (apostrophes, full stops, colons, middle dots). */
static bool is_case_ignorable(int32_t c) {
    if (c >= RAW) return false;
    static const int32_t mid[] = {0x27,   0x2E,   0x3A,   0xB7,   0x387,  0x55F,  0x5F4,  0x2018, 0x2019,
                                  0x2024, 0x2027, 0xFE13, 0xFE52, 0xFE55, 0xFF07, 0xFF0E, 0xFF1A};
    for (size_t i = 0; i < PLM_ARRAY_LEN(mid); i++)
        if (c == mid[i]) return true;
    utf8proc_category_t k = utf8proc_category(c);
    return k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_ME || k == UTF8PROC_CATEGORY_CF ||
           k == UTF8PROC_CATEGORY_LM || k == UTF8PROC_CATEGORY_SK;
}

/* CPython's handle_capital_sigma: U+03A3 lowercases to final U+03C2 when it follows a
 * cased letter and no cased letter follows, case-ignorable characters skipped both ways
 * (\p{cased}\p{case-ignorable}* SIGMA !(\p{case-ignorable}* \p{cased})). */
static bool final_sigma(const int32_t *c, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && is_case_ignorable(c[j - 1])) j--;
    if (j == 0 || !is_cased(c[j - 1])) return false;
    for (j = i + 1; j < n && is_case_ignorable(c[j]); j++) {
    }
    return j == n || !is_cased(c[j]);
}

/* normalize_answer: white_space_fix(remove_articles(remove_punc(lower(s)))). */
char *plm_squad_normalize(const char *s) {
    size_t len = strlen(s);
    int32_t *in = plm_malloc((len + 1) * sizeof *in);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        utf8proc_int32_t c;
        utf8proc_ssize_t r = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &c);
        if (r > 0) {
            in[n++] = c;
            i += (size_t)r;
        } else {
            in[n++] = RAW + (uint8_t)s[i++];
        }
    }

    /* lower() with full case mapping: the one unconditional multi-character lowercase
     * (U+0130 -> i U+0307) and the final sigma, otherwise the simple mapping. Then
     * remove_punc drops string.punctuation. Each input character makes at most two. */
    int32_t *t = plm_malloc((2 * n + 1) * sizeof *t);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = in[i];
        if (c >= RAW) {
            t[m++] = c;
        } else if (c == 0x130) {
            t[m++] = 'i';
            t[m++] = 0x307;
        } else {
            c = c == 0x3A3 ? (final_sigma(in, n, i) ? 0x3C2 : 0x3C3) : utf8proc_tolower(c);
            if (!(c > 0 && c < 0x80 && strchr(ascii_punctuation, c))) t[m++] = c;
        }
    }

    /* remove_articles: re.sub(r'\b(a|an|the)\b', ' ', .) replaces exactly the maximal
     * runs of word characters that spell a, an or the. white_space_fix: split on
     * whitespace, join with one space. Both in one pass, writing UTF-8. */
    char *out = plm_malloc(4 * m + 1);
    size_t o = 0;
    bool pending_space = false; /* a space goes out before the next visible character */
    for (size_t i = 0, j; i < m; i = j) {
        j = i + 1;
        if (py_isspace(t[i])) {
            pending_space = o > 0;
            continue;
        }
        if (py_isword(t[i])) {
            while (j < m && py_isword(t[j])) j++;
            size_t w = j - i;
            bool article = (w == 1 && t[i] == 'a') || (w == 2 && t[i] == 'a' && t[i + 1] == 'n') ||
                           (w == 3 && t[i] == 't' && t[i + 1] == 'h' && t[i + 2] == 'e');
            if (article) { /* becomes a space */
                pending_space = o > 0;
                continue;
            }
        }
        if (pending_space) out[o++] = ' ';
        pending_space = false;
        for (size_t k = i; k < j; k++) {
            if (t[k] >= RAW)
                out[o++] = (char)(t[k] - RAW);
            else
                o += (size_t)utf8proc_encode_char(t[k], (utf8proc_uint8_t *)out + o);
        }
    }
    out[o] = 0;
    free(in);
    free(t);
    return out;
}

double plm_squad_exact(const char *pred, const char *gold) {
    char *a = plm_squad_normalize(pred), *b = plm_squad_normalize(gold);
    double em = strcmp(a, b) == 0;
    free(a);
    free(b);
    return em;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Splits a normalized answer (tokens joined by single spaces) in place; sorted tokens. */
static char **tokens(char *s, size_t *n) {
    size_t cap = 1;
    for (char *p = s; *p; p++) cap += *p == ' ';
    char **tok = plm_malloc(cap * sizeof *tok);
    *n = 0;
    for (char *p = s; *p;) {
        tok[(*n)++] = p;
        char *sp = strchr(p, ' ');
        if (!sp) break;
        *sp = 0;
        p = sp + 1;
    }
    qsort(tok, *n, sizeof *tok, cmp_str);
    return tok;
}

double plm_squad_f1(const char *pred, const char *gold) {
    char *a = plm_squad_normalize(pred), *b = plm_squad_normalize(gold);
    size_t na, nb;
    char **ta = tokens(a, &na), **tb = tokens(b, &nb);
    /* Counter(pred) & Counter(gold): the multiset intersection, by merging sorted lists. */
    size_t same = 0;
    for (size_t i = 0, j = 0; i < na && j < nb;) {
        int c = strcmp(ta[i], tb[j]);
        if (c == 0)
            same++, i++, j++;
        else if (c < 0)
            i++;
        else
            j++;
    }
    double f1 = 0;
    if (same > 0) {
        double p = (double)same / (double)na, r = (double)same / (double)nb;
        f1 = 2 * p * r / (p + r);
    }
    free(ta);
    free(tb);
    free(a);
    free(b);
    return f1;
}

double plm_squad_exact_max(const char *pred, const char *const *golds, size_t n_gold) {
    double best = 0;
    for (size_t i = 0; i < n_gold; i++) best = PLM_MAX(best, plm_squad_exact(pred, golds[i]));
    return best;
}

double plm_squad_f1_max(const char *pred, const char *const *golds, size_t n_gold) {
    double best = 0;
    for (size_t i = 0; i < n_gold; i++) best = PLM_MAX(best, plm_squad_f1(pred, golds[i]));
    return best;
}

/* ---- entities (conlleval) ---------------------------------------------------------- */

typedef struct {
    char tag;         /* 'O', 'B', 'I', 'E' or 'S' */
    const char *type; /* "" for O */
} chunk_tag;

typedef struct {
    size_t start, end; /* inclusive token positions */
    const char *type;
} chunk;

/* conlleval's endOfChunk, with seqeval's rules for E and S (a chunk always ends after
 * them); for B, I and O tags the same as the Perl script. */
static bool chunk_ends(chunk_tag prev, chunk_tag cur) {
    if (prev.tag == 'E' || prev.tag == 'S') return true;
    if ((prev.tag == 'B' || prev.tag == 'I') && (cur.tag == 'B' || cur.tag == 'S' || cur.tag == 'O')) return true;
    return prev.tag != 'O' && strcmp(prev.type, cur.type) != 0;
}

/* conlleval's startOfChunk: B and S always start one; I and E start one after O, after
 * the end of a chunk (E, S) or after a tag of another type, which is how IOB1 chunks
 * (and IOB2 chunks with a broken start) open. */
static bool chunk_starts(chunk_tag prev, chunk_tag cur) {
    if (cur.tag == 'B' || cur.tag == 'S') return true;
    if ((cur.tag == 'I' || cur.tag == 'E') && (prev.tag == 'O' || prev.tag == 'E' || prev.tag == 'S')) return true;
    return cur.tag != 'O' && strcmp(prev.type, cur.type) != 0;
}

static int parse_tag(const char *s, size_t sentence, size_t token, chunk_tag *t) {
    if (!strcmp(s, "O")) {
        *t = (chunk_tag){'O', ""};
        return 0;
    }
    if (s[0] && strchr("BIES", s[0]) && s[1] == '-' && s[2]) {
        *t = (chunk_tag){s[0], s + 2};
        return 0;
    }
    plm_error("entity tags: sentence %zu, token %zu: bad tag \"%s\" (want O or B-, I-, E-, S- and a type)", sentence,
              token, s);
    return -1;
}

/* The chunks of one sentence, in order (seqeval's get_entities): a virtual O after the
 * last tag closes any open chunk. Returns the count, or -1 on a bad tag. */
static long sentence_chunks(const char *const *tags, size_t n, size_t sentence, chunk *out) {
    chunk_tag prev = {'O', ""};
    size_t begin = 0;
    long k = 0;
    for (size_t i = 0; i <= n; i++) {
        chunk_tag cur = {'O', ""};
        if (i < n && parse_tag(tags[i], sentence, i, &cur)) return -1;
        if (chunk_ends(prev, cur)) out[k++] = (chunk){begin, i - 1, prev.type};
        if (chunk_starts(prev, cur)) begin = i;
        prev = cur;
    }
    return k;
}

int plm_entity_f1(const char *const *gold, const char *const *pred, const size_t *sentence_len, size_t n_sentences,
                  plm_entity_scores *out) {
    memset(out, 0, sizeof *out);
    size_t longest = 0;
    for (size_t s = 0; s < n_sentences; s++) longest = PLM_MAX(longest, sentence_len[s]);
    chunk *g = plm_malloc((2 * longest + 2) * sizeof *g), *p = g + longest + 1;
    int rc = 0;
    size_t off = 0;
    for (size_t s = 0; s < n_sentences; off += sentence_len[s++]) {
        long ng = sentence_chunks(gold + off, sentence_len[s], s, g);
        long np = ng < 0 ? -1 : sentence_chunks(pred + off, sentence_len[s], s, p);
        if (np < 0) {
            rc = -1;
            break;
        }
        out->n_gold += ng;
        out->n_pred += np;
        /* Chunks are disjoint and ordered, so a merge on start finds the matches. */
        for (long i = 0, j = 0; i < ng && j < np;) {
            if (g[i].start < p[j].start)
                i++;
            else if (g[i].start > p[j].start)
                j++;
            else {
                out->n_correct += g[i].end == p[j].end && !strcmp(g[i].type, p[j].type);
                i++, j++;
            }
        }
    }
    free(g);
    if (rc) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    double P = out->n_pred ? (double)out->n_correct / (double)out->n_pred : 0.0;
    double R = out->n_gold ? (double)out->n_correct / (double)out->n_gold : 0.0;
    out->precision = P;
    out->recall = R;
    out->f1 = P + R > 0 ? 2 * P * R / (P + R) : 0.0;
    return 0;
}
