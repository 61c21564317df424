/* test_learning.c - the loss really falls. On tinyshakespeare (../shared/data):
 * a small decoder's validation loss ends clearly below the unigram cross-entropy of
 * the data, and a small encoder's masked-token accuracy rises well above the rate of
 * always guessing the most frequent token. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "data/corpus.h"
#include "model/model.h"
#include "test.h"
#include "train/trainer.h"

static const char *corpus = "../shared/data/tinyshakespeare/input.txt";

int main(void) {
    if (test_sanitized()) {
        printf("SKIP learning: too slow under the sanitizers\n");
        return 0;
    }
    if (access(corpus, R_OK) != 0) {
        printf("FAIL learning: %s not found (tests read ../shared/data)\n", corpus);
        return 1;
    }
    const char *specials[] = {"<|endoftext|>", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"};
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    to.vocab_size = 1024;
    to.special_tokens = specials;
    to.n_special = 6;
    to.show_progress = false;
    plm_tokenizer *tok = plm_tokenizer_train_bpe(&corpus, 1, &to);
    TEST_CHECK(tok != NULL, "learning_tokenizer", "%s", plm_last_error());
    if (!tok) TEST_EXIT();
    plm_token_stream all;
    int eos = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    TEST_CHECK(plm_corpus_tokenize(tok, &corpus, 1, eos, &all, 0) == 0, "learning_corpus", "%s", plm_last_error());
    size_t nv = all.n / 10;
    plm_token_stream train = {all.ids, all.n - nv}, valid = {all.ids + all.n - nv, nv};
    int V = plm_tokenizer_vocab_size(tok);

    /* baselines from training-token counts: unigram cross-entropy and majority rate */
    double *cnt = plm_calloc((size_t)V, sizeof(double));
    for (size_t i = 0; i < train.n; i++) cnt[train.ids[i]] += 1;
    double unigram = 0, maxc = 0;
    for (size_t i = 0; i < valid.n; i++) unigram -= log((cnt[valid.ids[i]] + 1) / ((double)train.n + V));
    unigram /= (double)valid.n;
    for (int v = 0; v < V; v++) maxc = fmax(maxc, cnt[v]);
    double majority = maxc / (double)train.n;

    char dir[] = "/tmp/plm_learn_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    for (int obj = 0; obj < 2; obj++) {
        plm_config c;
        plm_config_default(&c, obj ? PLM_ARCH_BERT : PLM_ARCH_GPT2);
        c.vocab_size = V;
        c.hidden_size = 128;
        c.num_hidden_layers = 2;
        c.num_attention_heads = 4;
        c.intermediate_size = 512;
        c.max_position_embeddings = 128;
        c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
        c.pad_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
        plm_model *m = plm_model_create(&c, 3);
        plm_train_args a;
        plm_train_args_default(&a);
        a.output_dir = dir;
        a.objective = obj ? PLM_OBJ_MLM : PLM_OBJ_CLM;
        a.per_device_train_batch_size = 16;
        a.max_seq_length = 64;
        a.max_steps = obj ? 800 : 400;
        a.opt.learning_rate = obj ? 1e-3f : 3e-3f;
        a.warmup_steps = 40;
        a.eval_steps = 0;
        a.eval_batches = 50;
        a.quiet = true;
        int rc = plm_train(m, tok, &train, &valid, &a);
        TEST_CHECK(rc == 0, obj ? "learning_mlm_train" : "learning_clm_train", "%s", plm_last_error());
        plm_vocab_info vi;
        plm_vocab_info_init(&vi, tok);
        plm_objective_opts oo;
        plm_objective_opts_default(&oo);
        plm_dataloader d;
        plm_dataloader_init(&d, &valid, a.objective, &oo, &vi, 64, 11, false);
        plm_eval_result e = plm_evaluate(m, &d, 16, 50, !obj);
        if (!obj) {
            printf("# clm: validation loss %.3f vs unigram cross-entropy %.3f (nats/token)\n", e.loss, unigram);
            TEST_CHECK(e.loss < 0.8 * unigram, "learning_clm_beats_unigram", "val loss %.3f, unigram %.3f", e.loss,
                       unigram);
        } else {
            printf("# mlm: masked accuracy %.3f vs majority-token rate %.3f\n", e.accuracy, majority);
            TEST_CHECK(e.accuracy > 1.6 * majority && e.accuracy > majority + 0.05, "learning_mlm_beats_majority",
                       "accuracy %.3f, majority %.3f", e.accuracy, majority);
        }
        plm_dataloader_free(&d);
        plm_vocab_info_free(&vi);
        plm_model_free(m);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    free(cnt);
    plm_token_stream_free(&all);
    plm_tokenizer_free(tok);
    TEST_EXIT();
}
