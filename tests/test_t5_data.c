/* test_t5_data.c - T5 span corruption (span_corruption.h and the dataloader's T5
 * batches) over more than a million tokens:
 *   - compute_input_and_target_lengths gives HF's values (512 -> 568 / 114, ...);
 *   - every window's inputs and targets interleave back to the window exactly: each
 *     sentinel <extra_id_k> (= len(tokenizer) - 1 - k) of the inputs is followed in the
 *     targets by exactly the tokens it replaced; both end in EOS; the decoder inputs are
 *     the targets shifted right behind decoder_start_token_id;
 *   - noise and non-noise spans alternate, starting with non-noise;
 *   - mean noise span length 3 +- 0.1 and noise density 0.15 +- 0.005 over all tokens;
 *   - the span lengths vary (a random segmentation, not fixed spans);
 *   - the same seed gives the same batches, a new epoch new masks;
 *   - settings that cannot produce full inputs are refused with a message. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "data/dataloader.h"
#include "data/span_corruption.h"
#include "test.h"

enum { V = 32100, EOS = 1, START = 0 };

static void check_lengths(void) {
    static const int in[] = {512, 128, 64, 114, 20}, want_t[] = {568, 141, 70, 126, 21},
                     want_o[] = {114, 29, 14, 26, 5};
    bool ok = true;
    for (size_t i = 0; i < PLM_ARRAY_LEN(in); i++) {
        int t, o;
        plm_t5_lengths(in[i], 0.15, 3.0, &t, &o);
        if (t != want_t[i] || o != want_o[i]) {
            printf("FAIL t5_data.lengths: inputs %d -> %d / %d, HF %d / %d\n", in[i], t, o, want_t[i], want_o[i]);
            ok = false;
        }
    }
    TEST_CHECK(ok, "t5_data.compute_input_and_target_lengths", "see above");
}

static void check_stream(int T, size_t ntok) {
    int32_t *ids = plm_malloc(ntok * sizeof(int32_t));
    plm_rng r;
    plm_rng_seed(&r, 123, 0);
    for (size_t i = 0; i < ntok; i++) ids[i] = i % 997 == 996 ? EOS : 2 + (int32_t)plm_rng_below(&r, V - 102);
    plm_token_stream s = {ids, ntok};
    plm_vocab_info v;
    memset(&v, 0, sizeof v);
    v.vocab_size = V;
    v.eos = EOS;
    v.cls = v.sep = v.mask = v.pad = -1;
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.decoder_start_token_id = START;
    plm_dataloader d;
    if (plm_dataloader_init(&d, &s, PLM_OBJ_T5, &o, &v, T, 7, true) != 0) {
        printf("FAIL t5_data.init: %s\n", plm_last_error());
        test_failures++;
        free(ids);
        return;
    }
    int L = d.t5_tokens_length, Tt = d.t5_targets_length, B = 16;
    int32_t *enc = plm_malloc((size_t)B * T * sizeof(int32_t)), *dec = plm_malloc((size_t)B * Tt * sizeof(int32_t));
    int32_t *lab = plm_malloc((size_t)B * Tt * sizeof(int32_t)), *rec = plm_malloc(((size_t)L + 1) * sizeof(int32_t));
    long windows = 0, bad_interleave = 0, bad_shift = 0, bad_eos = 0, bad_order = 0;
    long noise_tokens = 0, spans = 0, tokens = 0, len_hist[8] = {0};
    /* every window once (one epoch), in the loader's order */
    while (windows < (long)d.num_windows) {
        int nb = (int)PLM_MIN((size_t)B, d.num_windows - (size_t)windows);
        size_t first = d.pos;
        plm_dataloader_next_t5(&d, nb, enc, dec, lab);
        for (int b = 0; b < nb; b++, windows++) {
            const int32_t *in = enc + (size_t)b * T, *tg = lab + (size_t)b * Tt, *di = dec + (size_t)b * Tt;
            const int32_t *orig = ids + (size_t)d.order[first + b] * L;
            bad_eos += in[T - 1] != EOS || tg[Tt - 1] != EOS;
            bad_shift += di[0] != START || memcmp(di + 1, tg, (size_t)(Tt - 1) * sizeof(int32_t)) != 0;
            /* the targets start with <extra_id_0> and list sentinel k then span k */
            bad_order += tg[0] != V - 1;
            /* interleave: copy inputs; at sentinel k, insert the targets after sentinel k */
            int n = 0, k = 0;
            bool ok = true;
            for (int t = 0; t < T - 1 && ok; t++) {
                if (in[t] < V - 100) {
                    rec[n++] = in[t];
                    continue;
                }
                ok = in[t] == V - 1 - k && t > 0 && in[t - 1] < V - 100; /* in order, after non-noise */
                int p = 0;
                while (p < Tt && tg[p] != V - 1 - k) p++;
                int span = 0;
                for (p++; ok && p < Tt - 1 && tg[p] < V - 100; p++, span++) rec[n++] = tg[p];
                ok = ok && span > 0;
                len_hist[PLM_MIN(span, 7)]++;
                noise_tokens += span;
                spans++;
                k++;
            }
            ok = ok && n == L && memcmp(rec, orig, (size_t)L * sizeof(int32_t)) == 0;
            ok = ok && in[T - 2] >= V - 100; /* the window ends with a noise span */
            bad_interleave += !ok;
            tokens += L;
        }
    }
    char name[96];
    snprintf(name, sizeof name, "t5_data.T%d.interleave_exact", T);
    TEST_CHECK(bad_interleave == 0 && windows > 0, name, "%ld of %ld windows do not rebuild the original",
               bad_interleave, windows);
    snprintf(name, sizeof name, "t5_data.T%d.eos_sentinels_shift", T);
    TEST_CHECK(!bad_eos && !bad_shift && !bad_order, name, "eos %ld, shift %ld, sentinel order %ld", bad_eos, bad_shift,
               bad_order);
    double mean = (double)noise_tokens / (double)spans, dens = (double)noise_tokens / (double)tokens;
    snprintf(name, sizeof name, "t5_data.T%d.mean_span_length", T);
    TEST_CHECK(fabs(mean - 3.0) <= 0.1 && tokens >= 1000000, name, "%.4f over %ld tokens", mean, tokens);
    snprintf(name, sizeof name, "t5_data.T%d.noise_density", T);
    TEST_CHECK(fabs(dens - 0.15) <= 0.005, name, "%.4f", dens);
    snprintf(name, sizeof name, "t5_data.T%d.span_lengths_vary", T);
    TEST_CHECK(len_hist[1] > spans / 20 && len_hist[5] + len_hist[6] + len_hist[7] > spans / 50, name,
               "span lengths 1: %ld, >=5: %ld of %ld", len_hist[1], len_hist[5] + len_hist[6] + len_hist[7], spans);
    printf("# T %d (window %d, targets %d): %ld windows, %ld tokens, density %.4f, mean span %.4f\n", T, L, Tt, windows,
           tokens, dens, mean);
    /* determinism and new masks per epoch */
    plm_dataloader_seek(&d, 0, 0);
    plm_dataloader_next_t5(&d, 1, enc, dec, lab);
    int32_t *again = plm_malloc((size_t)T * sizeof(int32_t));
    memcpy(again, enc, (size_t)T * sizeof(int32_t));
    size_t w0 = d.order[0];
    plm_dataloader_seek(&d, 0, 0);
    plm_dataloader_next_t5(&d, 1, enc, dec, lab);
    bool same = memcmp(again, enc, (size_t)T * sizeof(int32_t)) == 0;
    plm_dataloader_seek(&d, 1, 0);
    size_t p1 = 0;
    while (d.order[p1] != w0) p1++;
    plm_dataloader_seek(&d, 1, p1);
    plm_dataloader_next_t5(&d, 1, enc, dec, lab);
    bool differs = memcmp(again, enc, (size_t)T * sizeof(int32_t)) != 0;
    snprintf(name, sizeof name, "t5_data.T%d.reproducible_new_mask_per_epoch", T);
    TEST_CHECK(same && differs, name, "same seed same batch %d, next epoch another mask %d", same, differs);
    free(again);
    free(enc), free(dec), free(lab), free(rec);
    plm_dataloader_free(&d);
    free(ids);
}

static void check_refused(void) {
    int32_t ids[4000];
    for (int i = 0; i < 4000; i++) ids[i] = 5 + i % 50;
    plm_token_stream s = {ids, 4000};
    plm_vocab_info v;
    memset(&v, 0, sizeof v);
    v.vocab_size = 200;
    v.eos = EOS;
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    plm_dataloader d;
    o.noise_density = 0.6f;
    bool a = plm_dataloader_init(&d, &s, PLM_OBJ_T5, &o, &v, 64, 1, true) != 0 && strstr(plm_last_error(), "noise");
    plm_objective_opts_default(&o);
    bool b = plm_dataloader_init(&d, &s, PLM_OBJ_T5, &o, &v, 2, 1, true) != 0 && strstr(plm_last_error(), "too short");
    v.eos = -1;
    bool c = plm_dataloader_init(&d, &s, PLM_OBJ_T5, &o, &v, 64, 1, true) != 0 && strstr(plm_last_error(), "EOS");
    TEST_CHECK(a && b && c, "t5_data.bad_settings_refused", "density %d, short %d, no eos %d", a, b, c);
}

int main(void) {
    check_lengths();
    size_t n = 1200000; /* fast (0.1 s) even under the sanitizers */
    check_stream(128, n);
    check_stream(512, n);
    check_refused();
    TEST_EXIT();
}
