/* cmd_finetune_tokens.c - `plm finetune / evaluate / predict` for token classification
 * (CoNLL-2003 NER, POS on CoNLL or Brown) and extractive QA (SQuAD v1.1), with
 * run_ner.py's and run_qa.py's options and outputs: entity P/R/F1 or EM/F1, CoNLL
 * column output and SQuAD's predictions.json. cmd_finetune.c hands a command over here
 * (cli_token_task_route) when --task / --task-type or the model's config.json names a
 * token task. The loop itself is train/finetune_tokens.c. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "args.h"
#include "cli.h"
#include "core/common.h"
#include "train/finetune_tokens.h"
#include "model/gemm.h"

/* ---------------------------------------------------------------- routing */

static bool file_exists(const char *p) { return access(p, F_OK) == 0; }

static cJSON *read_config(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = plm_read_file(path, &len);
    if (!text) return NULL;
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o) plm_error("%s: invalid JSON", path);
    return o;
}

static const char *obj_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The kind named by --task / --task-type / a model's plm_task, or -1. */
static int kind_of(const char *task, const char *task_type, const char *model_kind) {
    if (task_type && !strcmp(task_type, "qa")) return PLM_TT_QA;
    if (task_type && !strcmp(task_type, "token-classification")) return PLM_TT_NER;
    if (task && (!strcasecmp(task, "conll2003") || !strcasecmp(task, "ner"))) return PLM_TT_NER;
    if (task && !strcasecmp(task, "pos")) return PLM_TT_POS;
    if (task && (!strcasecmp(task, "squad") || !strcasecmp(task, "squad_v1"))) return PLM_TT_QA;
    if (model_kind && !strcmp(model_kind, "ner")) return PLM_TT_NER;
    if (model_kind && !strcmp(model_kind, "pos")) return PLM_TT_POS;
    if (model_kind && !strcmp(model_kind, "squad")) return PLM_TT_QA;
    return -1;
}

static int cmd_finetune_tokens(int argc, char **argv);
static int cmd_evaluate_tokens(int argc, char **argv);
static int cmd_predict_tokens(int argc, char **argv);

int cli_token_task_route(const char *cmd, int argc, char **argv) {
    const char *task = NULL, *type = NULL, *model = NULL;
    for (int i = 1; i + 1 < argc; i++) {
        if (!strcmp(argv[i], "--task")) task = argv[i + 1];
        if (!strcmp(argv[i], "--task-type")) type = argv[i + 1];
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
    }
    const char *mkind = NULL;
    cJSON *cfg = NULL;
    if (strcmp(cmd, "finetune") != 0 && !task && !type && model && (cfg = read_config(model)))
        mkind = obj_str(cJSON_GetObjectItemCaseSensitive(cfg, "plm_task"), "kind");
    int k = kind_of(task, type, mkind);
    cJSON_Delete(cfg);
    if (k < 0) return -1;
    return !strcmp(cmd, "finetune")   ? cmd_finetune_tokens(argc, argv)
           : !strcmp(cmd, "evaluate") ? cmd_evaluate_tokens(argc, argv)
                                      : cmd_predict_tokens(argc, argv);
}

/* ---------------------------------------------------------------- the task and its data */

typedef struct {
    const char *task, *task_type, *data_dir;
    arg_list train, validation, test;
    int max_train_samples, max_eval_samples;
    int max_seq_length, doc_stride;
} tt_opts;

#define TT_DATA_SPECS(d)                                                                                               \
    {"--task", ARG_STR, &(d).task, "conll2003 (ner), pos (CoNLL's POS column or Brown), squad, or a custom name"},     \
        {"--task-type", ARG_STR, &(d).task_type,                                                                       \
         "custom task: token-classification (CoNLL files) or qa (SQuAD JSON)"},                                        \
        {"--data-dir", ARG_STR, &(d).data_dir,                                                                         \
         "CoNLL-2003 folder (eng.train, eng.testa, eng.testb), a Brown folder, or a SQuAD folder"},                    \
        {"--max-seq-length", ARG_INT, &(d).max_seq_length, "tokens per feature (default 128 tagging, 384 QA)"}, {      \
        "--doc-stride", ARG_INT, &(d).doc_stride, "QA: tokens shared by consecutive windows (default 128)"             \
    }

/* Everything read for one command. */
typedef struct {
    plm_tt_task t;
    plm_tagged_set sets[3]; /* tagging: what was read (train, dev, test) */
    bool have_set[3];
    plm_tagged_set views[2]; /* Brown: train / dev views of sets[0] (sentences only) */
    plm_squad_set squad[3];
    char **model_tags; /* evaluate / predict: the model's id2label */
    int n_model_tags;
} tt_ctx;

static void tt_ctx_free(tt_ctx *c) {
    for (int i = 0; i < 3; i++) {
        if (c->have_set[i]) plm_tagged_set_free(&c->sets[i]);
        plm_squad_free(&c->squad[i]);
    }
    for (int i = 0; i < 2; i++) free(c->views[i].sents);
    for (int i = 0; i < c->n_model_tags; i++) free(c->model_tags[i]);
    free(c->model_tags);
}

static bool is_brown_dir(const char *dir) {
    char p[4200];
    snprintf(p, sizeof p, "%s/ca01", dir);
    return file_exists(p);
}

/* dir/name for the first name that exists (NULL-terminated list), else NULL. */
static const char *find_in(const char *dir, const char *const *names, char *buf, size_t cap) {
    for (int i = 0; names[i]; i++) {
        snprintf(buf, cap, "%s/%s", dir, names[i]);
        if (file_exists(buf)) return buf;
    }
    return NULL;
}

static void task_defaults(tt_ctx *c, int kind, const char *name) {
    c->t.kind = (plm_tt_kind)kind;
    c->t.name = name ? name : kind == PLM_TT_QA ? "squad" : kind == PLM_TT_POS ? "pos" : "conll2003";
    if (name && !strcasecmp(name, "ner")) c->t.name = "conll2003";
    if (kind == PLM_TT_NER) {
        c->t.metrics[0] = "f1";
        c->t.metrics[1] = "precision";
        c->t.metrics[2] = "recall";
    } else if (kind == PLM_TT_POS) {
        c->t.metrics[0] = "accuracy";
    } else {
        c->t.metrics[0] = "f1";
        c->t.metrics[1] = "exact_match";
    }
    plm_tagging_opts_default(&c->t.tag_opts);
    plm_qa_opts_default(&c->t.qa_opts);
}

/* Reads SQuAD files (each appended) into s. */
static int read_squad(plm_squad_set *s, const arg_list *files) {
    memset(s, 0, sizeof *s);
    for (int i = 0; i < files->n; i++)
        if (plm_squad_read(s, files->items[i]) != 0) return -1;
    return 0;
}

/* The SQuAD files of a folder: train-v1.1*.json / dev-v1.1*.json (names sorted). */
static void squad_dir_files(const char *dir, const char *prefix, arg_list *out, char store[][4200]) {
    static const char *const suffixes[] = {".json", ".part1.json", ".part2.json", ".du2017-test-subset.json"};
    for (int i = 0; i < 4 && out->n < 3; i++) {
        snprintf(store[out->n], 4200, "%s/%s%s", dir, prefix, suffixes[i]);
        if (file_exists(store[out->n])) {
            out->items = plm_realloc(out->items, (size_t)(out->n + 1) * sizeof *out->items);
            out->items[out->n] = store[out->n];
            out->n++;
        }
    }
}

/* One CoNLL / Brown split: the files given, or the folder's file of that split. */
static int read_tagged(tt_ctx *c, const tt_opts *d, int split, const arg_list *files, const plm_tagged_set *train) {
    char buf[4200];
    bool pos = c->t.kind == PLM_TT_POS;
    const char *path = files->n ? files->items[0] : NULL;
    if (!path && d->data_dir && !is_brown_dir(d->data_dir)) {
        static const char *const names[3][3] = {
            {"eng.train", "train.txt", NULL}, {"eng.testa", "valid.txt", NULL}, {"eng.testb", "test.txt", NULL}};
        path = find_in(d->data_dir, names[split], buf, sizeof buf);
        if (!path) {
            plm_error("%s: no %s file (%s or %s)", d->data_dir,
                      split == 0   ? "train"
                      : split == 1 ? "dev"
                                   : "test",
                      names[split][0], names[split][1]);
            return -1;
        }
    }
    if (!path) {
        plm_error("no data: --data-dir DIR or --%s FILE", split == 0 ? "train" : split == 1 ? "validation" : "test");
        return -1;
    }
    if (files->n > 1 && !pos) {
        plm_error("--%s takes one CoNLL file", split == 0 ? "train" : split == 1 ? "validation" : "test");
        return -1;
    }
    c->have_set[split] = true;
    return plm_conll_read(&c->sets[split], path, train, pos);
}

/* Brown: every 10th sentence (the 10th, 20th, ...) is dev, the rest train. */
static void brown_split(tt_ctx *c) {
    const plm_tagged_set *all = &c->sets[0];
    for (int v = 0; v < 2; v++) {
        c->views[v] = *all;
        c->views[v].sents = plm_malloc((size_t)(all->n + 1) * sizeof *all->sents);
        c->views[v].n = 0;
        c->views[v].n_tokens = 0;
    }
    for (int i = 0; i < all->n; i++) {
        plm_tagged_set *v = &c->views[i % 10 == 9];
        v->sents[v->n++] = all->sents[i];
        v->n_tokens += all->sents[i].n;
    }
}

/* Re-numbers the tags of a set read on its own to the model's id2label; a tag the model
 * does not know is an error at its line. */
static int remap_tags(tt_ctx *c, plm_tagged_set *s, const char *file) {
    bool pos = c->t.kind == PLM_TT_POS && s->pos_tags;
    char **names = pos ? s->pos_tags : s->tags;
    int n_names = pos ? s->n_pos : s->n_tags;
    int *map = plm_malloc((size_t)PLM_MAX(n_names, 1) * sizeof *map);
    for (int i = 0; i < n_names; i++) {
        map[i] = -1;
        for (int k = 0; k < c->n_model_tags; k++)
            if (!strcmp(names[i], c->model_tags[k])) map[i] = k;
    }
    for (int i = 0; i < s->n; i++) {
        plm_tagged_sentence *st = &s->sents[i];
        int *tags = pos ? st->pos : st->tags;
        for (int w = 0; w < st->n; w++) {
            if (map[tags[w]] < 0) {
                /* CoNLL: one word per line; Brown: one sentence per line */
                int line = st->line + (c->t.kind == PLM_TT_POS && !s->pos_tags ? 0 : w);
                plm_error("%s:%d: unknown tag '%.40s' (not among the model's %d labels)", file, line, names[tags[w]],
                          c->n_model_tags);
                free(map);
                return -1;
            }
            tags[w] = map[tags[w]];
        }
    }
    free(map);
    return 0;
}

/* ---------------------------------------------------------------- plm finetune */

static void apply_lengths(tt_ctx *c, const tt_opts *d, const plm_model *m) {
    int P = m->config.max_position_embeddings;
    if (c->t.kind == PLM_TT_QA) {
        if (d->max_seq_length > 0) c->t.qa_opts.max_seq_length = d->max_seq_length;
        if (d->doc_stride > 0) c->t.qa_opts.doc_stride = d->doc_stride;
        if (c->t.qa_opts.max_seq_length > P) {
            fprintf(stderr, "plm: warning: --max-seq-length %d is beyond the model's %d positions; using %d\n",
                    c->t.qa_opts.max_seq_length, P, P);
            c->t.qa_opts.max_seq_length = P;
        }
    } else {
        if (d->max_seq_length > 0) c->t.tag_opts.max_seq_length = d->max_seq_length;
        if (c->t.tag_opts.max_seq_length > P || c->t.tag_opts.max_seq_length == 0) c->t.tag_opts.max_seq_length = P;
    }
}

static int cmd_finetune_tokens(int argc, char **argv) {
    tt_opts d = {0};
    const char *model_dir = NULL;
    bool bf16 = false;
    bool quiet = false;
    plm_ft_args a;
    plm_ft_args_default(&a);
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "checkpoint directory (config.json, model.safetensors, tokenizer.json)"},
        TT_DATA_SPECS(d),
        {"--train", ARG_LIST, &d.train, "training file (CoNLL columns; Brown files; SQuAD JSON)"},
        {"--validation", ARG_LIST, &d.validation, "dev file(s) (SQuAD: several are appended)"},
        {"--output-dir", ARG_STR, &a.output_dir, "where the fine-tuned model and metrics.jsonl go"},
        {"--per-device-train-batch-size", ARG_INT, &a.train_batch_size, "features per step (default 32)"},
        {"--per-device-eval-batch-size", ARG_INT, &a.eval_batch_size, "features per evaluation batch (default 64)"},
        {"--learning-rate", ARG_FLOAT, &a.opt.learning_rate, "peak learning rate (default 1e-4)"},
        {"--num-train-epochs", ARG_FLOAT, &a.num_train_epochs, "epochs over the training features (default 3)"},
        {"--max-steps", ARG_LONG, &a.max_steps, "train this many steps instead (default: from the epochs)"},
        {"--warmup-ratio", ARG_FLOAT, &a.warmup_ratio, "share of the steps for linear warmup (default 0.1)"},
        {"--weight-decay", ARG_FLOAT, &a.opt.weight_decay, "AdamW decoupled weight decay (default 0.01)"},
        {"--max-grad-norm", ARG_FLOAT, &a.max_grad_norm, "clip gradients to this global norm; 0 = off (default 1)"},
        {"--logging-steps", ARG_LONG, &a.logging_steps, "metrics.jsonl line every N steps (default 10)"},
        {"--eval-steps", ARG_LONG, &a.eval_steps, "evaluate every N steps (default: every epoch)"},
        {"--early-stopping-patience", ARG_INT, &a.early_stopping_patience,
         "stop after N evaluations without a better dev score (default: never)"},
        {"--max-train-samples", ARG_INT, &d.max_train_samples, "use the first N sentences / questions"},
        {"--max-eval-samples", ARG_INT, &d.max_eval_samples, "use the first N dev sentences / questions"},
        {"--seed", ARG_U64, &a.seed, "seed of the head's initialisation, data order and dropout (default 42)"},
        {"--bf16", ARG_FLAG, &bf16,
         "bf16 mixed precision: GEMM inputs in bf16 (oneDNN, fp32 accumulation), weights, gradients and AdamW in "
         "fp32; on a CPU without AVX512_BF16 / AMX-BF16 it says so and runs fp32"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
    };
    int rc = args_parse("finetune",
                        "Fine-tune a checkpoint for token classification (NER, POS) or extractive QA (SQuAD v1.1).",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    tt_ctx c;
    memset(&c, 0, sizeof c);
    plm_tt_data train = {0}, dev = {0};
    bool have_train = false, have_dev = false;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    if (rc) {
        rc = rc == 1 ? 0 : rc;
        goto out;
    }
    a.quiet = quiet;
    if (bf16) plm_gemm_set_bf16(true);
    rc = PLM_EXIT_USAGE;
    if (!model_dir) {
        fprintf(stderr, "plm finetune: --model DIR is required (see plm finetune --task squad --help)\n");
        goto out;
    }
    if (a.logging_steps <= 0 || a.eval_steps < 0 || a.early_stopping_patience < 0 || a.warmup_ratio < 0 ||
        a.warmup_ratio > 1 || d.max_seq_length < 0 || d.doc_stride < 0) {
        fprintf(stderr, "plm finetune: --logging-steps must be positive, --warmup-ratio in [0, 1], the others >= 0\n");
        goto out;
    }
    int kind = kind_of(d.task, d.task_type, NULL);
    task_defaults(&c, kind, d.task);
    rc = PLM_EXIT_INPUT;
    bool has_dev = true;
    if (kind == PLM_TT_QA) {
        char store[2][3][4200];
        arg_list dirs[2] = {{0}, {0}};
        const arg_list *tr = &d.train, *dv = &d.validation;
        if (!tr->n && d.data_dir) squad_dir_files(d.data_dir, "train-v1.1", &dirs[0], store[0]), tr = &dirs[0];
        if (!dv->n && d.data_dir) squad_dir_files(d.data_dir, "dev-v1.1", &dirs[1], store[1]), dv = &dirs[1];
        int r = 0;
        if (!tr->n) {
            plm_error("squad needs --train FILE (or --data-dir with train-v1.1*.json)");
            r = -1;
        }
        if (r == 0) r = read_squad(&c.squad[0], tr);
        has_dev = dv->n > 0;
        if (r == 0 && has_dev) r = read_squad(&c.squad[1], dv);
        free(dirs[0].items);
        free(dirs[1].items);
        if (r != 0) goto fail;
    } else if (kind == PLM_TT_POS && d.data_dir && is_brown_dir(d.data_dir) && !d.train.n) {
        c.have_set[0] = true;
        if (plm_brown_read_dir(&c.sets[0], d.data_dir, NULL) != 0) goto fail;
        brown_split(&c);
    } else if (kind == PLM_TT_POS && d.train.n > 1) {
        c.have_set[0] = true;
        if (plm_brown_read(&c.sets[0], d.train.items, d.train.n, NULL) != 0) goto fail;
        brown_split(&c);
    } else {
        if (read_tagged(&c, &d, 0, &d.train, NULL) != 0) goto fail;
        has_dev = d.validation.n > 0 || d.data_dir;
        if (has_dev && read_tagged(&c, &d, 1, &d.validation, &c.sets[0]) != 0) goto fail;
    }
    const plm_tagged_set *ttrain = c.views[0].sents ? &c.views[0] : &c.sets[0];
    const plm_tagged_set *tdev = c.views[1].sents ? &c.views[1] : &c.sets[1];
    if (c.views[0].sents) has_dev = true;
    if (kind != PLM_TT_QA) {
        bool pos_col = kind == PLM_TT_POS && ttrain->pos_tags;
        c.t.tags = (const char *const *)(pos_col ? ttrain->pos_tags : ttrain->tags);
        c.t.n_tags = pos_col ? ttrain->n_pos : ttrain->n_tags;
        if (c.t.n_tags < 2) {
            plm_error("the training set has %d tag(s): token classification needs two or more", c.t.n_tags);
            goto fail;
        }
    }
    plm_head_spec head = {kind == PLM_TT_QA ? PLM_HEAD_QA : PLM_HEAD_TOKEN_CLS, 0, kind == PLM_TT_QA ? 2 : c.t.n_tags,
                          1.0f};
    if ((rc = cli_load_model_heads(model_dir, &head, 1, a.seed, quiet, &m, &tok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    plm_ft_set_pad_id(m, tok);
    apply_lengths(&c, &d, m);
    if (plm_tt_data_init(&train, &c.t, tok, ttrain, &c.squad[0], d.max_train_samples) != 0) goto fail;
    have_train = true;
    if (has_dev && plm_tt_data_init(&dev, &c.t, tok, tdev, &c.squad[1], d.max_eval_samples) != 0) goto fail;
    have_dev = has_dev;
    if (!quiet) {
        if (kind == PLM_TT_QA)
            fprintf(stderr,
                    "task %s: %d training questions (%d features), %d dev (%d features); max_seq_length %d, "
                    "doc_stride %d; model %s, %.2fM parameters\n",
                    c.t.name, train.n, train.qf.n_features, have_dev ? dev.n : 0, have_dev ? dev.qf.n_features : 0,
                    c.t.qa_opts.max_seq_length, c.t.qa_opts.doc_stride, plm_model_architecture(m),
                    (double)m->num_params / 1e6);
        else
            fprintf(stderr, "task %s: %d training sentences, %d dev; %d tags; model %s, %.2fM parameters\n", c.t.name,
                    train.n, have_dev ? dev.n : 0, c.t.n_tags, plm_model_architecture(m), (double)m->num_params / 1e6);
    }
    plm_tt_scores best = {0};
    if ((rc = plm_finetune_tokens(m, tok, &train, have_dev ? &dev : NULL, &c.t, &a, &best)) != 0) goto fail;
    if (have_dev) {
        printf("%s: best eval_%s %.4f", c.t.name, c.t.metrics[0], best.value[0]);
        for (int k = 1; k < 3; k++)
            if (c.t.metrics[k]) printf(", %s %.4f", c.t.metrics[k], best.value[k]);
        printf(" (n=%d) -> %s\n", best.n, a.output_dir);
    }
    rc = 0;
    goto out;
fail:
    cli_fail("finetune", rc);
out:
    if (have_train) plm_tt_data_free(&train);
    if (have_dev) plm_tt_data_free(&dev);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    tt_ctx_free(&c);
    args_list_free(&d.train);
    args_list_free(&d.validation);
    args_list_free(&d.test);
    return rc;
}

/* ---------------------------------------------------------------- evaluate and predict */

/* Loads a fine-tuned token-task model, its task from config.json, and one split. */
static int load_for(const char *cmd, const char *dir, tt_opts *d, int split, const arg_list *files, tt_ctx *c,
                    plm_model **m, plm_tokenizer **tok, plm_tt_data *data, bool *have_data) {
    cJSON *cfg = read_config(dir);
    if (!cfg) return PLM_EXIT_INPUT;
    const cJSON *pt = cJSON_GetObjectItemCaseSensitive(cfg, "plm_task");
    int kind = kind_of(d->task, d->task_type, obj_str(pt, "kind"));
    task_defaults(c, kind, d->task ? d->task : obj_str(pt, "name"));
    c->t.name = plm_strdup(c->t.name); /* outlives cfg */
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(pt, "max_seq_length");
    const cJSON *stride = cJSON_GetObjectItemCaseSensitive(pt, "doc_stride");
    if (!d->max_seq_length && cJSON_IsNumber(len)) d->max_seq_length = len->valueint;
    if (!d->doc_stride && cJSON_IsNumber(stride)) d->doc_stride = stride->valueint;
    const cJSON *i2l = cJSON_GetObjectItemCaseSensitive(cfg, "id2label");
    int n = cJSON_GetArraySize(i2l);
    c->model_tags = plm_calloc((size_t)PLM_MAX(n, 1), sizeof(char *));
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        const char *v = obj_str(i2l, k);
        c->model_tags[i] = plm_strdup(v ? v : k);
    }
    c->n_model_tags = n;
    cJSON_Delete(cfg);
    int rc = cli_load_model(dir, m, tok);
    if (rc != 0) return rc;
    int h = plm_model_head(*m, kind == PLM_TT_QA ? PLM_HEAD_QA : PLM_HEAD_TOKEN_CLS);
    if (h < 0) {
        plm_error("%s/config.json: not a %s model (%s)", dir,
                  kind == PLM_TT_QA ? "question-answering" : "token-classification", plm_model_architecture(*m));
        return PLM_EXIT_INPUT;
    }
    plm_ft_set_pad_id(*m, *tok);
    apply_lengths(c, d, *m);
    if (kind == PLM_TT_QA) {
        char store[3][4200];
        arg_list dl = {0};
        if (!files->n && d->data_dir) squad_dir_files(d->data_dir, "dev-v1.1", &dl, store);
        const arg_list *fl = files->n ? files : &dl;
        int r = fl->n ? read_squad(&c->squad[split], fl) : (plm_error("plm %s: a SQuAD file is required", cmd), -1);
        free(dl.items);
        if (r != 0) return PLM_EXIT_INPUT;
    } else {
        c->t.tags = (const char *const *)c->model_tags;
        c->t.n_tags = c->n_model_tags;
        if ((*m)->heads[h].K != n) {
            plm_error("%s/config.json: id2label has %d labels, the model %d outputs", dir, n, (*m)->heads[h].K);
            return PLM_EXIT_INPUT;
        }
        if (kind == PLM_TT_POS && !files->n && d->data_dir && is_brown_dir(d->data_dir)) {
            c->have_set[0] = true;
            if (plm_brown_read_dir(&c->sets[0], d->data_dir, NULL) != 0) return PLM_EXIT_INPUT;
            brown_split(c);
            if (remap_tags(c, &c->sets[0], d->data_dir) != 0) return PLM_EXIT_INPUT;
            /* the dev view: every 10th sentence */
            if (plm_tt_data_init(data, &c->t, *tok, &c->views[1], NULL, d->max_eval_samples) != 0)
                return PLM_EXIT_INPUT;
            *have_data = true;
            return 0;
        }
        if (kind == PLM_TT_POS && files->n > 1) {
            c->have_set[split] = true;
            if (plm_brown_read(&c->sets[split], files->items, files->n, NULL) != 0 ||
                remap_tags(c, &c->sets[split], files->items[0]) != 0)
                return PLM_EXIT_INPUT;
        } else {
            if (read_tagged(c, d, split, files, NULL) != 0) return PLM_EXIT_INPUT;
            char buf[4200];
            static const char *const names[3][3] = {
                {"eng.train", "train.txt", NULL}, {"eng.testa", "valid.txt", NULL}, {"eng.testb", "test.txt", NULL}};
            const char *file = files->n ? files->items[0] : find_in(d->data_dir, names[split], buf, sizeof buf);
            if (remap_tags(c, &c->sets[split], file) != 0) return PLM_EXIT_INPUT;
        }
    }
    if (plm_tt_data_init(data, &c->t, *tok, &c->sets[split], &c->squad[split], d->max_eval_samples) != 0)
        return PLM_EXIT_INPUT;
    *have_data = true;
    return 0;
}

static int cmd_evaluate_tokens(int argc, char **argv) {
    tt_opts d = {0};
    const char *model_dir = NULL, *output = NULL;
    int B = 64;
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "fine-tuned model directory"},
        TT_DATA_SPECS(d),
        {"--validation", ARG_LIST, &d.validation, "labelled file(s) to score (default: the folder's dev split)"},
        {"--per-device-eval-batch-size", ARG_INT, &B, "default 64"},
        {"--max-eval-samples", ARG_INT, &d.max_eval_samples, "score the first N sentences / questions"},
        {"--output", ARG_STR, &output, "also write the results as JSON to this file"},
    };
    int rc = args_parse("evaluate", "Score a fine-tuned NER / POS / SQuAD model: entity P/R/F1, accuracy or EM/F1.",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    tt_ctx c;
    memset(&c, 0, sizeof c);
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_tt_data data = {0};
    bool have_data = false;
    if (rc) {
        rc = rc == 1 ? 0 : rc;
        goto out;
    }
    rc = PLM_EXIT_USAGE;
    if (!model_dir || B <= 0) {
        fprintf(stderr, "plm evaluate: --model DIR is required; batch size positive\n");
        goto out;
    }
    if ((rc = load_for("evaluate", model_dir, &d, 1, &d.validation, &c, &m, &tok, &data, &have_data)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    plm_tt_pred p;
    plm_tt_scores e = {0};
    if (plm_tt_predict(m, &c.t, &data, B, &p, &e.loss) != 0) goto fail;
    int src = plm_tt_score(&c.t, &data, &p, &e);
    plm_tt_pred_free(&p);
    if (src != 0) goto fail;
    printf("%-10s %-12s %10s %8s\n", "task", "metric", "value", "n");
    for (int k = 0; k < 3; k++)
        if (c.t.metrics[k]) printf("%-10s %-12s %10.4f %8d\n", c.t.name, c.t.metrics[k], e.value[k], e.n);
    printf("%-10s %-12s %10.4f %8d\n", c.t.name, "loss", e.loss, e.n);
    if (output) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", model_dir);
        cJSON *r = cJSON_CreateObject();
        cJSON_AddStringToObject(r, "task", c.t.name);
        cJSON_AddStringToObject(r, "split", d.validation.n ? d.validation.items[0] : "dev");
        cJSON_AddNumberToObject(r, "n", e.n);
        cJSON_AddNumberToObject(r, "eval_loss", e.loss);
        cJSON *ms = cJSON_AddObjectToObject(r, "metrics");
        for (int k = 0; k < 3; k++)
            if (c.t.metrics[k]) cJSON_AddNumberToObject(ms, c.t.metrics[k], e.value[k]);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "results"), r);
        char *s = cJSON_Print(o);
        cJSON_Delete(o);
        int wrc = plm_write_file_atomic(output, s, strlen(s));
        free(s);
        if (wrc != 0) {
            rc = PLM_EXIT_FAIL;
            goto fail;
        }
    }
    rc = 0;
    goto out;
fail:
    cli_fail("evaluate", rc);
out:
    if (have_data) plm_tt_data_free(&data);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    if (c.model_tags) free((char *)c.t.name);
    tt_ctx_free(&c);
    args_list_free(&d.validation);
    return rc;
}

/* CoNLL columns: word, gold tag, predicted tag; a blank line after each sentence. */
static int write_conll(const char *path, const tt_ctx *c, const plm_tt_data *d, const plm_tt_pred *p) {
    size_t cap = 1 << 16, len = 0;
    char *buf = plm_malloc(cap);
    for (int i = 0; i < d->n; i++) {
        const plm_tagged_sentence *s = &d->tagged->sents[i];
        const int *gold = c->t.kind == PLM_TT_POS && s->pos ? s->pos : s->tags;
        for (int w = 0; w < s->n; w++) {
            const char *g = c->t.tags[gold[w]], *pr = c->t.tags[p->word_tags[d->word_start[i] + w]];
            size_t need = strlen(s->words[w]) + strlen(g) + strlen(pr) + 4;
            if (len + need + 2 > cap) buf = plm_realloc(buf, cap = 2 * cap + need);
            len += (size_t)snprintf(buf + len, cap - len, "%s %s %s\n", s->words[w], g, pr);
        }
        if (len + 2 > cap) buf = plm_realloc(buf, cap = 2 * cap);
        buf[len++] = '\n';
    }
    int rc = plm_write_file_atomic(path, buf, len);
    free(buf);
    return rc;
}

/* SQuAD's predictions.json: {"id": "answer text", ...}. */
static int write_squad_predictions(const char *path, const plm_tt_data *d, const plm_tt_pred *p) {
    cJSON *o = cJSON_CreateObject();
    char *buf = NULL;
    size_t cap = 0;
    for (int q = 0; q < d->n; q++) {
        int len;
        const char *s = plm_tt_answer_text(d, p, q, &len);
        if ((size_t)len + 1 > cap) buf = plm_realloc(buf, cap = (size_t)len + 64);
        memcpy(buf, s, (size_t)len);
        buf[len] = 0;
        cJSON_DeleteItemFromObjectCaseSensitive(o, d->squad->qs[q].id);
        cJSON_AddStringToObject(o, d->squad->qs[q].id, buf);
    }
    free(buf);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    int rc = plm_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

static int cmd_predict_tokens(int argc, char **argv) {
    tt_opts d = {0};
    const char *model_dir = NULL, *output = NULL;
    int B = 64;
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "fine-tuned model directory"},
        TT_DATA_SPECS(d),
        {"--test", ARG_LIST, &d.test, "file(s) to predict (default: the folder's test split; SQuAD: dev)"},
        {"--output", ARG_STR, &output, "CoNLL columns (word gold predicted) or SQuAD predictions.json (required)"},
        {"--per-device-eval-batch-size", ARG_INT, &B, "default 64"},
    };
    int rc =
        args_parse("predict", "Predict with a fine-tuned NER / POS / SQuAD model: CoNLL columns or predictions.json.",
                   specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    tt_ctx c;
    memset(&c, 0, sizeof c);
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_tt_data data = {0};
    bool have_data = false;
    plm_tt_pred p = {0};
    if (rc) {
        rc = rc == 1 ? 0 : rc;
        goto out;
    }
    rc = PLM_EXIT_USAGE;
    if (!model_dir || !output || B <= 0) {
        fprintf(stderr,
                "plm predict: --model DIR and --output FILE are required (see plm predict --task squad --help)\n");
        goto out;
    }
    if ((rc = load_for("predict", model_dir, &d, 2, &d.test, &c, &m, &tok, &data, &have_data)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    if (plm_tt_predict(m, &c.t, &data, B, &p, NULL) != 0) goto fail;
    rc = PLM_EXIT_FAIL;
    if ((c.t.kind == PLM_TT_QA ? write_squad_predictions(output, &data, &p) : write_conll(output, &c, &data, &p)) != 0)
        goto fail;
    fprintf(stderr, "wrote %d %s to %s\n", data.n, c.t.kind == PLM_TT_QA ? "answers" : "sentences", output);
    rc = 0;
    goto out;
fail:
    cli_fail("predict", rc);
out:
    plm_tt_pred_free(&p);
    if (have_data) plm_tt_data_free(&data);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    if (c.model_tags) free((char *)c.t.name);
    tt_ctx_free(&c);
    args_list_free(&d.test);
    return rc;
}
