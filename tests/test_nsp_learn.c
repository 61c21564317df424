/* test_nsp_learn.c - MLM + NSP (BertForPreTraining: pooler + seq_relationship, loss MLM +
 * NSP, the objective `plm pretrain --objective mlm+nsp` runs) learns next-sentence
 * prediction on real text from ../shared/data (or $PLM_DATA; missing data fails), from
 * scratch, to a held-out NSP accuracy well above chance.
 *
 * Data: three books of different registers, each one document: the King James Old
 * Testament, tinyshakespeare and Moby-Dick. From each, 200 KB (past the front matter) for
 * training and the next 80 KB held out; the held-out slices form their own corpus, so
 * every held-out pair (A, B and a random B alike) is text the model never saw. A
 * byte-level BPE of 1024 tokens is trained on the training slices. NSP's random B comes
 * from another document, here another book: what the model can learn is BERT's "topic
 * shift", whether A and B share vocabulary and register.
 *
 * Model and run: BERT, pre-LN, 1 layer, width 64, 4 heads, intermediate 256, T 64, no
 * dropout; batch 32, AdamW lr 1e-3 (constant), clip 1, mlm_probability 0.3, 1000 steps.
 * Asserts: held-out NSP accuracy > p + max(0.08, 6 standard errors sqrt(p (1 - p) / n))
 * on n >= 500 held-out pairs (about 1,700 here), p the better of the majority label and
 * a baseline that reads lengths only (the best threshold on |A|, |B|, |A| + |B| or B's
 * share, fitted on the training pairs). The pair builder leaked the label through
 * lengths: a chunk of one long sentence cut at a random token has the rest of that
 * sentence as its "next" B (a long A leaves a short B) and a random B was whole
 * sentences of any length; on the early State of the Union addresses (long sentences
 * against T 64) a threshold on |A| scored 0.584 (chosen on the 746 held-out pairs), and a
 * 2-layer model sat at 0.57-0.58 there from step 100 to 300, i.e. it learned the length.
 * pairs.c now gives such a random B the next one's length (test_pairs.c checks it).
 *
 * This test: 0.689 on 1,734 held-out pairs (majority 0.510, length rule 0.497, standard
 * error 0.012, bar 0.590) after 1000 steps, about 13 CPU-seconds; seeds 1-7 (PLM_NSP_SEED,
 * model and loaders): 0.689-0.808 on 1,734-1,772 pairs, length rule 0.497-0.520, bars
 * 0.584-0.600 (PLM_NSP_STEPS and PLM_NSP_SEED set the steps and the seed). Before the
 * length fix seeds 1-7 gave 0.718-0.782 (0.764 for seed 5), the length rule 0.499-0.527.
 *
 * What issue 8 measured on the way, before the length fix (held-out NSP accuracy, batch
 * 32; the 3 books, 60 KB each for training and the next 20 KB held out: 428 pairs,
 * standard error 0.024; where it says 200 KB, 50 KB held out: 1,064 pairs, majority
 * 0.513, standard error 0.015):
 *  - From scratch every configuration first sits at chance, while MLM is on its unigram
 *    plateau, and leaves chance when MLM leaves it. On the plateau the gradient NSP sends
 *    into the body (embeddings + layers) is 10-100x smaller than MLM's (norm 0.004-0.04
 *    against 0.4, 2 layers, steps 50-350), and AdamW's per-parameter scale is set by
 *    MLM's; by step 500 it matches it (1.1 against 1.0). The pooler's tanh is not
 *    saturated (under 1% of |pooled| > 0.95; mean |pooled| 0.1 on the plateau).
 *  - 2 layers, 4 heads, mlm_probability 0.15 (test_pairs.c's model): 0.495-0.505 to
 *    step 500, then 0.554, 0.659, 0.748, 0.818 at 600-1000. The 8 sources of issue 8's
 *    first attempt (40 KB, one document each; 768 pairs): 0.540 at 600. lr 2e-3 / 3e-3:
 *    0.505 at 800. 300 CLM steps first (causal, then MLM + NSP): 0.647 100 steps after the
 *    switch, 0.757 after 500, but a CLM step costs several MLM steps (the LM head on every
 *    position).
 *  - mlm_probability 0.3 (more masked positions, more MLM signal per step; the recipe of
 *    docs/pretraining-pays.md): leaves chance after 300-400 steps (0.790 at 800); 0.4 and
 *    0.5 no faster (0.776, 0.743 at 800); T 32 0.703 at 1200; a 512-token BPE 0.721 at 800.
 *    2 layers with 2 heads, five seeds: 0.759-0.832 at 800; with 200 KB per book 0.737 and
 *    0.753 at 800 (two seeds), lr 5e-4 0.755, 1.5e-3 0.635, a fourth book (Darwin) 0.639.
 *  - 1 layer (this test's model), 200 KB per book: half a step's cost, learns as fast per
 *    step: eight seeds 0.712-0.782 at 1000 steps, 0.730-0.822 at 1200. Variants at 1000
 *    steps: mlm_probability 0.15 0.717; batch 16 for 2000 steps 0.699; a trained 1024
 *    WordPiece 0.658; bert-base-uncased's WordPiece (30,522) 0.733 at about 4x the cost;
 *    T 128 0.870 (0.720 at 400) at about 2x the cost per step; 400 MLM-only steps (no
 *    pairs) first, then 600 MLM + NSP: 0.766, no better than MLM + NSP throughout.
 *  - Not a cue of the pair layout: held-out B segments start a sentence about as often
 *    after "next" (0.43) as after "random" (0.40); the rule "B starts a sentence ->
 *    random" scores 0.483. On ten Gutenberg novels as documents (one register) a 2-layer
 *    model stayed at chance for 1000 steps (test_pairs.c). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "data/dataloader.h"
#include "model/model.h"
#include "test.h"
#include "tokenizer/tokenizer.h"
#include "train/adamw.h"
#include "train/trainer.h"

static const char *data_dir(void) {
    const char *d = getenv("PLM_DATA");
    return d ? d : "../shared/data";
}

/* (file, bytes of front matter skipped) */
static const struct {
    const char *path;
    size_t skip;
} books[] = {
    {"kjv/kjv_old_testament.txt", 20000},
    {"tinyshakespeare/input.txt", 0},
    {"moby-dick/data.txt", 20000},
};
enum { NBOOKS = sizeof books / sizeof *books, TRAIN_BYTES = 200000, HELD_OUT_BYTES = 80000 };

/* the first line start at or after p */
static size_t line_start(const char *t, size_t n, size_t p) {
    while (p > 0 && p < n && t[p - 1] != '\n') p++;
    return PLM_MIN(p, n);
}

/* Writes the training slice and the held-out slice of a book (cut at line starts, the
 * held-out one right after the training one). Returns 0, or -1 with the error set. */
static int write_slices(const char *rel, size_t skip, const char *train_out, const char *held_out) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", data_dir(), rel);
    size_t n;
    char *t = plm_read_file(path, &n);
    if (!t || n < skip + TRAIN_BYTES + HELD_OUT_BYTES) {
        plm_error("%s missing or shorter than %d bytes (tests read ../shared/data or $PLM_DATA)", path,
                  (int)(skip + TRAIN_BYTES + HELD_OUT_BYTES));
        free(t);
        return -1;
    }
    size_t a = line_start(t, n, skip), b = line_start(t, n, skip + TRAIN_BYTES),
           c = line_start(t, n, skip + TRAIN_BYTES + HELD_OUT_BYTES);
    int rc = 0;
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(k ? held_out : train_out, "wb");
        size_t from = k ? b : a, len = k ? c - b : b - a;
        if (!f || fwrite(t + from, 1, len, f) != len) rc = -1;
        if (f && fclose(f) != 0) rc = -1;
    }
    if (rc != 0) plm_error("cannot write the slices of %s", path);
    free(t);
    return rc;
}

/* A baseline that reads lengths only: the best threshold rule on one of |A|, |B|,
 * |A| + |B| and B's share of the pair (in 64ths), fitted on the pairs of fit and scored on
 * those of eval. The pair builder leaks some of the label through lengths: a "next" B is
 * the rest of A's chunk (a long A leaves a short B), a random B is gathered to fill the
 * target whatever A is, and truncate_seq_pair then trims differently. */
static double length_rule_accuracy(const plm_dataloader *fit, const plm_dataloader *eval, const char **feature) {
    enum { NF = 4, NV = 129 };
    static const char *names[NF] = {"|A|", "|B|", "|A|+|B|", "B's share"};
    long cnt[2][NF][NV][2];
    memset(cnt, 0, sizeof cnt);
    long total[2] = {0, 0};
    for (int part = 0; part < 2; part++) {
        const plm_dataloader *d = part ? eval : fit;
        for (size_t w = 0; w < d->num_windows; w++) {
            const plm_window *x = plm_dataloader_window(d, w);
            int a = (int)PLM_MIN(x->a_len, NV - 1u), b = (int)PLM_MIN(x->b_len, NV - 1u);
            int f[NF] = {a, b, PLM_MIN(a + b, NV - 1), a + b ? 64 * b / (a + b) : 0};
            for (int k = 0; k < NF; k++) cnt[part][k][f[k]][x->label == 1]++;
            total[part]++;
        }
    }
    /* rule (k, t, dir): label 1 iff (f >= t) == dir */
    double best_fit = -1.0, held_out = NAN;
    for (int k = 0; k < NF; k++)
        for (int t = 0; t <= NV; t++)
            for (int dir = 0; dir < 2; dir++) {
                double acc[2];
                for (int part = 0; part < 2; part++) {
                    long right = 0;
                    for (int v = 0; v < NV; v++) right += cnt[part][k][v][(v >= t) == dir];
                    acc[part] = total[part] ? (double)right / (double)total[part] : NAN;
                }
                if (acc[0] > best_fit) best_fit = acc[0], held_out = acc[1], *feature = names[k];
            }
    return held_out;
}

/* Trains the model on MLM + NSP for `steps` steps; returns the held-out NSP accuracy
 * (*n pairs, *majority the share of the majority label among them). */
static double train_and_evaluate(const plm_token_stream *train, const plm_token_stream *valid, const plm_vocab_info *v,
                                 int steps, uint64_t seed, double *majority, double *length_rule, long *n) {
    enum { B = 32, T = 64 };
    const float lr = 1e-3f;
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.pair = PLM_PAIR_NSP;
    o.mlm_probability = 0.3f;
    plm_dataloader dl, vdl;
    *majority = *length_rule = NAN, *n = 0;
    if (plm_dataloader_init(&dl, train, PLM_OBJ_MLM, &o, v, T, seed, true) != 0) return NAN;
    if (plm_dataloader_init(&vdl, valid, PLM_OBJ_MLM, &o, v, T, seed + 1, false) != 0) {
        plm_dataloader_free(&dl);
        return NAN;
    }
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = v->vocab_size, c.hidden_size = 64, c.num_hidden_layers = 1, c.num_attention_heads = 4;
    c.intermediate_size = 256, c.max_position_embeddings = T, c.pre_layernorm = true;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    plm_model_spec sp;
    plm_model_spec_default(&sp, &c);
    plm_model_spec_add_head(&sp, PLM_HEAD_NSP, 2);
    plm_model *m = plm_model_create_spec(&sp, seed);
    plm_model_reserve(m, B, T);
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    plm_adamw_hparams h = plm_adamw_defaults(lr);
    size_t N = (size_t)B * T;
    int32_t *ids = plm_malloc(N * sizeof(int32_t)), *tt = plm_malloc(N * sizeof(int32_t)),
            *lab = plm_malloc(N * sizeof(int32_t)), sl[B];
    uint8_t *am = plm_malloc(N);
    const char *feature = "";
    *length_rule = length_rule_accuracy(&dl, &vdl, &feature); /* the epoch-0 training pairs */
    printf("# held-out accuracy of the best length-only rule (fitted on the training pairs, on %s): %.3f\n", feature,
           *length_rule);
    double t0 = plm_now();
    plm_eval_result e0 = plm_evaluate(m, &vdl, B, 1 << 20, false);
    for (int st = 0; st < steps; st++) {
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
        if (plm_model_run(m, 0, &b, true, 1.0f) != 0) {
            printf("# step %d: %s\n", st, plm_last_error());
            break;
        }
        plm_clip_grad_norm(m, 1.0);
        plm_adamw_step(&opt, m, &h, lr);
    }
    double t_train = plm_now() - t0;
    long ones = 0;
    for (size_t w = 0; w < vdl.num_windows; w++) ones += plm_dataloader_window(&vdl, w)->label == 1;
    *majority = fmax((double)ones, (double)(vdl.num_windows - (size_t)ones)) / (double)vdl.num_windows;
    plm_eval_result e = plm_evaluate(m, &vdl, B, 1 << 20, false);
    *n = e.sequences;
    printf("# %d steps in %.1f s: held-out MLM loss %.3f (%.3f untrained), NSP accuracy %.3f (%.3f untrained) on %ld "
           "pairs\n",
           steps, t_train, e.loss, e0.loss, e.seq_accuracy, e0.seq_accuracy, e.sequences);
    free(ids), free(tt), free(lab), free(am);
    plm_adamw_free(&opt);
    plm_model_free(m);
    plm_dataloader_free(&dl);
    plm_dataloader_free(&vdl);
    return e.seq_accuracy;
}

int main(void) {
    char dir[] = "/tmp/plm_nsp_learn_XXXXXX";
    if (!mkdtemp(dir)) {
        TEST_CHECK(0, "nsp_real_text_data", "mkdtemp failed");
        TEST_EXIT();
    }
    char *tr[NBOOKS], *va[NBOOKS];
    bool ok = true;
    for (int i = 0; i < NBOOKS; i++) {
        tr[i] = plm_malloc(strlen(dir) + 32), va[i] = plm_malloc(strlen(dir) + 32);
        sprintf(tr[i], "%s/train%d.txt", dir, i);
        sprintf(va[i], "%s/held_out%d.txt", dir, i);
        if (ok && write_slices(books[i].path, books[i].skip, tr[i], va[i]) != 0) ok = false;
    }
    TEST_CHECK(ok, "nsp_real_text_data", "%s", plm_last_error());
    plm_tokenizer *tok = NULL;
    plm_vocab_info v = {0};
    plm_token_stream train = {0}, valid = {0};
    if (ok) {
        const char *specials[] = {"[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"};
        plm_tokenizer_train_opts to;
        plm_tokenizer_train_opts_default(&to);
        to.vocab_size = 1024;
        to.special_tokens = specials;
        to.n_special = 5;
        to.show_progress = false;
        tok = plm_tokenizer_train_bpe((const char *const *)tr, NBOOKS, &to);
        TEST_CHECK(tok != NULL, "nsp_real_text_tokenizer", "%s", plm_last_error());
        ok = tok != NULL;
    }
    if (ok) {
        plm_vocab_info_init(&v, tok);
        ok = plm_corpus_tokenize(tok, (const char *const *)tr, NBOOKS, v.sep, &train, 0) == 0 &&
             plm_corpus_tokenize(tok, (const char *const *)va, NBOOKS, v.sep, &valid, 0) == 0;
        TEST_CHECK(ok, "nsp_real_text_corpus", "%s", plm_last_error());
    }
    if (ok) {
        printf("# %d books: %zu training tokens, %zu held-out tokens\n", NBOOKS, train.n, valid.n);
        /* under the sanitizer: the same path for a few steps, no learning asserted */
        const char *st = getenv("PLM_NSP_STEPS"), *sd = getenv("PLM_NSP_SEED");
        int steps = test_sanitized() ? 3 : st ? atoi(st) : 1000;
        double majority, length_rule;
        long n;
        double acc =
            train_and_evaluate(&train, &valid, &v, steps, sd ? strtoull(sd, NULL, 10) : 5, &majority, &length_rule, &n);
        /* the bar: the better of the majority label and the length-only rule, plus
         * max(0.08, 6 standard errors of an accuracy at that level on n pairs) */
        double base = fmax(majority, length_rule), se = n ? sqrt(base * (1.0 - base) / (double)n) : NAN,
               margin = fmax(0.08, 6.0 * se);
        printf("# held-out NSP accuracy %.3f on %ld pairs; majority label %.3f, length-only rule %.3f, standard error "
               "%.4f, bar %.3f\n",
               acc, n, majority, length_rule, se, base + margin);
        TEST_CHECK(n >= 500 && isfinite(acc), "nsp_real_text_held_out", "%ld held-out pairs, accuracy %.3f", n, acc);
        if (test_sanitized())
            printf("# nsp_learns_real_text skipped under the sanitizer (%d training steps only)\n", steps);
        else
            TEST_CHECK(acc > base + margin, "nsp_learns_real_text",
                       "held-out NSP accuracy %.3f on %ld pairs, bar: max(majority %.3f, length rule %.3f) + max(0.08, "
                       "6 x %.4f)",
                       acc, n, majority, length_rule, se);
    }
    plm_token_stream_free(&train);
    plm_token_stream_free(&valid);
    if (tok) {
        plm_vocab_info_free(&v);
        plm_tokenizer_free(tok);
    }
    for (int i = 0; i < NBOOKS; i++) {
        unlink(tr[i]), unlink(va[i]);
        free(tr[i]), free(va[i]);
    }
    rmdir(dir);
    TEST_EXIT();
}
