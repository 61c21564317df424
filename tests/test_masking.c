/* test_masking.c - masking variants over >= 1M tokens of real text (../shared/data or
 * $PLM_DATA; missing data fails), with BERT's WordPiece and GPT-2's byte-level BPE:
 *  - word starts in the token stream agree with the tokenizers' own word marks: WordPiece
 *    "##" pieces continue a word, every BPE token starting with "Ġ" starts one;
 *  - whole-word masking never masks part of a word (a word cut by a window edge counts
 *    as the part inside) and hits mlm_probability within +-0.5%;
 *  - span masking (SpanBERT) masks whole words, hits its rate, mean run ~3.8 words;
 *  - static masking with dupe_factor k repeats its masks every k epochs only; its rate;
 *  - MLM chunks are [CLS] ... [SEP] of one document, no [CLS]/[SEP] inside;
 *  - mlm_probability outside [0.05, 0.5] is rejected. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "data/dataloader.h"
#include "data/pairs.h"
#include "model/crossentropy.h"
#include "test.h"

static const char *data_dir(void) {
    const char *d = getenv("PLM_DATA");
    return d ? d : "../shared/data";
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The first files of gutenberg/ (sorted) until about bytes. */
static int corpus_files(char **files, int max, size_t bytes) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/gutenberg", data_dir());
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    char *all[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < 512)
        if (strstr(e->d_name, ".txt")) {
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            all[n++] = plm_strdup(p);
        }
    closedir(dp);
    qsort(all, (size_t)n, sizeof *all, cmp_str);
    int k = 0;
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        FILE *f = fopen(all[i], "rb");
        if (f && k < max && total < bytes) {
            fseek(f, 0, SEEK_END);
            total += (size_t)ftell(f);
            files[k++] = all[i];
        } else {
            free(all[i]);
        }
        if (f) fclose(f);
    }
    return k;
}

/* Byte-level BPE's whitespace characters: Ġ (space), Ċ (\n), č (\r), ĉ (\t). */
static bool bpe_space(const char *s) {
    const unsigned char *u = (const unsigned char *)s;
    return u[0] == 0xc4 && (u[1] == 0xa0 || u[1] == 0x8a || u[1] == 0x8d || u[1] == 0x89);
}

/* Runs the loader over >= 1M tokens and checks the masks against the words. */
static void check_words(const char *name, const plm_tokenizer *tok, const plm_token_stream *s, const plm_vocab_info *v,
                        plm_mask_unit unit, bool wordpiece) {
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.masking = unit;
    int T = 128, B = 32;
    plm_dataloader d;
    char tn[128];
    snprintf(tn, sizeof tn, "%s_loader", name);
    if (plm_dataloader_init(&d, s, PLM_OBJ_MLM, &o, v, T, 77, true) != 0) {
        TEST_CHECK(0, tn, "%s", plm_last_error());
        return;
    }
    int32_t *ids = plm_malloc((size_t)B * T * 4), *lab = plm_malloc((size_t)B * T * 4);
    int32_t *tt = plm_malloc((size_t)B * T * 4);
    uint8_t *am = plm_malloc((size_t)B * T), *fl = plm_malloc((size_t)T);
    long eligible = 0, selected = 0, partial = 0, words = 0, frame_bad = 0, cross_doc = 0, runs = 0, run_words = 0;
    long mark_bad = 0;
    while (eligible < 1000000) {
        for (int b = 0; b < B; b++) { /* one window at a time: its index, also across an epoch's end */
            if (d.pos >= d.num_windows) plm_dataloader_seek(&d, d.epoch + 1, 0);
            const plm_window *w = plm_dataloader_window(&d, d.order[d.pos]);
            plm_dataloader_next(&d, 1, ids + (size_t)b * T, tt, am + (size_t)b * T, lab + (size_t)b * T);
            const int32_t *x = ids + (size_t)b * T, *y = lab + (size_t)b * T;
            int n = (int)w->a_len;
            plm_stream_read(s, w->a_start, (size_t)n, tt, fl);
            /* the chunk lies inside one document */
            cross_doc += w->a_start < d.docs.start[w->a_doc] || w->a_start + (uint64_t)n > d.docs.end[w->a_doc];
            frame_bad += x[0] != v->cls || x[n + 1] != v->sep || (n + 2 < T && am[(size_t)b * T + n + 2] != 0);
            int prev_sel = -1, in_run = 0;
            for (int t = 0; t < n; t++) {
                int32_t orig = y[t + 1] != PLM_IGNORE_INDEX ? y[t + 1] : x[t + 1];
                frame_bad += orig != tt[t] || orig == v->cls || orig == v->sep;
                if (v->is_special[orig]) {
                    prev_sel = -1;
                    continue;
                }
                const char *str = plm_tokenizer_id_to_token(tok, orig);
                bool start = t == 0 || (fl[t] & PLM_TOK_WORD_START);
                /* the stream's word starts against the tokenizers' own marks */
                if (wordpiece)
                    mark_bad += (strncmp(str, "##", 2) != 0) != ((fl[t] & PLM_TOK_WORD_START) != 0);
                else /* "Ġ" + a visible character (a run of "Ġ" is one whitespace pre-token) */
                    mark_bad += strncmp(str, "\xc4\xa0", 2) == 0 && str[2] && !bpe_space(str + 2) &&
                                !(fl[t] & PLM_TOK_WORD_START);
                int sel = y[t + 1] != PLM_IGNORE_INDEX;
                eligible++;
                selected += sel;
                if (start) {
                    words++;
                    if (sel) run_words++;
                    if (sel && !in_run) runs++;
                    in_run = sel;
                } else if (prev_sel >= 0 && sel != prev_sel) {
                    partial++;
                }
                prev_sel = sel;
            }
        }
    }
    double rate = (double)selected / (double)eligible;
    printf("# %s: %ld tokens, %ld words, rate %.4f, mean run %.2f words\n", name, eligible, words, rate,
           runs ? (double)run_words / runs : 0.0);
    snprintf(tn, sizeof tn, "%s_word_marks", name);
    TEST_CHECK(mark_bad == 0, tn, "%ld tokens whose word start disagrees with the tokenizer's mark", mark_bad);
    snprintf(tn, sizeof tn, "%s_no_partial_word", name);
    if (unit != PLM_MASK_TOKEN) TEST_CHECK(partial == 0, tn, "%ld words partly masked", partial);
    snprintf(tn, sizeof tn, "%s_rate", name);
    TEST_CHECK(fabs(rate - 0.15) <= 0.005, tn, "rate %.4f", rate);
    snprintf(tn, sizeof tn, "%s_chunk_frame", name);
    TEST_CHECK(frame_bad == 0 && cross_doc == 0, tn, "%ld bad frames/tokens, %ld chunks crossing documents", frame_bad,
               cross_doc);
    if (unit == PLM_MASK_SPAN) {
        /* geometric(0.2) clipped at 10: mean 3.79 words; adjacent spans can merge */
        double mean = (double)run_words / (double)runs;
        snprintf(tn, sizeof tn, "%s_span_length", name);
        TEST_CHECK(mean > 3.3 && mean < 4.8, tn, "mean run %.2f words", mean);
    }
    plm_dataloader_free(&d);
    free(ids), free(lab), free(tt), free(am), free(fl);
}

int main(void) {
    char *files[64];
    int nf = corpus_files(files, 64, test_sanitized() ? 1500000 : 6000000);
    TEST_CHECK(nf > 0, "masking_data", "no text in %s/gutenberg (tests read ../shared/data or $PLM_DATA)", data_dir());
    if (nf == 0) TEST_EXIT();
    char p1[1024], p2[1024];

    /* WordPiece (bert-base-uncased) */
    snprintf(p1, sizeof p1, "%s/tokenizers/bert-base-uncased-vocab.txt", data_dir());
    plm_tokenizer *wp = plm_tokenizer_load_wordpiece(p1, true);
    TEST_CHECK(wp != NULL, "masking_wordpiece_load", "%s", plm_last_error());
    if (wp) {
        plm_vocab_info v;
        plm_vocab_info_init(&v, wp);
        plm_token_stream s;
        TEST_CHECK(plm_corpus_tokenize(wp, (const char *const *)files, nf, v.sep, &s, 0) == 0, "masking_wp_corpus",
                   "%s", plm_last_error());
        printf("# wordpiece stream: %zu tokens\n", s.n);
        if (!test_sanitized()) check_words("wwm_wordpiece", wp, &s, &v, PLM_MASK_WHOLE_WORD, true);
        check_words("span_wordpiece", wp, &s, &v, PLM_MASK_SPAN, true);
        check_words("token_wordpiece", wp, &s, &v, PLM_MASK_TOKEN, true);

        /* static masking with dupe_factor 3: epochs 0 and 3 share masks, 0 and 1 do not;
         * and the validation of mlm_probability */
        plm_objective_opts o;
        plm_objective_opts_default(&o);
        o.static_masking = true;
        o.dupe_factor = 3;
        o.masking = PLM_MASK_WHOLE_WORD;
        plm_dataloader d;
        int T = 64;
        plm_dataloader_init(&d, &s, PLM_OBJ_MLM, &o, &v, T, 5, false);
        int32_t a[64], b[64], c[64], x[64];
        plm_dataloader_seek(&d, 0, 7);
        plm_dataloader_next(&d, 1, x, NULL, NULL, a);
        plm_dataloader_seek(&d, 3, 7);
        plm_dataloader_next(&d, 1, x, NULL, NULL, b);
        plm_dataloader_seek(&d, 1, 7);
        plm_dataloader_next(&d, 1, x, NULL, NULL, c);
        TEST_CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(a, c, sizeof a) != 0, "static_dupe_factor",
                   "epoch 3 must repeat epoch 0's mask and epoch 1 differ");
        /* static rate over >= 1M tokens */
        long el = 0, sel = 0;
        plm_dataloader_seek(&d, 2, 0);
        int32_t *ids = plm_malloc(64 * 64 * 4), *lab = plm_malloc(64 * 64 * 4);
        uint8_t *am = plm_malloc(64 * 64);
        while (el < 1000000 && !test_sanitized()) {
            plm_dataloader_next(&d, 64, ids, NULL, am, lab);
            for (int i = 0; i < 64 * 64; i++) {
                int32_t orig = lab[i] != PLM_IGNORE_INDEX ? lab[i] : ids[i];
                if (!am[i] || v.is_special[orig]) continue;
                el++;
                sel += lab[i] != PLM_IGNORE_INDEX;
            }
        }
        if (!test_sanitized())
            TEST_CHECK(fabs((double)sel / el - 0.15) <= 0.005, "static_rate", "%.4f", (double)sel / el);
        free(ids), free(lab), free(am);
        plm_dataloader_free(&d);
        float bad[] = {0.04f, 0.51f, 0.0f, 1.0f}, good[] = {0.05f, 0.5f};
        int rej = 0, acc = 0;
        for (int i = 0; i < 4; i++) {
            o.mlm_probability = bad[i];
            rej += plm_objective_opts_check(&o) != 0 && strstr(plm_last_error(), "mlm_probability") != NULL;
        }
        for (int i = 0; i < 2; i++) {
            o.mlm_probability = good[i];
            acc += plm_objective_opts_check(&o) == 0;
        }
        TEST_CHECK(rej == 4 && acc == 2, "mlm_probability_range", "rejected %d/4, accepted %d/2", rej, acc);
        plm_token_stream_free(&s);
        plm_vocab_info_free(&v);
        plm_tokenizer_free(wp);
    }

    /* byte-level BPE (GPT-2) with RoBERTa-style specials */
    snprintf(p1, sizeof p1, "%s/tokenizers/gpt2-encoder.json", data_dir());
    snprintf(p2, sizeof p2, "%s/tokenizers/gpt2-vocab.bpe", data_dir());
    plm_tokenizer *bpe = plm_tokenizer_load_gpt2(p1, p2);
    TEST_CHECK(bpe != NULL, "masking_bpe_load", "%s", plm_last_error());
    if (bpe) {
        const char *sp[] = {"<s>", "</s>", "<mask>", "<pad>"};
        for (int i = 0; i < 4; i++) plm_tokenizer_add_special(bpe, sp[i]);
        plm_tokenizer_set_special(bpe, PLM_SPECIAL_CLS, "<s>");
        plm_tokenizer_set_special(bpe, PLM_SPECIAL_SEP, "</s>");
        plm_tokenizer_set_special(bpe, PLM_SPECIAL_MASK, "<mask>");
        plm_tokenizer_set_special(bpe, PLM_SPECIAL_PAD, "<pad>");
        plm_vocab_info v;
        plm_vocab_info_init(&v, bpe);
        plm_token_stream s;
        TEST_CHECK(plm_corpus_tokenize(bpe, (const char *const *)files, nf, v.eos, &s, 0) == 0, "masking_bpe_corpus",
                   "%s", plm_last_error());
        printf("# bpe stream: %zu tokens\n", s.n);
        check_words("wwm_bpe", bpe, &s, &v, PLM_MASK_WHOLE_WORD, false);
        if (!test_sanitized()) check_words("span_bpe", bpe, &s, &v, PLM_MASK_SPAN, false);
        plm_token_stream_free(&s);
        plm_vocab_info_free(&v);
        plm_tokenizer_free(bpe);
    }
    for (int i = 0; i < nf; i++) free(files[i]);
    TEST_EXIT();
}
