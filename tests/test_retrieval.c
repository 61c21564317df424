/* test_retrieval.c - retrieval metrics, ranking with ties, pooling, L2 normalisation, the
 * .npy header and TF-IDF (src/tasks/retrieval.c, src/tasks/embed.c) on small cases
 * computed by hand. tests/retrieval.sh compares them with numpy / scikit-learn on random
 * and real inputs, and the embeddings with a float64 PyTorch forward. */
#include "core/common.h"
#include "tasks/embed.h"
#include "tasks/retrieval.h"
#include "test.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static bool near(double a, double b) { return fabs(a - b) <= 1e-12 * PLM_MAX(1.0, fabs(b)); }

static void test_ranks(void) {
    /* scores 0.9 0.5 0.7 0.5 0.1: doc 2 is 2nd; doc 1 ties with doc 3, so pessimistically 4th */
    double s[] = {0.9, 0.5, 0.7, 0.5, 0.1};
    TEST_CHECK(plm_retrieval_rank(s, 5, 0) == 1, "rank_first", "%ld", plm_retrieval_rank(s, 5, 0));
    TEST_CHECK(plm_retrieval_rank(s, 5, 2) == 2, "rank_second", "%ld", plm_retrieval_rank(s, 5, 2));
    TEST_CHECK(plm_retrieval_rank(s, 5, 1) == 4 && plm_retrieval_rank(s, 5, 3) == 4, "rank_ties_pessimistic", "%ld %ld",
               plm_retrieval_rank(s, 5, 1), plm_retrieval_rank(s, 5, 3));
    TEST_CHECK(plm_retrieval_rank(s, 5, 4) == 5, "rank_last", "%ld", plm_retrieval_rank(s, 5, 4));
    double c[] = {0.3, 0.3, 0.3, 0.3};
    TEST_CHECK(plm_retrieval_rank(c, 4, 0) == 4 && plm_retrieval_rank(c, 4, 3) == 4, "rank_constant_scores_worst",
               "%ld", plm_retrieval_rank(c, 4, 0));
    double n[] = {NAN, 0.2, NAN, -1.0};
    TEST_CHECK(plm_retrieval_rank(n, 4, 1) == 1 && plm_retrieval_rank(n, 4, 0) == 4 && plm_retrieval_rank(n, 4, 3) == 2,
               "rank_nan_lowest", "%ld %ld %ld", plm_retrieval_rank(n, 4, 1), plm_retrieval_rank(n, 4, 0),
               plm_retrieval_rank(n, 4, 3));
}

static void test_metrics(void) {
    TEST_CHECK(plm_recall_at(1, 1) == 1 && plm_recall_at(2, 1) == 0 && plm_recall_at(10, 10) == 1 &&
                   plm_recall_at(11, 10) == 0,
               "recall_at_k", "wrong");
    /* 1 / log2(3 + 1) = 0.5; 1 / log2(2) = 1 */
    TEST_CHECK(near(plm_ndcg_at(3, 10), 0.5) && near(plm_ndcg_at(1, 10), 1.0) && plm_ndcg_at(11, 10) == 0, "ndcg_at_k",
               "%g", plm_ndcg_at(3, 10));
    TEST_CHECK(near(plm_mrr_at(4, 10), 0.25) && plm_mrr_at(12, 10) == 0, "mrr_at_k", "%g", plm_mrr_at(4, 10));
    /* ranks 1, 3, 7, 15: recall@1 1/4, recall@10 3/4, nDCG (1 + 1/2 + 1/3 + 0)/4, MRR (1 + 1/3 + 1/7)/4 */
    long r[] = {1, 3, 7, 15};
    plm_retrieval_scores sc;
    plm_retrieval_score_ranks(r, 4, &sc);
    TEST_CHECK(near(sc.recall_at_1, 0.25) && near(sc.recall_at_10, 0.75), "score_ranks_recall", "%g %g", sc.recall_at_1,
               sc.recall_at_10);
    TEST_CHECK(near(sc.ndcg_at_10, (1 + 0.5 + 1.0 / 3) / 4), "score_ranks_ndcg", "%.17g", sc.ndcg_at_10);
    TEST_CHECK(near(sc.mrr_at_10, (1 + 1.0 / 3 + 1.0 / 7) / 4) && sc.n_queries == 4, "score_ranks_mrr", "%.17g",
               sc.mrr_at_10);
    plm_retrieval_score_ranks(r, 0, &sc);
    TEST_CHECK(isnan(sc.recall_at_1) && isnan(sc.ndcg_at_10), "score_ranks_empty_nan", "not NaN");
}

static void test_dense(void) {
    /* docs e0, e1, (e0+e1)/sqrt2; query e1 -> doc 1 first, doc 2 second, doc 0 third */
    float h = (float)(1 / sqrt(2.0));
    float d[] = {1, 0, 0, 1, h, h}, q[] = {0, 1, 1, 0, h, h, -1, 0};
    int rel[] = {2, 0, 0, 1};
    long ranks[4] = {-7, -7, -7, -7};
    plm_retrieval_rank_dense(q, 4, d, 3, 2, rel, ranks);
    /* q0 = e1: scores 0, 1, .71 -> doc 2 is 2nd; q1 = e0: doc 0 1st; q2: .71 .71 1 -> doc 0 ties doc 1 -> 3rd;
     * q3 = -e0: scores -1, 0, -.71 -> doc 1 first */
    TEST_CHECK(ranks[0] == 2 && ranks[1] == 1 && ranks[2] == 3 && ranks[3] == 1, "rank_dense", "%ld %ld %ld %ld",
               ranks[0], ranks[1], ranks[2], ranks[3]);
}

static void test_pool(void) {
    /* B 2, T 3, C 2; row 0 has 2 real tokens, row 1 has 3; padding holds poison */
    float hs[] = {1, 2, 3, 4, 99, -99, 5, 6, 7, 8, 9, 10};
    int len[] = {2, 3};
    float out[4];
    memset(out, 0x7f, sizeof out);
    plm_pool(hs, len, 2, 3, 2, PLM_POOL_MEAN, out);
    TEST_CHECK(out[0] == 2 && out[1] == 3 && out[2] == 7 && out[3] == 8, "pool_mean_masked", "%g %g %g %g", out[0],
               out[1], out[2], out[3]);
    memset(out, 0x7f, sizeof out);
    plm_pool(hs, len, 2, 3, 2, PLM_POOL_CLS, out);
    TEST_CHECK(out[0] == 1 && out[1] == 2 && out[2] == 5 && out[3] == 6, "pool_cls", "%g %g", out[0], out[2]);
    memset(out, 0x7f, sizeof out);
    plm_pool(hs, len, 2, 3, 2, PLM_POOL_LAST, out);
    TEST_CHECK(out[0] == 3 && out[1] == 4 && out[2] == 9 && out[3] == 10, "pool_last_real_token", "%g %g", out[0],
               out[2]);
    float v[] = {3, 4, 0, 0, 0, -2};
    plm_l2_normalize(v, 3, 2);
    TEST_CHECK(fabsf(v[0] - 0.6f) < 1e-7f && fabsf(v[1] - 0.8f) < 1e-7f && v[2] == 0 && v[3] == 0 && v[5] == -1,
               "l2_normalize", "%g %g %g %g", v[0], v[1], v[2], v[5]);
    plm_pooling p;
    TEST_CHECK(plm_pooling_parse("last", &p) == 0 && p == PLM_POOL_LAST && plm_pooling_parse("max", &p) != 0,
               "pooling_parse", "wrong");
}

static void test_npy(void) {
    char path[] = "/tmp/plm_test_npyXXXXXX";
    int fd = mkstemp(path);
    close(fd);
    float data[] = {1.5f, -2.0f, 0.25f, 3.0f, 4.0f, 5.0f};
    TEST_CHECK(plm_npy_write_f32(path, data, 2, 3) == 0, "npy_write", "%s", plm_last_error());
    size_t len;
    char *b = plm_read_file(path, &len);
    unlink(path);
    if (!b) return;
    unsigned hl = (unsigned char)b[8] | (unsigned)(unsigned char)b[9] << 8;
    TEST_CHECK(len == 10 + hl + sizeof data && (10 + hl) % 64 == 0 && memcmp(b, "\x93NUMPY\x01\x00", 8) == 0,
               "npy_header_layout", "len %zu header %u", len, hl);
    const char *want = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
    TEST_CHECK(strncmp(b + 10, want, strlen(want)) == 0 && b[10 + hl - 1] == '\n' && b[10 + hl - 2] == ' ',
               "npy_header_dict", "%.70s", b + 10);
    TEST_CHECK(memcmp(b + 10 + hl, data, sizeof data) == 0, "npy_data_c_order", "data differs");
    free(b);
}

static void test_tfidf(void) {
    /* Docs "a cat sat", "the cat", "dog dog": tokens of 2+ word characters, so "a" goes.
     * df: cat 2, sat 1, the 1, dog 1; idf = ln(4 / (1 + df)) + 1. */
    const char *docs[] = {"A cat sat", "the CAT!", "dog dog"};
    plm_tfidf *t = plm_tfidf_fit(docs, 3);
    TEST_CHECK(t && plm_tfidf_vocab_size(t) == 4, "tfidf_vocab", "%d", t ? plm_tfidf_vocab_size(t) : -1);
    if (!t) return;
    double i_cat = log(4.0 / 3) + 1, i1 = log(2.0) + 1, s[3];
    plm_tfidf_scores(t, "cat", s);
    /* query = cat only: cosine with doc 0 = i_cat / sqrt(i_cat^2 + i1^2), doc 1 the same, doc 2 0 */
    double want = i_cat / sqrt(i_cat * i_cat + i1 * i1);
    TEST_CHECK(fabs(s[0] - want) < 1e-12 && fabs(s[1] - want) < 1e-12 && s[2] == 0, "tfidf_cosine", "%.17g %.17g %g",
               s[0], s[1], s[2]);
    plm_tfidf_scores(t, "Dog? dog, unknownword", s);
    TEST_CHECK(fabs(s[2] - 1.0) < 1e-12 && s[0] == 0 && s[1] == 0, "tfidf_unknown_terms_dropped", "%g %g %g", s[0],
               s[1], s[2]);
    plm_tfidf_scores(t, "zz qq", s);
    TEST_CHECK(s[0] == 0 && s[1] == 0 && s[2] == 0, "tfidf_no_known_term_zero", "%g", s[0]);
    plm_tfidf_free(t);
    /* lowercasing beyond ASCII, and \w of letters outside ASCII */
    const char *u[] = {"Ärger über Öl", "ärger"};
    t = plm_tfidf_fit(u, 2);
    plm_tfidf_scores(t, "ÄRGER", s);
    TEST_CHECK(plm_tfidf_vocab_size(t) == 3 && s[1] > 0.999999 && s[0] > 0, "tfidf_unicode_lowercase", "%d %g",
               plm_tfidf_vocab_size(t), s[1]);
    plm_tfidf_free(t);
}

static void test_squad_set(void) {
    /* two articles; paragraph 2 repeats paragraph 0's text: one document */
    const char *js = "{\"data\": [{\"title\": \"a\", \"paragraphs\": ["
                     "{\"context\": \"alpha text\", \"qas\": [{\"id\": \"q1\", \"question\": \"alpha?\", \"answers\": "
                     "[{\"text\": \"alpha\", \"answer_start\": 0}]}]},"
                     "{\"context\": \"beta text\", \"qas\": [{\"id\": \"q2\", \"question\": \"beta?\", \"answers\": "
                     "[{\"text\": \"beta\", \"answer_start\": 0}]}]}]},"
                     "{\"title\": \"b\", \"paragraphs\": [{\"context\": \"alpha text\", \"qas\": [{\"id\": \"q3\", "
                     "\"question\": \"again?\", \"answers\": [{\"text\": \"text\", \"answer_start\": 6}]}]}]}]}";
    plm_squad_set s = {0};
    int rc = plm_squad_parse(&s, "mem.json", js, strlen(js));
    TEST_CHECK(rc == 0, "squad_parse", "%s", plm_last_error());
    if (rc) return;
    plm_retrieval_set r;
    plm_retrieval_from_squad(&r, &s, 0);
    TEST_CHECK(r.n_docs == 2 && r.n_queries == 3 && r.relevant[0] == 0 && r.relevant[1] == 1 && r.relevant[2] == 0 &&
                   !strcmp(r.docs[1], "beta text"),
               "squad_duplicate_contexts_one_doc", "docs %d rel %d %d %d", r.n_docs, r.relevant[0], r.relevant[1],
               r.relevant[2]);
    plm_retrieval_set_free(&r);
    plm_retrieval_from_squad(&r, &s, 2);
    TEST_CHECK(r.n_docs == 2 && r.n_queries == 2, "squad_max_queries_keeps_docs", "%d %d", r.n_docs, r.n_queries);
    plm_retrieval_set_free(&r);
    plm_squad_free(&s);
}

int main(void) {
    test_ranks();
    test_metrics();
    test_dense();
    test_pool();
    test_npy();
    test_tfidf();
    test_squad_set();
    TEST_EXIT();
}
