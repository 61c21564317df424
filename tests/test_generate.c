/* test_generate.c - the batched KV cache and batched generation (infer/generate.h):
 *   - logits of the cache, fed one token at a time, a whole prompt at once (the tiled
 *     causal attention), in chunks after earlier tokens, and for several sequences of
 *     different lengths stacked in one call, all equal the full forward pass of
 *     model.c at every position (relative error <= 1e-5), for a pre-LN GPT-2 and a
 *     post-LN causal BERT (token types, head transform) of odd widths;
 *   - plm_generate_batch: greedy and sampled (top-k, top-p, temperature) tokens of a
 *     batch of prompts of different lengths equal each prompt generated alone, and a run
 *     is reproducible from its seed; --max-new-tokens past the context stops at it;
 *   - plm_sample's top-k (a heap) draws exactly the k most likely tokens (ties by id). */
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/generate.h"
#include "model/model.h"
#include "test.h"

enum { V = 97, MAXPOS = 48 };
static int num_heads = 3;

static plm_model *make_model(plm_arch arch) {
    plm_config c;
    plm_config_default(&c, arch);
    c.vocab_size = V;
    c.hidden_size = 12 * num_heads; /* heads of 12 */
    c.num_hidden_layers = 2;
    c.num_attention_heads = num_heads;
    c.intermediate_size = 50;
    c.max_position_embeddings = MAXPOS;
    c.is_decoder = true;
    plm_model *m = plm_model_create(&c, 5);
    if (!m || plm_model_reserve(m, 1, MAXPOS) != 0) plm_die("model: %s", plm_last_error());
    /* weights large enough that the logits are well separated (greedy has no near-ties
     * to flip), norm weights and biases away from 1 and 0 so a missing one shows */
    plm_rng r;
    plm_rng_seed(&r, 3, 9);
    for (int i = 0; i < m->num_tensors; i++)
        for (size_t j = 0; j < m->tensors[i].numel; j++) {
            float *p = &m->params[m->tensors[i].offset + j];
            *p = m->tensors[i].ndim == 1 ? 0.5f * plm_rng_uniform(&r) + 0.75f * (*p != 0.0f)
                                         : (2.0f * plm_rng_uniform(&r) - 1.0f) * 0.35f;
        }
    plm_model_params_written(m);
    return m;
}

/* Logits [T, V] of the full (uncached) forward pass at every position of ids. */
static float *full_logits(plm_model *m, const int32_t *ids, int T) {
    int32_t lab[MAXPOS] = {0}; /* the LM head runs on labelled rows: all of them */
    plm_batch b = {.B = 1, .T = T, .input_ids = ids, .labels = lab, .causal = true};
    if (!isfinite(plm_model_forward(m, &b, false, 1.0f).loss_sum)) plm_die("forward: %s", plm_last_error());
    int32_t pos[MAXPOS];
    for (int t = 0; t < T; t++) pos[t] = t;
    float *out = plm_malloc((size_t)T * V * sizeof(float));
    plm_model_logits_at(m, pos, T, out);
    return out;
}

static double relerr(const float *got, const float *ref, size_t n) {
    double e = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)got[i] - ref[i];
        e += d * d;
        s += (double)ref[i] * ref[i];
    }
    return isfinite(e) ? sqrt(e / s) : INFINITY;
}

static void poison(plm_kv_cache *kv) {
    for (size_t i = 0; i < (size_t)kv->B * V; i++) kv->logits[i] = NAN;
}

static void check_cache(const char *name, plm_arch arch) {
    plm_model *m = make_model(arch);
    enum { NS = 3 };
    int lens[NS] = {17, 5, 11};
    int32_t ids[NS][MAXPOS];
    float *ref[NS];
    plm_rng r;
    plm_rng_seed(&r, 7, 1);
    for (int s = 0; s < NS; s++) {
        for (int t = 0; t < lens[s]; t++) ids[s][t] = (int32_t)(plm_rng_next(&r) % V);
        ref[s] = full_logits(m, ids[s], lens[s]);
    }
    char nm[128];
    plm_kv_cache kv;
    /* one token per call: attend_rows at every position */
    double e1 = 0;
    plm_kv_cache_init(&kv, m, MAXPOS);
    for (int t = 0; t < lens[0]; t++) {
        poison(&kv);
        e1 = fmax(e1, relerr(plm_kv_cache_step(&kv, ids[0][t]), ref[0] + (size_t)t * V, V));
    }
    plm_kv_cache_free(&kv);
    snprintf(nm, sizeof nm, "generate.%s.cache_one_token_per_call", name);
    TEST_CHECK(e1 <= 1e-5, nm, "relerr %.3g", e1);
    /* the whole prompt in one call (tiled causal attention), then 6 + 6 more tokens as
     * chunks after it (attend_rows over several rows of one sequence) */
    plm_kv_cache_init_batch(&kv, m, 1, MAXPOS, MAXPOS);
    int seq = 0, n = 5;
    poison(&kv);
    double e2 = relerr(plm_kv_cache_append(&kv, 1, &seq, &n, ids[0]), ref[0] + (size_t)(n - 1) * V, V);
    for (int c = 0; c < 2; c++) {
        int at = kv.len[0];
        n = 6;
        poison(&kv);
        e2 = fmax(e2, relerr(plm_kv_cache_append(&kv, 1, &seq, &n, ids[0] + at), ref[0] + (size_t)(at + n - 1) * V, V));
    }
    plm_kv_cache_free(&kv);
    snprintf(nm, sizeof nm, "generate.%s.cache_prompt_and_chunks", name);
    TEST_CHECK(e2 <= 1e-5, nm, "relerr %.3g", e2);
    /* three sequences stacked: their prompts in one call (in the order 2, 0, 1 over
     * cache slots 0..2), then one token each per call, with sequence 1 (5 tokens) leaving
     * the batch after its prompt */
    plm_kv_cache_init_batch(&kv, m, NS, MAXPOS, 40);
    int order[NS] = {2, 0, 1}, slot_of[NS], pl[NS] = {4, 3, 5}; /* prompt lengths by sequence */
    int32_t stack[MAXPOS];
    int rows = 0, items[NS], ns[NS];
    for (int k = 0; k < NS; k++) {
        int s = order[k];
        slot_of[s] = k;
        items[k] = k;
        ns[k] = pl[s];
        memcpy(stack + rows, ids[s], (size_t)pl[s] * sizeof(int32_t));
        rows += pl[s];
    }
    poison(&kv);
    const float *lg = plm_kv_cache_append(&kv, NS, items, ns, stack);
    double e3 = 0;
    for (int k = 0; k < NS; k++)
        e3 = fmax(e3, relerr(lg + (size_t)k * V, ref[order[k]] + (size_t)(pl[order[k]] - 1) * V, V));
    int pos[NS] = {pl[0], pl[1], pl[2]};
    for (int step = 0; step < 20; step++) {
        int cnt = 0, one[NS];
        int32_t tk[NS];
        int who[NS];
        for (int s = 0; s < NS; s++)
            if (pos[s] < lens[s] && s != 1) {
                items[cnt] = slot_of[s];
                one[cnt] = 1;
                tk[cnt] = ids[s][pos[s]];
                who[cnt++] = s;
            }
        if (!cnt) break;
        poison(&kv);
        lg = plm_kv_cache_append(&kv, cnt, items, one, tk);
        for (int k = 0; k < cnt; k++) {
            int s = who[k];
            e3 = fmax(e3, relerr(lg + (size_t)k * V, ref[s] + (size_t)pos[s] * V, V));
            pos[s]++;
        }
    }
    snprintf(nm, sizeof nm, "generate.%s.cache_stacked_sequences", name);
    TEST_CHECK(e3 <= 1e-5 && pos[0] == lens[0] && pos[2] == lens[2] && kv.len[slot_of[1]] == pl[1], nm, "relerr %.3g",
               e3);
    plm_kv_cache_free(&kv);
    for (int s = 0; s < NS; s++) free(ref[s]);
    plm_model_free(m);
}

static void check_batch(const char *name, plm_arch arch) {
    plm_model *m = make_model(arch);
    enum { NP = 5, NEW = 14 };
    int lens[NP] = {3, 9, 1, 6, 12};
    int32_t buf[NP][16];
    const int32_t *pr[NP];
    plm_rng r;
    plm_rng_seed(&r, 11, 2);
    for (int i = 0; i < NP; i++) {
        for (int t = 0; t < lens[i]; t++) buf[i][t] = (int32_t)(plm_rng_next(&r) % V);
        pr[i] = buf[i];
    }
    plm_sampling modes[3];
    for (int k = 0; k < 3; k++) {
        plm_sampling_default(&modes[k]);
        modes[k].max_new_tokens = NEW;
        modes[k].seed = 9;
    }
    modes[0].do_sample = false;
    modes[1].temperature = 0.8f;
    modes[1].top_k = 7;
    modes[1].top_p = 0.9f;
    modes[2].temperature = 1.3f; /* plain sampling over the whole vocabulary */
    const char *mode_name[3] = {"greedy", "top_k_top_p", "temperature"};
    for (int k = 0; k < 3; k++) {
        int32_t out[NP * NEW], alone[NEW], again[NP * NEW];
        int n_out[NP], n2[NP];
        for (size_t i = 0; i < PLM_ARRAY_LEN(out); i++) out[i] = again[i] = -7;
        plm_gen_stats st;
        int rc = plm_generate_batch(m, pr, lens, NP, &modes[k], out, n_out, NULL, NULL, &st);
        bool same = rc == 0 && st.prompt_tokens == 31 && st.new_tokens == NP * NEW;
        int bad = -1;
        for (int i = 0; i < NP && same; i++) {
            int n = plm_generate(m, pr[i], lens[i], &modes[k], alone, NULL, NULL);
            same = n == n_out[i] && n == NEW && !memcmp(alone, out + i * NEW, (size_t)n * sizeof(int32_t));
            if (!same) bad = i;
        }
        char nm[128];
        snprintf(nm, sizeof nm, "generate.%s.batch_equals_alone.%s", name, mode_name[k]);
        TEST_CHECK(same, nm, "rc %d, prompt %d differs", rc, bad);
        plm_generate_batch(m, pr, lens, NP, &modes[k], again, n2, NULL, NULL, NULL);
        snprintf(nm, sizeof nm, "generate.%s.reproducible.%s", name, mode_name[k]);
        TEST_CHECK(!memcmp(out, again, sizeof out) && !memcmp(n_out, n2, sizeof n2), nm, "two runs differ");
    }
    /* a workspace kept between calls (RL rollouts): reserved once for the largest call,
     * then calls of every size (all prompts, fewer and shorter ones, all again) give the
     * tokens of plm_generate_batch bit for bit and allocate nothing: the buffers stay */
    {
        plm_gen_workspace ws = {0};
        plm_gen_workspace_reserve(&ws, m, NP, 12, NEW);
        void *bufs[5] = {ws.kv.k, ws.kv.x, ws.rng, ws.ids, ws.work};
        bool same = true;
        int counts[3] = {NP, 2, NP};
        for (int c = 0; c < 3; c++)
            for (int k = 0; k < 3; k++) {
                int32_t a[NP * NEW], b[NP * NEW];
                int na[NP], nb[NP];
                int ra = plm_generate_batch(m, pr + (c == 1), lens + (c == 1), counts[c], &modes[k], a, na, NULL, NULL,
                                            NULL);
                int rb = plm_generate_batch_ws(&ws, m, pr + (c == 1), lens + (c == 1), counts[c], &modes[k], b, nb,
                                               NULL, NULL, NULL);
                same &= ra == 0 && rb == 0 && !memcmp(na, nb, (size_t)counts[c] * sizeof(int)) &&
                        !memcmp(a, b, (size_t)counts[c] * NEW * sizeof(int32_t));
            }
        void *after[5] = {ws.kv.k, ws.kv.x, ws.rng, ws.ids, ws.work};
        char nm[128];
        snprintf(nm, sizeof nm, "generate.%s.workspace_same_tokens", name);
        TEST_CHECK(same, nm, "a call through a kept workspace gives other tokens than plm_generate_batch");
        snprintf(nm, sizeof nm, "generate.%s.workspace_no_realloc", name);
        TEST_CHECK(!memcmp(bufs, after, sizeof bufs), nm, "a call that fits the reservation reallocated a buffer");
        plm_gen_workspace_free(&ws);
    }
    /* the greedy tokens are the argmax of the uncached forward over the growing text */
    int32_t seq[MAXPOS], out[NEW];
    int n = plm_generate(m, pr[1], lens[1], &modes[0], out, NULL, NULL);
    memcpy(seq, pr[1], (size_t)lens[1] * sizeof(int32_t));
    bool ok = n == NEW;
    for (int t = 0; t < n && ok; t++) {
        float *z = full_logits(m, seq, lens[1] + t);
        const float *last = z + (size_t)(lens[1] + t - 1) * V;
        int best = 0;
        for (int v = 1; v < V; v++)
            if (last[v] > last[best]) best = v;
        ok = best == out[t];
        seq[lens[1] + t] = best;
        free(z);
    }
    char nm[128];
    snprintf(nm, sizeof nm, "generate.%s.greedy_equals_uncached", name);
    TEST_CHECK(ok, nm, "%d tokens", n);
    /* more new tokens than the context holds: each prompt stops at max_position_embeddings */
    plm_sampling s = modes[0];
    s.max_new_tokens = 60;
    int32_t big[NP * 60];
    int nb[NP];
    int rc = plm_generate_batch(m, pr, lens, NP, &s, big, nb, NULL, NULL, NULL);
    ok = rc == 0;
    for (int i = 0; i < NP && ok; i++) ok = nb[i] == MAXPOS - lens[i];
    snprintf(nm, sizeof nm, "generate.%s.stops_at_context", name);
    TEST_CHECK(ok, nm, "rc %d, got %d tokens after %d (context %d)", rc, nb[0], lens[0], MAXPOS);
    /* a bad prompt is an error, not a crash */
    int32_t bad_ids[2] = {3, V + 4};
    const int32_t *bp[2] = {pr[0], bad_ids};
    int bl[2] = {lens[0], 2}, full_len[1] = {MAXPOS};
    const int32_t *fp[1] = {seq};
    bool refused = plm_generate_batch(m, bp, bl, 2, &modes[0], big, nb, NULL, NULL, NULL) != 0 &&
                   strstr(plm_last_error(), "prompt 2") &&
                   plm_generate_batch(m, fp, full_len, 1, &modes[0], big, nb, NULL, NULL, NULL) != 0;
    snprintf(nm, sizeof nm, "generate.%s.bad_prompts_refused", name);
    TEST_CHECK(refused, nm, "%s", plm_last_error());
    plm_model_free(m);
}

/* top-k through the heap: 4000 draws land on the k best tokens by (probability, id) only,
 * and on every one of them */
static void check_topk(void) {
    enum { N = 211 };
    float z[N], w[N];
    plm_rng r;
    plm_rng_seed(&r, 4, 4);
    for (int i = 0; i < N; i++) z[i] = 3.0f * plm_rng_uniform(&r);
    z[17] = z[90] = z[150]; /* ties broken by id */
    plm_sampling s;
    plm_sampling_default(&s);
    s.top_k = 9;
    s.temperature = 0.7f;
    int hist[N] = {0}, outside = 0;
    /* the 9 largest by (value desc, id asc) */
    int rank[N];
    for (int i = 0; i < N; i++) {
        rank[i] = 0;
        for (int j = 0; j < N; j++) rank[i] += z[j] > z[i] || (z[j] == z[i] && j < i);
    }
    void *work = plm_malloc(plm_sample_work_bytes(N));
    for (int d = 0; d < 4000; d++) {
        memcpy(w, z, sizeof z);
        int id = plm_sample(w, N, &s, &r, work);
        hist[id]++;
        outside += rank[id] >= s.top_k;
    }
    free(work);
    int used = 0;
    for (int i = 0; i < N; i++) used += hist[i] > 0;
    TEST_CHECK(outside == 0 && used == s.top_k, "generate.sample_top_k", "%d draws outside the top %d, %d ids used",
               outside, s.top_k, used);
}

/* greedy: the first index of the maximum (ties by id), at odd lengths around the SIMD width */
static void check_greedy(void) {
    plm_sampling s;
    plm_sampling_default(&s);
    s.do_sample = false;
    plm_rng r;
    plm_rng_seed(&r, 5, 5);
    int bad = 0;
    float z[97];
    for (int n = 1; n <= 97; n += 3) {
        for (int i = 0; i < n; i++) z[i] = -2.0f + (float)(i % 7) * 0.25f - 1e-3f * (float)i;
        int want = (int)(plm_rng_uniform(&r) * (float)n) % n;
        z[want] = 5.0f;
        if (want + 2 < n) z[want + 2] = 5.0f; /* a later tie loses */
        bad += plm_sample(z, n, &s, &r, NULL) != want;
    }
    TEST_CHECK(bad == 0, "generate.greedy_first_argmax", "%d lengths picked another index", bad);
}

int main(void) {
    check_greedy();
    check_cache("gpt2", PLM_ARCH_GPT2);
    /* 8 heads on one thread: attend_rows gives each task of a lone row a group of heads */
    num_heads = 8;
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    check_cache("gpt2_head_groups", PLM_ARCH_GPT2);
    omp_set_num_threads(threads);
    num_heads = 3;
    check_cache("bert_causal", PLM_ARCH_BERT);
    check_batch("gpt2", PLM_ARCH_GPT2);
    check_batch("bert_causal", PLM_ARCH_BERT);
    check_topk();
    TEST_EXIT();
}
