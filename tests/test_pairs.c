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
 *  - instances are rebuilt per epoch (dynamic) and repeat with static masking's dupe;
 *  - the lengths and edges alone do not tell the NSP or the SOP label: no threshold on
 *    |A|, |B|, |A| + |B|, B's share, |A| - |B|, or whether A or B starts or ends at a
 *    sentence boundary beats the majority label by max(0.02, 2 / sqrt(pairs)), at T 32
 *    and 64.
 *  - NSP learns: a tiny BERT trained on MLM + NSP through these batches reaches a held-out
 *    NSP accuracy well above the majority label, on synthetic documents whose token ranges
 *    differ (so a random B is recognisable from A: what BERT exploits in topic shifts).
 *    On real text: tests/test_nsp_learn.c (three books of different registers, one
 *    document each, held-out slices). There every from-scratch model first sits at
 *    chance while its MLM is on the unigram plateau (this test's 2-layer model on 3
 *    books: 300 steps at chance, issue 8's first measurement; on ten Gutenberg novels of
 *    one register, 40 KB each, a 1024-token BPE, T 64, lr 1e-3, batch 32: 0.533 after 300
 *    steps and 0.499 after 1000 on 764 pairs, standard error 0.018) and leaves chance with
 *    it: after 600 steps at mlm_probability 0.15, after 300-400 at 0.3. A 1-layer model
 *    at 0.3 reaches 0.689 held-out NSP accuracy on 1,734 pairs (majority 0.510, standard
 *    error 0.012) in 1000 steps (seeds 1-7: 0.689-0.808).
 * The NSP head's gradient parity against PyTorch is tests/parity.sh (bert_nsp_c36,
 * BertForPreTraining, the head SOP shares). */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "data/dataloader.h"
#include "data/pairs.h"
#include "model/crossentropy.h"
#include "model/model.h"
#include "test.h"
#include "train/adamw.h"
#include "train/trainer.h"

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

/* What a rule can read off a pair without its words: |A|, |B|, |A| + |B|, B's share of the
 * pair in 64ths, |A| - |B| (offset by 64), and whether A and B start at a sentence start
 * and end at a sentence end (a model sees that: a capital, a full stop). */
enum { NF = 9, NV = 129 };
static const char *const feature_names[NF] = {"|A|",
                                              "|B|",
                                              "|A|+|B|",
                                              "B's share",
                                              "|A|-|B|",
                                              "A starts a sentence",
                                              "A ends a sentence",
                                              "B starts a sentence",
                                              "B ends a sentence"};

static bool sent_start(const plm_documents *D, uint64_t p) {
    size_t lo = 0, hi = D->num_sent;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (D->sent[mid] < p)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < D->num_sent && D->sent[lo] == p;
}

static bool sent_end(const plm_documents *D, uint32_t doc, uint64_t p) { return p == D->end[doc] || sent_start(D, p); }

/* The best accuracy of a threshold rule on one of these features (either direction) on n
 * pair windows; best[k] gets feature k's, *majority the majority label's share. */
static double length_rule(const plm_window *w, size_t n, const plm_documents *D, double *best, double *majority) {
    static long cnt[NF][NV][2];
    memset(cnt, 0, sizeof cnt);
    long ones = 0;
    for (size_t i = 0; i < n; i++) {
        const plm_window *x = &w[i];
        int a = (int)PLM_MIN(x->a_len, NV - 1u), b = (int)PLM_MIN(x->b_len, NV - 1u);
        int f[NF] = {a,
                     b,
                     PLM_MIN(a + b, NV - 1),
                     a + b ? 64 * b / (a + b) : 0,
                     PLM_MAX(0, PLM_MIN(64 + a - b, NV - 1)),
                     sent_start(D, x->a_start),
                     sent_end(D, x->a_doc, x->a_start + x->a_len),
                     sent_start(D, x->b_start),
                     sent_end(D, x->b_doc, x->b_start + x->b_len)};
        for (int k = 0; k < NF; k++) cnt[k][f[k]][x->label == 1]++;
        ones += x->label == 1;
    }
    *majority = (double)PLM_MAX(ones, (long)n - ones) / (double)n;
    double all = 0.0;
    for (int k = 0; k < NF; k++) {
        best[k] = 0.0;
        for (int t = 0; t <= NV; t++) {
            long right = 0; /* label 1 iff f >= t; the other direction scores n - right */
            for (int v = 0; v < NV; v++) right += cnt[k][v][v >= t];
            best[k] = fmax(best[k], (double)PLM_MAX(right, (long)n - right) / (double)n);
        }
        all = fmax(all, best[k]);
    }
    return all;
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
    /* The lengths and edges alone must not tell the label. NSP: a chunk of one sentence
     * longer than the target is cut at a random token: its "next" B is the sentence's rest,
     * so a long A left a short next B while a random B (whole sentences) had any length. At
     * T 32 many of these addresses' sentences are longer than the target: a rule on lengths
     * scored 0.573 (majority 0.505) there before pairs.c gave such a random B the next one's
     * length, 0.505 (0.500) after; with the edges and |A| - |B| 0.507 (T 32) and 0.509
     * (T 64). SOP, built as google's create_instances (ALBERT's too), with plm's
     * truncate_seq_pair before the swap: 0.702 at T 32 (majority 0.501) and 0.622 at T 64
     * (0.504), on |A|, |B|, B's share or |A| - |B| alike, 0.67 and 0.61 on "A starts a
     * sentence". 90% of the pairs at T 32 are truncated where A meets B; truncation trims
     * the longer, B on ties, so it left A as long as B or one token longer (56% of those
     * within one token), and B held the sentence that overshoots the target. Built alike
     * and swapped before truncating (pairs.c): 0.502 and 0.507 (0.501, 0.505). */
    for (int t = 32; t <= 64; t += 32) {
        plm_window *lw = NULL;
        size_t lcap = 0, ln = plm_pairs_build(&d.docs, kind, t, 0.1f, 77, &lw, &lcap);
        double best[NF], maj, lr = length_rule(lw, ln, &d.docs, best, &maj);
        free(lw);
        printf("# %s, T %d: best rule %.4f, majority label %.4f, on %zu pairs; per feature:", name, t, lr, maj, ln);
        for (int k = 0; k < NF; k++) printf(" %s %.4f%s", feature_names[k], best[k], k + 1 < NF ? "," : "\n");
        snprintf(tn, sizeof tn, "%s_lengths_hide_label_t%d", name, t);
        /* the best of the 2,340 rules is up to about 0.5 sqrt(2 ln 2340) / sqrt(n) above
         * chance by selection alone (the sanitizer's 40 addresses give few pairs) */
        TEST_CHECK(lr < maj + fmax(0.02, 2.0 / sqrt((double)ln)), tn,
                   "a rule on segment lengths or edges alone scores %.4f (majority %.4f) on %zu pairs", lr, maj, ln);
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

/* Documents d = 0..D-1, each a run of tokens drawn from its own range [10 + 20d, 30 + 20d),
 * sentences of 8 tokens. */
static void synthetic_docs(plm_token_stream *s, size_t n, int D, uint64_t seed) {
    s->ids = plm_malloc(n * sizeof(int32_t));
    s->flags = plm_malloc(n);
    s->n = n;
    s->shards = NULL;
    plm_rng r;
    plm_rng_seed(&r, seed, 1);
    for (size_t i = 0; i < n; i++) {
        int d = (int)(i / (n / (size_t)D));
        s->ids[i] = 10 + 20 * d + (int32_t)plm_rng_below(&r, 20);
        s->flags[i] = PLM_TOK_WORD_START | (i % 8 == 0 ? PLM_TOK_SENT_START : 0) |
                      (i % (n / (size_t)D) == 0 ? PLM_TOK_DOC_START : 0);
    }
}

static void nsp_learns(void) {
    enum { V = 512, D = 20, B = 32, T = 32, STEPS = 250 };
    plm_vocab_info v;
    memset(&v, 0, sizeof v);
    v.vocab_size = V, v.pad = 0, v.cls = 1, v.sep = 2, v.mask = 3, v.eos = 4;
    v.is_special = plm_calloc(V, 1);
    for (int i = 0; i < 5; i++) v.is_special[i] = 1;
    v.random_pool = plm_malloc(V * sizeof(int32_t));
    for (int i = 5; i < V; i++) v.random_pool[v.num_random++] = i;
    plm_token_stream train, valid;
    synthetic_docs(&train, 200000, D, 1);
    synthetic_docs(&valid, 20000, D, 2);
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.pair = PLM_PAIR_NSP;
    plm_dataloader dl, vdl;
    plm_dataloader_init(&dl, &train, PLM_OBJ_MLM, &o, &v, T, 3, true);
    plm_dataloader_init(&vdl, &valid, PLM_OBJ_MLM, &o, &v, T, 4, false);
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = V, c.hidden_size = 64, c.num_hidden_layers = 2, c.num_attention_heads = 4;
    c.intermediate_size = 256, c.max_position_embeddings = T, c.pre_layernorm = true;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    plm_model_spec sp;
    plm_model_spec_default(&sp, &c);
    plm_model_spec_add_head(&sp, PLM_HEAD_NSP, 2);
    plm_model *m = plm_model_create_spec(&sp, 5);
    plm_model_reserve(m, B, T);
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    plm_adamw_hparams h = plm_adamw_defaults(1e-3f);
    static int32_t ids[B * T], tt[B * T], lab[B * T], sl[B];
    static uint8_t am[B * T];
    for (int st = 0; st < STEPS; st++) {
        plm_dataloader_next_seq(&dl, B, ids, tt, am, lab, sl);
        plm_batch b = {.B = B,
                       .T = T,
                       .input_ids = ids,
                       .token_type_ids = tt,
                       .attention_mask = am,
                       .labels = lab,
                       .seq_labels = sl,
                       .training = true};
        plm_model_zero_grad(m);
        plm_model_run(m, 0, &b, true, 1.0f);
        plm_clip_grad_norm(m, 1.0);
        plm_adamw_step(&opt, m, &h, 1e-3f);
    }
    long ones = 0;
    for (size_t w = 0; w < vdl.num_windows; w++) ones += plm_dataloader_window(&vdl, w)->label == 1;
    double majority = fmax((double)ones, (double)(vdl.num_windows - (size_t)ones)) / (double)vdl.num_windows;
    plm_eval_result e = plm_evaluate(m, &vdl, B, 1000, false);
    printf("# nsp after %d steps: held-out NSP accuracy %.3f on %ld pairs, majority label %.3f; MLM loss %.3f\n", STEPS,
           e.seq_accuracy, e.sequences, majority, e.loss);
    TEST_CHECK(e.sequences > 500 && e.seq_accuracy > majority + 0.15, "nsp_learns",
               "held-out NSP accuracy %.3f, majority label %.3f", e.seq_accuracy, majority);
    plm_adamw_free(&opt);
    plm_model_free(m);
    plm_dataloader_free(&dl);
    plm_dataloader_free(&vdl);
    plm_token_stream_free(&train);
    plm_token_stream_free(&valid);
    plm_vocab_info_free(&v);
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
    if (!test_sanitized())
        nsp_learns();
    else
        printf("# nsp_learns skipped under the sanitizer (250 training steps)\n");
    plm_vocab_info_free(&v);
    plm_tokenizer_free(tok);
    for (int i = 0; i < nf; i++) free(files[i]);
    TEST_EXIT();
}
