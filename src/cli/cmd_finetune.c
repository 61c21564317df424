/* cmd_finetune.c - `plm finetune`, `plm evaluate` and `plm predict`: sequence
 * classification and regression on the GLUE tasks or on custom TSV/CSV/JSONL files,
 * with the options and outputs of HF's run_glue (metrics.jsonl, eval_results.json, the
 * GLUE submission TSV). The loop itself is train/finetune.c. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "ft_common.h"
#include "core/common.h"
#include "model/model_io.h"
#include "train/dist.h"
#include "train/finetune.h"
#include "train/trainer.h"

/* ---------------------------------------------------------------- the task and its data */

/* The data options the three commands share. */
typedef struct {
    const char *task, *data_dir, *train, *validation, *test;
    arg_list text_columns;
    const char *label_column, *task_type, *metric;
    int max_train_samples, max_eval_samples;
} data_opts;

#define DATA_SPECS(d)                                                                                                  \
    {"--task", ARG_STR, &(d).task,                                                                                     \
     "GLUE task (cola sst2 mrpc stsb qqp mnli mnli-mm qnli rte wnli), or a name for a custom task"},                   \
        {"--data-dir", ARG_STR, &(d).data_dir,                                                                         \
         "GLUE data: the task's folder (SST-2/) or the folder holding it (glue/)"},                                    \
        {"--text-column", ARG_LIST, &(d).text_columns,                                                                 \
         "custom task: the text column, and a second one for sentence pairs (default sentence)"},                      \
        {"--label-column", ARG_STR, &(d).label_column, "custom task: the label column (default label)"},               \
        {"--task-type", ARG_STR, &(d).task_type, "custom task: classification (default) or regression"}, {             \
        "--metric", ARG_STR, &(d).metric,                                                                              \
            "custom task: accuracy, f1, mcc, pearson or spearman (default accuracy / pearson)"                         \
    }

/* A task being read: GLUE's definition or a custom table, and what the model learns. */
typedef struct {
    const plm_glue_task *glue;
    const char *dir;          /* the GLUE task's folder */
    plm_table_spec spec;      /* custom tables */
    const char *text_cols[2]; /* custom column names */
    plm_ft_task t;
    cJSON *cfg;          /* a fine-tuned model's config.json; option defaults point into it */
    char **model_labels; /* label names read from it */
    int n_model_labels;
    char path[4096];
} task_ctx;

static void task_ctx_free(task_ctx *c) {
    cJSON_Delete(c->cfg);
    for (int i = 0; i < c->n_model_labels; i++) free(c->model_labels[i]);
    free(c->model_labels);
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Fills c from the options; with model_cfg (evaluate, predict) a fine-tuned model's
 * config.json supplies the task, its columns and its label names when not given. */
static int task_setup(const char *cmd, data_opts *d, const cJSON *model_cfg, task_ctx *c) {
    memset(c, 0, sizeof *c);
    const cJSON *pt = model_cfg ? cJSON_GetObjectItemCaseSensitive(model_cfg, "plm_task") : NULL;
#define PT_STR(key)                                                                                                    \
    (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(pt, key))                                                         \
         ? cJSON_GetObjectItemCaseSensitive(pt, key)->valuestring                                                      \
         : NULL)
    if (!d->task && pt) d->task = PT_STR("name");
    c->glue = d->task ? plm_glue_task_find(d->task) : NULL;
    bool custom = !c->glue;
    if (custom && !d->train && !d->validation && !d->test) {
        if (d->task)
            fprintf(stderr, "plm %s: unknown task '%s': a GLUE task, or a custom one with --train/--validation files\n",
                    cmd, d->task);
        else
            fprintf(stderr, "plm %s: --task NAME is required (see plm %s --help)\n", cmd, cmd);
        return PLM_EXIT_USAGE;
    }
    if (c->glue) {
        if (!d->data_dir && !(d->train || d->validation || d->test)) {
            fprintf(stderr, "plm %s: --data-dir DIR is required for GLUE task %s\n", cmd, c->glue->name);
            return PLM_EXIT_USAGE;
        }
        if (d->data_dir) {
            snprintf(c->path, sizeof c->path, "%s/%s", d->data_dir, c->glue->dir);
            c->dir = is_dir(c->path) ? c->path : d->data_dir;
        }
        c->t = (plm_ft_task){.name = c->glue->name,
                             .type = c->glue->type,
                             .num_labels = c->glue->type == PLM_TASK_REGRESSION ? 1 : c->glue->n_labels,
                             .labels = c->glue->labels,
                             .metrics = {c->glue->metrics[0], c->glue->metrics[1]}};
        return 0;
    }
    /* a custom table */
    const char *type = d->task_type ? d->task_type : PT_STR("type");
    plm_task_type tt = PLM_TASK_CLASSIFICATION;
    if (type && !strcmp(type, "regression"))
        tt = PLM_TASK_REGRESSION;
    else if (type && strcmp(type, "classification") != 0 && !d->task_type) {
        /* the model's own task: plm sft, dpo or reward trained it */
        plm_error("the model's config.json has plm_task.type \"%s\": not a classifier or regressor%s", type,
                  !strcmp(type, "reward") ? " (score a reward model with plm reward --score FILE --model DIR)" : "");
        return PLM_EXIT_INPUT;
    } else if (type && strcmp(type, "classification") != 0) {
        fprintf(stderr, "plm %s: --task-type must be classification or regression, got \"%s\"\n", cmd, type);
        return PLM_EXIT_USAGE;
    }
    if (d->text_columns.n > 2) {
        fprintf(stderr, "plm %s: --text-column takes one or two columns\n", cmd);
        return PLM_EXIT_USAGE;
    }
    c->text_cols[0] = d->text_columns.n > 0 ? d->text_columns.items[0] : PT_STR("text_column");
    c->text_cols[1] = d->text_columns.n > 1 ? d->text_columns.items[1]
                      : d->text_columns.n   ? NULL
                                            : PT_STR("text_pair_column");
    if (!c->text_cols[0]) c->text_cols[0] = "sentence";
    const char *label = d->label_column ? d->label_column : PT_STR("label_column");
    if (!label) label = "label";
    const char *metric = d->metric;
    if (!metric && pt) {
        const cJSON *ms = cJSON_GetObjectItemCaseSensitive(pt, "metrics");
        if (cJSON_IsString(cJSON_GetArrayItem(ms, 0))) metric = cJSON_GetArrayItem(ms, 0)->valuestring;
    }
    if (!metric) metric = tt == PLM_TASK_REGRESSION ? "pearson" : "accuracy";
    const char *ok[] = {"accuracy", "f1", "mcc", "pearson", "spearman"};
    int mi = -1;
    for (int i = 0; i < 5; i++)
        if (!strcmp(metric, ok[i])) mi = i;
    if (mi < 0 || (tt == PLM_TASK_REGRESSION) != (mi >= 3)) {
        fprintf(stderr,
                "plm %s: --metric %s does not fit a %s task (accuracy, f1, mcc: classification; pearson, "
                "spearman: regression)\n",
                cmd, metric, tt == PLM_TASK_REGRESSION ? "regression" : "classification");
        return PLM_EXIT_USAGE;
    }
    c->spec = (plm_table_spec){.text_a = c->text_cols[0], .text_b = c->text_cols[1], .label = label, .type = tt};
    c->t = (plm_ft_task){.name = d->task ? d->task : "custom",
                         .type = tt,
                         .num_labels = 1,
                         .metrics = {ok[mi], NULL},
                         .text_a_column = c->text_cols[0],
                         .text_b_column = c->text_cols[1],
                         .label_column = label};
    return 0;
#undef PT_STR
}

/* Reads a split: the file given, else the GLUE task's file in its folder. labelled: read
 * the label column. train: the training set whose labels a custom dev set must use. */
static int read_split(task_ctx *c, plm_split split, const char *file, bool labelled, const plm_dataset *train,
                      int max_n, plm_dataset *out) {
    plm_table_spec spec;
    int rc;
    if (c->glue) {
        plm_glue_spec(c->glue, split, &spec);
        if (file) {
            if (split == PLM_SPLIT_TEST && !labelled) {
                /* any file of the task's columns; rows are numbered when it has no index */
                plm_glue_spec(c->glue, PLM_SPLIT_DEV, &spec);
                spec.label = NULL;
                spec.id = NULL;
            }
            spec.format = plm_format_from_path(file);
            rc = plm_dataset_read(out, file, &spec, NULL);
        } else {
            char path[4200];
            snprintf(path, sizeof path, "%s/%s", c->dir, c->glue->files[split]);
            rc = plm_dataset_read(out, path, &spec, NULL);
        }
    } else {
        spec = c->spec;
        spec.format = plm_format_from_path(file);
        if (!labelled) spec.label = NULL;
        if (c->n_model_labels && c->t.type == PLM_TASK_CLASSIFICATION) {
            spec.labels = (const char *const *)c->model_labels;
            spec.n_labels = c->n_model_labels;
        }
        rc = plm_dataset_read(out, file, &spec, train);
    }
    if (rc == 0 && max_n > 0 && out->n > max_n) out->n = max_n; /* the first rows, as run_glue's select */
    return rc;
}

/* ---------------------------------------------------------------- models */

/* The label names of a fine-tuned model's id2label. */
static void model_labels(const cJSON *cfg, task_ctx *c) {
    const cJSON *i2l = cJSON_GetObjectItemCaseSensitive(cfg, "id2label");
    int n = cJSON_GetArraySize(i2l);
    if (n <= 0) return;
    c->model_labels = plm_calloc((size_t)n, sizeof(char *));
    for (int i = 0; i < n; i++) {
        char k[16];
        snprintf(k, sizeof k, "%d", i);
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(i2l, k);
        c->model_labels[i] = plm_strdup(cJSON_IsString(v) ? v->valuestring : k);
    }
    c->n_model_labels = n;
}

/* ---------------------------------------------------------------- plm finetune */

/* One seed's run: the model (from --model with a new head, or the checkpoint resumed). */
typedef struct {
    const char *model_dir;
    cli_ft_opts *o;
    task_ctx *c;
    plm_dataset *train, *dev; /* dev NULL: no evaluation */
    plm_seq_pooling pooling;
} seq_run;

static int seq_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    seq_run *r = ctx;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_head_spec head = {PLM_HEAD_SEQ_CLS, 0, r->c->t.num_labels, 1.0f, r->pooling};
    bool quiet = r->o->quiet || si > 0;
    int rc = a->resume_from_checkpoint ? cli_load_model(a->resume_from_checkpoint, &m, &tok)
                                       : cli_load_model_heads(r->model_dir, &head, 1, a->seed, quiet, &m, &tok);
    if (rc != 0) return rc;
    plm_ft_set_pad_id(m, tok);
    if (si == 0 && a->max_seq_length > m->config.max_position_embeddings)
        fprintf(stderr, "plm finetune: warning: --max-seq-length %d is beyond the model's %d positions; using %d\n",
                a->max_seq_length, m->config.max_position_embeddings, m->config.max_position_embeddings);
    if (!r->o->quiet && si == 0)
        fprintf(stderr, "task %s: %d training examples, %d dev; %s, %d labels; model %s, %.2fM parameters\n",
                r->c->t.name, r->train->n, r->dev ? r->dev->n : 0,
                r->c->t.type == PLM_TASK_REGRESSION ? "regression" : "classification", r->c->t.num_labels,
                plm_model_architecture(m), (double)m->num_params / 1e6);
    rc = plm_finetune(m, tok, r->train, r->dev, &r->c->t, a, best);
    plm_model_free(m);
    plm_tokenizer_free(tok);
    return rc;
}

int cmd_finetune(int argc, char **argv) {
    int routed = cli_token_task_route("finetune", argc, argv); /* NER, POS, SQuAD */
    if (routed >= 0) return routed;
    data_opts d = {0};
    cli_ft_opts o;
    cli_ft_opts_default(&o);
    const char *pooling = "pooler";
    const arg_spec own[] = {
        DATA_SPECS(d),
        {"--train", ARG_STR, &d.train, "training file (TSV, CSV or JSONL; GLUE: overrides train.tsv)"},
        {"--validation", ARG_STR, &d.validation, "dev file for evaluation (GLUE: overrides dev.tsv)"},
        {"--max-seq-length", ARG_INT, &o.a.max_seq_length, "truncate pairs to this many tokens (default 128)"},
        {"--pooling", ARG_STR, &pooling,
         "what the classifier reads: pooler (default: BERT's pooler, GPT-2's last real token, ELECTRA's [CLS] "
         "head), cls (the first token's state) or mean (the mean over real tokens)"},
    };
    int rc = cli_ft_parse("Fine-tune a checkpoint for sequence classification or regression (GLUE or custom files).",
                          own, (int)PLM_ARRAY_LEN(own), &o, "examples", argc, argv);
    if (rc >= 0) {
        args_list_free(&d.text_columns);
        return rc;
    }
    d.max_train_samples = o.max_train_samples;
    d.max_eval_samples = o.max_eval_samples;
    task_ctx c;
    plm_dataset train = {0}, dev = {0};
    bool have_train = false, have_dev = false;
    plm_seq_pooling pool;
    if (head_pooling_of(pooling, &pool) != 0) {
        fprintf(stderr, "plm finetune: --pooling must be pooler, cls or mean, got \"%s\"\n", pooling);
        rc = PLM_EXIT_USAGE;
        goto out_nofree;
    }
    if ((rc = task_setup("finetune", &d, NULL, &c)) != 0) goto out_nofree;
    rc = PLM_EXIT_USAGE;
    if (!c.glue && !d.train) {
        fprintf(stderr, "plm finetune: a custom task needs --train FILE\n");
        goto out;
    }
    rc = PLM_EXIT_INPUT;
    if (read_split(&c, PLM_SPLIT_TRAIN, d.train, true, NULL, d.max_train_samples, &train) != 0) goto fail;
    have_train = true;
    if (d.validation || c.glue) {
        if (read_split(&c, PLM_SPLIT_DEV, d.validation, true, c.glue ? NULL : &train, d.max_eval_samples, &dev) != 0)
            goto fail;
        have_dev = true;
    }
    if (!c.glue && c.t.type == PLM_TASK_CLASSIFICATION) {
        c.t.labels = (const char *const *)train.labels;
        c.t.num_labels = train.n_labels;
        if (train.n_labels < 2) {
            plm_error("%s: one label only ('%s'): classification needs two or more", d.train, train.labels[0]);
            goto fail;
        }
    }
    seq_run r = {o.model, &o, &c, &train, have_dev ? &dev : NULL, pool};
    if ((rc = cli_ft_run_seeds(&o, c.t.name, 2, c.t.metrics, have_dev, seq_run_one, &r)) != 0) goto fail;
    rc = 0;
    goto out;
fail:
    cli_fail("finetune", rc);
out:
    task_ctx_free(&c);
out_nofree:
    if (have_train) plm_dataset_free(&train);
    if (have_dev) plm_dataset_free(&dev);
    args_list_free(&d.text_columns);
    return rc;
}

/* ---------------------------------------------------------------- evaluate and predict */

/* Loads a fine-tuned model and its task (options first, then config.json). */
static int load_finetuned(const char *cmd, const char *dir, data_opts *d, plm_model **m, plm_tokenizer **tok,
                          task_ctx *c) {
    *m = NULL;
    *tok = NULL;
    cJSON *cfg = cli_read_config(dir);
    if (!cfg) return PLM_EXIT_INPUT;
    int rc = task_setup(cmd, d, cfg, c);
    c->cfg = cfg;
    if (rc != 0) return rc;
    model_labels(cfg, c);
    if ((rc = cli_load_model(dir, m, tok)) != 0) return rc;
    int h = plm_model_head(*m, PLM_HEAD_SEQ_CLS);
    if (h < 0) {
        plm_error("%s/config.json: not a sequence-classification model (%s)", dir, plm_model_architecture(*m));
        return PLM_EXIT_INPUT;
    }
    int K = (*m)->heads[h].K;
    if (!c->glue) {
        c->t.num_labels = c->t.type == PLM_TASK_REGRESSION ? 1 : c->n_model_labels;
        c->t.labels = (const char *const *)c->model_labels;
    }
    if (K != c->t.num_labels) {
        plm_error("%s/config.json: the model has %d outputs, task %s needs %d", dir, K, c->t.name, c->t.num_labels);
        return PLM_EXIT_INPUT;
    }
    plm_ft_set_pad_id(*m, *tok);
    return 0;
}

/* What evaluate and predict share: the options, the model and its task, the set scored. */
typedef struct {
    data_opts d;
    const char *model_dir, *output;
    int B, max_len; /* max_len 0: the model's plm_task.max_seq_length, else 128 */
    plm_model *m;
    plm_tokenizer *tok;
    task_ctx c;
    plm_dataset ds;
    bool have_ds;
    plm_collate_opts co;
} scoring;

static void scoring_init(scoring *s) {
    memset(s, 0, sizeof *s);
    s->B = 64;
}

static void scoring_free(scoring *s) {
    if (s->have_ds) plm_dataset_free(&s->ds);
    task_ctx_free(&s->c);
    plm_model_free(s->m);
    if (s->tok) plm_tokenizer_free(s->tok);
    args_list_free(&s->d.text_columns);
}

/* Parses --model and the data options, the command's own options own[0..n_first), then
 * --max-seq-length and --per-device-eval-batch-size, then own[n_first..n_own) (the order
 * of --help). Returns -1 to go on, else the command's exit code (0 after --help). */
static int scoring_args(const char *cmd, const char *summary, scoring *s, const arg_spec *own, int n_own, int n_first,
                        int argc, char **argv) {
    arg_spec head[] = {{"--model", ARG_STR, &s->model_dir, "fine-tuned model directory"}, DATA_SPECS(s->d)};
    arg_spec tail[] = {{"--max-seq-length", ARG_INT, &s->max_len,
                        "truncate to this many tokens (default: the length the model was fine-tuned with, else 128)"},
                       {"--per-device-eval-batch-size", ARG_INT, &s->B, "default 64"}};
    arg_spec specs[32];
    int n = 0;
    for (size_t i = 0; i < PLM_ARRAY_LEN(head); i++) specs[n++] = head[i];
    for (int i = 0; i < n_first; i++) specs[n++] = own[i];
    for (size_t i = 0; i < PLM_ARRAY_LEN(tail); i++) specs[n++] = tail[i];
    for (int i = n_first; i < n_own; i++) specs[n++] = own[i];
    int rc = args_parse(cmd, summary, specs, n, argc, argv);
    if (rc == 0) return -1;
    args_list_free(&s->d.text_columns);
    return rc == 1 ? 0 : rc;
}

/* Loads the model and its task, and reads the set to score: file (option file_opt, which a
 * custom task needs) or the GLUE task's split; at most max_samples examples (0: all).
 * Returns 0 or an exit code; PLM_EXIT_USAGE after printing why. */
static int scoring_open(const char *cmd, scoring *s, plm_split split, const char *file, const char *file_opt,
                        bool labelled, int max_samples) {
    int rc = load_finetuned(cmd, s->model_dir, &s->d, &s->m, &s->tok, &s->c);
    if (rc != 0) return rc;
    if (!s->c.glue && !file) {
        fprintf(stderr, "plm %s: a custom task needs %s FILE\n", cmd, file_opt);
        return PLM_EXIT_USAGE;
    }
    if (read_split(&s->c, split, file, labelled, NULL, max_samples, &s->ds) != 0) return PLM_EXIT_INPUT;
    s->have_ds = true;
    if (s->max_len == 0) {
        /* the length the model was fine-tuned with, as plm_ft_save_model records it */
        const cJSON *len =
            cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s->c.cfg, "plm_task"), "max_seq_length");
        s->max_len = cJSON_IsNumber(len) && len->valueint > 0 ? len->valueint : 128;
    }
    plm_ft_collate_opts(&s->co, s->tok, PLM_MIN(s->max_len, s->m->config.max_position_embeddings));
    return 0;
}

int cmd_evaluate(int argc, char **argv) {
    int routed = cli_token_task_route("evaluate", argc, argv); /* NER, POS, SQuAD */
    if (routed >= 0) return routed;
    scoring s;
    scoring_init(&s);
    const char *split = "dev";
    arg_spec own[] = {
        {"--validation", ARG_STR, &s.d.validation, "labelled file to score (default: the task's dev.tsv)"},
        {"--split", ARG_STR, &split, "GLUE split to score: dev (default) or train"},
        {"--max-eval-samples", ARG_INT, &s.d.max_eval_samples, "score the first N examples"},
        {"--output", ARG_STR, &s.output, "also write the results as JSON to this file"},
    };
    int rc = scoring_args("evaluate", "Score a fine-tuned model on a labelled set: a GLUE-style table (and JSON).", &s,
                          own, (int)PLM_ARRAY_LEN(own), 2, argc, argv);
    if (rc >= 0) return rc;
    rc = PLM_EXIT_USAGE;
    plm_split sp = !strcmp(split, "train") ? PLM_SPLIT_TRAIN : PLM_SPLIT_DEV;
    if (!s.model_dir || s.B <= 0 || s.max_len < 0 || (strcmp(split, "dev") && strcmp(split, "train"))) {
        fprintf(stderr, "plm evaluate: --model DIR is required; --split is dev or train; sizes positive\n");
        goto out;
    }
    rc = scoring_open("evaluate", &s, sp, s.d.validation, "--validation", true, s.d.max_eval_samples);
    if (rc == PLM_EXIT_USAGE) goto out;
    if (rc != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    const plm_ft_task *t = &s.c.t;
    plm_ft_scores e;
    if (plm_ft_evaluate(s.m, s.tok, &s.ds, t, &s.co, s.B, &e) != 0) goto fail;
    if ((rc = cli_ft_report_eval(s.model_dir, t->name, s.d.validation ? s.d.validation : split, 2, t->metrics, &e,
                                 s.output)) != 0)
        goto fail;
    rc = 0;
    goto out;
fail:
    cli_fail("evaluate", rc);
out:
    scoring_free(&s);
    return rc;
}

int cmd_predict(int argc, char **argv) {
    int routed = cli_token_task_route("predict", argc, argv); /* NER, POS, SQuAD */
    if (routed >= 0) return routed;
    scoring s;
    scoring_init(&s);
    arg_spec own[] = {
        {"--test", ARG_STR, &s.d.test, "file to predict (default: the task's test.tsv); labels in it are ignored"},
        {"--output", ARG_STR, &s.output, "the submission TSV: index<TAB>prediction (required)"},
    };
    int rc = scoring_args("predict", "Predict a test set with a fine-tuned model: GLUE's submission TSV.", &s, own,
                          (int)PLM_ARRAY_LEN(own), 2, argc, argv);
    if (rc >= 0) return rc;
    int *pl = NULL;
    float *pv = NULL;
    rc = PLM_EXIT_USAGE;
    if (!s.model_dir || !s.output || s.B <= 0 || s.max_len < 0) {
        fprintf(stderr, "plm predict: --model DIR and --output FILE are required (see plm predict --help)\n");
        goto out;
    }
    rc = scoring_open("predict", &s, PLM_SPLIT_TEST, s.d.test, "--test", false, 0);
    if (rc == PLM_EXIT_USAGE) goto out;
    if (rc != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    const plm_dataset *ds = &s.ds;
    const plm_ft_task *t = &s.c.t;
    pl = plm_malloc((size_t)ds->n * sizeof *pl);
    pv = plm_malloc((size_t)ds->n * sizeof *pv);
    if (plm_ft_predict(s.m, s.tok, ds, &s.co, s.B, pl, pv, NULL) != 0) goto fail;
    /* GLUE's submission format: a header, then index and the label name (or the score) */
    size_t cap = 64 + (size_t)ds->n * 64, len = 0;
    char *buf = plm_malloc(cap);
    len += (size_t)snprintf(buf, cap, "index\tprediction\n");
    for (int i = 0; i < ds->n; i++) {
        const plm_example *e = &ds->examples[i];
        char idx[32];
        if (!e->id) snprintf(idx, sizeof idx, "%d", i);
        const char *id = e->id ? e->id : idx;
        if (len + strlen(id) + 48 > cap) buf = plm_realloc(buf, cap = 2 * cap + strlen(id));
        if (t->type == PLM_TASK_REGRESSION)
            len += (size_t)snprintf(buf + len, cap - len, "%s\t%.3f\n", id, pv[i]);
        else {
            const char *name = t->labels ? t->labels[pl[i]] : NULL;
            size_t need = strlen(id) + (name ? strlen(name) : 16) + 4;
            if (len + need > cap) buf = plm_realloc(buf, cap = 2 * cap + need);
            len += name ? (size_t)snprintf(buf + len, cap - len, "%s\t%s\n", id, name)
                        : (size_t)snprintf(buf + len, cap - len, "%s\t%d\n", id, pl[i]);
        }
    }
    int wrc = plm_write_file_atomic(s.output, buf, len);
    free(buf);
    if (wrc != 0) {
        rc = PLM_EXIT_FAIL;
        goto fail;
    }
    fprintf(stderr, "wrote %d predictions to %s\n", ds->n, s.output);
    rc = 0;
    goto out;
fail:
    cli_fail("predict", rc);
out:
    free(pl);
    free(pv);
    scoring_free(&s);
    return rc;
}
