/* test_metrics.c - the task metrics (src/tasks/metrics.c) on small cases computed by
 * hand, edge cases included: ties, constant inputs, empty and all-negative predictions,
 * malformed tags. tests/metrics_conformance.sh compares them with the references. */
#include "core/common.h"
#include "tasks/metrics.h"
#include "test.h"

#include <math.h>
#include <string.h>

static bool near(double a, double b) { return fabs(a - b) <= 1e-12 * PLM_MAX(1.0, fabs(b)); }

static void check_norm(const char *name, const char *in, const char *want) {
    char *got = plm_squad_normalize(in);
    TEST_CHECK(!strcmp(got, want), name, "normalize gave \"%s\", want \"%s\"", got, want);
    free(got);
}

static void test_classification(void) {
    int g[] = {0, 1, 2, 1}, p[] = {0, 2, 2, 1};
    TEST_CHECK(near(plm_accuracy(g, p, 4), 0.75), "accuracy", "%g", plm_accuracy(g, p, 4));
    TEST_CHECK(isnan(plm_accuracy(g, p, 0)), "accuracy_empty_is_nan", "%g", plm_accuracy(g, p, 0));

    int tg[] = {-100, 1, 2, -100, 3}, tp[] = {5, 1, 0, 7, 3};
    double ta = plm_token_accuracy(tg, tp, 5, -100);
    TEST_CHECK(near(ta, 2.0 / 3.0), "token_accuracy_skips_ignored", "%g", ta);
    TEST_CHECK(isnan(plm_token_accuracy(tg, tp, 1, -100)), "token_accuracy_all_ignored_is_nan", "not NaN");

    /* TP 2, FP 1, FN 1: 2*2 / (4 + 1 + 1) */
    int bg[] = {1, 1, 0, 0, 1}, bp[] = {1, 0, 1, 0, 1};
    TEST_CHECK(near(plm_f1_binary(bg, bp, 5), 2.0 / 3.0), "f1_binary", "%g", plm_f1_binary(bg, bp, 5));
    int zg[] = {0, 0, 0}, zp[] = {0, 0, 0};
    TEST_CHECK(plm_f1_binary(zg, zp, 3) == 0.0, "f1_binary_all_negative_is_0", "%g", plm_f1_binary(zg, zp, 3));
    int ng[] = {1, 1, 0}, np[] = {0, 0, 0};
    TEST_CHECK(plm_f1_binary(ng, np, 3) == 0.0, "f1_binary_no_positive_predicted_is_0", "%g", plm_f1_binary(ng, np, 3));
    int og[] = {1, 2}, op[] = {2, 2}; /* label 2 is a negative */
    TEST_CHECK(plm_f1_binary(og, op, 2) == 0.0, "f1_binary_other_labels_negative", "%g", plm_f1_binary(og, op, 2));

    /* class 0: 2*1/(2+1); class 1: 2*1/(1+3); class 2: 0 */
    int mg[] = {0, 0, 1, 2}, mp[] = {0, 1, 1, 1};
    double mf = plm_f1_macro(mg, mp, 4);
    TEST_CHECK(near(mf, (2.0 / 3.0 + 0.5 + 0.0) / 3.0), "f1_macro", "%.17g", mf);
    int sg[] = {-5, 7, 7}, sp[] = {7, 7, 100}; /* labels -5, 7, 100: 0, 2*1/(2+2), 0 */
    mf = plm_f1_macro(sg, sp, 3);
    TEST_CHECK(near(mf, 0.5 / 3.0), "f1_macro_label_union_of_gold_and_pred", "%.17g", mf);

    /* binary TP 1, FN 1, TN 2, FP 0: (1*2 - 0)/sqrt(1*2*2*3) */
    int cg[] = {1, 1, 0, 0}, cp[] = {1, 0, 0, 0};
    double mcc = plm_matthews_corrcoef(cg, cp, 4);
    TEST_CHECK(near(mcc, 2.0 / sqrt(12.0)), "mcc_binary", "%.17g", mcc);
    /* three classes: s 6, c 3, t = p = (2,2,2): (18 - 12) / (36 - 12) */
    int kg[] = {0, 0, 1, 1, 2, 2}, kp[] = {0, 1, 1, 2, 2, 0};
    mcc = plm_matthews_corrcoef(kg, kp, 6);
    TEST_CHECK(near(mcc, 0.25), "mcc_multiclass", "%.17g", mcc);
    TEST_CHECK(plm_matthews_corrcoef(kg, kg, 6) == 1.0, "mcc_perfect_is_1", "%g", plm_matthews_corrcoef(kg, kg, 6));
    int constant[] = {3, 3, 3, 3, 3, 3};
    TEST_CHECK(plm_matthews_corrcoef(kg, constant, 6) == 0.0, "mcc_constant_prediction_is_0", "%g",
               plm_matthews_corrcoef(kg, constant, 6));
    TEST_CHECK(plm_matthews_corrcoef(kg, kp, 0) == 0.0, "mcc_empty_is_0", "not 0");
}

static void test_correlation(void) {
    /* dx = (-1,0,1), dy = (-7/3,-1/3,8/3): r = 5 / sqrt(2 * 114/9) */
    double x[] = {1, 2, 3}, y[] = {2, 4, 7};
    double r = plm_pearson(x, y, 3);
    TEST_CHECK(near(r, 5.0 / sqrt(228.0 / 9.0)), "pearson", "%.17g", r);
    double c[] = {4, 4, 4};
    TEST_CHECK(isnan(plm_pearson(x, c, 3)) && isnan(plm_pearson(c, x, 3)), "pearson_constant_is_nan", "not NaN");
    TEST_CHECK(isnan(plm_pearson(x, y, 1)), "pearson_one_point_is_nan", "not NaN");
    double neg[] = {3, 2, 1};
    TEST_CHECK(near(plm_pearson(x, neg, 3), -1.0), "pearson_anticorrelated_is_minus_1", "%.17g",
               plm_pearson(x, neg, 3));

    /* ranks (1, 2.5, 2.5, 4) and (1, 3, 2, 4): 4.5 / sqrt(4.5 * 5) */
    double sx[] = {1, 2, 2, 3}, sy[] = {1, 3, 2, 4};
    double rho = plm_spearman(sx, sy, 4);
    TEST_CHECK(near(rho, 4.5 / sqrt(22.5)), "spearman_average_ranks_for_ties", "%.17g", rho);
    double mx[] = {1, 2, 3, 4}, my[] = {1, 8, 27, 64.5};
    TEST_CHECK(near(plm_spearman(mx, my, 4), 1.0), "spearman_monotone_is_1", "%.17g", plm_spearman(mx, my, 4));
    double cy[] = {2, 2, 2, 2};
    TEST_CHECK(isnan(plm_spearman(mx, cy, 4)), "spearman_constant_is_nan", "not NaN");
    double nx[] = {1, NAN, 3, 4};
    TEST_CHECK(isnan(plm_spearman(nx, my, 4)) && isnan(plm_pearson(nx, my, 4)), "correlation_nan_input_is_nan",
               "not NaN");
}

static void test_squad(void) {
    check_norm("squad_normalize_basic", "The  Quick, brown fox!", "quick brown fox");
    check_norm("squad_normalize_only_articles", " a AN\tThe ", "");
    check_norm("squad_normalize_punctuation_before_articles", "Theatre AN-t (the)", "theatre ant");
    check_norm("squad_normalize_apostrophe_removed", "l'homme O'Neil", "lhomme oneil");
    check_norm("squad_normalize_unicode_whitespace", "x\xc2\xa0y\xe3\x80\x80z", "x y z");
    check_norm("squad_normalize_zero_width_space_is_not_space",
               "a\xe2\x80\x8b"
               "b",
               "\xe2\x80\x8b"
               "b");
    check_norm("squad_normalize_combining_mark_ends_word", "the\xcc\x81", "\xcc\x81");
    check_norm("squad_normalize_underscore_removed_as_punctuation", "_the_ a_b", "ab");
    check_norm("squad_normalize_final_sigma", "\xce\x9f\xce\x94\xce\xa5\xce\xa3\xce\xa3\xce\x95\xce\xa5\xce\xa3",
               "\xce\xbf\xce\xb4\xcf\x85\xcf\x83\xcf\x83\xce\xb5\xcf\x85\xcf\x82");
    check_norm("squad_normalize_dotted_capital_i", "\xc4\xb0stanbul", "i\xcc\x87stanbul");
    check_norm("squad_normalize_non_ascii_letters",
               "\xc3\x89"
               "COLE Stra\xc3\x9f"
               "e",
               "\xc3\xa9"
               "cole stra\xc3\x9f"
               "e");
    check_norm("squad_normalize_invalid_utf8_kept",
               "X\xff"
               "Y \xc3",
               "x\xff"
               "y \xc3");
    /* Python (surrogateescape) agrees: the byte is no word character, so "a" before it is an article */
    check_norm("squad_normalize_invalid_byte_ends_word",
               "A\xff"
               "B",
               "\xff"
               "b");
    check_norm("squad_normalize_empty", "", "");

    TEST_CHECK(plm_squad_exact("the Denver Broncos", "Denver Broncos.") == 1.0, "squad_exact_after_normalization",
               "not 1");
    TEST_CHECK(plm_squad_exact("Denver", "Denver Broncos") == 0.0, "squad_exact_mismatch", "not 0");
    TEST_CHECK(plm_squad_exact("", "the") == 1.0, "squad_exact_both_empty_after_normalization", "not 1");
    /* same 2, P 2/3, R 1 */
    double f = plm_squad_f1("Denver Broncos win", "the Denver Broncos");
    TEST_CHECK(near(f, 0.8), "squad_f1", "%.17g", f);
    f = plm_squad_f1("x x y", "x y y"); /* multiset overlap 2: P = R = 2/3 */
    TEST_CHECK(near(f, 2.0 / 3.0), "squad_f1_multiset_overlap", "%.17g", f);
    TEST_CHECK(plm_squad_f1("", "fox") == 0.0 && plm_squad_f1("fox", "") == 0.0, "squad_f1_empty_answer_is_0", "not 0");
    TEST_CHECK(plm_squad_f1("a", "the") == 0.0, "squad_f1_both_empty_is_0", "not 0 (v1.1 gives 0, not 1)");
    const char *g1[] = {"a dog", "the fox", "fox jumps"}, *g2[] = {"dog", "fox jumps"};
    TEST_CHECK(plm_squad_exact_max("Fox", g1, 3) == 1.0 && plm_squad_f1_max("Fox", g1, 3) == 1.0,
               "squad_max_over_golds_exact", "not 1");
    f = plm_squad_f1_max("fox", g2, 2);
    TEST_CHECK(plm_squad_exact_max("fox", g2, 2) == 0.0 && near(f, 2.0 / 3.0), "squad_max_over_golds_partial",
               "f1 %.17g", f);
    TEST_CHECK(plm_squad_f1_max("fox", g2, 0) == 0.0, "squad_no_golds_is_0", "not 0");
}

/* Scores of one sentence of gold and predicted tags. */
static int entity(const char **gold, const char **pred, size_t n, plm_entity_scores *s) {
    return plm_entity_f1(gold, pred, &n, 1, s);
}

static bool counts(const plm_entity_scores *s, long g, long p, long c) {
    return s->n_gold == g && s->n_pred == p && s->n_correct == c;
}

static void test_entities(void) {
    plm_entity_scores s;
    const char *g1[] = {"B-PER", "I-PER", "O", "B-LOC"}, *p1[] = {"B-PER", "I-PER", "O", "B-ORG"};
    TEST_CHECK(!entity(g1, p1, 4, &s) && counts(&s, 2, 2, 1) && near(s.f1, 0.5) && near(s.precision, 0.5),
               "entity_iob2_type_must_match", "%ld %ld %ld f1 %g", s.n_gold, s.n_pred, s.n_correct, s.f1);

    /* IOB1: I opens a chunk, B only separates adjacent chunks of one type */
    const char *g2[] = {"I-PER", "I-PER", "B-PER", "O", "I-LOC"};
    TEST_CHECK(!entity(g2, g2, 5, &s) && counts(&s, 3, 3, 3) && s.f1 == 1.0, "entity_iob1_chunks", "%ld %ld %ld",
               s.n_gold, s.n_pred, s.n_correct);
    /* the same chunks in IOB2 are the same chunks: a correct prediction */
    const char *p2[] = {"B-PER", "I-PER", "B-PER", "O", "B-LOC"};
    TEST_CHECK(!entity(g2, p2, 5, &s) && counts(&s, 3, 3, 3), "entity_iob1_gold_iob2_pred_agree", "%ld %ld %ld",
               s.n_gold, s.n_pred, s.n_correct);

    /* I-LOC after B-PER starts a LOC chunk; I-PER after O starts a PER chunk */
    const char *g3[] = {"B-PER", "I-LOC", "O", "I-PER"}, *p3[] = {"B-PER", "B-LOC", "O", "B-PER"};
    TEST_CHECK(!entity(g3, p3, 4, &s) && counts(&s, 3, 3, 3), "entity_i_after_other_type_or_o_starts_chunk",
               "%ld %ld %ld", s.n_gold, s.n_pred, s.n_correct);

    const char *g4[] = {"B-PER", "I-PER", "O"}, *p4[] = {"B-PER", "O", "O"};
    TEST_CHECK(!entity(g4, p4, 3, &s) && counts(&s, 1, 1, 0) && s.f1 == 0.0, "entity_boundary_must_match",
               "%ld %ld %ld", s.n_gold, s.n_pred, s.n_correct);

    const char *g5[] = {"S-PER", "B-LOC", "E-LOC", "S-LOC"}, *p5[] = {"S-PER", "B-LOC", "I-LOC", "E-LOC"};
    TEST_CHECK(!entity(g5, p5, 4, &s) && counts(&s, 3, 2, 1) && near(s.precision, 0.5) && near(s.recall, 1.0 / 3.0) &&
                   near(s.f1, 0.4),
               "entity_iobes", "%ld %ld %ld P %g R %g F %g", s.n_gold, s.n_pred, s.n_correct, s.precision, s.recall,
               s.f1);

    const char *g6[] = {"B-MISC-X", "I-MISC-X", "I-MISC-Y"};
    TEST_CHECK(!entity(g6, g6, 3, &s) && counts(&s, 2, 2, 2), "entity_type_with_hyphen", "%ld %ld %ld", s.n_gold,
               s.n_pred, s.n_correct);

    const char *g7[] = {"B-PER", "O", "B-LOC"}, *p7[] = {"O", "O", "O"};
    TEST_CHECK(!entity(g7, p7, 3, &s) && counts(&s, 2, 0, 0) && s.precision == 0 && s.recall == 0 && s.f1 == 0,
               "entity_empty_prediction_is_0", "%ld %ld %ld", s.n_gold, s.n_pred, s.n_correct);
    TEST_CHECK(!entity(p7, p7, 3, &s) && counts(&s, 0, 0, 0) && s.f1 == 0, "entity_no_chunks_at_all_is_0",
               "%ld %ld %ld f1 %g", s.n_gold, s.n_pred, s.n_correct, s.f1);

    /* a chunk does not cross a sentence end: I-PER opens a new one */
    const char *g8[] = {"B-PER", "I-PER", "I-PER"}, *p8[] = {"B-PER", "I-PER", "B-PER"};
    size_t len[] = {2, 1};
    TEST_CHECK(!plm_entity_f1(g8, p8, len, 2, &s) && counts(&s, 2, 2, 2), "entity_sentence_end_closes_chunk",
               "%ld %ld %ld", s.n_gold, s.n_pred, s.n_correct);
    size_t empty[] = {0, 3, 0};
    TEST_CHECK(!plm_entity_f1(g8, p8, empty, 3, &s) && counts(&s, 1, 2, 0), "entity_empty_sentences", "%ld %ld %ld",
               s.n_gold, s.n_pred, s.n_correct);

    const char *bad1[] = {"O", "X-PER"}, *bad2[] = {"B-"}, *bad3[] = {"B"};
    TEST_CHECK(entity(g4, bad1, 2, &s) == -1 && strstr(plm_last_error(), "X-PER"), "entity_bad_prefix_is_error", "%s",
               plm_last_error());
    TEST_CHECK(entity(bad2, g4, 1, &s) == -1 && entity(bad3, g4, 1, &s) == -1, "entity_missing_type_is_error", "%s",
               plm_last_error());
}

int main(void) {
    test_classification();
    test_correlation();
    test_squad();
    test_entities();
    TEST_EXIT();
}
