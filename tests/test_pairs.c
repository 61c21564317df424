/* test_pairs.c - NSP and SOP sentence pairs (pairs.h) on real documents: the State of the
 * Union addresses of ../shared/data/sotu (or $PLM_DATA; missing data fails), one
 * document per file, WordPiece (bert-base-uncased), over >= 1M tokens of pairs:
 *  - NSP labels are 50/50 within +-1%; a "random" B never comes from A's document, a
 *    "next" B follows A in the same document; every segment lies inside its document;
 *  - SOP labels 50/50 within +-1%; a swapped pair has B before A in the same document;
 *  - the batch layout: [CLS] A [SEP] B [SEP] padding, token_type_ids 0 then 1, at most
 *    T tokens, the NSP label in seq_labels, the masking rate on the pair tokens;
 *  - short_seq_prob: shorter targets appear (about short_seq_prob of the pairs end
 *    well below max_seq_length) and without it only at document ends;
 *  - instances are rebuilt per epoch (dynamic) and repeat with static masking's dupe.
 * The NSP head's gradient parity against PyTorch is tests/parity.sh (bert_nsp_c36,
 * BertForPreTraining); NSP learning is tests/nsp_learns.sh. */
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

static int list_dir(const char *sub, char **files, int max) {
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", data_dir(), sub);
    DIR *dp = opendir(dir);
    if (!dp) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp)) && n < max)
        if (strstr(e->d_name, ".txt")) {
            char p[2048];
            snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
            files[n++] = plm_strdup(p);
        }
    closedir(dp);
    qsort(files, (size_t)n, sizeof *files, cmp_str);
    return n;
}

static size_t doc_of(const plm_documents *d, uint64_t pos) {
    size_t lo = 0, hi = d->num_docs;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (d->start[mid] <= pos)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static void check_kind(const char *name, plm_pair_objective kind, const plm_token_stream *s, const plm_vocab_info *v) {
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.pair = kind;
    int T = 64, B = 16;
    plm_dataloader d;
    char tn[96];
    snprintf(tn, sizeof tn, "%s_loader", name);
    if (plm_dataloader_init(&d, s, PLM_OBJ_MLM, &o, v, T, 11, true) != 0) {
        TEST_CHECK(0, tn, "%s", plm_last_error());
        return;
    }
    long pairs = 0, ones = 0, bad_doc = 0, bad_next = 0, bad_seg = 0, tokens = 0, short_pairs = 0, epochs = 0;
    while (tokens < 1000000 * (test_sanitized() ? 0.2 : 1)) {
        for (size_t w = 0; w < d.num_windows; w++) {
            const plm_window *x = plm_dataloader_window(&d, w);
            pairs++;
            ones += x->label == 1;
            tokens += x->a_len + x->b_len;
            short_pairs += x->a_len + x->b_len < (uint32_t)(T - 3) / 2;
            const plm_documents *D = &d.docs;
            /* both segments inside their documents */
            bad_seg += doc_of(D, x->a_start) != x->a_doc || x->a_start + x->a_len > D->end[x->a_doc] ||
                       doc_of(D, x->b_start) != x->b_doc || x->b_start + x->b_len > D->end[x->b_doc] || x->a_len == 0 ||
                       x->b_len == 0 || x->a_len + x->b_len > (uint32_t)(T - 3);
            if (kind == PLM_PAIR_NSP && x->label == 1) bad_doc += x->b_doc == x->a_doc;
            if (kind == PLM_PAIR_NSP && x->label == 0)
                bad_next += x->b_doc != x->a_doc || x->b_start < x->a_start + x->a_len;
            if (kind == PLM_PAIR_SOP)
                bad_next += x->b_doc != x->a_doc ||
                            (x->label == 1 ? x->a_start < x->b_start + x->b_len : x->b_start < x->a_start + x->a_len);
        }
        plm_dataloader_seek(&d, ++epochs, 0);
    }
    double share = (double)ones / (double)pairs;
    printf("# %s: %ld pairs over %ld tokens (%ld epochs), label 1 share %.4f, short %.3f\n", name, pairs, tokens,
           epochs, share, (double)short_pairs / pairs);
    snprintf(tn, sizeof tn, "%s_labels_50_50", name);
    TEST_CHECK(fabs(share - 0.5) <= 0.01, tn, "label 1 share %.4f over %ld pairs", share, pairs);
    snprintf(tn, sizeof tn, "%s_segments_in_documents", name);
    TEST_CHECK(bad_seg == 0, tn, "%ld pairs with a segment outside its document or too long", bad_seg);
    if (kind == PLM_PAIR_NSP) {
        TEST_CHECK(bad_doc == 0, "nsp_random_b_other_document", "%ld random B from A's own document", bad_doc);
        TEST_CHECK(bad_next == 0, "nsp_next_b_follows_a", "%ld 'is next' pairs where B does not follow A", bad_next);
    } else {
        TEST_CHECK(bad_next == 0, "sop_order", "%ld pairs whose order does not match the label", bad_next);
    }
    /* short_seq_prob: pairs shorter than half the length come from short targets, else
     * only from document ends */
    plm_window *w0 = NULL;
    size_t cap0 = 0, n0 = plm_pairs_build(&d.docs, kind, T, 0.0f, 123, &w0, &cap0), short0 = 0;
    for (size_t i = 0; i < n0; i++) short0 += w0[i].a_len + w0[i].b_len < (uint32_t)(T - 3) / 2;
    free(w0);
    snprintf(tn, sizeof tn, "%s_short_seq", name);
    double sh = (double)short_pairs / pairs, sh0 = (double)short0 / (double)n0;
    printf("# %s: short pairs %.4f with short_seq_prob 0.1, %.4f without\n", name, sh, sh0);
    TEST_CHECK(sh > 2 * sh0 && sh < 0.1, tn, "short pairs %.4f with short_seq_prob 0.1, %.4f without", sh, sh0);

    /* the batch layout */
    int32_t ids[16 * 64], tt[16 * 64], lab[16 * 64], sl[16];
    uint8_t am[16 * 64];
    plm_dataloader_seek(&d, 0, 0);
    size_t first = d.pos;
    plm_dataloader_next_seq(&d, B, ids, tt, am, lab, sl);
    long bad_layout = 0, el = 0, sel = 0;
    for (int b = 0; b < B; b++) {
        const plm_window *x = plm_dataloader_window(&d, d.order[first + (size_t)b]);
        const int32_t *row = ids + b * T, *ty = tt + b * T, *y = lab + b * T;
        int n = (int)(x->a_len + x->b_len + 3);
        int32_t *seg = plm_malloc((size_t)n * sizeof(int32_t));
        plm_stream_read(s, x->a_start, x->a_len, seg, NULL);
        for (int t = 0; t < n; t++) {
            int32_t orig = y[t] != PLM_IGNORE_INDEX ? y[t] : row[t];
            int32_t want = t == 0                   ? v->cls
                           : t <= (int)x->a_len     ? seg[t - 1]
                           : t == (int)x->a_len + 1 ? v->sep
                           : t == n - 1             ? v->sep
                                                    : -2;
            int want_type = t <= (int)x->a_len + 1 ? 0 : 1;
            if (want != -2) bad_layout += orig != want;
            bad_layout += ty[t] != want_type || !am[b * T + t];
            if (!v->is_special[orig]) el++, sel += y[t] != PLM_IGNORE_INDEX;
        }
        for (int t = n; t < T; t++) bad_layout += am[b * T + t] != 0 || row[t] != v->pad || y[t] != PLM_IGNORE_INDEX;
        bad_layout += sl[b] != x->label;
        free(seg);
    }
    snprintf(tn, sizeof tn, "%s_batch_layout", name);
    TEST_CHECK(bad_layout == 0, tn, "%ld wrong positions ([CLS] A [SEP] B [SEP] pad, types, labels)", bad_layout);
    snprintf(tn, sizeof tn, "%s_masked", name);
    TEST_CHECK(sel > 0 && fabs((double)sel / el - 0.15) < 0.06, tn, "masked %ld of %ld", sel, el);
    plm_dataloader_free(&d);
}

int main(void) {
    char *files[300];
    int nf = list_dir("sotu", files, 300);
    TEST_CHECK(nf > 10, "pairs_data", "no text in %s/sotu (tests read ../shared/data or $PLM_DATA)", data_dir());
    if (nf <= 10) TEST_EXIT();
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizers/bert-base-uncased-vocab.txt", data_dir());
    plm_tokenizer *tok = plm_tokenizer_load_wordpiece(p, true);
    TEST_CHECK(tok != NULL, "pairs_tokenizer", "%s", plm_last_error());
    if (!tok) TEST_EXIT();
    plm_vocab_info v;
    plm_vocab_info_init(&v, tok);
    plm_token_stream s;
    int use = test_sanitized() ? 40 : nf;
    TEST_CHECK(plm_corpus_tokenize(tok, (const char *const *)files, use, v.sep, &s, 0) == 0, "pairs_corpus", "%s",
               plm_last_error());
    printf("# sotu: %d documents, %zu tokens\n", use, s.n);
    check_kind("nsp", PLM_PAIR_NSP, &s, &v);
    check_kind("sop", PLM_PAIR_SOP, &s, &v);

    /* one document: NSP is refused with a clear error */
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.pair = PLM_PAIR_NSP;
    plm_token_stream one;
    plm_corpus_tokenize(tok, (const char *const *)files, 1, v.sep, &one, 0);
    plm_dataloader d;
    int rc = plm_dataloader_init(&d, &one, PLM_OBJ_MLM, &o, &v, 64, 1, true);
    TEST_CHECK(rc != 0 && strstr(plm_last_error(), "2 documents"), "nsp_one_document_error", "rc %d: %s", rc,
               plm_last_error());
    plm_token_stream_free(&one);
    plm_token_stream_free(&s);
    plm_vocab_info_free(&v);
    plm_tokenizer_free(tok);
    for (int i = 0; i < nf; i++) free(files[i]);
    TEST_EXIT();
}
