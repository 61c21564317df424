/* ppo.c - see ppo.h */
#include "ppo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "safetensors.h"
#include "reward.h"
#include "rloo.h"

const char *const plm_ppo_metrics[3] = {"reward", "score", "kl"};

/* ---------------------------------------------------------------- GAE and whitening */

void plm_ppo_whiten(float *x, const uint8_t *mask, int n, bool shift_mean) {
    double sum = 0.0, sq = 0.0;
    long k = 0;
    for (int i = 0; i < n; i++)
        if (mask[i]) sum += x[i], k++;
    if (k == 0) return;
    double mu = sum / (double)k;
    for (int i = 0; i < n; i++)
        if (mask[i]) sq += ((double)x[i] - mu) * ((double)x[i] - mu);
    double var = sq / (double)k;
    if (k > 1) var *= (double)k / (double)(k - 1); /* TRL's masked_var(unbiased=True) */
    double inv = 1.0 / sqrt(var + 1e-8);
    for (int i = 0; i < n; i++) {
        double w = ((double)x[i] - mu) * inv;
        x[i] = (float)(shift_mean ? w : w + mu);
    }
}

void plm_ppo_advantages(float *logprob, float *ref, float *values, const int *L, const float *scores, int N, int G,
                        const plm_ppo_gae_args *a, float *rewards, float *advantages, float *returns, double *kl_sum,
                        double *nsr_sum) {
    double kls = 0.0, nsr = 0.0;
    /* the masks: s_i = L_i - 1, padding_mask t > s_i, padding_mask_p1 t > s_i + 1 */
    for (int i = 0; i < N; i++) {
        int s = L[i] - 1;
        for (int t = 0; t < G; t++) {
            size_t q = (size_t)i * G + t;
            if (t > s) logprob[q] = ref[q] = PLM_PPO_INVALID_LOGPROB;
            if (t > s + 1) values[q] = 0.0f;
            float kl = logprob[q] - ref[q]; /* 0 on padding */
            rewards[q] = -a->kl_coef * kl;
            kls += kl, nsr += rewards[q];
        }
        int end = s + 1 < G ? s + 1 : s; /* TRL's actual_end */
        rewards[(size_t)i * G + end] += scores[i];
    }
    if (a->whiten_rewards) {
        uint8_t *m = plm_malloc((size_t)N * G);
        for (int i = 0; i < N; i++)
            for (int t = 0; t < G; t++) m[(size_t)i * G + t] = t <= L[i];
        plm_ppo_whiten(rewards, m, N * G, false);
        for (size_t q = 0; q < (size_t)N * G; q++)
            if (!m[q]) rewards[q] = 0.0f;
        free(m);
    }
    /* GAE right to left over the whole width, as TRL's loop (padding included) */
    for (int i = 0; i < N; i++) {
        float last = 0.0f;
        const float *v = values + (size_t)i * G, *r = rewards + (size_t)i * G;
        for (int t = G - 1; t >= 0; t--) {
            float next = t < G - 1 ? v[t + 1] : 0.0f;
            float delta = r[t] + a->gamma * next - v[t];
            last = delta + a->gamma * a->lam * last;
            advantages[(size_t)i * G + t] = last;
            returns[(size_t)i * G + t] = last + v[t];
        }
    }
    uint8_t *m = plm_malloc((size_t)N * G);
    for (int i = 0; i < N; i++)
        for (int t = 0; t < G; t++) m[(size_t)i * G + t] = t < L[i];
    plm_ppo_whiten(advantages, m, N * G, true);
    for (size_t q = 0; q < (size_t)N * G; q++)
        if (!m[q]) advantages[q] = 0.0f;
    free(m);
    if (kl_sum) *kl_sum = kls;
    if (nsr_sum) *nsr_sum = nsr;
}

/* ---------------------------------------------------------------- the loss */

static float clampf(float x, float lo, float hi) { return x < lo ? lo : x > hi ? hi : x; }

void plm_ppo_loss(const float *new_logprob, const float *new_values, const float *old_logprob, const float *old_values,
                  const float *returns, const float *advantages, const int *L, int n, int G, const plm_ppo_clip_args *a,
                  plm_ppo_mb_stats *st, float *dlogp, float *dv) {
    memset(st, 0, sizeof *st);
    long npg = 0, nvf = 0;
    for (int i = 0; i < n; i++) npg += PLM_MIN(L[i], G), nvf += PLM_MIN(L[i] + 1, G);
    double pg = 0.0, vf = 0.0, pgc = 0.0, vfc = 0.0, akl = 0.0, rat = 0.0;
    for (int i = 0; i < n; i++)
        for (int t = 0; t < G; t++) {
            size_t q = (size_t)i * G + t;
            bool in_pg = t < L[i], in_vf = t <= L[i];
            /* the policy: masked log-probs are INVALID_LOGPROB on both sides, ratio 1 */
            float lp = in_pg ? new_logprob[q] : PLM_PPO_INVALID_LOGPROB;
            float diff = lp - old_logprob[q], ratio = expf(diff);
            float A = advantages[q], c = clampf(ratio, 1.0f - a->cliprange, 1.0f + a->cliprange);
            float l1 = -A * ratio, l2 = -A * c;
            akl += 0.5 * (double)diff * diff, rat += ratio;
            if (in_pg) pg += PLM_MAX(l1, l2), pgc += l2 > l1;
            if (dlogp) dlogp[q] = in_pg && l1 >= l2 ? -A * ratio / (float)npg : 0.0f;
            /* the value model */
            float v = in_vf ? new_values[q] : 0.0f, V = old_values[q], R = returns[q];
            float lo = V - a->cliprange_value, hi = V + a->cliprange_value, vc = clampf(v, lo, hi);
            float e1 = (v - R) * (v - R), e2 = (vc - R) * (vc - R);
            if (in_vf) vf += PLM_MAX(e1, e2), vfc += e2 > e1;
            if (dv) {
                float g = 0.0f; /* d max(e1, e2) / dv / 2 */
                bool inside = v >= lo && v <= hi;
                if (e1 > e2 || inside)
                    g = v - R;
                else if (e1 == e2)
                    g = 0.5f * (v - R); /* torch.maximum halves a tie's gradient; clamp's half is 0 */
                dv[q] = in_vf ? a->vf_coef * g / (float)nvf : 0.0f;
            }
        }
    double NG = (double)n * G;
    st->pg_loss = npg ? pg / (double)npg : 0.0;
    st->vf_loss = nvf ? 0.5 * vf / (double)nvf : 0.0;
    st->loss = st->pg_loss + a->vf_coef * st->vf_loss;
    st->pg_clipfrac = npg ? pgc / (double)npg : 0.0;
    st->vf_clipfrac = nvf ? vfc / (double)nvf : 0.0;
    st->approxkl = NG > 0 ? akl / NG : 0.0;
    st->ratio = NG > 0 ? rat / NG : 0.0;
}

/* ---------------------------------------------------------------- the models' passes */

int plm_ppo_check_value_model(const plm_model *vm) {
    if (plm_reward_check_model(vm) != 0) {
        plm_error("the value model: %s", plm_last_error());
        return -1;
    }
    return 0;
}

int plm_ppo_values(plm_model *vm, const plm_batch *b, const int *plen, const int *L, int n, int G, float *values,
                   bool for_backward) {
    int h = plm_model_head(vm, PLM_HEAD_SEQ_CLS);
    if (h < 0 || vm->heads[h].K != 1) {
        plm_error("the value model has no sequence head with one output (score)");
        return -1;
    }
    const float *hid = plm_model_forward_hidden(vm, 0, b, for_backward);
    if (!hid) return -1;
    int C = vm->bb[0].config.hidden_size, T = b->T;
    const float *w = vm->heads[h].w.out_w; /* score.weight [1, C] */
    for (int i = 0; i < n; i++)
        for (int t = 0; t < G; t++) {
            int pos = plen[i] - 1 + t;
            float v = 0.0f;
            if (t <= L[i] && pos < T) {
                const float *x = hid + ((size_t)i * T + pos) * C;
                double s = 0.0;
                for (int c = 0; c < C; c++) s += (double)w[c] * x[c];
                v = (float)s;
            }
            values[(size_t)i * G + t] = v;
        }
    return 0;
}

void plm_ppo_values_backward(plm_model *vm, const plm_batch *b, const int *plen, const int *L, int n, int G,
                             const float *dv, float *dh) {
    int h = plm_model_head(vm, PLM_HEAD_SEQ_CLS);
    int C = vm->bb[0].config.hidden_size, T = b->T;
    const float *w = vm->heads[h].w.out_w, *hid = plm_model_hidden(vm);
    float *gw = vm->heads[h].g.out_w;
    memset(dh, 0, (size_t)b->B * T * C * sizeof *dh);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < G; t++) {
            int pos = plen[i] - 1 + t;
            float g = dv[(size_t)i * G + t];
            if (t > L[i] || pos >= T || g == 0.0f) continue;
            const float *x = hid + ((size_t)i * T + pos) * C;
            float *d = dh + ((size_t)i * T + pos) * C;
            for (int c = 0; c < C; c++) gw[c] += g * x[c], d[c] = g * w[c];
        }
    plm_model_backward_hidden(vm, 0, b, dh);
}

/* The LM head's input scale for temperature tau: logits / (tau + 1e-7) = dec(h / (tau + 1e-7))
 * for GPT-2's bias-free, transform-free head. Returns the head's index. */
static int lm_temperature(plm_model *m, float tau) {
    int h = plm_model_head(m, PLM_HEAD_LM);
    m->heads[h].in_scale = 1.0f / (tau + 1e-7f);
    return h;
}

/* position of response token t of sequence i in the flat [B, T] batch */
static size_t resp_pos(const plm_batch *b, const int *plen, int i, int t) {
    return (size_t)i * b->T + (size_t)(plen[i] - 1 + t);
}

int plm_ppo_logprobs(plm_model *m, plm_batch *b, const int *plen, const int *L, int n, int G, float tau, float *logp) {
    b->training = false;
    b->dropout_seed = 0;
    b->label_weights = NULL;
    int h = lm_temperature(m, tau);
    int rc = plm_model_run(m, 0, b, false, 1.0f);
    m->heads[h].in_scale = 1.0f;
    if (rc != 0) return -1;
    for (size_t q = 0; q < (size_t)n * G; q++) logp[q] = PLM_PPO_INVALID_LOGPROB;
    const plm_head *hd = &m->heads[h];
    for (int q = 0; q < hd->num_rows; q++) {
        int r = hd->rows[q], i = r / b->T, t = r % b->T - (plen[i] - 1);
        if (i < n && t >= 0 && t < L[i] && t < G) logp[(size_t)i * G + t] = (float)-hd->row_loss[q];
    }
    return 0;
}

int plm_ppo_policy_backward(plm_model *m, plm_batch *b, const int *plen, const int *L, int n, int G, float tau,
                            const float *dlogp, float *w) {
    memset(w, 0, (size_t)b->B * b->T * sizeof *w);
    for (int i = 0; i < n; i++)
        for (int t = 0; t < L[i] && t < G; t++) w[resp_pos(b, plen, i, t)] = -dlogp[(size_t)i * G + t];
    b->training = false;
    b->dropout_seed = 0;
    b->label_weights = w;
    int h = lm_temperature(m, tau);
    int rc = plm_model_run(m, 0, b, true, 1.0f);
    m->heads[h].in_scale = 1.0f;
    b->label_weights = NULL;
    return rc;
}

/* ---------------------------------------------------------------- training */

typedef struct {
    double kl, entropy, nsr, rlhf_reward, scores, num_eos, length;            /* the rollout's */
    double approxkl, pg_clipfrac, pg_loss, vf_loss, vf_clipfrac, ratio, loss; /* over the updates */
} ppo_stats;

typedef struct {
    const plm_tokenizer *tok;
    const plm_sft_data *prompts, *valid; /* valid NULL: no evaluation */
    const plm_ppo_args *r;
    plm_model *vm;
    plm_chat_template t;
    int max_seq_length, max_len, B, mnt;
    uint64_t eval_seed;
    int32_t pad, eos;
    plm_adamw vopt; /* the value model's half of the one optimizer */
    float *vbest;   /* the value model's weights at the best evaluation */
    /* one step's buffers, sized for train_batch_size prompts before the loop */
    plm_sft_data seqs; /* sequence q: its prompt's ids, then its response's */
    const int32_t **pids;
    int *plen, *L, *nout, *erows, *perm, *mb_rows, *mb_L, *mb_plen;
    uint64_t *seeds;
    int32_t *gen;
    float *score, *zeros;
    int G;
    /* [N, mnt] rollout arrays, and one minibatch's */
    float *logp, *ref, *values, *rewards, *adv, *ret;
    float *mb_new, *mb_v, *mb_old, *mb_oldv, *mb_ret, *mb_adv, *dlogp, *dv;
    float *w;  /* [N max_len] label weights */
    float *dh; /* [N max_len C_value] */
    int32_t *ids;
    uint8_t *train;
    plm_sft_batch bb;
    plm_gen_workspace gen_ws; /* the rollouts' KV cache, reserved before the loop */
    plm_reward_buf score_buf; /* the rollouts' scoring and log-prob batches, the same */
    ppo_stats last;
} ppo_loop;

/* Samples one response to each of prompts rows[0..n) of set with the policy m (sequence q
 * seeded hash(seed, q + 1)); fills c->seqs, c->plen, c->L, c->G, the scores (with the
 * missing-EOS penalty), the reference's and the policy's per-token log-probs and, with
 * values, the value model's. Returns 0 or -1 (error set). */
static int rollout(ppo_loop *c, plm_model *m, const plm_sft_data *set, const int *rows, int n, uint64_t seed,
                   bool values) {
    const plm_ppo_args *r = c->r;
    int mnt = c->mnt;
    for (int q = 0; q < n; q++) {
        c->pids[q] = set->ids + set->off[rows[q]];
        c->plen[q] = (int)(set->off[rows[q] + 1] - set->off[rows[q]]);
        c->seeds[q] = plm_hash_combine(seed, (uint64_t)q + 1);
    }
    plm_sampling s = r->s;
    s.seeds = c->seeds;
    s.eos_token_id = c->eos;
    if (plm_generate_batch_ws(&c->gen_ws, m, c->pids, c->plen, n, &s, c->gen, c->nout, NULL, NULL, NULL) != 0)
        return -1;
    c->seqs.n = 0;
    c->seqs.max_len = 0;
    c->seqs.targets = 0;
    c->G = 1;
    for (int q = 0; q < n; q++) {
        int np = c->plen[q], T = PLM_MIN(np + c->nout[q], c->max_len);
        memcpy(c->ids, c->pids[q], (size_t)np * sizeof *c->ids);
        memcpy(c->ids + np, c->gen + (size_t)q * mnt, (size_t)(T - np) * sizeof *c->ids);
        memset(c->train, 0, (size_t)np);
        memset(c->train + np, 1, (size_t)(T - np));
        plm_sft_data_add(&c->seqs, c->ids, c->train, T, c->max_len, set->line[rows[q]]);
        c->L[q] = T - np;
        c->G = PLM_MAX(c->G, c->L[q]);
        c->mb_rows[q] = q;
    }
    if (plm_reward_score_buf(r->rm, &c->seqs, n, r->rm_pad, NULL, &c->score_buf, c->score) != 0) return -1;
    plm_missing_eos_penalty(c->score, c->gen, mnt, c->L, n, c->eos, r->missing_eos_penalty);
    plm_batch b;
    plm_sft_collate(&c->seqs, c->mb_rows, n, c->pad, &c->bb, &b);
    b.seq_targets = c->zeros;
    if (plm_ppo_logprobs(r->ref, &b, c->plen, c->L, n, c->G, r->s.temperature, c->ref) != 0 ||
        plm_ppo_logprobs(m, &b, c->plen, c->L, n, c->G, r->s.temperature, c->logp) != 0)
        return -1;
    if (values && plm_ppo_values(c->vm, &b, c->plen, c->L, n, c->G, c->values, false) != 0) return -1;
    return 0;
}

/* sqrt of the sum of squares of both models' gradients, and torch's clip_grad_norm_ over
 * the two as one parameter list */
static double clip_both(plm_model *m, plm_model *vm, float max_norm) {
    double a = plm_grad_norm(m), b = plm_grad_norm(vm), norm = sqrt(a * a + b * b);
    if (max_norm > 0 && isfinite(norm)) {
        double coef = (double)max_norm / (norm + 1e-6);
        if (coef < 1.0) {
            float cf = (float)coef;
            for (size_t i = 0; i < m->num_params; i++) m->grads[i] *= cf;
            for (size_t i = 0; i < vm->num_params; i++) vm->grads[i] *= cf;
        }
    }
    return norm;
}

static void gather(float *dst, const float *src, const int *rows, int n, int G) {
    for (int i = 0; i < n; i++) memcpy(dst + (size_t)i * G, src + (size_t)rows[i] * G, (size_t)G * sizeof *dst);
}

static int ppo_step(void *ctx, plm_model *m, const int *rows, int n, uint64_t seed, plm_adamw *opt,
                    const plm_adamw_hparams *hp, float lr, float max_grad_norm, double *grad_norm) {
    ppo_loop *c = ctx;
    const plm_ppo_args *r = c->r;
    plm_model *vm = c->vm;
    if (rollout(c, m, c->prompts, rows, n, seed, true) != 0) return -1;
    int G = c->G;
    ppo_stats *st = &c->last;
    memset(st, 0, sizeof *st);
    double kl_sum, nsr_sum;
    plm_ppo_advantages(c->logp, c->ref, c->values, c->L, c->score, n, G, &r->gae, c->rewards, c->adv, c->ret, &kl_sum,
                       &nsr_sum);
    for (int q = 0; q < n; q++) {
        st->scores += c->score[q];
        st->length += c->L[q];
        st->num_eos += c->L[q] > 0 && c->gen[(size_t)q * c->mnt + c->L[q] - 1] == c->eos;
        for (int t = 0; t < c->L[q]; t++) st->entropy -= c->logp[(size_t)q * G + t];
    }
    st->kl = kl_sum / n, st->nsr = nsr_sum / n, st->scores /= n, st->entropy /= n, st->length /= n;
    st->rlhf_reward = st->nsr + st->scores;
    int updates = 0;
    for (int e = 0; e < r->num_ppo_epochs; e++) {
        plm_ft_epoch_order(c->perm, n, seed, e); /* a fresh seeded shuffle each PPO epoch */
        for (int k = 0; k < r->num_mini_batches; k++) {
            int lo = (int)((long)k * n / r->num_mini_batches), hi = (int)((long)(k + 1) * n / r->num_mini_batches);
            int nm = hi - lo;
            if (nm <= 0) continue;
            const int *mr = c->perm + lo;
            for (int i = 0; i < nm; i++) c->mb_L[i] = c->L[mr[i]], c->mb_plen[i] = c->plen[mr[i]];
            gather(c->mb_old, c->logp, mr, nm, G);
            gather(c->mb_oldv, c->values, mr, nm, G);
            gather(c->mb_ret, c->ret, mr, nm, G);
            gather(c->mb_adv, c->adv, mr, nm, G);
            plm_batch b;
            plm_sft_collate(&c->seqs, mr, nm, c->pad, &c->bb, &b);
            b.seq_targets = c->zeros;
            plm_model_zero_grad(m);
            plm_model_zero_grad(vm);
            /* the policy's log-probs, then the value model's forward and backward, then the
             * policy's backward with the PPO gradient as per-token weights */
            if (plm_ppo_logprobs(m, &b, c->mb_plen, c->mb_L, nm, G, r->s.temperature, c->mb_new) != 0 ||
                plm_ppo_values(vm, &b, c->mb_plen, c->mb_L, nm, G, c->mb_v, true) != 0)
                return -1;
            plm_ppo_mb_stats ms;
            plm_ppo_loss(c->mb_new, c->mb_v, c->mb_old, c->mb_oldv, c->mb_ret, c->mb_adv, c->mb_L, nm, G, &r->clip, &ms,
                         c->dlogp, c->dv);
            plm_ppo_values_backward(vm, &b, c->mb_plen, c->mb_L, nm, G, c->dv, c->dh);
            if (plm_ppo_policy_backward(m, &b, c->mb_plen, c->mb_L, nm, G, r->s.temperature, c->dlogp, c->w) != 0)
                return -1;
            *grad_norm = clip_both(m, vm, max_grad_norm);
            if (!isfinite(*grad_norm)) return 0; /* the loop reports the divergence */
            plm_adamw_step(opt, m, hp, lr);
            plm_adamw_step(&c->vopt, vm, hp, lr);
            st->approxkl += ms.approxkl, st->pg_clipfrac += ms.pg_clipfrac, st->pg_loss += ms.pg_loss;
            st->vf_loss += ms.vf_loss, st->vf_clipfrac += ms.vf_clipfrac, st->ratio += ms.ratio, st->loss += ms.loss;
            updates++;
        }
    }
    if (updates > 0) {
        double u = updates;
        st->approxkl /= u, st->pg_clipfrac /= u, st->pg_loss /= u, st->vf_loss /= u, st->vf_clipfrac /= u;
        st->ratio /= u, st->loss /= u;
    }
    return 0;
}

/* The held-out prompts: one response each, sampled with the run's seed (the same draws at
 * every evaluation), in batches of the training batch's size. */
static int ppo_eval(void *ctx, plm_model *m, int B, plm_ft_scores *out) {
    ppo_loop *c = ctx;
    (void)B;
    double sum[3] = {0, 0, 0};
    for (int i0 = 0; i0 < c->valid->n; i0 += c->B) {
        int n = PLM_MIN(c->B, c->valid->n - i0);
        for (int i = 0; i < n; i++) c->erows[i] = i0 + i;
        if (rollout(c, m, c->valid, c->erows, n, plm_hash_combine(c->eval_seed, (uint64_t)i0), false) != 0) return -1;
        for (int q = 0; q < n; q++) {
            double kl = 0.0;
            for (int t = 0; t < c->L[q]; t++) kl += c->logp[(size_t)q * c->G + t] - c->ref[(size_t)q * c->G + t];
            sum[0] += c->score[q] - c->r->gae.kl_coef * kl, sum[1] += c->score[q], sum[2] += kl;
        }
    }
    double N = c->valid->n;
    *out = (plm_ft_scores){-sum[0] / N, {sum[0] / N, sum[1] / N, sum[2] / N}, c->valid->n};
    return 0;
}

static double ppo_batch_loss(void *ctx) { return ((ppo_loop *)ctx)->last.loss; }

static void ppo_step_fields(void *ctx, char *buf, size_t size) {
    const ppo_stats *s = &((ppo_loop *)ctx)->last;
    snprintf(buf, size,
             ", \"objective/kl\": %.9g, \"objective/entropy\": %.9g, \"objective/non_score_reward\": %.9g, "
             "\"objective/rlhf_reward\": %.9g, \"objective/scores\": %.9g, \"policy/approxkl_avg\": %.9g, "
             "\"policy/clipfrac_avg\": %.9g, \"loss/policy_avg\": %.9g, \"loss/value_avg\": %.9g, "
             "\"val/clipfrac_avg\": %.9g, \"val/ratio\": %.9g, \"val/num_eos_tokens\": %.0f, "
             "\"completion_length\": %.6g",
             s->kl, s->entropy, s->nsr, s->rlhf_reward, s->scores, s->approxkl, s->pg_clipfrac, s->pg_loss, s->vf_loss,
             s->vf_clipfrac, s->ratio, s->num_eos, s->length);
}

static int ppo_save(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    ppo_loop *c = ctx;
    const plm_ppo_args *r = c->r;
    plm_ft_config_kv extra[] = {{"chat_template", plm_chat_template_name(c->t), 0},
                                {"max_seq_length", NULL, c->max_seq_length},
                                {"kl_coef", NULL, r->gae.kl_coef},
                                {"gamma", NULL, r->gae.gamma},
                                {"lam", NULL, r->gae.lam},
                                {"cliprange", NULL, r->clip.cliprange},
                                {"cliprange_value", NULL, r->clip.cliprange_value},
                                {"vf_coef", NULL, r->clip.vf_coef},
                                {"num_ppo_epochs", NULL, r->num_ppo_epochs},
                                {"num_mini_batches", NULL, r->num_mini_batches},
                                {"temperature", NULL, r->s.temperature},
                                {"missing_eos_penalty", NULL, r->missing_eos_penalty},
                                {"max_new_tokens", NULL, r->s.max_new_tokens},
                                {"reward_model", r->rm_dir ? r->rm_dir : "", 0}};
    plm_ft_config_task ct = {.name = "ppo",
                             .type = "ppo",
                             .n_metrics = 3,
                             .metrics = plm_ppo_metrics,
                             .n_extra = (int)PLM_ARRAY_LEN(extra),
                             .extra = extra};
    if (plm_ft_save_dir(m, c->tok, &ct, dir, meta_kv, n_meta) != 0) return -1;
    /* the value model beside it, as a GPT2ForSequenceClassification directory */
    char vdir[4200];
    snprintf(vdir, sizeof vdir, "%s/value_model", dir);
    if (plm_mkdirs(vdir) != 0) return -1;
    plm_ft_config_task vt = {.name = "ppo_value", .type = "ppo_value"};
    return plm_ft_save_dir(c->vm, r->vtok, &vt, vdir, meta_kv, n_meta);
}

/* dir/value_state.safetensors: the value model's weights (exactly: the HF directory holds them
 * too), its AdamW moments and its best weights */
static int ppo_save_state(void *ctx, const char *dir) {
    ppo_loop *c = ctx;
    char path[4200], step[32];
    snprintf(path, sizeof path, "%s/value_state.safetensors", dir);
    snprintf(step, sizeof step, "%ld", c->vopt.step);
    plm_st_writer w;
    plm_st_writer_init(&w);
    int64_t shape[1] = {(int64_t)c->vm->num_params};
    plm_st_add(&w, "params", PLM_DT_F32, 1, shape, c->vm->params);
    plm_st_add(&w, "exp_avg", PLM_DT_F32, 1, shape, c->vopt.m);
    plm_st_add(&w, "exp_avg_sq", PLM_DT_F32, 1, shape, c->vopt.v);
    plm_st_add(&w, "best_params", PLM_DT_F32, 1, shape, c->vbest);
    plm_st_add_meta(&w, "step", step);
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    return rc;
}

static int ppo_load_state(void *ctx, const char *dir) {
    ppo_loop *c = ctx;
    char path[4200];
    snprintf(path, sizeof path, "%s/value_state.safetensors", dir);
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    size_t nb = c->vm->num_params * sizeof(float);
    const char *names[4] = {"params", "exp_avg", "exp_avg_sq", "best_params"};
    float *dst[4] = {c->vm->params, c->vopt.m, c->vopt.v, c->vbest};
    const plm_st_tensor *t[4];
    const char *step = plm_st_meta(&st, "step");
    int rc = -1;
    for (int i = 0; i < 4; i++)
        if (!(t[i] = plm_st_find(&st, names[i])) || t[i]->nbytes != nb) {
            plm_error("%s: no \"%s\" of the value model's %zu parameters (another value model?)", path, names[i],
                      c->vm->num_params);
            goto done;
        }
    if (!step || !*step) {
        plm_error("%s: missing \"step\" in metadata", path);
        goto done;
    }
    for (int i = 0; i < 4; i++) memcpy(dst[i], t[i]->data, nb);
    c->vopt.step = strtol(step, NULL, 10);
    plm_model_params_written(c->vm);
    rc = 0;
done:
    plm_st_free(&st);
    return rc;
}

static void ppo_keep_best(void *ctx, bool restore) {
    ppo_loop *c = ctx;
    size_t nb = c->vm->num_params * sizeof(float);
    if (restore) {
        memcpy(c->vm->params, c->vbest, nb);
        plm_model_params_written(c->vm);
    } else {
        memcpy(c->vbest, c->vm->params, nb);
    }
}

static void loop_free(ppo_loop *c) {
    plm_gen_workspace_free(&c->gen_ws);
    plm_reward_buf_free(&c->score_buf);
    plm_sft_data_free(&c->seqs);
    plm_sft_batch_free(&c->bb);
    plm_adamw_free(&c->vopt);
    void *p[] = {c->vbest,  c->pids,    c->plen,  c->L,   c->nout,   c->erows, c->perm,   c->mb_rows,
                 c->mb_L,   c->mb_plen, c->seeds, c->gen, c->score,  c->zeros, c->logp,   c->ref,
                 c->values, c->rewards, c->adv,   c->ret, c->mb_new, c->mb_v,  c->mb_old, c->mb_oldv,
                 c->mb_ret, c->mb_adv,  c->dlogp, c->dv,  c->w,      c->dh,    c->ids,    c->train};
    for (size_t i = 0; i < PLM_ARRAY_LEN(p); i++) free(p[i]);
}

int plm_ppo_train(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *prompts, const plm_sft_data *valid,
                  const plm_ppo_args *r, plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best) {
    if (plm_model_head(m, PLM_HEAD_LM) != 0 || m->num_backbones != 1 || !m->config.is_decoder ||
        m->config.arch != PLM_ARCH_GPT2) {
        plm_error("ppo needs a causal GPT-2 language model (is_decoder true, an LM head); this is a %s",
                  plm_model_architecture(m));
        return PLM_EXIT_INPUT;
    }
    const plm_ppo_gae_args *g = &r->gae;
    const plm_ppo_clip_args *cl = &r->clip;
    if (!(g->kl_coef >= 0 && isfinite(g->kl_coef)) || !(g->gamma >= 0 && g->gamma <= 1) ||
        !(g->lam >= 0 && g->lam <= 1) || !(cl->cliprange > 0 && isfinite(cl->cliprange)) ||
        !(cl->cliprange_value > 0 && isfinite(cl->cliprange_value)) || !(cl->vf_coef >= 0 && isfinite(cl->vf_coef)) ||
        r->num_ppo_epochs < 1 || r->num_mini_batches < 1 || !(r->missing_eos_penalty >= 0) ||
        !isfinite(r->missing_eos_penalty) || r->s.max_new_tokens < 1 ||
        !(r->s.temperature > 0 && isfinite(r->s.temperature))) {
        plm_error("ppo needs finite --kl-coef >= 0, --gamma and --lam in [0, 1], --cliprange, --cliprange-value > 0, "
                  "--vf-coef >= 0, --num-ppo-epochs and --num-mini-batches >= 1, --missing-eos-penalty >= 0, "
                  "--max-new-tokens >= 1 and --temperature > 0");
        return PLM_EXIT_USAGE;
    }
    if (plm_reward_check_model(r->rm) != 0 || plm_ppo_check_value_model(r->vm) != 0) return PLM_EXIT_INPUT;
    if (r->vm->config.vocab_size != m->config.vocab_size) {
        plm_error("the value model's vocabulary (%d ids) is not the policy's (%d)", r->vm->config.vocab_size,
                  m->config.vocab_size);
        return PLM_EXIT_INPUT;
    }
    int32_t eos = plm_chat_eos(tok);
    if (eos < 0) {
        plm_error("ppo: the tokenizer has no EOS token to end a response");
        return PLM_EXIT_INPUT;
    }
    int B = PLM_MAX(a->train_batch_size, 1), mnt = r->s.max_new_tokens;
    bool has_valid = valid && valid->n > 0;
    int longest = PLM_MAX(prompts->max_len, has_valid ? valid->max_len : 0);
    int max_len = PLM_MIN(longest + mnt, a->max_seq_length);
    max_len = PLM_MIN(max_len, m->config.max_position_embeddings);
    if (r->vm->config.max_position_embeddings < max_len) {
        plm_error("the value model reads %d positions; prompt + response may take %d",
                  r->vm->config.max_position_embeddings, max_len);
        return PLM_EXIT_INPUT;
    }
    ppo_loop c = {.tok = tok,
                  .prompts = prompts,
                  .valid = has_valid ? valid : NULL,
                  .r = r,
                  .vm = r->vm,
                  .t = t,
                  .max_seq_length = a->max_seq_length,
                  .max_len = max_len,
                  .B = B,
                  .mnt = mnt,
                  .eval_seed = plm_hash_combine(a->seed, 0x65766c), /* "evl" */
                  .pad = plm_sft_pad_id(m, tok),
                  .eos = eos};
    size_t NG = (size_t)B * mnt, NT = (size_t)B * max_len;
    plm_sft_data_init(&c.seqs);
    plm_adamw_init(&c.vopt, r->vm->num_params);
    c.vbest = plm_malloc(r->vm->num_params * sizeof(float));
    memcpy(c.vbest, r->vm->params, r->vm->num_params * sizeof(float));
    c.pids = plm_malloc((size_t)B * sizeof *c.pids);
    int **ints[] = {&c.plen, &c.L, &c.nout, &c.erows, &c.perm, &c.mb_rows, &c.mb_L, &c.mb_plen};
    for (size_t i = 0; i < PLM_ARRAY_LEN(ints); i++) *ints[i] = plm_malloc((size_t)B * sizeof(int));
    c.seeds = plm_malloc((size_t)B * sizeof *c.seeds);
    c.gen = plm_malloc(NG * sizeof *c.gen);
    c.score = plm_malloc((size_t)B * sizeof *c.score);
    c.zeros = plm_calloc((size_t)B, sizeof *c.zeros);
    float **fl[] = {&c.logp, &c.ref,    &c.values,  &c.rewards, &c.adv,    &c.ret,   &c.mb_new,
                    &c.mb_v, &c.mb_old, &c.mb_oldv, &c.mb_ret,  &c.mb_adv, &c.dlogp, &c.dv};
    for (size_t i = 0; i < PLM_ARRAY_LEN(fl); i++) *fl[i] = plm_malloc(NG * sizeof(float));
    c.w = plm_malloc(NT * sizeof *c.w);
    c.dh = plm_malloc(NT * r->vm->config.hidden_size * sizeof *c.dh);
    c.ids = plm_malloc((size_t)max_len * sizeof *c.ids);
    c.train = plm_malloc((size_t)max_len);
    plm_sft_batch_reserve(&c.bb, NT);
    plm_gen_workspace_reserve(&c.gen_ws, m, B, longest, mnt);
    plm_reward_buf_reserve(&c.score_buf, B, max_len);
    int rc = PLM_EXIT_USAGE;
    /* the one optimizer: the value model's half gets the policy's learning-rate settings */
    if (plm_adamw_layerwise_decay(&c.vopt, r->vm, a->layerwise_lr_decay) != 0 ||
        plm_model_reserve(r->ref, B, max_len) != 0 || plm_model_reserve(r->rm, B, max_len) != 0 ||
        plm_model_reserve(r->vm, B, max_len) != 0)
        goto out;
    plm_ft_loop_task lt = {.name = "ppo",
                           .n_metrics = 3,
                           .metrics = plm_ppo_metrics,
                           .n_train = prompts->n,
                           .max_len = max_len,
                           .has_dev = has_valid,
                           .ctx = &c,
                           .evaluate = ppo_eval,
                           .save_model = ppo_save,
                           .batch_loss = ppo_batch_loss,
                           .step_fields = ppo_step_fields,
                           .step = ppo_step,
                           .save_state = ppo_save_state,
                           .load_state = ppo_load_state,
                           .keep_best = ppo_keep_best};
    rc = plm_ft_train(m, &lt, a, best);
out:
    loop_free(&c);
    return rc;
}
