/* test_token_tasks.c - token classification and extractive QA features on the real data
 * in ../shared/data (or $PLM_DATA; missing data is a failure). Round trips through the
 * prediction side with one-hot "logits" built from the gold labels:
 *   CoNLL-2003 dev, BERT WordPiece (uncased) and GPT-2 byte-level BPE: every word's tag
 *   comes back, entity F1 1.0 on the sentences that fit; truncated words come back "O".
 *   Brown POS slice: token accuracy 1.0.
 *   SQuAD v1.1 dev, BERT WordPiece: the first window of every question is the tokenizer's
 *   own only_second pair encoding; windows overlap by doc_stride and cover the context;
 *   every answer that lies in a window is recovered byte-exactly from the original
 *   context through the offsets (EM = F1 = 100).
 *   QA on a decoder (GPT-2 BPE): question first, then the window; labels inside the
 *   window's context with start <= end; an end before the start is never chosen. */
#include "core/common.h"
#include "tasks/metrics.h"
#include "tasks/token_tasks.h"
#include "test.h"

#include <math.h>
#include <string.h>

static const char *data_dir(void) {
    const char *d = getenv("PLM_DATA");
    return d ? d : "../shared/data";
}

static plm_tokenizer *load_bert(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/tokenizers/bert-base-uncased-vocab.txt", data_dir());
    return plm_tokenizer_load_wordpiece(p, true);
}

static plm_tokenizer *load_gpt2(void) {
    char a[1024], b[1024];
    snprintf(a, sizeof a, "%s/tokenizers/gpt2-encoder.json", data_dir());
    snprintf(b, sizeof b, "%s/tokenizers/gpt2-vocab.bpe", data_dir());
    return plm_tokenizer_load_gpt2(a, b);
}

/* Grow-only float scratch. */
static float *scratch(float **buf, size_t *cap, size_t n) {
    if (n > *cap) {
        *buf = plm_realloc(*buf, n * sizeof **buf);
        *cap = n;
    }
    return *buf;
}

static int tag_index(const plm_tagged_set *s, const char *name) {
    for (int k = 0; k < s->n_tags; k++)
        if (strcmp(s->tags[k], name) == 0) return k;
    return -1;
}

/* Small cases whose answer is known: labels of a word split in pieces, b_to_i, specials. */
static void test_alignment_unit(const plm_tokenizer *bert) {
    const char *names[] = {"B-PER", "I-PER", "O"};
    const char *words[] = {"Xylophonists", "sing"};
    int tags[] = {0, 2};
    plm_tagging_opts o;
    plm_tagging_opts_default(&o);
    for (int mode = 0; mode < 3; mode++) {
        o.label_all_tokens = mode >= 1;
        o.b_to_i_label = mode == 2;
        plm_tagging_features f;
        plm_tagging_init(&f, bert, names, 3, &o);
        int idx = plm_tagging_add(&f, words, tags, 2);
        int len = (int)(f.tok_start[1] - f.tok_start[0]);
        const int32_t *lab = f.labels, *wid = f.word_ids;
        int pieces = 0;
        while (1 + pieces < len && wid[1 + pieces] == 0) pieces++;
        bool ok = idx == 0 && pieces >= 2 && len == pieces + 3 && f.input_ids[0] == 101 &&
                  f.input_ids[len - 1] == 102 && lab[0] == -100 && lab[len - 1] == -100 && wid[0] == -1 &&
                  wid[len - 1] == -1 && lab[1] == 0 && lab[len - 2] == 2;
        int want_cont = mode == 0 ? -100 : mode == 1 ? 0 : 1;
        for (int i = 2; i <= pieces; i++) ok = ok && lab[i] == want_cont;
        char name[64];
        snprintf(name, sizeof name, "tagging_unit_labels_mode%d", mode);
        TEST_CHECK(ok, name, "idx %d len %d pieces %d labels %d %d %d", idx, len, pieces, lab[0], lab[1], lab[2]);
        plm_tagging_free(&f);
    }
    /* truncation: max_seq_length 4 keeps [CLS] + 2 tokens + [SEP] */
    o.max_seq_length = 4;
    o.label_all_tokens = false;
    plm_tagging_features f;
    plm_tagging_init(&f, bert, names, 3, &o);
    plm_tagging_add(&f, words, tags, 2);
    TEST_CHECK(f.tok_start[1] == 4 && f.n_words_kept[0] == 1 && f.n_words_truncated == 1, "tagging_unit_truncation",
               "len %ld kept %d truncated %ld", f.tok_start[1], f.n_words_kept[0], f.n_words_truncated);
    int bad[] = {0, 3};
    TEST_CHECK(plm_tagging_add(&f, words, bad, 2) < 0, "tagging_unit_bad_tag", "accepted tag 3 of 3");
    plm_tagging_free(&f);

    /* batch: rows padded on the right to the longest (pad id, mask 0, label -100) */
    plm_tagging_opts_default(&o);
    plm_tagging_init(&f, bert, names, 3, &o);
    const char *w2[] = {"sing"};
    int t2[] = {2};
    plm_tagging_add(&f, words, tags, 2);
    plm_tagging_add(&f, w2, t2, 1);
    plm_task_batch b;
    plm_task_batch_init(&b);
    int rows[] = {1, 0};
    int rc = plm_tagging_batch(&f, rows, 2, 0, &b);
    int len0 = (int)(f.tok_start[1] - f.tok_start[0]);
    bool ok = rc == 0 && b.B == 2 && b.T == len0 && b.lengths[0] == 3 && b.lengths[1] == len0;
    for (int t = 0; t < b.T && ok; t++) {
        bool real = t < 3;
        ok = b.attention_mask[t] == real && (real || (b.input_ids[t] == 0 && b.labels[t] == -100)) &&
             b.input_ids[b.T + t] == f.input_ids[t] && b.labels[b.T + t] == f.labels[t] && b.attention_mask[b.T + t];
    }
    ok = ok && b.labels[1] == 2 && b.input_ids[0] == 101 && b.input_ids[2] == 102;
    TEST_CHECK(ok, "tagging_unit_batch", "rc %d B %d T %d", rc, b.B, b.T);
    rc = plm_tagging_batch(&f, rows, 2, 3, &b);
    TEST_CHECK(rc < 0, "tagging_unit_batch_pad_to_short", "pad_to 3 accepted a row of %d tokens", len0);
    rc = plm_tagging_batch(&f, rows, 2, 16, &b);
    TEST_CHECK(rc == 0 && b.T == 16 && b.attention_mask[15] == 0, "tagging_unit_batch_pad_to", "rc %d T %d", rc, b.T);
    plm_task_batch_free(&b);
    plm_tagging_free(&f);
}

typedef struct {
    long sents, fit, words, exact_words, truncated_words, empty_words, wrong;
    double f1_fit, f1_all;
} roundtrip_stats;

/* Encodes every sentence, decodes one-hot logits of its labels (the positions without a
 * label get a wrong tag, so only the first sub-token can give the right answer) and
 * compares with the gold tags. */
static roundtrip_stats tagging_roundtrip(const plm_tokenizer *tok, const plm_tagged_set *set, bool pos,
                                         const plm_tagging_opts *o) {
    roundtrip_stats st = {0};
    const char *const *names = (const char *const *)(pos ? set->pos_tags : set->tags);
    int K = pos ? set->n_pos : set->n_tags;
    int o_tag = pos ? 0 : tag_index(set, "O");
    plm_tagging_features f;
    plm_tagging_init(&f, tok, names, K, o);
    if (plm_tagging_add_set(&f, set, pos) != 0) {
        printf("encode failed: %s\n", plm_last_error());
        st.wrong = -1;
        plm_tagging_free(&f);
        return st;
    }
    float *logits = NULL;
    size_t cap = 0;
    long total_words = f.n_words_total;
    int *pred = plm_malloc((size_t)total_words * sizeof *pred);
    int *gold = plm_malloc((size_t)total_words * sizeof *gold);
    const char **gname = plm_malloc((size_t)total_words * sizeof *gname);
    const char **pname = plm_malloc((size_t)total_words * sizeof *pname);
    size_t *slen = plm_malloc((size_t)set->n * sizeof *slen);
    long at = 0, at_fit = 0, n_fit = 0;
    /* fitting sentences first in gname/pname (for F1 over them), then all in order via a second pass */
    for (int s = 0; s < set->n; s++) {
        const plm_tagged_sentence *ps = &set->sents[s];
        const int *gt = pos ? ps->pos : ps->tags;
        long t0 = f.tok_start[s];
        int len = (int)(f.tok_start[s + 1] - t0);
        float *lg = scratch(&logits, &cap, (size_t)len * (size_t)K);
        memset(lg, 0, (size_t)len * (size_t)K * sizeof *lg);
        long labelled = 0;
        for (int i = 0; i < len; i++) {
            int32_t l = f.labels[t0 + i];
            int w = f.word_ids[t0 + i];
            int hot = l >= 0 ? l : (w >= 0 ? (gt[w] + 1) % K : 0);
            lg[(size_t)i * (size_t)K + (size_t)hot] = 1.0f;
            labelled += l >= 0 && (i == 0 || f.word_ids[t0 + i - 1] != w);
        }
        plm_tagging_decode(&f, s, lg, o_tag, pred + at);
        bool fit = f.n_words_kept[s] == ps->n;
        st.sents++;
        st.fit += fit;
        for (int w = 0; w < ps->n; w++) {
            gold[at + w] = gt[w];
            bool kept = w < f.n_words_kept[s];
            int want = kept ? gt[w] : o_tag;
            st.exact_words += pred[at + w] == gt[w];
            if (pred[at + w] != want) st.wrong++;
        }
        if (labelled != f.n_words_kept[s]) st.wrong++; /* one label per kept word */
        if (fit) {
            for (int w = 0; w < ps->n; w++) {
                gname[at_fit + w] = names[gt[w]];
                pname[at_fit + w] = names[pred[at + w]];
            }
            slen[n_fit++] = (size_t)ps->n;
            at_fit += ps->n;
        }
        at += ps->n;
    }
    st.words = total_words;
    st.truncated_words = f.n_words_truncated;
    st.empty_words = f.n_words_empty;
    if (!pos) {
        plm_entity_scores es;
        st.f1_fit = plm_entity_f1(gname, pname, slen, (size_t)n_fit, &es) == 0 ? es.f1 : NAN;
        for (long i = 0; i < total_words; i++) {
            gname[i] = names[gold[i]];
            pname[i] = names[pred[i]];
        }
        for (int s = 0; s < set->n; s++) slen[s] = (size_t)set->sents[s].n;
        st.f1_all = plm_entity_f1(gname, pname, slen, (size_t)set->n, &es) == 0 ? es.f1 : NAN;
    } else {
        st.f1_fit = plm_token_accuracy(gold, pred, (size_t)total_words, PLM_IGNORE_INDEX);
    }
    free(logits);
    free(pred);
    free(gold);
    free(gname);
    free(pname);
    free(slen);
    plm_tagging_free(&f);
    return st;
}

static void test_conll(const plm_tokenizer *tok, const char *tokname) {
    char p[1024];
    snprintf(p, sizeof p, "%s/conll2003/eng.testa", data_dir());
    plm_tagged_set dev;
    int rc = plm_conll_read(&dev, p, NULL, false);
    char name[96];
    snprintf(name, sizeof name, "conll_read_%s", tokname);
    TEST_CHECK(rc == 0, name, "%s", plm_last_error());
    if (rc) return;
    struct {
        const char *what;
        int max_len;
        bool all, b2i;
    } modes[] = {{"first", 128, false, false},
                 {"all_tokens", 128, true, false},
                 {"all_b_to_i", 128, true, true},
                 {"untruncated", 0, false, false}};
    for (size_t m = 0; m < PLM_ARRAY_LEN(modes); m++) {
        plm_tagging_opts o;
        plm_tagging_opts_default(&o);
        o.max_seq_length = modes[m].max_len;
        o.label_all_tokens = modes[m].all;
        o.b_to_i_label = modes[m].b2i;
        double t0 = plm_now();
        roundtrip_stats st = tagging_roundtrip(tok, &dev, false, &o);
        printf("conll dev %s %s (max_seq_length %d): %ld sentences, %ld fit, %ld words, %ld exact, %ld truncated, "
               "%ld empty, entity F1 fit %.6f all %.6f (%.2fs)\n",
               tokname, modes[m].what, o.max_seq_length, st.sents, st.fit, st.words, st.exact_words, st.truncated_words,
               st.empty_words, st.f1_fit, st.f1_all, plm_now() - t0);
        snprintf(name, sizeof name, "conll_roundtrip_%s_%s", tokname, modes[m].what);
        TEST_CHECK(st.wrong == 0 && st.sents == dev.n && st.empty_words == 0, name,
                   "%ld words differ from gold / O for truncated (%ld empty)", st.wrong, st.empty_words);
        snprintf(name, sizeof name, "conll_entity_f1_%s_%s", tokname, modes[m].what);
        TEST_CHECK(st.f1_fit == 1.0, name, "F1 %.6f over %ld fitting sentences", st.f1_fit, st.fit);
        if (modes[m].max_len == 0) {
            snprintf(name, sizeof name, "conll_all_fit_%s", tokname);
            TEST_CHECK(st.fit == dev.n && st.f1_all == 1.0, name, "%ld of %d fit, F1 %.6f", st.fit, dev.n, st.f1_all);
        }
    }
    plm_tagged_set_free(&dev);
}

static void test_brown(const plm_tokenizer *tok) {
    char paths[10][1024];
    const char *pp[10];
    for (int i = 0; i < 10; i++) {
        snprintf(paths[i], sizeof paths[i], "%s/brown/ca%02d", data_dir(), i + 1);
        pp[i] = paths[i];
    }
    plm_tagged_set s;
    int rc = plm_brown_read(&s, pp, 10, NULL);
    TEST_CHECK(rc == 0, "brown_read_slice", "%s", plm_last_error());
    if (rc) return;
    /* Brown's tags are the set's tags; tagging_roundtrip's pos mode reads ps->pos and
     * pos_tags, so hand it a view with pos = tags */
    for (int i = 0; i < s.n; i++) s.sents[i].pos = s.sents[i].tags;
    char **keep_pos = s.pos_tags;
    int keep_n = s.n_pos;
    s.pos_tags = s.tags;
    s.n_pos = s.n_tags;
    int lens[] = {128, 0};
    for (int m = 0; m < 2; m++) {
        plm_tagging_opts o;
        plm_tagging_opts_default(&o);
        o.max_seq_length = lens[m];
        roundtrip_stats st = tagging_roundtrip(tok, &s, true, &o);
        /* word-level accuracy (plm_token_accuracy over the decoded words) */
        printf("brown ca01-ca10 bert (max_seq_length %d): %ld sentences, %ld fit, %ld words, %d tags, %ld exact, %ld "
               "truncated, %ld empty, accuracy %.6f\n",
               lens[m], st.sents, st.fit, st.words, s.n_tags, st.exact_words, st.truncated_words, st.empty_words,
               st.f1_fit);
        TEST_CHECK(st.wrong == 0, m ? "brown_pos_roundtrip_untruncated" : "brown_pos_roundtrip",
                   "%ld words differ from gold / O for truncated", st.wrong);
        if (m == 1) TEST_CHECK(st.f1_fit == 1.0, "brown_pos_accuracy", "accuracy %.6f", st.f1_fit);
    }
    for (int i = 0; i < s.n; i++) s.sents[i].pos = NULL;
    s.pos_tags = keep_pos;
    s.n_pos = keep_n;
    plm_tagged_set_free(&s);
}

/* ---- QA ---- */

static void test_qa_unit(const plm_tokenizer *bert) {
    /* a context long enough for several windows with small settings */
    char ctx[4096];
    size_t n = 0;
    for (int i = 0; i < 60; i++) n += (size_t)snprintf(ctx + n, sizeof ctx - n, "word%d is here. ", i);
    ctx[--n] = 0;
    plm_qa_opts o;
    plm_qa_opts_default(&o);
    o.max_seq_length = 64;
    o.doc_stride = 16;
    plm_qa_features f;
    plm_qa_init(&f, bert, &o);
    int c = plm_qa_add_context(&f, ctx, n);
    const char *ans = strstr(ctx, "word41 is");
    int ex = plm_qa_add_question(&f, c, "  where is word41?", (int)(ans - ctx), 9);
    int nf = f.ex_first_feature[1] - f.ex_first_feature[0];
    int n_ctx = (int)(f.ctx_tok_start[1] - f.ctx_tok_start[0]);
    bool ok = ex == 0 && nf > 2 && nf <= 16 && f.features[0].win_start == 0;
    for (int i = 0; i + 1 < nf && ok; i++) {
        const plm_qa_feature *a = &f.features[i], *b = &f.features[i + 1];
        ok = a->win_start + a->win_len - b->win_start == o.doc_stride && a->len == o.max_seq_length;
    }
    const plm_qa_feature *last = &f.features[nf - 1];
    ok = ok && last->win_start + last->win_len == n_ctx;
    TEST_CHECK(ok, "qa_unit_windows", "%d windows over %d tokens", nf, n_ctx);
    if (!ok) {
        plm_qa_free(&f);
        return;
    }
    /* labels and batch */
    int rows[16], inside = 0;
    for (int i = 0; i < nf; i++) rows[i] = i;
    plm_task_batch b;
    plm_task_batch_init(&b);
    int rc = plm_qa_batch(&f, rows, nf, 0, &b);
    ok = rc == 0 && b.T == o.max_seq_length;
    for (int i = 0; i < nf && ok; i++) {
        const plm_qa_feature *ft = &f.features[i];
        if (ft->start_position == 0) continue;
        inside++;
        const int32_t *off = f.ctx_offsets;
        int s = ft->win_start + ft->start_position - ft->ctx_pos, e = ft->win_start + ft->end_position - ft->ctx_pos;
        ok = off[2 * s] == ans - ctx && off[2 * e + 1] == ans - ctx + 9 && b.start_positions[i] == ft->start_position &&
             b.token_type_ids[(size_t)i * b.T + ft->ctx_pos] == 1 && b.token_type_ids[(size_t)i * b.T + 1] == 0 &&
             b.input_ids[(size_t)i * b.T] == 101;
    }
    TEST_CHECK(ok && inside >= 1, "qa_unit_labels", "rc %d, answer inside %d windows", rc, inside);
    TEST_CHECK(plm_qa_add_question(
                   &f, c,
                   "a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n o p q r s t u v",
                   -1, 0) < 0,
               "qa_unit_long_question", "a question leaving no room was accepted");

    /* postprocessing: logits -10 everywhere but a few positions. Window 0: a strong start
     * in the question (never a candidate) and a span scoring 3.0. Windows 1 and 2: starts
     * s1 = ctx+10 (5.0), s2 = ctx+1 (2.0), ends e1 = ctx+40 (5.0: 31 and 40 tokens after
     * them), e2 = ctx+3 (1.5: before s1). The best valid span is (s2, e2) = 3.5, found in
     * windows 1 and 2: the earlier window wins. With max_answer_length 40, (s1, e1) = 10. */
    float lg[16][64 * 2];
    const float *lp[16];
    for (int j = 0; j < 16; j++) {
        lp[j] = lg[j];
        for (int i = 0; i < 128; i++) lg[j][i] = -10.0f;
    }
    int cp = f.features[0].ctx_pos;
    lg[0][2 * 1] = 9.0f;
    lg[0][2 * (cp + 2)] = 1.5f;
    lg[0][2 * (cp + 4) + 1] = 1.5f;
    for (int j = 1; j < 3; j++) {
        lg[j][2 * (cp + 10)] = 5.0f;
        lg[j][2 * (cp + 1)] = 2.0f;
        lg[j][2 * (cp + 40) + 1] = 5.0f;
        lg[j][2 * (cp + 3) + 1] = 1.5f;
    }
    plm_qa_answer a = plm_qa_best_answer(&f, 0, lp);
    const plm_qa_feature *f1 = &f.features[1];
    const int32_t *off = f.ctx_offsets;
    TEST_CHECK(a.found && a.feature == 1 && a.start_tok == cp + 1 && a.end_tok == cp + 3 && a.score == 3.5f &&
                   a.start == off[2 * (f1->win_start + 1)] && a.end == off[2 * (f1->win_start + 3) + 1],
               "qa_unit_postprocess", "found %d feature %d tokens %d..%d score %g", a.found, a.feature, a.start_tok,
               a.end_tok, a.score);
    f.opts.max_answer_length = 40;
    a = plm_qa_best_answer(&f, 0, lp);
    TEST_CHECK(a.found && a.feature == 1 && a.start_tok == cp + 10 && a.end_tok == cp + 40 && a.score == 10.0f,
               "qa_unit_postprocess_max_answer_length", "feature %d tokens %d..%d score %g", a.feature, a.start_tok,
               a.end_tok, a.score);
    plm_task_batch_free(&b);
    plm_qa_free(&f);
}

/* The decoder's QA features (byte-level BPE, GPT-2): no [CLS]/[SEP]; the question comes
 * first, then the context window, so that every context position's causal state has read
 * the whole question (with the context first, a start logit could not see it). A window
 * holding the answer labels its first and last token (start <= end) inside the window's
 * context; the others label position 0 (run_qa's cls_index 0), which is never a candidate;
 * an end logit peaking before the start is never chosen. */
static void test_qa_unit_decoder(const plm_tokenizer *gpt2) {
    char ctx[4096];
    size_t n = 0;
    for (int i = 0; i < 60; i++) n += (size_t)snprintf(ctx + n, sizeof ctx - n, "word%d is here. ", i);
    ctx[--n] = 0;
    plm_qa_opts o;
    plm_qa_opts_default(&o);
    o.max_seq_length = 64;
    o.doc_stride = 16;
    plm_qa_features f;
    plm_qa_init(&f, gpt2, &o);
    int c = plm_qa_add_context(&f, ctx, n);
    const char *ans = strstr(ctx, "word41 is");
    int ex = plm_qa_add_question(&f, c, "where is word41?", (int)(ans - ctx), 9);
    int nf = f.ex_first_feature[1] - f.ex_first_feature[0];
    int nq = (int)(f.ex_q_start[1] - f.ex_q_start[0]);
    bool ok = ex == 0 && !f.bert && nq > 0 && nf > 2 && nf <= 16;
    TEST_CHECK(ok, "qa_unit_decoder_windows", "example %d, %d question tokens, %d windows", ex, nq, nf);
    if (!ok) {
        plm_qa_free(&f);
        return;
    }
    int rows[16], inside = 0, outside = 0;
    for (int i = 0; i < nf; i++) rows[i] = i;
    plm_task_batch b;
    plm_task_batch_init(&b);
    int rc = plm_qa_batch(&f, rows, nf, 0, &b);
    bool layout = rc == 0, labels = rc == 0;
    const int32_t *off = f.ctx_offsets, *cids = f.ctx_ids;
    for (int i = 0; i < nf && rc == 0; i++) {
        const plm_qa_feature *ft = &f.features[i];
        const int32_t *ids = b.input_ids + (size_t)i * b.T;
        /* question tokens first, then the window's context tokens, nothing else */
        layout = layout && ft->ctx_pos == nq && ft->len == nq + ft->win_len && b.lengths[i] == ft->len &&
                 !memcmp(ids, f.q_ids, (size_t)nq * sizeof *ids) &&
                 !memcmp(ids + nq, cids + ft->win_start, (size_t)ft->win_len * sizeof *ids);
        int sp = b.start_positions[i], ep = b.end_positions[i];
        bool has =
            off[2 * ft->win_start] <= ans - ctx && off[2 * (ft->win_start + ft->win_len - 1) + 1] >= ans - ctx + 9;
        if (has) {
            inside++;
            int s = ft->win_start + sp - ft->ctx_pos, e = ft->win_start + ep - ft->ctx_pos;
            labels = labels && sp >= ft->ctx_pos && sp <= ep && ep < ft->ctx_pos + ft->win_len &&
                     off[2 * s] == ans - ctx && off[2 * e + 1] == ans - ctx + 9;
        } else {
            outside++;
            labels = labels && sp == 0 && ep == 0;
        }
    }
    TEST_CHECK(layout, "qa_unit_decoder_question_first", "rc %d: a feature is not question + window", rc);
    TEST_CHECK(labels && inside >= 1 && outside >= 1, "qa_unit_decoder_labels",
               "answer labels wrong (%d windows with the answer, %d without)", inside, outside);

    /* the best pair (start nq + 10, end nq + 3) = 10 ends before it starts: the answer is
     * the best valid one, (nq + 2, nq + 3) = 6 */
    float lg[16][64 * 2];
    const float *lp[16];
    for (int j = 0; j < 16; j++) {
        lp[j] = lg[j];
        for (int i = 0; i < 128; i++) lg[j][i] = -10.0f;
    }
    lg[0][2 * 0] = lg[0][2 * 0 + 1] = 9.0f; /* position 0, the "no answer" label: not a candidate */
    lg[0][2 * (nq + 10)] = 5.0f;
    lg[0][2 * (nq + 3) + 1] = 5.0f;
    lg[0][2 * (nq + 2)] = 1.0f;
    plm_qa_answer a = plm_qa_best_answer(&f, 0, lp);
    TEST_CHECK(a.found && a.feature == 0 && a.start_tok == nq + 2 && a.end_tok == nq + 3 && a.score == 6.0f,
               "qa_unit_decoder_end_after_start", "found %d feature %d tokens %d..%d score %g", a.found, a.feature,
               a.start_tok, a.end_tok, a.score);
    plm_task_batch_free(&b);
    plm_qa_free(&f);
}

/* "name_tok" in a static buffer (one per call site use) */
static const char *tname(const char *tok, const char *name) {
    static char buf[4][96];
    static int slot;
    char *p = buf[slot++ % 4];
    snprintf(p, 96, "%s_%s", name, tok);
    return p;
}

static void test_squad(const plm_tokenizer *bert, const char *tokname) {
    plm_squad_set sq = {0};
    char p[1024];
    int rc = 0;
    for (int part = 1; part <= 2 && rc == 0; part++) {
        snprintf(p, sizeof p, "%s/squad-v1.1/dev-v1.1.part%d.json", data_dir(), part);
        rc = plm_squad_read(&sq, p);
    }
    TEST_CHECK(rc == 0 && sq.n == 10570, tname(tokname, "squad_read"), "rc %d n %d %s", rc, sq.n,
               rc ? plm_last_error() : "");
    if (rc) return;
    plm_qa_opts o;
    plm_qa_opts_default(&o);
    plm_qa_features f;
    plm_qa_init(&f, bert, &o);
    double t0 = plm_now();
    rc = plm_qa_add_squad(&f, &sq);
    double t_enc = plm_now() - t0;
    TEST_CHECK(rc == 0 && f.n_examples == sq.n, tname(tokname, "squad_features"), "rc %d %s", rc,
               rc ? plm_last_error() : "");
    if (rc) {
        plm_squad_free(&sq);
        plm_qa_free(&f);
        return;
    }
    long multi = 0;
    for (int ex = 0; ex < f.n_examples; ex++) multi += f.ex_first_feature[ex + 1] - f.ex_first_feature[ex] > 1;

    /* every first window is the tokenizer's own pair encoding, truncation only_second */
    plm_encode_opts eo;
    plm_encode_opts_default(&eo);
    eo.add_special_tokens = true;
    eo.max_length = o.max_seq_length;
    eo.truncation = PLM_TRUNC_ONLY_SECOND;
    plm_encoding enc;
    plm_encoding_init(&enc);
    plm_task_batch b;
    plm_task_batch_init(&b);
    long same = 0, overlap_bad = 0;
    for (int ex = 0; ex < f.n_examples; ex++) {
        const plm_squad_question *q = &sq.qs[ex];
        const char *c = sq.contexts[q->context];
        int first = f.ex_first_feature[ex];
        const char *qs = q->question;
        while (*qs == ' ') qs++; /* run_qa strips the question's leading spaces */
        plm_tokenizer_encode_full(bert, qs, strlen(qs), c, strlen(c), &eo, &enc);
        plm_qa_batch(&f, &first, 1, 0, &b);
        bool eq = enc.n == b.lengths[0];
        for (int i = 0; i < enc.n && eq; i++)
            eq = enc.ids[i] == b.input_ids[i] && (!f.bert || enc.type_ids[i] == b.token_type_ids[i]);
        same += eq;
        for (int j = first; j + 1 < f.ex_first_feature[ex + 1]; j++) {
            const plm_qa_feature *a = &f.features[j], *bb = &f.features[j + 1];
            if (a->win_start + a->win_len - bb->win_start != o.doc_stride) overlap_bad++;
        }
        const plm_qa_feature *last = &f.features[f.ex_first_feature[ex + 1] - 1];
        if (last->win_start + last->win_len != f.ctx_tok_start[q->context + 1] - f.ctx_tok_start[q->context])
            overlap_bad++;
    }
    TEST_CHECK(same == f.n_examples, tname(tokname, "squad_first_window_is_pair_encoding"), "%ld of %d match", same,
               f.n_examples);
    TEST_CHECK(overlap_bad == 0, tname(tokname, "squad_windows_stride"), "%ld windows off", overlap_bad);
    plm_encoding_free(&enc);
    plm_task_batch_free(&b);

    /* round trip: one-hot logits at the labelled positions of every window holding the answer */
    float *buf = NULL;
    size_t cap = 0;
    const float *ptrs[64];
    /* An answer "fits" when a window holds it (run_qa labels that window). Of those, an
     * answer whose ends fall inside a token (SQuAD's "gold" in "golden", "5" in "105") can
     * come back only as whole tokens, and one over max_answer_length tokens is never a
     * candidate: both are counted apart; every other one must come back byte-exactly. */
    long fit = 0, recoverable = 0, exact = 0, subtoken = 0, too_long = 0, not_found = 0;
    double em = 0, f1 = 0;
    int shown = 0;
    t0 = plm_now();
    for (int ex = 0; ex < f.n_examples; ex++) {
        int first = f.ex_first_feature[ex], nf = f.ex_first_feature[ex + 1] - first;
        const plm_squad_question *q = &sq.qs[ex];
        const char *ctx = sq.contexts[q->context];
        const char *gold = q->answer_texts[0];
        size_t glen = strlen(gold);
        bool inside = false, over = false, aligned = false;
        const int32_t *off = f.ctx_offsets + 2 * f.ctx_tok_start[q->context];
        float *lg = scratch(&buf, &cap, (size_t)nf * (size_t)f.max_len * 2);
        memset(lg, 0, (size_t)nf * (size_t)f.max_len * 2 * sizeof *lg);
        for (int j = 0; j < nf && j < 64; j++) {
            const plm_qa_feature *ft = &f.features[first + j];
            float *row = lg + (size_t)j * (size_t)f.max_len * 2;
            ptrs[j] = row;
            if (ft->start_position == 0) continue;
            inside = true;
            row[2 * ft->start_position] = 1.0f;
            row[2 * ft->end_position + 1] = 1.0f;
            over |= ft->end_position - ft->start_position + 1 > o.max_answer_length;
            int s = ft->win_start + ft->start_position - ft->ctx_pos,
                e = ft->win_start + ft->end_position - ft->ctx_pos;
            aligned = off[2 * s] == q->answer_starts[0] && off[2 * e + 1] == q->answer_starts[0] + (int)glen;
        }
        if (!inside) continue;
        fit++;
        subtoken += !aligned;
        too_long += aligned && over;
        if (!aligned || over) continue;
        recoverable++;
        plm_qa_answer a = plm_qa_best_answer(&f, ex, ptrs);
        char pred[4096] = "";
        if (a.found) {
            size_t len = (size_t)(a.end - a.start);
            if (len >= sizeof pred) len = sizeof pred - 1;
            memcpy(pred, ctx + a.start, len);
            pred[len] = 0;
        } else {
            not_found++;
        }
        bool ok = a.found && strlen(pred) == glen && memcmp(pred, gold, glen) == 0;
        exact += ok;
        if (!ok && shown++ < 10) printf("squad mismatch %s: gold \"%s\" pred \"%s\"\n", q->id, gold, pred);
        em += plm_squad_exact_max(pred, q->answer_texts, (size_t)q->n_answers);
        f1 += plm_squad_f1_max(pred, q->answer_texts, (size_t)q->n_answers);
    }
    double t_post = plm_now() - t0;
    double EM = recoverable ? 100.0 * em / (double)recoverable : NAN,
           F1 = recoverable ? 100.0 * f1 / (double)recoverable : NAN;
    printf("squad dev %s: %d questions, %d features (%ld questions with > 1 window), %ld answers labelled, %ld fit "
           "a window: %ld end inside a token, %ld over max_answer_length, %ld recoverable, %ld round-trip exactly, "
           "%ld no span; EM %.4f F1 %.4f (encode %.2fs, postprocess %.2fs)\n",
           tokname, f.n_examples, f.n_features, multi, f.n_answers_labelled, fit, subtoken, too_long, recoverable,
           exact, not_found, EM, F1, t_enc, t_post);
    TEST_CHECK(fit == f.n_answers_inside && fit > 0, tname(tokname, "squad_answers_fit"), "%ld vs %ld", fit,
               f.n_answers_inside);
    TEST_CHECK(recoverable > 0 && exact == recoverable, tname(tokname, "squad_roundtrip_exact"),
               "%ld of %ld answers round-trip", exact, recoverable);
    TEST_CHECK(EM == 100.0 && F1 == 100.0, tname(tokname, "squad_em_f1_100"), "EM %.4f F1 %.4f", EM, F1);
    free(buf);
    plm_qa_free(&f);
    plm_squad_free(&sq);
}

int main(void) {
    plm_tokenizer *bert = load_bert();
    TEST_CHECK(bert != NULL, "load_bert_vocab", "%s", plm_last_error());
    plm_tokenizer *gpt2 = load_gpt2();
    TEST_CHECK(gpt2 != NULL, "load_gpt2_vocab", "%s", plm_last_error());
    if (!bert || !gpt2) TEST_EXIT();
    test_alignment_unit(bert);
    test_conll(bert, "bert");
    test_conll(gpt2, "gpt2");
    test_brown(bert);
    test_qa_unit(bert);
    test_qa_unit_decoder(gpt2);
    test_squad(bert, "bert");
    test_squad(gpt2, "gpt2");
    plm_tokenizer_free(bert);
    plm_tokenizer_free(gpt2);
    TEST_EXIT();
}
