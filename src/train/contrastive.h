/* contrastive.h - the InfoNCE objective of a bi-encoder with in-batch negatives (DPR;
 * sentence-transformers' MultipleNegativesRankingLoss), on pooled, L2-normalised
 * embeddings (tasks/embed.h). Owns the objective's activations for up to cap pairs.
 *
 * A batch holds n (query, passage) pairs as 2n rows of one padded model batch: queries
 * in rows [0, n), their passages in rows [n, 2n). With e the unit embeddings and tau the
 * temperature, S_ij = (e_qi . e_pj) / tau and the loss is asymmetric, queries -> passages
 * only (DPR's and MultipleNegativesRankingLoss's choice: retrieval ranks passages for a
 * query, never the reverse):
 *     L = (1/n) sum_i [ log sum_{j in A_i} exp S_ij - S_ii ]
 * where A_i is i and every j whose passage is not i's own (group[j] != group[i]): a
 * second question on the same paragraph in the batch is not a negative, and leaving it
 * in would push a passage away from itself.
 * Backward, with P the softmax over A_i and dS = (P - I) / n:
 *     de_qi = sum_j dS_ij e_pj / tau,   de_pj = sum_i dS_ij e_qi / tau,
 *     L2 normalisation e = u / |u|:      du = (de - e (e . de)) / |u|,
 *     mean pooling over the n_b real tokens: dh[b, t] = du_b / n_b for t < n_b
 *     (cls: dh[b, 0] = du_b; last: dh[b, n_b - 1] = du_b). */
#ifndef PLM_CONTRASTIVE_H
#define PLM_CONTRASTIVE_H

#include "tasks/embed.h"

typedef struct {
    int cap, C;
    float *u;     /* [2 cap, C] pooled states */
    float *e;     /* [2 cap, C] unit embeddings */
    double *norm; /* [2 cap] |u| */
    double *p;    /* [cap, cap] softmax over A_i, 0 outside it */
    float *de;    /* [2 cap, C] gradient of e, then of u */
    /* of the last forward */
    int n;
    double loss;
    int correct; /* queries whose own passage scored highest among A_i (ties: not correct) */
} plm_contrastive;

void plm_contrastive_init(plm_contrastive *c, int cap, int C);
void plm_contrastive_free(plm_contrastive *c);

/* Loss of n pairs from hidden states h [2n, T, C] of rows with lengths[r] real tokens;
 * group[i] (may be NULL: all distinct) names pair i's passage. */
double plm_contrastive_forward(plm_contrastive *c, const float *h, const int *lengths, int n, int T, const int *group,
                               float tau, plm_pooling pooling);
/* Adds dL/dh of the last forward into dh [2n, T, C] (a backbone's dhidden). */
void plm_contrastive_backward(plm_contrastive *c, const int *lengths, int T, float tau, plm_pooling pooling, float *dh);

#endif
