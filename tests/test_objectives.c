/* test_objectives.c - the pretraining objectives beyond plain CLM/MLM and their
 * schedules:
 *   - warmup-stable-decay learning rates against hand-computed values;
 *   - ELECTRA's sampler draws from the softmax (frequencies over 600k draws);
 *   - ELECTRA's corruption over > 1M tokens of MLM batches through a real generator:
 *     the discriminator's label is 1 exactly where its input differs from the original,
 *     a sample equal to the original is labelled 0, unselected tokens are untouched;
 *   - ELECTRA learns on tinyshakespeare ($PLM_DATA, default ../shared/data): the
 *     discriminator beats always answering "original" in accuracy, with an AUC well
 *     above 0.5, in a bounded number of steps. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "data/corpus.h"
#include "data/dataloader.h"
#include "model/crossentropy.h"
#include "test.h"
#include "train/adamw.h"
#include "train/electra.h"
#include "train/trainer.h"

static bool near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

/* WSD with warmup 10, 100 steps, decay 20%: warmup 0..9, stable 10..79, decay 80..99. */
static void test_wsd(void) {
    struct {
        long step;
        double sqrt_lr, lin_lr;
    } want[] = {
        {0, 0.0, 0.0},
        {5, 0.5, 0.5},
        {9, 0.9, 0.9},
        {10, 1.0, 1.0},
        {50, 1.0, 1.0},
        {79, 1.0, 1.0},
        {80, 1.0, 1.0},
        {84, 1.0 - sqrt(0.2), 0.8},
        {90, 1.0 - sqrt(0.5), 0.5},
        {99, 1.0 - sqrt(0.95), 0.05},
        {100, 0.0, 0.0},
        {120, 0.0, 0.0},
    };
    bool ok = true;
    char why[200] = "";
    for (size_t i = 0; i < PLM_ARRAY_LEN(want); i++) {
        double s = plm_lr_wsd(2e-3f, want[i].step, 10, 100, 0.2, PLM_DECAY_1SQRT) / 2e-3;
        double l = plm_lr_wsd(2e-3f, want[i].step, 10, 100, 0.2, PLM_DECAY_LINEAR) / 2e-3;
        if (!near(s, want[i].sqrt_lr) || !near(l, want[i].lin_lr)) {
            ok = false;
            snprintf(why, sizeof why, "step %ld: 1-sqrt %g (want %g), linear %g (want %g)", want[i].step, s,
                     want[i].sqrt_lr, l, want[i].lin_lr);
        }
    }
    TEST_CHECK(ok, "wsd_values", "%s", why);
    /* the decay never eats the warmup: 100% decay after 10 warmup steps decays over 90 */
    ok = near(plm_lr_wsd(1.0f, 10, 10, 100, 1.0, PLM_DECAY_LINEAR), 1.0) &&
         near(plm_lr_wsd(1.0f, 55, 10, 100, 1.0, PLM_DECAY_LINEAR), 0.5) &&
         near(plm_lr_wsd(1.0f, 5, 10, 100, 1.0, PLM_DECAY_LINEAR), 0.5);
    TEST_CHECK(ok, "wsd_decay_clipped_to_warmup", "decay fraction 1 overlaps the warmup");
    /* no decay: constant after the warmup */
    ok = near(plm_lr_wsd(1.0f, 99, 10, 100, 0.0, PLM_DECAY_1SQRT), 1.0);
    TEST_CHECK(ok, "wsd_no_decay", "decay fraction 0 is not constant");
    /* monotone: non-increasing after the warmup */
    ok = true;
    for (long s = 11; s <= 100; s++)
        ok &= plm_lr_wsd(1.0f, s, 10, 100, 0.3, PLM_DECAY_1SQRT) <=
              plm_lr_wsd(1.0f, s - 1, 10, 100, 0.3, PLM_DECAY_1SQRT);
    TEST_CHECK(ok, "wsd_monotone", "learning rate rises after the warmup");
    TEST_CHECK(plm_lr_at(PLM_SCHED_WSD, 1.0f, 90, 10, 100) == plm_lr_wsd(1.0f, 90, 10, 100, 0.2, PLM_DECAY_1SQRT),
               "wsd_lr_at_default", "plm_lr_at(WSD) is not 20%% 1-sqrt");
}

/* ---------------------------------------------------------------- ELECTRA */

static void test_sampler(void) {
    const float z[6] = {2.0f, 1.0f, 0.0f, -1.0f, 0.5f, -3.0f};
    double p[6], sum = 0.0;
    for (int v = 0; v < 6; v++) sum += p[v] = exp(z[v]);
    long cnt[6] = {0};
    const long n = 600000;
    plm_rng r;
    plm_rng_seed(&r, 3, 4);
    for (long i = 0; i < n; i++) cnt[plm_sample_softmax(z, 6, &r)]++;
    bool ok = true;
    char why[160] = "";
    for (int v = 0; v < 6; v++) {
        double q = p[v] / sum, sd = sqrt(n * q * (1 - q));
        if (fabs((double)cnt[v] - n * q) > 5 * sd) {
            ok = false;
            snprintf(why, sizeof why, "token %d drawn %ld times, expected %.0f +- %.0f", v, cnt[v], n * q, 5 * sd);
        }
    }
    TEST_CHECK(ok, "electra_sampler_softmax", "%s", why);
}

enum { V = 40, PAD = 0, CLS = 1, SEP = 2, MASK = 3, EOS = 4 };

static void make_vocab(plm_vocab_info *v) {
    memset(v, 0, sizeof *v);
    v->vocab_size = V;
    v->pad = PAD, v->cls = CLS, v->sep = SEP, v->mask = MASK, v->eos = EOS;
    v->is_special = plm_calloc(V, 1);
    for (int i = 0; i <= EOS; i++) v->is_special[i] = 1;
    v->random_pool = plm_malloc(V * sizeof(int32_t));
    for (int i = EOS + 1; i < V; i++) v->random_pool[v->num_random++] = i;
}

/* A tiny discriminator and its half-width generator. */
static plm_model *tiny_electra(int vocab, int hidden, int layers, int T, float gen_size, uint64_t seed) {
    plm_config c, g;
    plm_config_default(&c, PLM_ARCH_ELECTRA);
    c.vocab_size = vocab;
    c.hidden_size = hidden;
    c.num_hidden_layers = layers;
    c.num_attention_heads = 2;
    c.intermediate_size = 4 * hidden;
    c.max_position_embeddings = T;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.pad_token_id = PAD;
    if (plm_electra_generator_config(&g, &c, gen_size) != 0) return NULL;
    plm_model_spec s;
    plm_electra_spec(&s, &c, &g, 50.0f);
    return plm_model_create_spec(&s, seed);
}

static void test_electra_labels(void) {
    int B = 32, T = 64;
    plm_model *m = tiny_electra(V, 16, 1, T, 0.5f, 9);
    TEST_CHECK(m && plm_electra_is_joint(m) && m->bb[1].config.hidden_size == 8 &&
                   m->bb[1].config.num_attention_heads == 1 && m->bb[1].w.wte == m->bb[0].w.wte,
               "electra_generator_shape", "generator not half width with one head and shared tables");
    if (!m) return;
    plm_model_reserve(m, B, T);
    plm_vocab_info v;
    make_vocab(&v);
    size_t n = 1100000;
    plm_token_stream st = {.ids = plm_malloc(n * sizeof(int32_t)), .n = n};
    plm_rng r;
    plm_rng_seed(&r, 17, 0);
    for (size_t i = 0; i < n; i++)
        st.ids[i] = plm_rng_uniform(&r) < 0.03f ? EOS : (int32_t)(5 + plm_rng_below(&r, V - 5));
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.mask_replace_prob = 0.85f, o.random_replace_prob = 0.0f;
    plm_dataloader d;
    plm_dataloader_init(&d, &st, PLM_OBJ_MLM, &o, &v, T, 5, true);
    plm_electra_state es;
    plm_electra_state_init(&es, B, T);
    int32_t *ids = plm_malloc((size_t)B * T * sizeof(int32_t)), *labels = plm_malloc((size_t)B * T * sizeof(int32_t));
    uint8_t *mask = plm_malloc((size_t)B * T);
    long total = 0, eligible = 0, selected = 0, replaced = 0, same = 0, wrong = 0, replaced_reported = 0;
    for (int it = 0; total < 1000000; it++) {
        plm_dataloader_next(&d, B, ids, NULL, mask, labels);
        plm_batch b = {.B = B, .T = T, .input_ids = ids, .attention_mask = mask, .labels = labels, .training = false};
        if (plm_electra_step(m, &es, &b, (uint64_t)it, false, 1.0f) != 0) {
            printf("FAIL electra_labels: %s\n", plm_last_error());
            test_failures++;
            break;
        }
        replaced_reported += es.replaced;
        for (int i = 0; i < B * T; i++, total++) {
            if (!mask[i]) { /* padding (a document's last MLM chunk): no label, never replaced */
                wrong += es.disc_labels[i] != PLM_IGNORE_INDEX || labels[i] != PLM_IGNORE_INDEX;
                continue;
            }
            bool sel = labels[i] != PLM_IGNORE_INDEX;
            int32_t orig = sel ? labels[i] : ids[i], in = es.disc_ids[i], y = es.disc_labels[i];
            eligible += !v.is_special[orig];
            selected += sel;
            if (sel) {
                same += es.sampled[i] == orig;
                wrong += in != es.sampled[i];
            } else {
                wrong += in != orig; /* unselected tokens reach the discriminator unchanged */
            }
            wrong += y != (in != orig); /* 1 exactly where the input differs from the original */
            replaced += y == 1;
        }
    }
    TEST_CHECK(wrong == 0, "electra_labels_exact", "%ld of %ld positions with a wrong input or label", wrong, total);
    TEST_CHECK(replaced == replaced_reported, "electra_replaced_count", "%ld counted, %ld reported", replaced,
               replaced_reported);
    double rate = (double)selected / (double)eligible;
    TEST_CHECK(fabs(rate - 0.15) < 0.003, "electra_selection_rate", "%.4f of the eligible tokens selected", rate);
    /* an untrained generator over 35 tokens draws the original about 1 time in 35 */
    TEST_CHECK(same > 1000 && replaced == selected - same, "electra_same_sample_is_original",
               "%ld samples equal to the original, %ld replaced of %ld selected", same, replaced, selected);
    printf("  %ld tokens, %ld selected, %ld sampled = original, %ld replaced\n", total, selected, same, replaced);
    free(ids), free(labels), free(mask);
    plm_electra_state_free(&es);
    plm_dataloader_free(&d);
    plm_token_stream_free(&st);
    plm_vocab_info_free(&v);
    plm_model_free(m);
}

/* The value of "key" in the last line of a metrics.jsonl that has it; NAN if none. */
static double last_metric(const char *path, const char *key) {
    size_t n;
    char *buf = plm_read_file(path, &n);
    double v = NAN;
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\": ", key);
    for (char *line = buf; buf && line && *line;) {
        char *nl = strchr(line, '\n'), *k = strstr(line, pat);
        if (k && (!nl || k < nl)) v = strtod(k + strlen(pat), NULL);
        line = nl ? nl + 1 : NULL;
    }
    free(buf);
    return v;
}

/* ELECTRA on tinyshakespeare: a 2-layer width-64 discriminator with a width-16 generator. */
static void test_electra_learns(const char *data, int steps) {
    char corpus_path[1024];
    snprintf(corpus_path, sizeof corpus_path, "%s/tinyshakespeare/input.txt", data);
    const char *corpus = corpus_path;
    if (access(corpus, R_OK) != 0) {
        printf("FAIL electra_learns: %s not found (tests read $PLM_DATA, default ../shared/data)\n", corpus);
        test_failures++;
        return;
    }
    const char *specials[] = {"<|endoftext|>", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"};
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    to.vocab_size = 512;
    to.special_tokens = specials;
    to.n_special = 6;
    to.show_progress = false;
    plm_tokenizer *tok = plm_tokenizer_train_bpe(&corpus, 1, &to);
    plm_token_stream all = {0};
    if (!tok || plm_corpus_tokenize(tok, &corpus, 1, plm_tokenizer_special(tok, PLM_SPECIAL_EOS), &all, 0) != 0) {
        printf("FAIL electra_learns: %s\n", plm_last_error());
        test_failures++;
        if (tok) plm_tokenizer_free(tok);
        return;
    }
    size_t nv = all.n / 10;
    plm_token_stream train = {.ids = all.ids, .n = all.n - nv, .flags = all.flags},
                     valid = {.ids = all.ids + all.n - nv, .n = nv, .flags = all.flags ? all.flags + all.n - nv : NULL};
    int T = 32;
    plm_model *m = tiny_electra(plm_tokenizer_vocab_size(tok), 64, 2, T, 0.25f, 11);
    char dir[] = "/tmp/plm_electra_XXXXXX";
    if (!m || !mkdtemp(dir)) {
        printf("FAIL electra_learns: %s\n", plm_last_error());
        test_failures++;
        return;
    }
    plm_train_args a;
    plm_train_args_default(&a);
    a.output_dir = dir;
    a.objective = PLM_OBJ_ELECTRA;
    a.obj.mask_replace_prob = 0.85f, a.obj.random_replace_prob = 0.0f;
    a.per_device_train_batch_size = 32;
    a.max_seq_length = T;
    a.max_steps = steps;
    a.opt.learning_rate = 2e-3f;
    a.warmup_steps = steps / 6;
    a.eval_steps = 0;
    a.eval_batches = 30;
    a.quiet = true;
    int rc = plm_train(m, tok, &train, &valid, &a);
    TEST_CHECK(rc == 0, "electra_train", "%s", plm_last_error());
    char path[1100];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    double acc = last_metric(path, "eval_discriminator_accuracy"),
           base = last_metric(path, "eval_always_original_accuracy");
    double auc = last_metric(path, "eval_discriminator_auc"), gacc = last_metric(path, "eval_masked_accuracy");
    printf("  ELECTRA after %d steps: discriminator accuracy %.4f (always original %.4f), AUC %.4f; generator masked "
           "accuracy %.4f\n",
           steps, acc, base, auc, gacc);
    /* The chance levels: "original" everywhere, and AUC 0.5. The AUC's standard error
     * (Hanley & McNeil 1982) from the counts: ~4k replaced and ~26k original tokens give
     * about 0.005, and the margin asked for is 6 of them (about 0.53).
     * Why the AUC is small at this size (issue 8, measured): no bug was found. The
     * discriminator reads the generator's samples at the selected positions and the
     * original elsewhere, labels are 1 exactly where they differ and -100 on padding
     * (electra_labels_exact above), the AUC is over the labelled tokens, no gradient
     * crosses the sample, and the generator replaces ~87% of the selected tokens. An
     * independent PyTorch ELECTRA (same sizes, data, recipe) measured AUC 0.575 / 0.551
     * after 100 / 200 steps where plm measured 0.547 / 0.569, and plm's joint loss
     * equals PyTorch's on the same weights and samples (bench/run.sh --check-only). The
     * generator reaches unigram-quality samples within ~100 steps, after which a
     * replaced token can only be told by its context: a bigram count model tells unigram
     * replacements at AUC 0.91 on this corpus, but a 2-layer width-64 network learns its
     * neighbours' statistics slowly (AUC 0.55-0.58 at 200-600 steps, vocabulary 512 or
     * 2048; a discriminator alone on unigram replacements is still at AUC 0.54 after
     * 2000 steps, on uniform random replacements it reaches 0.84 in 100). */
    if (steps >= 400) {
        double dc = last_metric(path, "eval_tokens");
        double P = round((1.0 - base) * dc), Nn = dc - P, q1 = auc / (2.0 - auc), q2 = 2.0 * auc * auc / (1.0 + auc);
        double se = sqrt((auc * (1 - auc) + (P - 1) * (q1 - auc * auc) + (Nn - 1) * (q2 - auc * auc)) / (P * Nn));
        printf("  AUC standard error %.4f (%.0f replaced, %.0f original tokens): AUC - 0.5 = %.1f standard errors\n",
               se, P, Nn, (auc - 0.5) / se);
        TEST_CHECK(acc > base + 0.0005, "electra_disc_beats_always_original", "accuracy %.4f vs always-original %.4f",
                   acc, base);
        TEST_CHECK(P > 1000 && auc > 0.5 + 6.0 * se, "electra_disc_auc", "AUC %.4f, 0.5 + 6 standard errors = %.4f",
                   auc, 0.5 + 6.0 * se);
        TEST_CHECK(gacc > 0.1, "electra_generator_learns", "generator masked accuracy %.4f", gacc);
    }
    /* the saved layout: ElectraForPreTraining + generator/, loadable as the joint model */
    plm_model *l = plm_electra_load(dir);
    TEST_CHECK(l && l->num_params == m->num_params && !memcmp(l->params, m->params, m->num_params * sizeof(float)),
               "electra_saved_model", "%s", l ? "weights differ" : plm_last_error());
    plm_model_free(l);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) printf("  (could not remove %s)\n", dir);
    plm_model_free(m);
    plm_token_stream_free(&all);
    plm_tokenizer_free(tok);
}

int main(void) {
    const char *data = getenv("PLM_DATA") ? getenv("PLM_DATA") : "../shared/data";
    test_wsd();
    test_sampler();
    test_electra_labels();
    /* fewer steps under the sanitizers: the pipeline, not the learning, is what they check */
    test_electra_learns(data, test_sanitized() ? 40 : 400);
    TEST_EXIT();
}
