/* retrieval.h - ranked-retrieval evaluation: each query has one relevant document
 * among n_docs (SQuAD dev: a question and its own paragraph), documents are ranked by a
 * score (cosine similarity of sentence embeddings, or TF-IDF), and the rank of the
 * relevant document gives recall@k, nDCG@k and MRR@k as BEIR / pytrec_eval define them
 * for binary relevance. Owns the maths, the score matrix of a block of queries, the
 * SQuAD question -> paragraph corpus, and a model-free TF-IDF ranker (scikit-learn's
 * TfidfVectorizer defaults) used as the lexical sanity baseline.
 *
 * Ties: a document whose score equals the relevant document's is ranked before it (the
 * pessimistic rank, 1 + #{d != rel : score_d >= score_rel}). A degenerate model that
 * gives every document the same score therefore gets the worst rank, never a lucky one,
 * and the result does not depend on document order. A NaN relevant score ranks last;
 * NaN scores of other documents count as lower. */
#ifndef PLM_RETRIEVAL_H
#define PLM_RETRIEVAL_H

#include <stddef.h>

#include "tasks/datasets.h"

/* The pessimistic 1-based rank of document rel among scores[0..n_docs). */
long plm_retrieval_rank(const double *scores, int n_docs, int rel);

/* Per-query values of a relevant document at 1-based rank r (one relevant document, so
 * recall@k is a hit@k and the ideal DCG is 1):
 *   recall@k = [r <= k];  nDCG@k = [r <= k] / log2(r + 1);  MRR@k = [r <= k] / r. */
double plm_recall_at(long rank, int k);
double plm_ndcg_at(long rank, int k);
double plm_mrr_at(long rank, int k);

/* Means over n queries (NaN when n == 0). */
typedef struct {
    double recall_at_1, recall_at_10, ndcg_at_10, mrr_at_10;
    int n_queries;
} plm_retrieval_scores;

void plm_retrieval_score_ranks(const long *ranks, int n, plm_retrieval_scores *out);

/* Ranks of relevant[i] for the nq queries q[nq, dim] against docs d[nd, dim] by the dot
 * product (the cosine when rows are L2-normalised), computed in fp32 by blocks of
 * queries (the [block, nd] score matrix is the only scratch). */
void plm_retrieval_rank_dense(const float *q, int nq, const float *d, int nd, int dim, const int *relevant,
                              long *ranks);

/* SQuAD as a retrieval task: the queries are the questions, the documents the distinct
 * paragraphs (identical context strings are one document, kept at first appearance),
 * and relevant[i] the document of question i. Strings point into the set. */
typedef struct {
    const char **queries;
    int n_queries;
    const char **docs;
    int n_docs;
    int *relevant;
} plm_retrieval_set;

/* The first max_queries questions of s (0: all) against every distinct paragraph of s. */
void plm_retrieval_from_squad(plm_retrieval_set *out, const plm_squad_set *s, int max_queries);
void plm_retrieval_set_free(plm_retrieval_set *r);

/* TF-IDF as scikit-learn's TfidfVectorizer() computes it with its defaults, fitted on the
 * documents: text lowercased per code point (utf8proc, Python's str.lower() up to its few
 * special cases), tokens the matches of (?u)\b\w\w+\b (PCRE2 with Unicode properties),
 * raw counts times idf = ln((1 + n) / (1 + df)) + 1, rows L2-normalised. A query's terms
 * outside the documents' vocabulary are dropped; a query with none scores 0 everywhere. */
typedef struct plm_tfidf plm_tfidf;

/* Fits on docs[0..n) (valid UTF-8). Returns NULL with the error set on failure. */
plm_tfidf *plm_tfidf_fit(const char *const *docs, int n);
/* Cosine similarity of query with every document: scores[0..n_docs) (float64). */
void plm_tfidf_scores(const plm_tfidf *t, const char *query, double *scores);
int plm_tfidf_vocab_size(const plm_tfidf *t);
void plm_tfidf_free(plm_tfidf *t);

#endif
