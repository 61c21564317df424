/* test_unmask.c - iterative unmasking (infer/unmask.h).
 *
 * 1. The schedule n_t = floor(L (N - t) / N) and the re-masking rule, on stubs of
 *    probabilities with the expected masks computed by hand, for mask-predict and the
 *    confidence-ordered variant (where they differ: mask-predict revises a kept token).
 * 2. Learning: a tiny BERT trained here (a few seconds) on a language where one-shot
 *    prediction of a fully masked span must fail. Each of 8 topic tokens has 3 phrases
 *    of 6 tokens; at each position two phrases share a token and the third differs, the
 *    odd one rotating (A at positions 1 and 4, B at 2 and 5, C at 3 and 6). The marginal
 *    of every masked position is then 2/3 on the shared token, so predicting all six at
 *    once (iterations 1) writes the shared tokens everywhere: a sequence that is none of
 *    the phrases (each differs from it in two places). Mask-Predict keeps the most
 *    confident tokens and predicts the rest given them, which selects one phrase. The
 *    test asserts that iterative unmasking writes more exact phrases and reaches a higher
 *    pseudo-log-likelihood than one-shot prediction, for both orders, and that the
 *    model really learned the language (its masked-token loss near the entropy floor).
 * 3. Sampling is reproducible from the seed and independent of the batch; a causal
 *    model is refused.
 * Under the sanitizers the encoder trains 60 steps and the learning checks pass
 * trivially (the paths run, the numbers are printed). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/unmask.h"
#include "model/model.h"
#include "test.h"
#include "train/adamw.h"

/* ---------------------------------------------------------------- schedule and rule */

static int same_mask(const uint8_t *got, const char *want) {
    for (int i = 0; want[i]; i++)
        if (got[i] != (want[i] == '1')) return 0;
    return 1;
}

static void mask_str(const uint8_t *m, int L, char *out) {
    for (int i = 0; i < L; i++) out[i] = m[i] ? '1' : '0';
    out[L] = 0;
}

static void test_schedule(void) {
    /* L = 10, N = 10: one fewer each iteration */
    int ok = 1;
    for (int t = 0; t <= 10; t++) ok &= plm_unmask_count(10, t, 10) == 10 - t;
    TEST_CHECK(ok, "unmask_schedule_linear", "L 10, N 10 is not 10, 9, ..., 0");
    /* L = 7, N = 3: 7, floor(14/3) = 4, floor(7/3) = 2, 0 */
    TEST_CHECK(plm_unmask_count(7, 0, 3) == 7 && plm_unmask_count(7, 1, 3) == 4 && plm_unmask_count(7, 2, 3) == 2 &&
                   plm_unmask_count(7, 3, 3) == 0,
               "unmask_schedule_floor", "L 7, N 3: %d %d %d %d", plm_unmask_count(7, 0, 3), plm_unmask_count(7, 1, 3),
               plm_unmask_count(7, 2, 3), plm_unmask_count(7, 3, 3));
    /* L = 5, N = 10: 5, 4 (4.5), 4, 3 (3.5), 3, 2 (2.5), 2, 1 (1.5), 1, 0 (0.5) */
    static const int want[10] = {5, 4, 4, 3, 3, 2, 2, 1, 1, 0};
    ok = 1;
    for (int t = 0; t < 10; t++) ok &= plm_unmask_count(5, t, 10) == want[t];
    TEST_CHECK(ok, "unmask_schedule_more_iterations_than_masks", "L 5, N 10 differs from 5 4 4 3 3 2 2 1 1 0");
    TEST_CHECK(plm_unmask_count(3, 0, 1) == 3 && plm_unmask_count(3, 1, 1) == 0, "unmask_schedule_one_shot",
               "N 1 must predict once");
    TEST_CHECK(plm_unmask_count(1000000, 1, 3) == 666666, "unmask_schedule_no_overflow", "%d",
               plm_unmask_count(1000000, 1, 3));
}

static void test_select(void) {
    uint8_t m[8];
    char s[9];
    const float p[5] = {0.9f, 0.1f, 0.5f, 0.1f, 0.7f};
    int k = plm_unmask_select(p, NULL, 5, 2, m);
    mask_str(m, 5, s);
    TEST_CHECK(k == 2 && same_mask(m, "01010"), "unmask_select_lowest", "got %s (%d)", s, k);
    k = plm_unmask_select(p, NULL, 5, 3, m);
    mask_str(m, 5, s);
    TEST_CHECK(k == 3 && same_mask(m, "01110"), "unmask_select_lowest3", "got %s", s);
    /* ties at the boundary go to the earlier position */
    const float q[4] = {0.3f, 0.2f, 0.3f, 0.3f};
    k = plm_unmask_select(q, NULL, 4, 2, m);
    mask_str(m, 4, s);
    TEST_CHECK(k == 2 && same_mask(m, "1100"), "unmask_select_ties_earlier", "got %s", s);
    /* only candidates; more wanted than candidates: all of them */
    const uint8_t cand[5] = {1, 0, 1, 0, 1};
    k = plm_unmask_select(p, cand, 5, 2, m);
    mask_str(m, 5, s);
    TEST_CHECK(k == 2 && same_mask(m, "00101"), "unmask_select_candidates", "got %s", s);
    k = plm_unmask_select(p, cand, 5, 4, m);
    mask_str(m, 5, s);
    TEST_CHECK(k == 3 && same_mask(m, "10101"), "unmask_select_all_candidates", "got %s (%d)", s, k);
    k = plm_unmask_select(p, NULL, 5, 0, m);
    mask_str(m, 5, s);
    TEST_CHECK(k == 0 && same_mask(m, "00000"), "unmask_select_none", "got %s", s);
}

/* A stub "model" for L = 4, N = 4: the probability each iteration's prediction gets at
 * each position (only the masked ones are taken). Worked by hand:
 *   t=0  masked 1111, predicted p = .6 .2 .1 .4
 *   t=1  n = 3: lowest three of (.6 .2 .1 .4) -> 0111 (keeps position 0, p .6)
 *        predicted p = (.6) .9 .8 .95
 *   t=2  n = 2: mask-predict, lowest of all (.6 .9 .8 .95) -> 1010: position 0, kept
 *        since t=0, is revised; confidence, lowest among 0111 -> 0110 (0 is final)
 *        mask-predict predicts p = .7 (.9) .85 (.95); confidence (.6) .5 .3 (.95)
 *   t=3  n = 1: mask-predict lowest of (.7 .9 .85 .95) -> 1000;
 *        confidence lowest among 0110 of (.6 .5 .3 .95) -> 0010 */
static void test_stub_loop(void) {
    static const float pred[2][4][4] = {
        {{.6f, .2f, .1f, .4f}, {0, .9f, .8f, .95f}, {.7f, 0, .85f, 0}, {.99f, 0, 0, 0}},
        {{.6f, .2f, .1f, .4f}, {0, .9f, .8f, .95f}, {0, .5f, .3f, 0}, {0, 0, .99f, 0}},
    };
    static const char *want[2][4] = {{"1111", "0111", "1010", "1000"}, {"1111", "0111", "0110", "0010"}};
    for (int s = 0; s < 2; s++) {
        float p[4] = {0};
        uint8_t m[4] = {0}, prev[4];
        char got[4][5];
        int ok = 1;
        for (int t = 0; t < 4; t++) {
            int k = plm_unmask_next(s ? PLM_UNMASK_CONFIDENCE : PLM_UNMASK_MASK_PREDICT, t, 4, 4, p, m, prev);
            mask_str(m, 4, got[t]);
            ok &= same_mask(m, want[s][t]) && k == plm_unmask_count(4, t, 4);
            for (int j = 0; j < 4; j++)
                if (m[j]) p[j] = pred[s][t][j]; /* the prediction overwrites; the others keep theirs */
        }
        TEST_CHECK(ok, s ? "unmask_stub_loop_confidence" : "unmask_stub_loop_mask_predict",
                   "masks %s %s %s %s, want %s %s %s %s", got[0], got[1], got[2], got[3], want[s][0], want[s][1],
                   want[s][2], want[s][3]);
    }
}

/* ---------------------------------------------------------------- learning */

enum { PAD = 0, CLS = 1, SEP = 2, MASK = 3, TOPICS = 8, PHRASES = 3, SPAN = 6, WORD0 = 4 + TOPICS, WORDS = 20 };
enum { V = WORD0 + WORDS, T = SPAN + 3, B = TOPICS * PHRASES };

static int32_t phrase[TOPICS][PHRASES][SPAN];

/* the language: per topic and position a shared token and an odd one, the odd phrase
 * rotating A, B, C, A, B, C */
static void make_language(void) {
    plm_rng r;
    plm_rng_seed(&r, 7, 1);
    for (int k = 0; k < TOPICS; k++)
        for (int j = 0; j < SPAN; j++) {
            int32_t shared = WORD0 + (int32_t)plm_rng_below(&r, WORDS), odd;
            do odd = WORD0 + (int32_t)plm_rng_below(&r, WORDS);
            while (odd == shared);
            for (int ph = 0; ph < PHRASES; ph++) phrase[k][ph][j] = ph == j % PHRASES ? odd : shared;
        }
}

static void sequence(int k, int ph, int32_t *ids) {
    ids[0] = CLS;
    ids[1] = 4 + k; /* the topic token */
    memcpy(ids + 2, phrase[k][ph], SPAN * sizeof(int32_t));
    ids[T - 1] = SEP;
}

/* which phrase of topic k the span ids[2..] is, or -1 */
static int which_phrase(int k, const int32_t *ids) {
    for (int ph = 0; ph < PHRASES; ph++)
        if (memcmp(ids + 2, phrase[k][ph], SPAN * sizeof(int32_t)) == 0) return ph;
    return -1;
}

/* The lowest mean masked loss of the training batches: for n = 1..6 masked positions
 * (uniform), every n-subset and true phrase, the posterior over the phrases that agree
 * with the visible span tokens gives each masked target p = (agreeing phrases with that
 * token) / (agreeing phrases); token-weighted as the loss is (n tokens per sequence). */
static double bayes_loss(void) {
    double sum = 0, tokens = 0;
    for (int set = 1; set < 1 << SPAN; set++) { /* the masked positions */
        int n = __builtin_popcount((unsigned)set), subsets = 1;
        for (int i = 0; i < n; i++) subsets = subsets * (SPAN - i) / (i + 1); /* C(6, n) */
        double w = 1.0 / SPAN / subsets;                                      /* P(n) P(this subset | n) */
        for (int truth = 0; truth < PHRASES; truth++)
            for (int j = 0; j < SPAN; j++) {
                if (!(set >> j & 1)) continue;
                int agree = 0, same = 0;
                for (int ph = 0; ph < PHRASES; ph++) {
                    int ok = 1;
                    for (int u = 0; u < SPAN; u++)
                        if (!(set >> u & 1) && (ph == u % PHRASES) != (truth == u % PHRASES)) ok = 0;
                    agree += ok;
                    same += ok && (ph == j % PHRASES) == (truth == j % PHRASES);
                }
                sum += w / PHRASES * -log((double)same / agree);
            }
        tokens += w * n;
    }
    return sum / tokens;
}

/* Trains on every (topic, phrase) once per step, each with a uniform number 1..6 of its
 * span positions masked (the CMLM training of Mask-Predict). Returns the mean masked
 * loss of the last 50 steps. */
static double train(plm_model *m, int steps) {
    int32_t ids[B * T], labels[B * T];
    plm_rng r;
    plm_rng_seed(&r, 11, 2);
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    const float LR = 5e-3f;
    plm_adamw_hparams h = plm_adamw_defaults(LR);
    h.weight_decay = 0.0f;
    plm_model_reserve(m, B, T);
    double tail = 0;
    for (int s = 0; s < steps; s++) {
        for (int b = 0; b < B; b++) {
            int32_t *x = ids + b * T, *y = labels + b * T;
            sequence(b / PHRASES, b % PHRASES, x);
            for (int t = 0; t < T; t++) y[t] = PLM_IGNORE_INDEX;
            int pos[SPAN], n = 1 + (int)plm_rng_below(&r, SPAN);
            for (int j = 0; j < SPAN; j++) pos[j] = 2 + j;
            for (int j = 0; j < n; j++) { /* a random n-subset: partial Fisher-Yates */
                int u = j + (int)plm_rng_below(&r, (uint32_t)(SPAN - j)), tmp = pos[j];
                pos[j] = pos[u];
                pos[u] = tmp;
                y[pos[j]] = x[pos[j]];
                x[pos[j]] = MASK;
            }
        }
        plm_batch bt = {.B = B, .T = T, .input_ids = ids, .labels = labels};
        plm_model_zero_grad(m);
        plm_model_run(m, 0, &bt, true, 1.0f);
        /* linear warmup over 30 steps, then linear decay to 0 */
        float lr = LR * (s < 30 ? (float)(s + 1) / 30 : (float)(steps - s) / (float)(steps - 30));
        plm_adamw_step(&opt, m, &h, lr);
        if (s >= steps - 50) tail += m->loss / 50;
    }
    plm_adamw_free(&opt);
    return tail;
}

/* Fully masked spans of every topic through plm_unmask_batch: the number of outputs that
 * are a phrase of their topic, and the summed pseudo-log-likelihood of the spans. */
static int run_unmask(plm_model *m, int N, plm_unmask_strategy st, double *pll, int32_t out[TOPICS][T]) {
    int32_t *rows[TOPICS];
    int n[TOPICS], valid = 0, pos[SPAN];
    for (int j = 0; j < SPAN; j++) pos[j] = 2 + j;
    plm_unmask_opts o;
    plm_unmask_opts_default(&o);
    o.iterations = N;
    o.strategy = st;
    o.mask_token_id = MASK;
    o.pad_token_id = PAD;
    for (int k = 0; k < TOPICS; k++) {
        sequence(k, 0, out[k]);
        for (int j = 0; j < SPAN; j++) out[k][2 + j] = MASK;
        rows[k] = out[k];
        n[k] = T;
    }
    if (plm_unmask_batch(m, rows, n, TOPICS, &o, NULL, NULL, NULL) != 0) return -1;
    *pll = 0;
    for (int k = 0; k < TOPICS; k++) {
        valid += which_phrase(k, out[k]) >= 0;
        *pll += plm_pseudo_log_likelihood(m, out[k], T, pos, SPAN, MASK);
    }
    return valid;
}

static void test_learning(void) {
    make_language();
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = V;
    c.hidden_size = 64;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 128;
    c.max_position_embeddings = 16;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.pad_token_id = PAD;
    plm_model *m = plm_model_create(&c, 5);
    double t0 = plm_now();
    bool san = test_sanitized(); /* a short run: the code paths, not the learning */
    int steps = san ? 60 : 1000;
    double loss = train(m, steps);
    double floor_ = bayes_loss();
    printf("# trained %d steps in %.1fs: masked loss %.3f nats (last 50 steps), Bayes floor %.3f\n", steps,
           plm_now() - t0, loss, floor_);
    TEST_CHECK(san || loss < floor_ + 0.1, "unmask_learning_trained", "masked loss %.3f after %d steps, floor %.3f",
               loss, steps, floor_);
    int32_t one[TOPICS][T], it[TOPICS][T];
    double pll_one = 0, pll_it = 0;
    int v_one = run_unmask(m, 1, PLM_UNMASK_MASK_PREDICT, &pll_one, one);
    for (int s = 0; s < 2; s++) {
        plm_unmask_strategy st = s ? PLM_UNMASK_CONFIDENCE : PLM_UNMASK_MASK_PREDICT;
        int v_it = run_unmask(m, SPAN, st, &pll_it, it);
        printf("# %s: one-shot %d/%d phrases, pseudo-log-likelihood %.2f; %d iterations %d/%d, %.2f\n",
               plm_unmask_strategy_name(st), v_one, TOPICS, pll_one, SPAN, v_it, TOPICS, pll_it);
        TEST_CHECK(san || (v_it > v_one && v_it >= TOPICS - 1),
                   s ? "unmask_learning_phrases_confidence" : "unmask_learning_phrases",
                   "%d/%d exact phrases with %d iterations, %d/%d one-shot", v_it, TOPICS, SPAN, v_one, TOPICS);
        TEST_CHECK(san || pll_it > pll_one + 1.0, s ? "unmask_learning_pll_confidence" : "unmask_learning_pll",
                   "pseudo-log-likelihood %.3f iterative vs %.3f one-shot", pll_it, pll_one);
    }
    /* one-shot writes the shared tokens: the design works as intended */
    int shared = 0;
    for (int k = 0; k < TOPICS; k++)
        for (int j = 0; j < SPAN; j++) shared += one[k][2 + j] == phrase[k][(j + 1) % PHRASES][j];
    TEST_CHECK(san || shared >= TOPICS * SPAN - 2, "unmask_learning_one_shot_marginals",
               "%d/%d positions got the shared token", shared, TOPICS * SPAN);

    /* sampling: the same seed gives the same outputs; a sequence alone gets what it gets in the batch */
    plm_unmask_opts o;
    plm_unmask_opts_default(&o);
    o.iterations = 4;
    o.mask_token_id = MASK;
    o.sampling.do_sample = true;
    o.sampling.temperature = 1.5f;
    o.sampling.top_k = 5;
    o.sampling.seed = 123;
    int32_t in0[TOPICS][T], a[TOPICS][T], b[TOPICS][T], alone[T];
    int32_t *ra[TOPICS], *rb[TOPICS];
    int n[TOPICS];
    for (int k = 0; k < TOPICS; k++) {
        sequence(k, 1, in0[k]);
        for (int j = 0; j < SPAN - 1; j++) in0[k][2 + j] = MASK; /* the span's last token given */
        ra[k] = a[k], rb[k] = b[k], n[k] = T;
    }
    memcpy(a, in0, sizeof a);
    memcpy(b, in0, sizeof b);
    memcpy(alone, in0[5], sizeof alone);
    int32_t *ral = alone;
    int rc = plm_unmask_batch(m, ra, n, TOPICS, &o, NULL, NULL, NULL);
    rc |= plm_unmask_batch(m, rb, n, TOPICS, &o, NULL, NULL, NULL);
    o.first_index = 5; /* sequence 5 of the inputs, run in a batch of its own */
    rc |= plm_unmask_batch(m, &ral, n, 1, &o, NULL, NULL, NULL);
    o.first_index = 0;
    TEST_CHECK(rc == 0 && memcmp(a, b, sizeof a) == 0, "unmask_sampling_reproducible", "two runs of seed 123 differ");
    TEST_CHECK(rc == 0 && memcmp(alone, a[5], sizeof alone) == 0, "unmask_sampling_batch_independent",
               "sequence 5 alone differs from its output in the batch");
    int given = 1, nomask = 1;
    for (int k = 0; k < TOPICS; k++) {
        given &= a[k][0] == CLS && a[k][1] == 4 + k && a[k][T - 2] == in0[k][T - 2] && a[k][T - 1] == SEP;
        for (int t = 0; t < T; t++) nomask &= a[k][t] != MASK;
    }
    TEST_CHECK(given && nomask, "unmask_given_tokens_kept", "given tokens changed or a mask left");
    int differs = 0;
    for (o.sampling.seed = 124; o.sampling.seed < 128 && !differs; o.sampling.seed++) {
        memcpy(b, in0, sizeof b);
        plm_unmask_batch(m, rb, n, TOPICS, &o, NULL, NULL, NULL);
        differs = memcmp(a, b, sizeof a) != 0;
    }
    TEST_CHECK(differs, "unmask_sampling_seed_matters", "seeds 124..127 all give seed 123's outputs");
    /* copies of one input are different samples (each input has its own stream): they all
     * drew the same tokens when every sequence used one stream */
    for (int k = 0; k < TOPICS; k++) memcpy(b[k], in0[0], sizeof b[k]);
    o.sampling.seed = 123;
    o.sampling.temperature = 100.0f; /* ~uniform over the top 5: the trained model is so sure of
                                      * its phrases that at 1.5 one build drew the same tokens
                                      * for all 8 copies */
    rc = plm_unmask_batch(m, rb, n, TOPICS, &o, NULL, NULL, NULL);
    int distinct = 0;
    for (int k = 1; k < TOPICS; k++) distinct += memcmp(b[k], b[0], sizeof b[k]) != 0;
    TEST_CHECK(rc == 0 && distinct > 0, "unmask_sampling_copies_differ", "%d copies of one input all got one sample",
               TOPICS);
    plm_model_free(m);
}

static void test_refusals(void) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = 16;
    c.hidden_size = 8;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.intermediate_size = 16;
    c.max_position_embeddings = 8;
    plm_model *m = plm_model_create(&c, 1);
    plm_unmask_opts o;
    plm_unmask_opts_default(&o);
    o.mask_token_id = 3;
    int32_t ids[4] = {1, 3, 3, 2}, *r = ids;
    int n = 4;
    int rc = plm_unmask_batch(m, &r, &n, 1, &o, NULL, NULL, NULL);
    TEST_CHECK(rc != 0 && strstr(plm_last_error(), "causal"), "unmask_refuses_causal", "rc %d, error '%s'", rc,
               plm_last_error());
    plm_model_free(m);
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = 16;
    c.hidden_size = 8;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.intermediate_size = 16;
    c.max_position_embeddings = 8;
    m = plm_model_create(&c, 1);
    o.mask_token_id = 16;
    rc = plm_unmask_batch(m, &r, &n, 1, &o, NULL, NULL, NULL);
    TEST_CHECK(rc != 0 && strstr(plm_last_error(), "outside the vocabulary"), "unmask_refuses_bad_mask_id",
               "rc %d, error '%s'", rc, plm_last_error());
    o.mask_token_id = 3;
    int32_t longer[9] = {1, 3, 3, 3, 3, 3, 3, 3, 2}, *rl = longer;
    n = 9;
    rc = plm_unmask_batch(m, &rl, &n, 1, &o, NULL, NULL, NULL);
    TEST_CHECK(rc != 0 && strstr(plm_last_error(), "max_position_embeddings"), "unmask_refuses_too_long",
               "rc %d, error '%s'", rc, plm_last_error());
    /* the pseudo-log-likelihood reads ids[pos] (which the model never sees: it is masked)
     * and writes the mask at pos: both out of range were heap overflows */
    int32_t seq[4] = {1, 5, 6, 2};
    int bad_pos[1] = {4}, pos1[1] = {1};
    double pll = plm_pseudo_log_likelihood(m, seq, 4, bad_pos, 1, 3);
    TEST_CHECK(isnan(pll) && strstr(plm_last_error(), "position 4"), "pll_refuses_bad_position", "pll %g, error '%s'",
               pll, plm_last_error());
    seq[1] = 16;
    pll = plm_pseudo_log_likelihood(m, seq, 4, pos1, 1, 3);
    TEST_CHECK(isnan(pll) && strstr(plm_last_error(), "outside the vocabulary"), "pll_refuses_bad_id",
               "pll %g, error '%s'", pll, plm_last_error());
    seq[1] = 5;
    pll = plm_pseudo_log_likelihood(m, longer, 9, pos1, 1, 3);
    TEST_CHECK(isnan(pll) && strstr(plm_last_error(), "max_position_embeddings"), "pll_refuses_too_long",
               "pll %g, error '%s'", pll, plm_last_error());
    pll = plm_pseudo_log_likelihood(m, seq, 4, pos1, 1, 3);
    TEST_CHECK(isfinite(pll) && pll < 0, "pll_valid_input", "pll %g", pll);
    plm_model_free(m);
}

int main(void) {
    test_schedule();
    test_select();
    test_stub_loop();
    test_refusals();
    test_learning();
    TEST_EXIT();
}
