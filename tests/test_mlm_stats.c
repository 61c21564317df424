/* test_mlm_stats.c - BERT masking statistics over >= 1M tokens: selection rate 15% +-
 * 0.3%, the 80/10/10 split within +-1%, special tokens never selected, MLM chunks framed
 * as [CLS] ... [SEP] with neither inside; dynamic masks change between epochs, static
 * masks (dupe_factor 1) do not; CLM windows are shifted correctly. Whole-word, span and
 * dupe_factor masking: test_masking.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "data/dataloader.h"
#include "model/crossentropy.h"
#include "test.h"

enum { V = 1000, PAD = 0, CLS = 1, SEP = 2, MASK = 3, EOS = 4 };

static void make_vocab(plm_vocab_info *v) {
    memset(v, 0, sizeof *v);
    v->vocab_size = V;
    v->pad = PAD, v->cls = CLS, v->sep = SEP, v->mask = MASK, v->eos = EOS;
    v->is_special = plm_calloc(V, 1);
    for (int i = 0; i <= EOS; i++) v->is_special[i] = 1;
    v->random_pool = plm_malloc(V * sizeof(int32_t));
    for (int i = EOS + 1; i < V; i++) v->random_pool[v->num_random++] = i;
}

int main(void) {
    plm_vocab_info v;
    make_vocab(&v);
    plm_objective_opts o;
    plm_objective_opts_default(&o);

    /* a stream with 5% special tokens sprinkled in */
    size_t n = 1200000;
    plm_token_stream s = {plm_malloc(n * sizeof(int32_t)), n, NULL, NULL};
    plm_rng r;
    plm_rng_seed(&r, 7, 0);
    for (size_t i = 0; i < n; i++)
        s.ids[i] =
            plm_rng_uniform(&r) < 0.05f ? (int32_t)plm_rng_below(&r, 5) : (int32_t)(5 + plm_rng_below(&r, V - 5));

    int T = 128;
    plm_dataloader d;
    TEST_CHECK(plm_dataloader_init(&d, &s, PLM_OBJ_MLM, &o, &v, T, 1234, true) == 0, "mlm_loader_init", "%s",
               plm_last_error());
    int B = 64;
    int32_t *ids = plm_malloc((size_t)B * T * sizeof(int32_t)), *labels = plm_malloc((size_t)B * T * sizeof(int32_t));
    long eligible = 0, selected = 0, masked = 0, randomized = 0, kept = 0, special_selected = 0, total = 0;
    long cls_ok = 0, sep_ok = 0, windows = 0;
    while (total < 1100000) {
        plm_dataloader_next(&d, B, ids, NULL, NULL, labels);
        for (int b = 0; b < B; b++) {
            const int32_t *x = ids + (size_t)b * T, *y = labels + (size_t)b * T;
            windows++;
            /* [CLS] chunk [SEP] pad...: a chunk never crosses a document separator (the
             * random specials of this stream are content; test_masking.c checks real text
             * for inner [CLS]/[SEP]) */
            int n = T;
            while (n > 0 && x[n - 1] == PAD && y[n - 1] == PLM_IGNORE_INDEX) n--;
            int inner = 0;
            for (int t = 1; t < n - 1; t++) inner += (y[t] != PLM_IGNORE_INDEX ? y[t] : x[t]) == EOS;
            cls_ok += x[0] == CLS && !inner;
            sep_ok += n >= 2 && x[n - 1] == SEP;
            for (int t = 0; t < T; t++) {
                total++;
                int32_t orig = y[t] != PLM_IGNORE_INDEX ? y[t] : x[t];
                if (orig < 0 || orig >= V) continue;
                if (v.is_special[orig]) {
                    special_selected += y[t] != PLM_IGNORE_INDEX;
                    continue;
                }
                eligible++;
                if (y[t] == PLM_IGNORE_INDEX) continue;
                selected++;
                if (x[t] == MASK)
                    masked++;
                else if (x[t] != y[t])
                    randomized++;
                else
                    kept++;
            }
        }
    }
    double rate = (double)selected / (double)eligible;
    TEST_CHECK(total >= 1000000, "mlm_stats_tokens", "only %ld tokens", total);
    TEST_CHECK(fabs(rate - 0.15) <= 0.003, "mlm_selection_rate", "rate %.4f", rate);
    double pm = (double)masked / selected, pr = (double)randomized / selected, pk = (double)kept / selected;
    printf("# selection %.4f, [MASK] %.4f, random %.4f, unchanged %.4f over %ld tokens\n", rate, pm, pr, pk, total);
    TEST_CHECK(fabs(pm - 0.8) <= 0.01, "mlm_mask_share", "%.4f", pm);
    TEST_CHECK(fabs(pr - 0.1) <= 0.01, "mlm_random_share", "%.4f", pr);
    TEST_CHECK(fabs(pk - 0.1) <= 0.01, "mlm_keep_share", "%.4f", pk);
    TEST_CHECK(special_selected == 0, "mlm_no_special_selected", "%ld special tokens selected", special_selected);
    TEST_CHECK(cls_ok == windows && sep_ok == windows, "mlm_cls_sep_frame", "%ld/%ld/%ld", cls_ok, sep_ok, windows);

    /* configurable rate (the 2025 study's 30%) */
    plm_objective_opts o30 = o;
    o30.mlm_probability = 0.3f;
    plm_rng_seed(&r, 99, 1);
    long sel30 = 0, el30 = 0;
    for (int rep = 0; rep < 2000; rep++) {
        int32_t x[128], y[128];
        for (int t = 0; t < 128; t++) x[t] = (int32_t)(5 + plm_rng_below(&r, V - 5));
        sel30 += plm_mlm_mask(x, y, 128, &v, &o30, &r);
        el30 += 128;
    }
    TEST_CHECK(fabs((double)sel30 / el30 - 0.3) < 0.005, "mlm_rate_configurable", "%.4f", (double)sel30 / el30);

    /* dynamic masking: the same window gets a new mask in the next epoch */
    plm_dataloader_seek(&d, 0, 0);
    plm_dataloader_next(&d, 1, ids, NULL, NULL, labels);
    int32_t first[128];
    memcpy(first, labels, sizeof first);
    plm_dataloader_seek(&d, 1, 0);
    /* find the same window in epoch 1: compare by order */
    size_t w0 = 0;
    {
        plm_dataloader_seek(&d, 0, 0);
        w0 = d.order[0];
        plm_dataloader_seek(&d, 1, 0);
        size_t k = 0;
        while (d.order[k] != w0) k++;
        plm_dataloader_seek(&d, 1, k);
        plm_dataloader_next(&d, 1, ids, NULL, NULL, labels);
    }
    TEST_CHECK(memcmp(first, labels, sizeof first) != 0, "mlm_dynamic_masking", "same mask in two epochs");
    plm_objective_opts os = o;
    os.static_masking = true;
    os.dupe_factor = 1;
    plm_dataloader ds;
    plm_dataloader_init(&ds, &s, PLM_OBJ_MLM, &os, &v, T, 1234, true);
    plm_dataloader_seek(&ds, 0, 0);
    w0 = ds.order[0];
    plm_dataloader_next(&ds, 1, ids, NULL, NULL, labels);
    memcpy(first, labels, sizeof first);
    plm_dataloader_seek(&ds, 1, 0);
    size_t k = 0;
    while (ds.order[k] != w0) k++;
    plm_dataloader_seek(&ds, 1, k);
    plm_dataloader_next(&ds, 1, ids, NULL, NULL, labels);
    TEST_CHECK(memcmp(first, labels, sizeof first) == 0, "mlm_static_masking", "mask changed between epochs");
    plm_dataloader_free(&ds);

    /* CLM: labels are inputs shifted by one; right-to-left reverses */
    plm_dataloader c;
    plm_dataloader_init(&c, &s, PLM_OBJ_CLM, &o, &v, 16, 5, false);
    plm_dataloader_next(&c, 2, ids, NULL, NULL, labels);
    int shift_ok = 1;
    for (int b = 0; b < 2; b++)
        for (int t = 0; t < 16; t++) {
            shift_ok &= ids[b * 16 + t] == s.ids[(size_t)b * 16 + t];
            shift_ok &= labels[b * 16 + t] == s.ids[(size_t)b * 16 + t + 1];
        }
    TEST_CHECK(shift_ok, "clm_shift", "labels are not the next tokens");
    plm_dataloader_free(&c);
    o.right_to_left = true;
    plm_dataloader_init(&c, &s, PLM_OBJ_CLM, &o, &v, 16, 5, false);
    plm_dataloader_next(&c, 1, ids, NULL, NULL, labels);
    int rtl_ok = 1;
    for (int t = 0; t < 16; t++) {
        rtl_ok &= ids[t] == s.ids[16 - t];
        rtl_ok &= labels[t] == s.ids[15 - t];
    }
    TEST_CHECK(rtl_ok, "clm_right_to_left", "reversed window wrong");
    plm_dataloader_free(&c);

    plm_dataloader_free(&d);
    free(ids);
    free(labels);
    free(s.ids);
    plm_vocab_info_free(&v);
    TEST_EXIT();
}
