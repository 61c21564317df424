/* test_finetune.c - the fine-tuning loop's determinism: the per-epoch order is a
 * permutation that depends on (seed, epoch) only, and two runs with one seed give the
 * same model and the same predictions bit for bit (another seed does not). A tiny
 * random-init BERT and a WordPiece tokenizer trained on data/demo keep it fast. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "model/model.h"
#include "model/model_io.h"
#include "test.h"
#include "train/finetune.h"

static bool is_permutation(const int *o, int n) {
    char *seen = calloc((size_t)n, 1);
    bool ok = true;
    for (int i = 0; i < n && ok; i++) ok = o[i] >= 0 && o[i] < n && !seen[o[i]]++;
    free(seen);
    return ok;
}

static void test_epoch_order(void) {
    enum { N = 1000 };
    static int a[N], b[N], c[N], d[N];
    plm_ft_epoch_order(a, N, 42, 0);
    plm_ft_epoch_order(b, N, 42, 0);
    plm_ft_epoch_order(c, N, 42, 1);
    plm_ft_epoch_order(d, N, 43, 0);
    TEST_CHECK(is_permutation(a, N) && is_permutation(c, N), "order_is_permutation", "not a permutation");
    TEST_CHECK(!memcmp(a, b, sizeof a), "order_same_seed_same_epoch", "orders differ");
    TEST_CHECK(memcmp(a, c, sizeof a) != 0, "order_differs_by_epoch", "epochs 0 and 1 have one order");
    TEST_CHECK(memcmp(a, d, sizeof a) != 0, "order_differs_by_seed", "seeds 42 and 43 have one order");
    int one = -1;
    plm_ft_epoch_order(&one, 1, 7, 3);
    TEST_CHECK(one == 0, "order_single", "got %d", one);
}

/* A toy sentiment set: "good"/"bad" words decide the label, so a tiny model learns it. */
static char *toy_tsv(int n, uint64_t seed) {
    const char *pos[] = {"good", "great", "fine", "happy"}, *neg[] = {"bad", "awful", "poor", "sad"},
               *fill[] = {"the", "movie", "was", "a", "story", "and", "very", "plot"};
    size_t cap = 64 + (size_t)n * 96, len = 0;
    char *buf = malloc(cap);
    len += (size_t)snprintf(buf, cap, "sentence\tlabel\n");
    uint64_t s = seed;
    for (int i = 0; i < n; i++) {
        int y = i % 2;
        for (int w = 0; w < 6; w++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            unsigned r = (unsigned)(s >> 33);
            const char *word = w == 3 ? (y ? pos[r % 4] : neg[r % 4]) : fill[r % 8];
            len += (size_t)snprintf(buf + len, cap - len, "%s%s", w ? " " : "", word);
        }
        len += (size_t)snprintf(buf + len, cap - len, "\t%d\n", y);
    }
    return buf;
}

static plm_model *tiny_model(const plm_tokenizer *tok, uint64_t seed) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = plm_tokenizer_vocab_size(tok);
    c.hidden_size = 32;
    c.num_hidden_layers = 1;
    c.num_attention_heads = 2;
    c.intermediate_size = 64;
    c.max_position_embeddings = 32;
    c.pad_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    plm_model_spec s;
    plm_model_spec_default(&s, &c);
    s.num_heads = 0;
    plm_model_spec_add_head(&s, PLM_HEAD_SEQ_CLS, 2);
    s.backbone[0].num_labels = 2;
    return plm_model_create_spec(&s, seed);
}

/* Fine-tunes a fresh model (init seed 1) with run seed `seed` into dir; returns the dev
 * predictions' logits (argmax labels would hide small differences). */
static float *run(const plm_tokenizer *tok, const plm_dataset *tr, const plm_dataset *dev, const plm_ft_task *t,
                  uint64_t seed, const char *dir, int *rc) {
    plm_model *m = tiny_model(tok, 1);
    plm_ft_args a;
    plm_ft_args_default(&a);
    a.output_dir = dir;
    a.train_batch_size = 8;
    a.max_seq_length = 16;
    a.num_train_epochs = 3; /* 3 epochs: three different orders */
    a.opt.learning_rate = 1e-3f;
    a.quiet = true;
    a.seed = seed;
    *rc = plm_finetune(m, tok, tr, dev, t, &a, NULL);
    plm_collate_opts co;
    plm_ft_collate_opts(&co, tok, 16);
    float *v = malloc((size_t)dev->n * sizeof *v);
    int *l = malloc((size_t)dev->n * sizeof *l);
    /* "predictions file": the regression-style raw value of logit 0 and the labels */
    if (*rc == 0) *rc = plm_ft_predict(m, tok, dev, &co, 16, l, v, NULL);
    free(l);
    plm_model_free(m);
    return v;
}

static void test_same_seed_same_predictions(void) {
    const char *files[] = {"data/demo/Carroll__Alice_s_Adventures_in_Wonderland.txt"};
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    to.vocab_size = 300;
    to.lowercase = true;
    const char *sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    to.special_tokens = sp;
    to.n_special = 5;
    plm_tokenizer *tok = plm_tokenizer_train_wordpiece(files, 1, &to);
    TEST_CHECK(tok != NULL, "tokenizer", "%s", plm_last_error());
    if (!tok) return;
    char *tr_s = toy_tsv(96, 1), *dev_s = toy_tsv(40, 2);
    plm_table_spec spec = {.format = PLM_FORMAT_TSV, .text_a = "sentence", .label = "label"};
    plm_dataset tr, dev;
    int ok = plm_dataset_parse(&tr, "train.tsv", tr_s, strlen(tr_s), &spec, NULL) == 0 &&
             plm_dataset_parse(&dev, "dev.tsv", dev_s, strlen(dev_s), &spec, &tr) == 0;
    TEST_CHECK(ok, "toy_data", "%s", plm_last_error());
    if (!ok) return;
    plm_ft_task t = {.name = "toy",
                     .type = PLM_TASK_CLASSIFICATION,
                     .num_labels = 2,
                     .labels = (const char *const *)tr.labels,
                     .metrics = {"accuracy", NULL}};
    char tmpl[] = "/tmp/plm_ft_XXXXXX", d1[256], d2[256], d3[256];
    char *root = mkdtemp(tmpl);
    snprintf(d1, sizeof d1, "%s/a", root);
    snprintf(d2, sizeof d2, "%s/b", root);
    snprintf(d3, sizeof d3, "%s/c", root);
    int r1, r2, r3;
    float *p1 = run(tok, &tr, &dev, &t, 42, d1, &r1), *p2 = run(tok, &tr, &dev, &t, 42, d2, &r2),
          *p3 = run(tok, &tr, &dev, &t, 43, d3, &r3);
    TEST_CHECK(r1 == 0 && r2 == 0 && r3 == 0, "runs_finish", "rc %d %d %d: %s", r1, r2, r3, plm_last_error());
    TEST_CHECK(!memcmp(p1, p2, (size_t)dev.n * sizeof *p1), "same_seed_same_predictions", "logits differ");
    TEST_CHECK(memcmp(p1, p3, (size_t)dev.n * sizeof *p1) != 0, "other_seed_other_predictions", "seeds agree");
    char f1[300], f2[300];
    snprintf(f1, sizeof f1, "%s/model.safetensors", d1);
    snprintf(f2, sizeof f2, "%s/model.safetensors", d2);
    size_t n1 = 0, n2 = 0;
    char *b1 = plm_read_file(f1, &n1), *b2 = plm_read_file(f2, &n2);
    TEST_CHECK(b1 && b2 && n1 == n2 && !memcmp(b1, b2, n1), "same_seed_same_model_file", "model files differ");
    free(b1);
    free(b2);
    free(p1);
    free(p2);
    free(p3);
    plm_remove_tree(root);
    plm_dataset_free(&tr);
    plm_dataset_free(&dev);
    free(tr_s);
    free(dev_s);
    plm_tokenizer_free(tok);
}

int main(void) {
    test_epoch_order();
    test_same_seed_same_predictions();
    TEST_EXIT();
}
