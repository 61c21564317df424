/* test_ppo.c - plm ppo's pieces and learning (train/ppo.h):
 *   GAE, the masks and the whitened advantages on hand-computed numbers (a response
 *     shorter than the width: the score one past its last token, where one value is kept;
 *     a response filling the width: the score on its last token); TRL's masked_whiten;
 *   the PPO loss, its statistics and per-token gradients on hand-computed tokens: a ratio
 *     above the clip range with A > 0 (clipped: no gradient) and with A < 0 (unclipped),
 *     values inside the clip range, outside it with the unclipped error larger (gradient
 *     v - R) and with the clipped one larger (no gradient); padded tokens count nowhere;
 *   learning: the hand-built reward model of test_rloo.c (+1 when the last token before EOS
 *     is a multiple of 4, -1 otherwise), a copy of it as the value model's start (TRL's
 *     recipe) and a tiny random GPT-2 policy; plm_ppo_train raises the mean reward of
 *     responses sampled at the training temperature above the starting policy's by
 *     max(0.25, 6 standard errors of the difference), and the value model's loss falls to under
 *     half its start, on three seeds.
 * (Parity of the whole minibatch against torch: the gpt2_ppo cases of test_parity_dump.c.)
 * Learning run: policy GPT-2 1 layer, width 32, 2 heads, a 300-token byte-level BPE; 64
 * prompts "say a b", batch 16 prompts, up to 3 new tokens at temperature 0.7, 4 PPO epochs
 * x 1 minibatch, kl_coef 0.05, AdamW lr 3e-3 linear decay; PLM_PPO_STEPS (default 60),
 * PLM_PPO_LR, PLM_PPO_BATCH, PLM_PPO_SEED set those; PLM_PPO_KEEP keeps the directory. */
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
#include "train/ppo.h"
#include "train/reward.h"
#include "train/rloo.h"

static bool near(double a, double b, double tol) { return fabs(a - b) <= tol * (fabs(b) + 1e-3); }

/* ---------------------------------------------------------------- GAE and whitening */

static void test_gae(void) {
    /* one response of L = 2 in a width of 3: s = 1. logprob (-1, -2, junk), ref (-1.5, -1.5,
     * junk): kl (0.5, -0.5, 0) (t = 2 masked to INVALID on both sides); kl_coef 0.1: rewards
     * (-0.05, 0.05, 0) + score 2 at actual_end = s + 1 = 2. values (0.5, 0.25, 0.75), all kept
     * (t <= s + 1). gamma 1, lam 0.5:
     *   t 2: delta 2 - 0.75 = 1.25, A 1.25;  t 1: delta 0.05 + 0.75 - 0.25 = 0.55, A 0.55 +
     *   0.5 1.25 = 1.175;  t 0: delta -0.05 + 0.25 - 0.5 = -0.3, A -0.3 + 0.5 1.175 = 0.2875.
     * returns A + V = (0.7875, 1.425, 2). Whitening over t < 2: two values, mean 0.73125,
     * unbiased variance 2 0.44375^2: -+ 1 / sqrt(2), and 0 at t = 2. */
    float lp[3] = {-1, -2, 7}, ref[3] = {-1.5f, -1.5f, -9}, v[3] = {0.5f, 0.25f, 0.75f}, score[1] = {2};
    float rw[3], adv[3], ret[3];
    int L[1] = {2};
    plm_ppo_gae_args ga = {.kl_coef = 0.1f, .gamma = 1.0f, .lam = 0.5f};
    double kls, nsr;
    plm_ppo_advantages(lp, ref, v, L, score, 1, 3, &ga, rw, adv, ret, &kls, &nsr);
    double h = 1.0 / sqrt(2.0);
    TEST_CHECK(lp[2] == 1.0f && ref[2] == 1.0f && near(rw[0], -0.05, 1e-6) && near(rw[1], 0.05, 1e-6) &&
                   near(rw[2], 2.0, 1e-6) && near(ret[0], 0.7875, 1e-6) && near(ret[1], 1.425, 1e-6) &&
                   near(ret[2], 2.0, 1e-6) && near(adv[0], -h, 1e-6) && near(adv[1], h, 1e-6) && adv[2] == 0.0f &&
                   near(kls, 0.0, 1e-6) && near(nsr, 0.0, 1e-6),
               "ppo_gae_short_response_hand_computed", "rewards %g %g %g returns %g %g %g adv %g %g %g", rw[0], rw[1],
               rw[2], ret[0], ret[1], ret[2], adv[0], adv[1], adv[2]);
    /* two responses, width 3: (a) L = 3 fills the width: the score goes on its last token
     * (actual_end = s); (b) L = 1: the value at t = 2 > s + 1 is zeroed. kl_coef 0, gamma
     * 0.5, lam 1: A_t = sum_k 0.5^k r_{t+k} - V_t (telescoping).
     *   (a) r (0, 0, 1), V (0.25, 0.5, 1): A (0.25 - 0.25, 0.5 - 0.5, 1 - 1) = (0, 0, 0);
     *   (b) r (0, 3, 0) (score at s + 1 = 1), V (1, 2, junk -> 0): A (1.5 - 1, 3 - 2, 0) =
     *       (0.5, 1, 0); returns (1.5, 3, 0).
     * Whitened over (a)'s 3 tokens and (b)'s first: values (0, 0, 0, 0.5): mean 0.125,
     * unbiased variance (3 0.125^2 + 0.375^2) / 3 = 0.0625, sd 0.25: (-0.5, -0.5, -0.5 | 1.5). */
    float lp2[6] = {-1, -1, -1, -1, -1, -1}, ref2[6] = {-2, -2, -2, -2, -2, -2};
    float v2[6] = {0.25f, 0.5f, 1, 1, 2, 5}, s2[2] = {1, 3}, rw2[6], adv2[6], ret2[6];
    int L2[2] = {3, 1};
    plm_ppo_gae_args g2 = {.kl_coef = 0.0f, .gamma = 0.5f, .lam = 1.0f};
    plm_ppo_advantages(lp2, ref2, v2, L2, s2, 2, 3, &g2, rw2, adv2, ret2, NULL, NULL);
    float want_adv[6] = {-0.5f, -0.5f, -0.5f, 1.5f, 0, 0}, want_ret[6] = {0.25f, 0.5f, 1, 1.5f, 3, 0};
    bool ok = rw2[2] == 1.0f && rw2[4] == 3.0f && v2[5] == 0.0f && lp2[4] == 1.0f && lp2[3] == -1.0f;
    for (int i = 0; i < 6; i++) ok &= fabsf(adv2[i] - want_adv[i]) < 1e-5f && fabsf(ret2[i] - want_ret[i]) < 1e-6f;
    TEST_CHECK(ok, "ppo_gae_full_width_and_masks_hand_computed", "adv %g %g %g | %g %g %g returns %g %g %g | %g %g %g",
               adv2[0], adv2[1], adv2[2], adv2[3], adv2[4], adv2[5], ret2[0], ret2[1], ret2[2], ret2[3], ret2[4],
               ret2[5]);
    /* masked_whiten without shifting the mean keeps it: (1, 3 | masked 100): mean 2, sd sqrt(2) */
    float x[3] = {1, 3, 100};
    uint8_t mk[3] = {1, 1, 0};
    plm_ppo_whiten(x, mk, 3, false);
    TEST_CHECK(near(x[0], 2 - 1 / sqrt(2.0), 1e-6) && near(x[1], 2 + 1 / sqrt(2.0), 1e-6), "ppo_whiten_keeps_the_mean",
               "%g %g", x[0], x[1]);
}

/* ---------------------------------------------------------------- the loss */

static void test_loss(void) {
    plm_ppo_clip_args ca = {.cliprange = 0.2f, .cliprange_value = 0.2f, .vf_coef = 0.1f};
    /* one response of L = 1, width 2. Policy: new -1, old -1.5: ratio e^0.5 = 1.6487 > 1.2;
     * A = 1: max(-1.6487, -1.2) = -1.2, the clipped branch, no gradient; clipfrac 1. The
     * padded t = 1: new and old INVALID, ratio 1 in approxkl and ratio, nowhere else.
     * Values: t 0: v 0.5, V 0, R 0.2: vc 0.2, (0.3^2 = 0.09) > 0: gradient v - R = 0.3;
     * t 1 (s + 1, kept): v 1, V 0.9, R 0.5: inside the range, 0.25 both: gradient 0.5.
     * vf_loss 0.5 (0.09 + 0.25) / 2 = 0.085; loss -1.2 + 0.1 0.085 = -1.1915;
     * dv = 0.1 g / 2 = (0.015, 0.025). */
    float nl[2] = {-1, 1}, nv[2] = {0.5f, 1}, ol[2] = {-1.5f, 1}, ov[2] = {0, 0.9f}, R[2] = {0.2f, 0.5f}, A[2] = {1, 0};
    float dl[2], dv[2];
    int L[1] = {1};
    plm_ppo_mb_stats st;
    plm_ppo_loss(nl, nv, ol, ov, R, A, L, 1, 2, &ca, &st, dl, dv);
    double e = exp(0.5);
    TEST_CHECK(near(st.pg_loss, -1.2, 1e-6) && near(st.vf_loss, 0.085, 1e-6) && near(st.loss, -1.1915, 1e-6) &&
                   st.pg_clipfrac == 1.0 && st.vf_clipfrac == 0.0 && dl[0] == 0.0f && dl[1] == 0.0f &&
                   near(dv[0], 0.015, 1e-5) && near(dv[1], 0.025, 1e-5) && near(st.approxkl, 0.0625, 1e-6) &&
                   near(st.ratio, (e + 1) / 2, 1e-6),
               "ppo_loss_clipped_hand_computed",
               "pg %g vf %g loss %g clip %g/%g dl %g %g dv %g %g approxkl %g ratio %g", st.pg_loss, st.vf_loss, st.loss,
               st.pg_clipfrac, st.vf_clipfrac, dl[0], dl[1], dv[0], dv[1], st.approxkl, st.ratio);
    /* A = -1 at the same ratio: max(1.6487, 1.2): the unclipped branch, d loss / d logp =
     * -A ratio = 1.6487. Values: v 0.5, V 0, R 0.6: vc 0.2, (0.1^2) < (0.4^2): the clipped
     * branch, outside the range: no gradient; t 1: v = R = 1, 0 both. vf_loss 0.5 0.16 / 2 =
     * 0.04, value clipfrac 1 / 2. */
    float A2[2] = {-1, 0}, R2[2] = {0.6f, 1};
    plm_ppo_loss(nl, nv, ol, ov, R2, A2, L, 1, 2, &ca, &st, dl, dv);
    TEST_CHECK(near(st.pg_loss, e, 1e-6) && st.pg_clipfrac == 0.0 && near(dl[0], e, 1e-6) && dv[0] == 0.0f &&
                   st.vf_clipfrac == 0.5 && near(st.vf_loss, 0.04, 1e-5) && near(dv[1], 0.0, 1e-6),
               "ppo_loss_unclipped_and_value_clipped_hand_computed", "pg %g clip %g/%g dl %g dv %g %g vf %g",
               st.pg_loss, st.pg_clipfrac, st.vf_clipfrac, dl[0], dv[0], dv[1], st.vf_loss);
}

/* ---------------------------------------------------------------- learning */

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
    plm_model *vm = hand_reward_model(tok);
    int32_t eos = plm_chat_eos(tok), pad = plm_sft_pad_id(rm, tok);
    TEST_CHECK(rc == 0 && plm_ppo_check_value_model(vm) == 0, "ppo_learning_setup", "%s", plm_last_error());
    int max_new = 3, samples = 4, n0, n1;
    float tau = 0.7f;
    double m0, v0, m1, v1;
    sampled_rewards(m, rm, &prompts, samples, max_new, tau, eos, pad, &m0, &v0, &n0);
    plm_ppo_args r = {.gae = {.kl_coef = 0.05f, .gamma = 1.0f, .lam = 0.95f},
                      .clip = {.cliprange = 0.2f, .cliprange_value = 0.2f, .vf_coef = 0.1f},
                      .num_ppo_epochs = 4,
                      .num_mini_batches = 1,
                      .ref = ref,
                      .rm = rm,
                      .rm_pad = pad,
                      .vm = vm,
                      .vtok = tok,
                      .rm_dir = "hand-built"};
    plm_sampling_default(&r.s);
    r.s.max_new_tokens = max_new;
    r.s.temperature = tau;
    plm_ft_args fa;
    plm_ft_args_default(&fa);
    fa.output_dir = out;
    fa.train_batch_size = getenv("PLM_PPO_BATCH") ? atoi(getenv("PLM_PPO_BATCH")) : 16;
    fa.eval_batch_size = fa.train_batch_size;
    const char *es = getenv("PLM_PPO_STEPS"), *el = getenv("PLM_PPO_LR");
    fa.max_steps = test_sanitized() ? 3 : es ? atol(es) : 60;
    fa.opt = plm_adamw_defaults(el ? (float)atof(el) : 3e-3f);
    fa.seed = seed;
    fa.opt.weight_decay = 0.0f;
    fa.warmup_ratio = 0.0f;
    fa.max_seq_length = 32;
    fa.logging_steps = 1;
    fa.quiet = true;
    double t0 = plm_now();
    int trc = plm_ppo_train(m, tok, &prompts, NULL, &r, PLM_TEMPLATE_PLAIN, &fa, NULL);
    double dt = plm_now() - t0;
    char tn[64];
    snprintf(tn, sizeof tn, "ppo_learning_runs_seed%llu", (unsigned long long)seed);
    TEST_CHECK(trc == 0, tn, "rc %d: %s", trc, plm_last_error());
    sampled_rewards(m, rm, &prompts, samples, max_new, tau, eos, pad, &m1, &v1, &n1);
    double se = sqrt(v0 / n0 + v1 / n1), bar = m0 + fmax(0.25, 6.0 * se);
    printf("# ppo seed %llu: %ld steps in %.1f s: mean reward of %d sampled responses %.3f -> %.3f (bar %.3f, "
           "standard error of the difference %.3f)\n",
           (unsigned long long)seed, fa.max_steps, dt, n1, m0, m1, bar, se);
    snprintf(tn, sizeof tn, "ppo_raises_reward_seed%llu", (unsigned long long)seed);
    if (!test_sanitized()) TEST_CHECK(m1 > bar, tn, "mean reward %.3f -> %.3f, bar %.3f", m0, m1, bar);
    /* metrics.jsonl: a line per step with TRL's statistics; at step 1 the policy is the
     * reference (objective/kl 0 exactly) */
    char mp[600];
    snprintf(mp, sizeof mp, "%s/metrics.jsonl", out);
    size_t len = 0;
    char *log = plm_read_file(mp, &len);
    int lines = 0;
    for (size_t i = 0; log && i < len; i++) lines += log[i] == '\n';
    /* the value model learns too: its loss over the last 10 steps under half the first 10's */
    double vfirst = 0, vlast = 0;
    int li = 0;
    for (const char *q = log; q && (q = strstr(q, "\"loss/value_avg\": ")); q++, li++) {
        double x = atof(q + strlen("\"loss/value_avg\": "));
        if (li < 10) vfirst += x / 10;
        if (li >= lines - 10) vlast += x / 10;
    }
    snprintf(tn, sizeof tn, "ppo_value_loss_falls_seed%llu", (unsigned long long)seed);
    if (!test_sanitized())
        TEST_CHECK(lines >= 20 && vlast < 0.5 * vfirst, tn, "loss/value_avg %.4f (first 10 steps) -> %.4f (last 10)",
                   vfirst, vlast);
    printf("# ppo seed %llu: loss/value_avg %.4f (first 10 steps) -> %.4f (last 10)\n", (unsigned long long)seed,
           vfirst, vlast);
    if (first) {
        TEST_CHECK(log && lines == fa.max_steps && strstr(log, "\"objective/rlhf_reward\": ") &&
                       strstr(log, "\"policy/clipfrac_avg\": ") && strstr(log, "\"loss/value_avg\": ") &&
                       strstr(log, "\"val/ratio\": "),
                   "ppo_metrics_per_step", "%d lines", lines);
        const char *kl1 = log ? strstr(log, "\"objective/kl\": ") : NULL;
        TEST_CHECK(kl1 && !strncmp(kl1, "\"objective/kl\": 0,", 18), "ppo_first_step_kl_zero", "%.30s",
                   kl1 ? kl1 : "(none)");
    }
    free(log);
    plm_model_free(m);
    plm_model_free(ref);
    plm_model_free(rm);
    plm_model_free(vm);
    plm_sft_data_free(&prompts);
    plm_chat_set_free(&set);
}

int main(void) {
    test_gae();
    test_loss();
    char dir[] = "/tmp/plm-ppo-XXXXXX";
    if (!mkdtemp(dir)) {
        TEST_CHECK(false, "ppo_tmpdir", "mkdtemp failed");
        TEST_EXIT();
    }
    plm_tokenizer *tok = tiny_tokenizer(dir);
    TEST_CHECK(tok != NULL, "ppo_tokenizer", "%s", plm_last_error());
    if (tok) {
        const char *es = getenv("PLM_PPO_SEED");
        uint64_t seeds[3] = {5, 6, 7};
        int ns = test_sanitized() ? 1 : 3;
        if (es) seeds[0] = strtoull(es, NULL, 10), ns = 1;
        for (int i = 0; i < ns; i++) test_learning(dir, tok, seeds[i], i == 0);
        plm_tokenizer_free(tok);
    }
    if (!getenv("PLM_PPO_KEEP"))
        plm_remove_tree(dir);
    else
        printf("# kept %s\n", dir);
    TEST_EXIT();
}
