/* test_t5_learn.c - T5 span corruption learns (plm_train with objective T5 on a T5
 * encoder-decoder). On tinyshakespeare ($PLM_DATA, default ../shared/data), split 90/10,
 * a byte-level BPE tokenizer with 100 sentinels <extra_id_N> at its top:
 *   - the validation span-corruption loss (cross-entropy of the targets: sentinels,
 *     corrupted spans, EOS) after training is far below the untrained model's;
 *   - and clearly below the best unigram model of those very targets (the entropy of
 *     their own token distribution, counted on the validation batches themselves: an
 *     oracle no context-free predictor beats);
 *   - the trained model's checkpoint reloads (T5ForConditionalGeneration) to the same loss.
 * Under the sanitizers: a short run, only "the loss falls". A missing dataset fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "data/corpus.h"
#include "model/model_io.h"
#include "test.h"
#include "train/trainer.h"

enum { B = 16, T = 64, EVAL_BATCHES = 40, EXTRA = 100 };

/* Entropy (nats) of the target tokens of the evaluation batches (what plm_evaluate scores). */
static double unigram_entropy(plm_dataloader *d, int V, long *n_out) {
    int Tt = d->t5_targets_length;
    int32_t *enc = plm_malloc((size_t)B * T * sizeof(int32_t)), *dec = plm_malloc((size_t)B * Tt * sizeof(int32_t));
    int32_t *lab = plm_malloc((size_t)B * Tt * sizeof(int32_t));
    long *count = plm_calloc((size_t)V, sizeof(long)), n = 0;
    plm_dataloader_seek(d, 0, 0);
    int nb = (int)PLM_MIN((size_t)EVAL_BATCHES, (d->num_windows + B - 1) / B);
    for (int i = 0; i < nb; i++) {
        int bs = (int)PLM_MIN((size_t)B, d->num_windows - (size_t)i * B);
        plm_dataloader_next_t5(d, bs, enc, dec, lab);
        for (int k = 0; k < bs * Tt; k++) count[lab[k]]++, n++;
    }
    double h = 0;
    for (int v = 0; v < V; v++)
        if (count[v]) h -= (double)count[v] / n * log((double)count[v] / n);
    free(enc), free(dec), free(lab), free(count);
    *n_out = n;
    return h;
}

int main(void) {
    bool san = test_sanitized();
    const char *data = getenv("PLM_DATA") ? getenv("PLM_DATA") : "../shared/data";
    char corpus_path[1024];
    snprintf(corpus_path, sizeof corpus_path, "%s/tinyshakespeare/input.txt", data);
    const char *corpus = corpus_path;
    if (access(corpus, R_OK) != 0) {
        printf("FAIL t5_learn: %s not found (tests read $PLM_DATA, default ../shared/data)\n", corpus);
        return 1;
    }
    const char *specials[] = {"<|endoftext|>", "[PAD]", "[UNK]"};
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    to.vocab_size = 1024 - EXTRA;
    to.special_tokens = specials;
    to.n_special = 3;
    to.show_progress = false;
    plm_tokenizer *tok = plm_tokenizer_train_bpe(&corpus, 1, &to);
    if (!tok) {
        printf("FAIL t5_learn.tokenizer: %s\n", plm_last_error());
        return 1;
    }
    char name[32];
    for (int k = EXTRA - 1; k >= 0; k--) {
        snprintf(name, sizeof name, "<extra_id_%d>", k);
        plm_tokenizer_add_special(tok, name);
    }
    int V = plm_tokenizer_vocab_size(tok);
    TEST_CHECK(plm_tokenizer_token_to_id(tok, "<extra_id_0>") == V - 1, "t5_learn.sentinels_at_top", "<extra_id_0> %d",
               plm_tokenizer_token_to_id(tok, "<extra_id_0>"));
    plm_token_stream all;
    int eos = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    if (plm_corpus_tokenize(tok, &corpus, 1, eos, &all, 0) != 0) {
        printf("FAIL t5_learn.corpus: %s\n", plm_last_error());
        return 1;
    }
    size_t nv = all.n / 10;
    plm_token_stream train = {all.ids, all.n - nv}, valid = {all.ids + all.n - nv, nv};
    plm_config c;
    plm_config_default(&c, PLM_ARCH_T5);
    c.vocab_size = V;
    c.hidden_size = 64, c.num_attention_heads = 4, c.intermediate_size = 128;
    c.num_hidden_layers = c.num_decoder_layers = 2;
    c.gated_act = true, c.hidden_act = PLM_GELU_TANH; /* v1.1 */
    c.tie_word_embeddings = false;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.pad_token_id = c.decoder_start_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    c.eos_token_id = eos;
    plm_model *m = plm_model_create(&c, 3);
    plm_vocab_info vi;
    plm_vocab_info_init(&vi, tok);
    plm_objective_opts oo;
    plm_objective_opts_default(&oo);
    oo.decoder_start_token_id = c.decoder_start_token_id;
    plm_dataloader d;
    if (!m || plm_dataloader_init(&d, &valid, PLM_OBJ_T5, &oo, &vi, T, 11, false) != 0) {
        printf("FAIL t5_learn.setup: %s\n", plm_last_error());
        return 1;
    }
    plm_model_reserve(m, B, T);
    plm_eval_result e0 = plm_evaluate(m, &d, B, EVAL_BATCHES, false);
    char dir[] = "/tmp/plm_t5_learn_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    plm_train_args a;
    plm_train_args_default(&a);
    a.output_dir = dir;
    a.objective = PLM_OBJ_T5;
    a.obj = oo;
    a.per_device_train_batch_size = B;
    a.max_seq_length = T;
    a.max_steps = san ? 20 : 600;
    a.opt.learning_rate = 3e-3f;
    a.warmup_steps = san ? 5 : 30;
    a.eval_steps = 0;
    a.eval_batches = 5;
    a.quiet = true;
    double t0 = plm_now();
    int rc = plm_train(m, tok, &train, &valid, &a);
    TEST_CHECK(rc == 0, "t5_learn.train", "%s", plm_last_error());
    plm_eval_result e1 = plm_evaluate(m, &d, B, EVAL_BATCHES, false);
    long n = 0;
    double h = unigram_entropy(&d, V, &n);
    printf("# t5 span corruption: validation loss %.3f before, %.3f after %ld steps (%.0f s); unigram entropy of the "
           "same %ld targets %.3f nats; accuracy %.3f\n",
           e0.loss, e1.loss, a.max_steps, plm_now() - t0, n, h, e1.accuracy);
    TEST_CHECK(e1.loss < e0.loss - 1.0, "t5_learn.loss_falls", "%.3f -> %.3f", e0.loss, e1.loss);
    if (!san) {
        TEST_CHECK(e1.tokens == n && e1.loss < h - 0.3, "t5_learn.beats_unigram",
                   "loss %.3f vs unigram entropy %.3f (%ld / %ld tokens)", e1.loss, h, e1.tokens, n);
        plm_model *l = plm_model_load(dir);
        bool same = false;
        if (l && plm_model_reserve(l, B, T) == 0) {
            plm_eval_result e2 = plm_evaluate(l, &d, B, EVAL_BATCHES, false);
            same = e2.loss == e1.loss && !strcmp(plm_model_architecture(l), "T5ForConditionalGeneration");
        }
        TEST_CHECK(same, "t5_learn.checkpoint_reloads_same_loss", "%s", l ? "loss differs" : plm_last_error());
        plm_model_free(l);
    }
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) printf("# could not remove %s\n", dir);
    plm_dataloader_free(&d);
    plm_vocab_info_free(&vi);
    plm_token_stream_free(&all);
    plm_model_free(m);
    plm_tokenizer_free(tok);
    TEST_EXIT();
}
