/* test_rloo.c - plm rloo's pieces and learning (train/rloo.h):
 *   the RLOO loss, advantages and per-sequence weights on hand-computed numbers for k = 2
 *     and k = 4 (rewards with the KL penalty, the leave-one-out baselines);
 *   the weights on the LM loss: the model's weighted loss (batch.h label_weights) over a
 *     batch of prompt + completion rows equals -(1/N) sum A_i logp_i from plm_rloo_loss on
 *     the same rows' log-probs (plm_dpo_logps);
 *   prompts: {"prompt"} lines read and rendered with the generation prompt, one line
 *     naming file and line for a missing or non-string prompt, a prompt too long to
 *     leave room for a completion;
 *   learning: a reward model built by hand (its layers' outputs zeroed, so the score head
 *     reads LN(wte[x]) of the last token x before EOS: +1 when x is a multiple of 4, -1
 *     otherwise) and a tiny random GPT-2 policy; plm_rloo_train for 100 steps raises the
 *     mean reward of sampled completions on the training prompts above the starting
 *     policy's by max(0.25, 6 standard errors) (the standard error of the difference of
 *     the two means, measured on 256 samples each).
 * Learning run: policy GPT-2 1 layer, width 32, 2 heads, a 300-token byte-level BPE; 64
 * prompts "say a b", batch 16 prompts x k 4, up to 3 new tokens, beta 0.05, AdamW lr 3e-3
 * linear decay, 100 steps; seeds 5, 6, 7 (model, prompt order and samples; PLM_RLOO_SEED
 * runs one). Measured (2 cores, about 0.6 s a seed): -0.500 -> 0.656, -0.453 -> 0.727,
 * -0.523 -> 0.687 (bars -0.069, -0.031, -0.104); seeds 1-10 from -0.62..-0.45 to 0.52..0.73,
 * every one above its bar (-0.18..-0.03). With a batch of 8 prompts and 6 new tokens the
 * rise is smaller and noisier (40 steps: +0.1..+0.25, under the bar). PLM_RLOO_STEPS,
 * PLM_RLOO_LR, PLM_RLOO_BATCH, PLM_RLOO_NEW set those; PLM_RLOO_KEEP keeps the run's
 * directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "model/model.h"
#include "tasks/chat.h"
#include "rl_fixtures.h"
#include "test.h"
#include "tokenizer/tokenizer.h"
#include "train/dpo.h"
#include "train/reward.h"
#include "train/rloo.h"

static bool close_to(double a, double b, double tol) { return fabs(a - b) <= tol * (fabs(b) + 1e-12); }

/* ---------------------------------------------------------------- the loss */

static void test_loss(void) {
    /* k = 2, one prompt: scores (1, 0), logp (-2, -3), ref (-2.5, -2.5), beta 0.1:
     * kl (0.5, -0.5), r (0.95, 0.05), A (0.9, -0.9), loss -(0.9 (-2) - 0.9 (-3)) / 2 = -0.45,
     * weights A / 2 */
    float score[8] = {1.0f, 0.0f};
    double logp[8] = {-2, -3}, ref[8] = {-2.5, -2.5}, adv[8];
    int len[8] = {3, 5};
    float w[8];
    plm_rloo_stats st;
    plm_rloo_loss(score, logp, ref, len, 1, 2, 0.1f, &st, adv, w);
    TEST_CHECK(close_to(adv[0], 0.9, 1e-7) && close_to(adv[1], -0.9, 1e-7) && close_to(st.loss, -0.45, 1e-7) &&
                   close_to(w[0], 0.45, 1e-6) && close_to(w[1], -0.45, 1e-6) && close_to(st.kl, 0.0, 1e-12) &&
                   close_to(st.reward, 0.5, 1e-7) && close_to(st.score, 0.5, 1e-12) &&
                   close_to(st.advantage, 0.9, 1e-7) && st.length == 4.0 && st.n == 2,
               "rloo_loss_k2_hand_computed", "A %g %g loss %.17g w %g %g kl %g reward %g", adv[0], adv[1], st.loss,
               w[0], w[1], st.kl, st.reward);
    /* k = 4, two prompts, beta 0.5. Prompt 0: scores (1, 2, 3, 6), logp = ref (no KL):
     * r = scores, A_i = r_i - (12 - r_i) / 3 = (4 r_i - 12) / 3 = (-8/3, -4/3, 0, 4).
     * Prompt 1: scores 0, kl (1, 0, 0, -1): r = (-0.5, 0, 0, 0.5), A = (4 r - 0) / 3.
     * N = 8; loss = -(1/8) sum A_i logp_i */
    float s4[8] = {1, 2, 3, 6, 0, 0, 0, 0};
    double lp4[8] = {-1, -2, -3, -4, -1, -2, -3, -4}, rf4[8] = {-1, -2, -3, -4, -2, -2, -3, -3};
    double want[8] = {-8.0 / 3, -4.0 / 3, 0, 4, -2.0 / 3, 0, 0, 2.0 / 3}, wl = 0, wk = 0, wr = 0, wa = 0;
    for (int i = 0; i < 8; i++) {
        wl -= want[i] * lp4[i] / 8;
        wk += (lp4[i] - rf4[i]) / 8;
        wr += (s4[i] - 0.5 * (lp4[i] - rf4[i])) / 8;
        wa += fabs(want[i]) / 8;
    }
    plm_rloo_loss(s4, lp4, rf4, NULL, 2, 4, 0.5f, &st, adv, w);
    bool ok = close_to(st.loss, wl, 1e-12) && close_to(st.kl, wk, 1e-12) && close_to(st.reward, wr, 1e-12) &&
              close_to(st.advantage, wa, 1e-12) && st.length == 0.0;
    for (int i = 0; i < 8; i++) ok &= fabs(adv[i] - want[i]) < 1e-12 && fabs(w[i] - want[i] / 8) < 1e-7;
    TEST_CHECK(ok, "rloo_loss_k4_hand_computed", "loss %.17g (want %.17g) A %g %g %g %g | %g %g %g %g", st.loss, wl,
               adv[0], adv[1], adv[2], adv[3], adv[4], adv[5], adv[6], adv[7]);
    /* the advantages of a prompt sum to zero (each r_i enters its own A with weight 1 and
     * the k - 1 others' with -1 / (k - 1)) */
    TEST_CHECK(fabs(adv[0] + adv[1] + adv[2] + adv[3]) < 1e-12 && fabs(adv[4] + adv[5] + adv[6] + adv[7]) < 1e-12,
               "rloo_advantages_sum_to_zero", "%g %g", adv[0] + adv[1] + adv[2] + adv[3],
               adv[4] + adv[5] + adv[6] + adv[7]);
}

/* ---------------------------------------------------------------- prompts and weights */

static void test_prompts_and_weights(const char *dir, const plm_tokenizer *tok) {
    char p[512], bad[512];
    snprintf(p, sizeof p, "%s/prompts.jsonl", dir);
    snprintf(bad, sizeof bad, "%s/bad.jsonl", dir);
    write_prompts(p, 6, 2);
    plm_chat_set set;
    plm_sft_data prompts = {0};
    int rc = plm_chat_read_prompts(&set, p);
    rc |= rc ? rc : plm_rloo_encode_prompts(&prompts, &set, p, tok, PLM_TEMPLATE_PLAIN, 32);
    bool untrained = true;
    for (size_t j = 0; rc == 0 && j < prompts.off[prompts.n]; j++) untrained &= prompts.train[j] == 0;
    TEST_CHECK(rc == 0 && set.n == 6 && prompts.n == 6 && untrained && set.items[0].n == 1 &&
                   set.items[0].msgs[0].role == PLM_ROLE_USER,
               "rloo_prompts_read", "rc %d: %s", rc, plm_last_error());
    /* the generation prompt: "User: ...\nAssistant:", untrained, as generate --chat feeds it */
    plm_chat_tokens ct;
    plm_chat_tokens_init(&ct);
    plm_chat_encode(tok, PLM_TEMPLATE_PLAIN, set.items[0].msgs, 1, true, &ct);
    TEST_CHECK(rc == 0 && ct.n == (int)(prompts.off[1] - prompts.off[0]) &&
                   !memcmp(ct.ids, prompts.ids, (size_t)ct.n * sizeof(int32_t)),
               "rloo_prompts_generation_prompt", "%d tokens", ct.n);
    plm_chat_tokens_free(&ct);
    struct {
        const char *name, *text, *want;
    } cases[] = {
        {"rloo_prompt_missing", "{\"prompt\": \"a\"}\n{\"chosen\": \"b\"}\n", "bad.jsonl:2: no field \"prompt\""},
        {"rloo_prompt_not_string", "{\"prompt\": 3}\n", "bad.jsonl:1: \"prompt\" is not a string"},
        {"rloo_prompt_bad_json", "{\"prompt\": \"a\"}\n\n{\"prompt\":\n", "bad.jsonl:3: bad JSON"}};
    for (size_t c = 0; c < PLM_ARRAY_LEN(cases); c++) {
        FILE *f = fopen(bad, "w");
        fputs(cases[c].text, f);
        fclose(f);
        plm_chat_set b;
        int brc = plm_chat_read_prompts(&b, bad);
        TEST_CHECK(brc == -1 && strstr(plm_last_error(), cases[c].want) && b.n == 0, cases[c].name, "rc %d: %s", brc,
                   plm_last_error());
    }
    plm_sft_data tl = {0};
    int lrc = plm_rloo_encode_prompts(&tl, &set, p, tok, PLM_TEMPLATE_PLAIN, 4);
    TEST_CHECK(lrc == -1 && strstr(plm_last_error(), "prompts.jsonl:1: the prompt has") &&
                   strstr(plm_last_error(), "no room for a completion within 4"),
               "rloo_prompt_too_long", "rc %d: %s", lrc, plm_last_error());

    /* the weights on the LM loss: 2 prompts x k 3 completions, hand-made completions of 1-4
     * tokens; the model's weighted loss is -(1/N) sum A_i logp_i */
    plm_config c;
    tiny_config(&c, tok);
    plm_model *m = plm_model_create(&c, 7);
    plm_model_reserve(m, 8, 32);
    int32_t pad = plm_sft_pad_id(m, tok), eos = plm_chat_eos(tok);
    plm_sft_data seqs;
    plm_sft_data_init(&seqs);
    int32_t ids[32];
    uint8_t tr[32];
    int k = 3, N = 6, lens[6];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < k; j++) {
            int np = (int)(prompts.off[i + 1] - prompts.off[i]), g = 1 + (i + 2 * j) % 4;
            memcpy(ids, prompts.ids + prompts.off[i], (size_t)np * sizeof *ids);
            memset(tr, 0, (size_t)np);
            for (int t = 0; t < g; t++) {
                ids[np + t] = t == g - 1 && j != 1 ? eos : 5 + 7 * t + 11 * j + i;
                tr[np + t] = 1;
            }
            plm_sft_data_add(&seqs, ids, tr, np + g, 32, 0);
            lens[i * k + j] = g;
        }
    double logp[6], ref[6], adv[6];
    float score[6] = {0.5f, -1.0f, 2.0f, 0.25f, 0.25f, -3.0f}, w[6], tw[6 * 32];
    plm_dpo_logps(m, &seqs, 6, pad, logp);
    for (int i = 0; i < N; i++) ref[i] = logp[i] + 0.1 * (i - 2); /* a KL term of each sign */
    plm_rloo_stats st;
    plm_rloo_loss(score, logp, ref, lens, 2, k, 0.2f, &st, adv, w);
    plm_sft_batch bb = {0};
    int rows[6] = {0, 1, 2, 3, 4, 5};
    plm_batch b;
    plm_sft_collate(&seqs, rows, N, pad, &bb, &b);
    for (int q = 0; q < b.B * b.T; q++) tw[q] = w[q / b.T];
    b.label_weights = tw;
    int mrc = plm_model_run(m, 0, &b, false, 1.0f);
    TEST_CHECK(mrc == 0 && close_to(m->loss, st.loss, 1e-5) && st.length == 13.0 / 6, "rloo_weights_give_the_loss",
               "model %.9g, rloo %.9g, length %g", m->loss, st.loss, st.length);
    plm_sft_batch_free(&bb);
    plm_sft_data_free(&seqs);
    plm_model_free(m);
    plm_sft_data_free(&tl);
    plm_sft_data_free(&prompts);
    plm_chat_set_free(&set);
}

/* ---------------------------------------------------------------- learning */

/* Mean and variance of the reward-model scores of `samples` completions per prompt from m. */
static void test_learning(const char *dir, const plm_tokenizer *tok, uint64_t seed, bool first) {
    char p[512], out[512];
    snprintf(p, sizeof p, "%s/train.jsonl", dir);
    snprintf(out, sizeof out, "%s/out-%llu", dir, (unsigned long long)seed);
    write_prompts(p, 64, 5);
    plm_chat_set set;
    plm_sft_data prompts = {0};
    int rc = plm_chat_read_prompts(&set, p);
    rc |= rc ? rc : plm_rloo_encode_prompts(&prompts, &set, p, tok, PLM_TEMPLATE_PLAIN, 32);
    plm_config c;
    tiny_config(&c, tok);
    plm_model *m = plm_model_create(&c, seed), *ref = plm_model_create(&c, seed), *rm = hand_reward_model(tok);
    int32_t eos = plm_chat_eos(tok), pad = plm_sft_pad_id(rm, tok);
    /* the reward model reads what it was built to: +1 for a last token that is a multiple of 4 */
    plm_sft_data two;
    plm_sft_data_init(&two);
    int32_t a[3] = {3, 8, eos}, b2[3] = {3, 9, eos};
    uint8_t z[3] = {0};
    plm_sft_data_add(&two, a, z, 3, 8, 0);
    plm_sft_data_add(&two, b2, z, 3, 8, 0);
    float rr[2] = {0, 0};
    int src = plm_reward_score(rm, &two, 2, pad, NULL, rr);
    if (first)
        TEST_CHECK(rc == 0 && src == 0 && fabsf(rr[0] - 1.0f) < 1e-3f && fabsf(rr[1] + 1.0f) < 1e-3f,
                   "rloo_hand_reward_model", "rewards %g %g (%s)", rr[0], rr[1], plm_last_error());
    plm_sft_data_free(&two);
    int max_new = getenv("PLM_RLOO_NEW") ? atoi(getenv("PLM_RLOO_NEW")) : 3, samples = 4, n0, n1;
    double m0, v0, m1, v1;
    sampled_rewards(m, rm, &prompts, samples, max_new, 1.0f, eos, pad, &m0, &v0, &n0);
    plm_rloo_args r = {.k = 4, .beta = 0.05f, .ref = ref, .rm = rm, .rm_pad = pad, .rm_dir = "hand-built"};
    plm_sampling_default(&r.s);
    r.s.max_new_tokens = max_new;
    plm_ft_args fa;
    plm_ft_args_default(&fa);
    fa.output_dir = out;
    fa.train_batch_size = getenv("PLM_RLOO_BATCH") ? atoi(getenv("PLM_RLOO_BATCH")) : 16;
    fa.eval_batch_size = fa.train_batch_size;
    const char *es = getenv("PLM_RLOO_STEPS"), *el = getenv("PLM_RLOO_LR");
    fa.max_steps = test_sanitized() ? 4 : es ? atol(es) : 100;
    fa.opt = plm_adamw_defaults(el ? (float)atof(el) : 3e-3f);
    fa.seed = seed;
    fa.opt.weight_decay = 0.0f;
    fa.warmup_ratio = 0.0f;
    fa.max_seq_length = 32;
    fa.logging_steps = 1;
    fa.quiet = true;
    double t0 = plm_now();
    int trc = plm_rloo_train(m, tok, &prompts, NULL, &r, PLM_TEMPLATE_PLAIN, &fa, NULL);
    double dt = plm_now() - t0;
    char tn[64];
    snprintf(tn, sizeof tn, "rloo_learning_runs_seed%llu", (unsigned long long)seed);
    TEST_CHECK(trc == 0, tn, "rc %d: %s", trc, plm_last_error());
    sampled_rewards(m, rm, &prompts, samples, max_new, 1.0f, eos, pad, &m1, &v1, &n1);
    double se = sqrt(v0 / n0 + v1 / n1), bar = m0 + fmax(0.25, 6.0 * se);
    printf(
        "# rloo seed %llu: %ld steps in %.1f s: mean reward of %d sampled completions %.3f -> %.3f (bar %.3f, standard "
        "error of the difference %.3f)\n",
        (unsigned long long)seed, fa.max_steps, dt, n1, m0, m1, bar, se);
    snprintf(tn, sizeof tn, "rloo_raises_reward_seed%llu", (unsigned long long)seed);
    if (!test_sanitized()) TEST_CHECK(m1 > bar, tn, "mean reward %.3f -> %.3f, bar %.3f", m0, m1, bar);
    /* metrics.jsonl: one line per step with the RLOO statistics */
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len = 0;
    char *log = plm_read_file(mp, &len);
    int lines = 0;
    for (size_t i = 0; log && i < len; i++) lines += log[i] == '\n';
    if (first)
        TEST_CHECK(log && lines == fa.max_steps && strstr(log, "\"reward\": ") && strstr(log, "\"kl\": ") &&
                       strstr(log, "\"advantage\": ") && strstr(log, "\"completion_length\": ") &&
                       strstr(log, "\"score\": "),
                   "rloo_metrics_per_step", "%d lines", lines);
    /* step 1: the policy is the reference, KL 0 exactly (the same model, the same passes) */
    const char *kl1 = log ? strstr(log, "\"kl\": ") : NULL;
    if (first)
        TEST_CHECK(kl1 && !strncmp(kl1, "\"kl\": 0,", 8), "rloo_first_step_kl_zero", "%.20s", kl1 ? kl1 : "(none)");
    /* a run is reproducible from its seed: a second run from the same start logs the same
     * steps (all but elapsed_s) */
    if (first && !test_sanitized()) {
        plm_model *m2 = plm_model_create(&c, seed);
        char out2[520];
        snprintf(out2, sizeof out2, "%s/out2", dir);
        fa.output_dir = out2;
        int rc2 = plm_rloo_train(m2, tok, &prompts, NULL, &r, PLM_TEMPLATE_PLAIN, &fa, NULL);
        snprintf(mp, sizeof mp, "%s/metrics.jsonl", out2);
        char *log2 = plm_read_file(mp, &len);
        bool same = rc2 == 0 && log && log2;
        for (char *a1 = log, *a2 = log2; same && *a1;) { /* compare line by line, cutting elapsed_s out */
            char *e1 = strchr(a1, '\n'), *e2 = strchr(a2, '\n');
            char *t1 = strstr(a1, "\"elapsed_s\""), *t2 = strstr(a2, "\"elapsed_s\"");
            same = e1 && e2 && t1 && t2 && t1 - a1 == t2 - a2 && !memcmp(a1, a2, (size_t)(t1 - a1)) &&
                   !strncmp(strchr(t1, ','), strchr(t2, ','), (size_t)(e1 - strchr(t1, ',')));
            a1 = e1 ? e1 + 1 : a1, a2 = e2 ? e2 + 1 : a2;
        }
        TEST_CHECK(same, "rloo_reproducible_from_seed", "rc %d: the two runs' metrics differ", rc2);
        free(log2);
        plm_model_free(m2);
    }
    free(log);
    plm_model_free(m);
    plm_model_free(ref);
    plm_model_free(rm);
    plm_sft_data_free(&prompts);
    plm_chat_set_free(&set);
}

int main(void) {
    test_loss();
    char dir[] = "/tmp/plm-rloo-XXXXXX";
    if (!mkdtemp(dir)) {
        TEST_CHECK(false, "rloo_tmpdir", "mkdtemp failed");
        TEST_EXIT();
    }
    plm_tokenizer *tok = tiny_tokenizer(dir);
    TEST_CHECK(tok != NULL, "rloo_tokenizer", "%s", plm_last_error());
    if (tok) {
        test_prompts_and_weights(dir, tok);
        /* three seeds (model, prompt order and samples), or PLM_RLOO_SEED's alone */
        const char *es = getenv("PLM_RLOO_SEED");
        uint64_t seeds[3] = {5, 6, 7};
        int ns = test_sanitized() ? 1 : 3;
        if (es) seeds[0] = strtoull(es, NULL, 10), ns = 1;
        for (int i = 0; i < ns; i++) test_learning(dir, tok, seeds[i], i == 0);
        plm_tokenizer_free(tok);
    }
    if (!getenv("PLM_RLOO_KEEP"))
        plm_remove_tree(dir);
    else
        printf("# kept %s\n", dir);
    TEST_EXIT();
}
