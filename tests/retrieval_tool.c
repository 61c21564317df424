/* retrieval_tool.c - plm's retrieval metrics for tests/retrieval.sh. Reads one JSON case
 * a line on stdin (tests/ref/retrieval_ref.py gen) and prints one line per case:
 *   {"s": [[score]] (queries x docs), "rel": [int]}   ranks by plm_retrieval_rank
 *   {"q": [[num]], "d": [[num]], "rel": [int]}        ranks by plm_retrieval_rank_dense (fp32)
 * as "r@1 r@10 ndcg@10 mrr@10 | rank rank ...", numbers with 17 significant digits. */
#include "core/common.h"
#include "tasks/retrieval.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A JSON matrix as rows x cols floats or doubles. */
static void *matrix(const cJSON *a, int *rows, int *cols, bool f32) {
    *rows = cJSON_GetArraySize(a);
    *cols = *rows ? cJSON_GetArraySize(cJSON_GetArrayItem(a, 0)) : 0;
    size_t es = f32 ? sizeof(float) : sizeof(double);
    char *m = plm_malloc((size_t)(*rows) * (size_t)(*cols) * es + 1);
    int i = 0;
    const cJSON *row, *x;
    cJSON_ArrayForEach(row, a) {
        int j = 0;
        cJSON_ArrayForEach(x, row) {
            if (f32)
                ((float *)m)[(size_t)i * *cols + j] = (float)x->valuedouble;
            else
                ((double *)m)[(size_t)i * *cols + j] = x->valuedouble;
            j++;
        }
        i++;
    }
    return m;
}

int main(void) {
    static char line[1 << 24];
    while (fgets(line, sizeof line, stdin)) {
        cJSON *c = cJSON_Parse(line);
        if (!c) {
            fprintf(stderr, "retrieval_tool: bad JSON line\n");
            return 1;
        }
        const cJSON *rel = cJSON_GetObjectItem(c, "rel");
        int nq = cJSON_GetArraySize(rel), nd = 0, k = 0;
        int *r = plm_malloc((size_t)nq * sizeof *r + 1);
        const cJSON *x;
        cJSON_ArrayForEach(x, rel) r[k++] = x->valueint;
        long *ranks = plm_malloc((size_t)nq * sizeof *ranks + 1);
        if (cJSON_GetObjectItem(c, "s")) {
            int rows;
            double *s = matrix(cJSON_GetObjectItem(c, "s"), &rows, &nd, false);
            for (int i = 0; i < nq; i++) ranks[i] = plm_retrieval_rank(s + (size_t)i * nd, nd, r[i]);
            free(s);
        } else {
            int rows, dim, dim2;
            float *q = matrix(cJSON_GetObjectItem(c, "q"), &rows, &dim, true);
            float *d = matrix(cJSON_GetObjectItem(c, "d"), &nd, &dim2, true);
            plm_retrieval_rank_dense(q, nq, d, nd, dim, r, ranks);
            free(q);
            free(d);
        }
        plm_retrieval_scores sc;
        plm_retrieval_score_ranks(ranks, nq, &sc);
        printf("%.17g %.17g %.17g %.17g |", sc.recall_at_1, sc.recall_at_10, sc.ndcg_at_10, sc.mrr_at_10);
        for (int i = 0; i < nq; i++) printf(" %ld", ranks[i]);
        printf("\n");
        free(r);
        free(ranks);
        cJSON_Delete(c);
    }
    return 0;
}
