/* metrics.h - evaluation metrics of the fine-tuning tasks, each computed exactly as the
 * reference that defines it does: scikit-learn (accuracy, F1, Matthews correlation),
 * SciPy (Pearson, Spearman), SQuAD's official evaluate-v1.1.py (exact match and token F1)
 * and conlleval (entity-level precision, recall and F1). Owns nothing but the maths:
 * plain arrays in, doubles out; scratch memory is allocated and freed inside each call.
 *
 * Argument order is sklearn's: gold (y_true) first, then the prediction.
 * Where the reference returns NaN (empty input, constant input to a correlation) so do
 * these; where it returns 0 for an undefined value (F1, MCC) so do these. */
#ifndef PLM_METRICS_H
#define PLM_METRICS_H

#include <stddef.h>

/* Fraction of positions with pred == gold (sklearn accuracy_score). NaN when n == 0. */
double plm_accuracy(const int *gold, const int *pred, size_t n);

/* Accuracy over the positions whose gold label is not ignore_index (-100 in Hugging
 * Face's token-classification labels: special tokens and non-first word pieces). NaN
 * when no position counts. */
double plm_token_accuracy(const int *gold, const int *pred, size_t n, int ignore_index);

/* F1 of the positive class 1 (sklearn f1_score, average="binary", pos_label=1); every
 * other label is negative. F1 = 2 TP / (2 TP + FP + FN), 0 when TP + FP + FN == 0 (no
 * positive in gold or pred: sklearn's zero_division default). */
double plm_f1_binary(const int *gold, const int *pred, size_t n);

/* Unweighted mean of the per-class F1 over every label that occurs in gold or pred
 * (sklearn f1_score, average="macro"). NaN when n == 0. */
double plm_f1_macro(const int *gold, const int *pred, size_t n);

/* Matthews correlation coefficient, multi-class form (sklearn matthews_corrcoef):
 * with t_k, p_k the gold and predicted counts of label k, c the correct predictions and
 * s = n,  MCC = (c s - sum_k t_k p_k) / sqrt((s^2 - sum_k p_k^2) (s^2 - sum_k t_k^2)),
 * and 0 when the denominator is 0 (a constant gold or pred, or n == 0). */
double plm_matthews_corrcoef(const int *gold, const int *pred, size_t n);

/* Pearson's r (scipy.stats.pearsonr), clamped to [-1, 1]. NaN when n < 2, when x or y
 * is constant, or when an input is NaN. */
double plm_pearson(const double *x, const double *y, size_t n);

/* Spearman's rho (scipy.stats.spearmanr): Pearson's r of the ranks, ties given the
 * average of the ranks they span. NaN under the same conditions as plm_pearson. */
double plm_spearman(const double *x, const double *y, size_t n);

/* SQuAD v1.1 answer normalization (evaluate-v1.1.py normalize_answer): lowercase, drop
 * ASCII punctuation (string.punctuation), replace the words a, an, the by a space,
 * collapse whitespace. UTF-8 in, UTF-8 out (malloc'd; free it). Lowercasing follows
 * Python's str.lower() (utf8proc's case tables plus U+0130 and the final-sigma rule);
 * bytes that are not valid UTF-8 are copied through as they are (as Python's
 * surrogateescape would: no case, no word character). Every code point Python 3.11's
 * Unicode 14 assigns normalizes as in Python, alone and in word-boundary and final-sigma
 * contexts; the one difference left is the version: characters new in utf8proc's
 * Unicode 15 are letters here and unassigned to Python 3.11. */
char *plm_squad_normalize(const char *s);

/* evaluate-v1.1.py exact_match_score (1 or 0) and f1_score (token F1 over the
 * whitespace tokens of both normalized answers, tokens counted as multisets; 0 when no
 * token is shared, so also when either answer normalizes to nothing). */
double plm_squad_exact(const char *pred, const char *gold);
double plm_squad_f1(const char *pred, const char *gold);

/* The same, maximized over the gold answers of a question (metric_max_over_ground_truths).
 * 0 when n_gold == 0. Averaging these over questions (times 100) gives the script's
 * "exact_match" and "f1". */
double plm_squad_exact_max(const char *pred, const char *const *golds, size_t n_gold);
double plm_squad_f1_max(const char *pred, const char *const *golds, size_t n_gold);

/* Entity-level scores as conlleval reports them (as fractions, not percent). */
typedef struct {
    double precision; /* correct / predicted chunks, 0 when nothing was predicted */
    double recall;    /* correct / gold chunks, 0 when gold has none */
    double f1;        /* 2 P R / (P + R), 0 when P + R == 0 */
    long n_gold, n_pred, n_correct;
} plm_entity_scores;

/* Entity-level precision, recall and F1 over sentences of tags. Sentence s has
 * sentence_len[s] tags; gold and pred hold the tags of all sentences one after another.
 * A tag is "O" or P-TYPE with P one of B, I, E, S and a non-empty TYPE (which may hold
 * '-'). Chunks are read with conlleval's start/end rules, so IOB1 and IOB2 (and IOBES,
 * with seqeval's extension of those rules) need no scheme flag: I-X after O or after a
 * tag of another type starts a chunk. A chunk never crosses a sentence end. A predicted
 * chunk is correct when a gold chunk has the same type, start and end.
 * Returns 0, or -1 with plm_error() on a malformed tag. */
int plm_entity_f1(const char *const *gold, const char *const *pred, const size_t *sentence_len, size_t n_sentences,
                  plm_entity_scores *out);

#endif
