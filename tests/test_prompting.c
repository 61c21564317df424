/* test_prompting.c - prompt templates (placeholders, escapes, braces, the errors),
 * verbalizer lists, prompt building, and the demonstrations drawn for few-shot
 * prompts: reproducible from (seed, example), distinct, never the example itself,
 * balanced when asked, uniform enough over the training set. The scoring itself is
 * checked against PyTorch in tests/prompt.sh. */
#include <string.h>

#include "core/common.h"
#include "tasks/prompting.h"
#include "test.h"

static plm_example ex(const char *a, const char *b, int label) {
    return (plm_example){.text_a = a, .text_b = b, .label = label};
}

static void test_templates(void) {
    plm_prompt p;
    plm_example e = ex("it works .", "so it does", 1);
    int rc = plm_prompt_init(&p, "A: {sentence1}\\nB: {text_b} {{literal}}\\t\\\\n?", " no, yes\\, really", NULL, 2,
                             "sentence1", "sentence2", NULL);
    TEST_CHECK(rc == 0, "template.parse", "%s", plm_last_error());
    if (rc == 0) {
        char *s = plm_prompt_render(&p, &e);
        TEST_CHECK(!strcmp(s, "A: it works .\nB: so it does {literal}\t\\n?"), "template.render", "got \"%s\"", s);
        free(s);
        TEST_CHECK(p.n_labels == 2 && !strcmp(p.verbalizers[0], " no") && !strcmp(p.verbalizers[1], " yes, really"),
                   "template.verbalizers", "got \"%s\" \"%s\"", p.verbalizers[0], p.verbalizers[1]);
        TEST_CHECK(!strcmp(p.separator, "\n\n"), "template.default_separator", "got \"%s\"", p.separator);
        /* demonstrations: rendered, their verbalizer, the separator; then the example */
        plm_example tr[2] = {ex("x", "y", 0), ex("u", "v", 1)};
        plm_dataset train = {.examples = tr, .n = 2, .n_labels = 2};
        int demos[2] = {1, 0};
        s = plm_prompt_build(&p, &train, demos, 2, &e);
        const char *want = "A: u\nB: v {literal}\t\\n? yes, really\n\n"
                           "A: x\nB: y {literal}\t\\n? no\n\n"
                           "A: it works .\nB: so it does {literal}\t\\n?";
        TEST_CHECK(!strcmp(s, want), "template.build", "got \"%s\"", s);
        free(s);
        plm_prompt_free(&p);
    }
    /* the errors, each naming the problem */
    struct {
        const char *tmpl, *verbs, *col_b, *want, *name;
    } bad[] = {
        {"{sentense} x", " a, b", NULL, "unknown placeholder {sentense} (this task has {sentence}, {text_a})",
         "error.unknown_placeholder"},
        {"{sentence} {text_b}", " a, b", NULL, "placeholder {text_b} but the task is single-sentence",
         "error.text_b_single"},
        {"{sentence} {", " a, b", NULL, "unclosed '{' at byte 11", "error.unclosed"},
        {"{sentence {x}", " a, b", NULL, "unclosed '{' at byte 0", "error.nested"},
        {"{sentence} }", " a, b", NULL, "'}' without a '{' at byte 11", "error.stray_close"},
        {"no text here", " a, b", NULL, "no placeholder for the example's text", "error.no_placeholder"},
        {"{sentence}", " a", NULL, "1 given, the task has 2 labels", "error.too_few_verbalizers"},
        {"{sentence}", " a, b, c", NULL, "3 given, the task has 2 labels", "error.too_many_verbalizers"},
        {"{sentence}", " a, a", NULL, "same verbalizer \" a\"", "error.duplicate_verbalizer"},
    };
    for (size_t i = 0; i < PLM_ARRAY_LEN(bad); i++) {
        rc = plm_prompt_init(&p, bad[i].tmpl, bad[i].verbs, NULL, 2, "sentence", bad[i].col_b, NULL);
        TEST_CHECK(rc == -1 && strstr(plm_last_error(), bad[i].want), bad[i].name, "rc %d, error \"%s\"", rc,
                   plm_last_error());
        if (rc == 0) plm_prompt_free(&p);
    }
    /* every built-in prompt parses for its task's columns and labels */
    int n;
    const plm_prompt_builtin *b = plm_prompt_builtins(&n);
    int ok = 0;
    for (int i = 0; i < n; i++) {
        const plm_glue_task *t = plm_glue_task_find(b[i].task);
        if (t && t->n_labels == b[i].n_labels &&
            plm_prompt_init(&p, b[i].template_text, NULL, b[i].verbalizers, b[i].n_labels, t->text_a, t->text_b,
                            NULL) == 0) {
            ok++;
            plm_prompt_free(&p);
        }
    }
    TEST_CHECK(ok == n && n == 9, "builtins.parse", "%d of %d", ok, n);
    TEST_CHECK(plm_prompt_builtin_find("stsb") == NULL && plm_prompt_builtin_find("SST-2") == b + 1, "builtins.find",
               "stsb has no prompt; SST-2 is sst2");
}

static void test_sampling(void) {
    enum { N = 101, K = 5, Q = 300 };
    plm_example tr[N];
    for (int i = 0; i < N; i++) {
        tr[i] = ex("t", NULL, i % 7 == 0 ? 2 : i % 2); /* unbalanced: label 2 is rare (15 of 101) */
    }
    plm_dataset train = {.examples = tr, .n = N, .n_labels = 3};
    int a[K], b[K], c[K];
    bool same = true, distinct = true, other_seed_differs = false, other_index_differs = false;
    int hits[N] = {0};
    for (int q = 0; q < Q; q++) {
        plm_prompt_sample(&train, K, PLM_PROMPT_SAMPLE_RANDOM, 42, q, q % N, a);
        plm_prompt_sample(&train, K, PLM_PROMPT_SAMPLE_RANDOM, 42, q, q % N, b);
        plm_prompt_sample(&train, K, PLM_PROMPT_SAMPLE_RANDOM, 43, q, q % N, c);
        same &= !memcmp(a, b, sizeof a);
        other_seed_differs |= memcmp(a, c, sizeof a) != 0;
        for (int j = 0; j < K; j++) {
            distinct &= a[j] != q % N && a[j] >= 0 && a[j] < N;
            for (int l = 0; l < j; l++) distinct &= a[j] != a[l];
            hits[a[j]]++;
        }
        if (q > 0) {
            int prev[K];
            plm_prompt_sample(&train, K, PLM_PROMPT_SAMPLE_RANDOM, 42, q - 1, -1, prev);
            other_index_differs |= memcmp(a, prev, sizeof a) != 0;
        }
    }
    TEST_CHECK(same, "sample.reproducible", "the same (seed, index) drew different demonstrations");
    TEST_CHECK(other_seed_differs && other_index_differs, "sample.varies", "seed or index does not change the draw");
    TEST_CHECK(distinct, "sample.distinct", "a repeat, an out-of-range index or the excluded example was drawn");
    /* uniform: 1500 draws over 101 examples, ~14.9 each; every example drawn, none > 4x */
    int lo = Q * K, hi = 0;
    for (int i = 0; i < N; i++) lo = PLM_MIN(lo, hits[i]), hi = PLM_MAX(hi, hits[i]);
    TEST_CHECK(lo > 0 && hi < 60, "sample.uniform", "draws per example between %d and %d", lo, hi);
    /* balanced: label counts differ by at most one, every label first sometimes */
    bool balanced = true;
    int first[3] = {0};
    for (int q = 0; q < Q; q++) {
        plm_prompt_sample(&train, K, PLM_PROMPT_SAMPLE_BALANCED, 42, q, -1, a);
        int cnt[3] = {0};
        for (int j = 0; j < K; j++) cnt[tr[a[j]].label]++;
        for (int l = 0; l < 3; l++) balanced &= cnt[l] == 1 || cnt[l] == 2;
        first[tr[a[0]].label]++;
    }
    TEST_CHECK(balanced, "sample.balanced", "5 demonstrations over 3 labels must be 2/2/1");
    TEST_CHECK(first[0] > 30 && first[1] > 30 && first[2] > 30, "sample.balanced_order", "first labels %d %d %d",
               first[0], first[1], first[2]);
    /* errors: more than the set holds; a label too rare for balanced */
    TEST_CHECK(plm_prompt_sample(&train, N, PLM_PROMPT_SAMPLE_RANDOM, 1, 0, 3, a) == -1 &&
                   strstr(plm_last_error(), "k = 101 demonstrations, the training set has 100"),
               "sample.too_many", "%s", plm_last_error());
    train.n_labels = 4; /* label 3 has no example */
    TEST_CHECK(plm_prompt_sample(&train, 4, PLM_PROMPT_SAMPLE_BALANCED, 1, 0, -1, a) == -1 &&
                   strstr(plm_last_error(), "balanced sampling needs 1 examples of label '?', the training set has 0"),
               "sample.balanced_missing_label", "%s", plm_last_error());
}

int main(void) {
    test_templates();
    test_sampling();
    TEST_EXIT();
}
