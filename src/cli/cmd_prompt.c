/* cmd_prompt.c - `plm prompt`: zero- and few-shot classification with a causal model,
 * as GPT-2 and GPT-3 did (tasks/prompting.h): each label's verbalizer is scored by its
 * log-likelihood after the prompt; accuracy and the task's GLUE metric for each k, next
 * to the majority class. The data options are `plm evaluate`'s (--task, --data-dir,
 * --validation, --text-column, --label-column, --max-eval-samples, --output). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "core/common.h"
#include "core/progress.h"
#include "tasks/metrics.h"
#include "tasks/prompting.h"

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The value of a GLUE metric (or accuracy) for predictions pred. */
static double metric_value(const char *name, const int *gold, const int *pred, int n) {
    if (!strcmp(name, "mcc")) return plm_matthews_corrcoef(gold, pred, (size_t)n);
    if (!strcmp(name, "f1")) return plm_f1_binary(gold, pred, (size_t)n);
    return plm_accuracy(gold, pred, (size_t)n);
}

/* accuracy and the task's other metrics of pred into o */
static void add_scores(cJSON *o, const char *const *metrics, const int *gold, const int *pred, int n) {
    cJSON_AddNumberToObject(o, "accuracy", plm_accuracy(gold, pred, (size_t)n));
    for (int k = 0; k < 2; k++)
        if (metrics[k] && strcmp(metrics[k], "accuracy"))
            cJSON_AddNumberToObject(o, metrics[k], metric_value(metrics[k], gold, pred, n));
}

static int write_json(cJSON *o, const char *path) {
    char *s = cJSON_Print(o);
    size_t len = strlen(s);
    s = plm_realloc(s, len + 2);
    s[len++] = '\n';
    int rc = plm_write_file_atomic(path, s, len);
    free(s);
    return rc;
}

/* One line of --dump per example: the prompt, its ids, and each label's score. */
static void dump_lines(FILE *f, int k, const plm_dataset *test, const plm_prompt *p, const plm_prompt_result *r) {
    int L = p->n_labels;
    for (int i = 0; i < r->n; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "k", k);
        cJSON_AddNumberToObject(o, "index", i);
        cJSON_AddNumberToObject(o, "line", test->examples[i].line);
        cJSON_AddNumberToObject(o, "label", test->examples[i].label);
        cJSON_AddNumberToObject(o, "pred", r->pred[i]);
        cJSON_AddItemToObject(o, "demos", cJSON_CreateIntArray(r->demos[i], k));
        cJSON_AddStringToObject(o, "prompt", r->prompts[i]);
        cJSON_AddNumberToObject(o, "truncated", r->truncated[i]);
        cJSON *ids = cJSON_AddArrayToObject(o, "context_ids");
        for (int t = 0; t < r->n_ctx[i]; t++) cJSON_AddItemToArray(ids, cJSON_CreateNumber(r->ctx_ids[i][t]));
        cJSON *ch = cJSON_AddArrayToObject(o, "choices");
        for (int l = 0; l < L; l++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddStringToObject(c, "text", p->verbalizers[l]);
            cJSON *vi = cJSON_AddArrayToObject(c, "ids");
            for (int t = 0; t < p->verb_len[l]; t++) cJSON_AddItemToArray(vi, cJSON_CreateNumber(p->verb_ids[l][t]));
            cJSON_AddNumberToObject(c, "logprob", r->logprob[(size_t)i * L + l]);
            cJSON_AddNumberToObject(c, "score", r->score[(size_t)i * L + l]);
            cJSON_AddItemToArray(ch, c);
        }
        char *s = cJSON_PrintUnformatted(o);
        fprintf(f, "%s\n", s);
        free(s);
        cJSON_Delete(o);
    }
}

int cmd_prompt(int argc, char **argv) {
    const char *model_dir = NULL, *task = NULL, *data_dir = NULL, *train_file = NULL, *valid_file = NULL;
    const char *label_column = NULL, *tmpl = NULL, *verbs = NULL, *separator = NULL, *sampling = "random";
    const char *scoring = "sum", *output = NULL, *dump = NULL;
    arg_list text_columns = {0}, ks = {0};
    int max_eval = 0, max_train = 0, batch_size = 16;
    uint64_t seed = 42;
    bool quiet = false;
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "a causal model directory (GPT-2 architecture, tokenizer.json)"},
        {"--task", ARG_STR, &task,
         "GLUE task with a built-in prompt (cola sst2 mrpc qqp mnli mnli-mm qnli rte wnli), or a custom task's name"},
        {"--data-dir", ARG_STR, &data_dir, "GLUE data: the task's folder (SST-2/) or the folder holding it (glue/)"},
        {"--validation", ARG_STR, &valid_file, "labelled file to score (GLUE: default the task's dev.tsv)"},
        {"--train", ARG_STR, &train_file, "where demonstrations come from (GLUE: default the task's train.tsv)"},
        {"--text-column", ARG_LIST, &text_columns, "custom task: the text column, and a second one for pairs"},
        {"--label-column", ARG_STR, &label_column, "custom task: the label column (default label)"},
        {"--template", ARG_STR, &tmpl,
         "prompt template, e.g. \"{sentence}\\nSentiment:\" ({text_a}, {text_b} or column names; \\n escapes)"},
        {"--verbalizers", ARG_STR, &verbs,
         "one continuation per label in label order, comma-separated, e.g. \" negative, positive\""},
        {"--separator", ARG_STR, &separator, "between demonstrations (default \"\\n\\n\")"},
        {"--k", ARG_LIST, &ks, "numbers of demonstrations to evaluate, e.g. --k 0 4 (default 0)"},
        {"--sampling", ARG_STR, &sampling, "demonstrations: random (default, as GPT-3) or balanced over the labels"},
        {"--scoring", ARG_STR, &scoring,
         "sum (default: summed log-likelihood of the verbalizer) or mean (per verbalizer token)"},
        {"--seed", ARG_U64, &seed, "seed of the demonstrations (default 42)"},
        {"--max-eval-samples", ARG_INT, &max_eval, "score the first N examples"},
        {"--max-train-samples", ARG_INT, &max_train, "draw demonstrations from the first N training examples"},
        {"--batch-size", ARG_INT, &batch_size, "sequences per forward pass (default 16)"},
        {"--output", ARG_STR, &output, "write the results as JSON to this file"},
        {"--dump", ARG_STR, &dump, "write every prompt, its token ids and each label's log-likelihood (JSONL)"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
    };
    int rc = args_parse("prompt",
                        "Zero- and few-shot classification with a causal model: each label's verbalizer scored by its "
                        "log-likelihood after the prompt (GPT-2/GPT-3). Prompts longer than the model's context are "
                        "truncated from the left.",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&text_columns);
        args_list_free(&ks);
        return rc == 1 ? 0 : rc;
    }
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_dataset train = {0}, dev = {0};
    bool have_train = false, have_dev = false;
    plm_prompt p = {0};
    bool have_prompt = false;
    int *kv = NULL, nk = ks.n ? ks.n : 1, *gold = NULL, *maj = NULL;
    cJSON *json = NULL;
    FILE *df = NULL;
    rc = PLM_EXIT_USAGE;
    kv = plm_calloc((size_t)nk, sizeof(int));
    int kmax = 0;
    for (int i = 0; i < ks.n; i++) {
        char *end;
        long v = strtol(ks.items[i], &end, 10);
        if (*end || end == ks.items[i] || v < 0 || v > 1000) {
            fprintf(stderr, "plm prompt: --k takes numbers of demonstrations 0..1000, got \"%s\"\n", ks.items[i]);
            goto out;
        }
        kv[i] = (int)v;
        kmax = PLM_MAX(kmax, kv[i]);
    }
    plm_prompt_sampling smode = PLM_PROMPT_SAMPLE_RANDOM;
    plm_prompt_scoring scmode = PLM_PROMPT_SCORE_SUM;
    if (!strcmp(sampling, "balanced"))
        smode = PLM_PROMPT_SAMPLE_BALANCED;
    else if (strcmp(sampling, "random")) {
        fprintf(stderr, "plm prompt: --sampling must be random or balanced, got \"%s\"\n", sampling);
        goto out;
    }
    if (!strcmp(scoring, "mean"))
        scmode = PLM_PROMPT_SCORE_MEAN;
    else if (strcmp(scoring, "sum")) {
        fprintf(stderr, "plm prompt: --scoring must be sum or mean, got \"%s\"\n", scoring);
        goto out;
    }
    if (!model_dir || !task) {
        fprintf(stderr, "plm prompt: --model DIR and --task NAME are required (see plm prompt --help)\n");
        goto out;
    }
    if (batch_size < 1 || max_eval < 0 || max_train < 0 || text_columns.n > 2) {
        fprintf(stderr, "plm prompt: --batch-size must be positive, --max-*-samples >= 0, --text-column one or two\n");
        goto out;
    }
    const plm_glue_task *glue = plm_glue_task_find(task);
    if (glue && glue->type == PLM_TASK_REGRESSION) {
        fprintf(stderr, "plm prompt: %s is a regression task: no label to verbalize (not supported)\n", glue->name);
        goto out;
    }
    if ((tmpl != NULL) != (verbs != NULL)) {
        fprintf(stderr, "plm prompt: --template and --verbalizers go together\n");
        goto out;
    }
    if (!glue && !tmpl) {
        fprintf(stderr,
                "plm prompt: task '%s' has no built-in prompt: give --template and --verbalizers (and "
                "--validation FILE)\n",
                task);
        goto out;
    }
    /* ---- the data */
    char dir[4096] = "", path[4200];
    if (glue) {
        if (!data_dir && (!valid_file || (kmax > 0 && !train_file))) {
            fprintf(stderr, "plm prompt: --data-dir DIR is required for GLUE task %s (or --validation and --train)\n",
                    glue->name);
            goto out;
        }
        if (data_dir) {
            snprintf(dir, sizeof dir, "%s/%s", data_dir, glue->dir);
            if (!is_dir(dir)) snprintf(dir, sizeof dir, "%s", data_dir);
        }
    } else if (!valid_file || (kmax > 0 && !train_file)) {
        fprintf(stderr, "plm prompt: a custom task needs --validation FILE (and --train FILE for k > 0)\n");
        goto out;
    }
    const char *col_a = glue ? glue->text_a : text_columns.n ? text_columns.items[0] : "sentence";
    const char *col_b = glue ? glue->text_b : text_columns.n > 1 ? text_columns.items[1] : NULL;
    rc = PLM_EXIT_INPUT;
    plm_table_spec spec;
    if (glue)
        plm_glue_spec(glue, PLM_SPLIT_TRAIN, &spec);
    else
        spec = (plm_table_spec){.text_a = col_a, .text_b = col_b, .label = label_column ? label_column : "label"};
    if (kmax > 0 || train_file) {
        const char *f = train_file;
        if (!f) snprintf(path, sizeof path, "%s/%s", dir, glue->files[PLM_SPLIT_TRAIN]);
        spec.format = plm_format_from_path(f ? f : path);
        if (plm_dataset_read(&train, f ? f : path, &spec, NULL) != 0) goto fail;
        have_train = true;
        if (max_train > 0 && train.n > max_train) train.n = max_train;
    }
    if (glue) plm_glue_spec(glue, PLM_SPLIT_DEV, &spec);
    {
        const char *f = valid_file;
        if (!f) snprintf(path, sizeof path, "%s/%s", dir, glue->files[PLM_SPLIT_DEV]);
        spec.format = plm_format_from_path(f ? f : path);
        if (plm_dataset_read(&dev, f ? f : path, &spec, have_train && !glue ? &train : NULL) != 0) goto fail;
        have_dev = true;
        if (max_eval > 0 && dev.n > max_eval) dev.n = max_eval;
    }
    if (dev.n == 0) {
        plm_error("%s: no examples to score", valid_file ? valid_file : path);
        goto fail;
    }
    int L = dev.n_labels;
    /* ---- the model */
    if ((rc = cli_load_model(model_dir, &m, &tok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    if (plm_model_head(m, PLM_HEAD_LM) < 0 || m->num_backbones != 1) {
        plm_error("%s/config.json: a %s has no language-model head to score verbalizers with", model_dir,
                  plm_model_architecture(m));
        goto fail;
    }
    if (!m->config.is_decoder) {
        plm_error("%s/config.json: is_decoder is false (%s, a bidirectional MLM encoder): prompting scores "
                  "left-to-right log-likelihoods and needs a causal model",
                  model_dir, plm_model_architecture(m));
        goto fail;
    }
    /* ---- the prompt */
    const plm_prompt_builtin *bi = glue && !tmpl ? plm_prompt_builtin_find(glue->name) : NULL;
    if (glue && !tmpl && !bi) {
        plm_error("task %s has no built-in prompt: give --template and --verbalizers", glue->name);
        goto fail;
    }
    rc = PLM_EXIT_USAGE; /* a template or verbalizer the task or tokenizer cannot use */
    if (plm_prompt_init(&p, bi ? bi->template_text : tmpl, verbs, bi ? bi->verbalizers : NULL, L, col_a, col_b,
                        separator) != 0)
        goto fail;
    have_prompt = true;
    if (plm_prompt_tokenize_verbalizers(&p, tok) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    if (!quiet) {
        fprintf(stderr, "task %s: %d examples to score, %d to draw demonstrations from; model %s (%d positions)\n",
                glue ? glue->name : task, dev.n, have_train ? train.n : 0, plm_model_architecture(m),
                m->config.max_position_embeddings);
        for (int l = 0; l < L; l++)
            fprintf(stderr, "  label %s -> \"%s\" (%d token%s)\n", dev.labels[l], p.verbalizers[l], p.verb_len[l],
                    p.verb_len[l] == 1 ? "" : "s");
    }
    /* ---- majority baseline: the most frequent label of the scored set */
    gold = plm_malloc((size_t)dev.n * sizeof(int));
    maj = plm_malloc((size_t)dev.n * sizeof(int));
    int *cnt = plm_calloc((size_t)L, sizeof(int)), best = 0;
    for (int i = 0; i < dev.n; i++) cnt[gold[i] = dev.examples[i].label]++;
    for (int l = 1; l < L; l++)
        if (cnt[l] > cnt[best]) best = l;
    free(cnt);
    for (int i = 0; i < dev.n; i++) maj[i] = best;
    const char *metrics[2] = {"accuracy", NULL};
    if (glue) {
        metrics[0] = glue->metrics[0];
        metrics[1] = glue->metrics[1];
    }
    json = cJSON_CreateObject();
    cJSON_AddStringToObject(json, "model", model_dir);
    cJSON_AddStringToObject(json, "task", glue ? glue->name : task);
    cJSON_AddNumberToObject(json, "n", dev.n);
    cJSON_AddStringToObject(json, "template", bi ? bi->template_text : tmpl);
    cJSON *vj = cJSON_AddArrayToObject(json, "verbalizers");
    for (int l = 0; l < L; l++) cJSON_AddItemToArray(vj, cJSON_CreateString(p.verbalizers[l]));
    cJSON_AddStringToObject(json, "scoring", scoring);
    cJSON_AddStringToObject(json, "sampling", sampling);
    cJSON_AddNumberToObject(json, "seed", (double)seed);
    cJSON_AddNumberToObject(json, "n_positions", m->config.max_position_embeddings);
    cJSON *mj = cJSON_AddObjectToObject(json, "majority");
    cJSON_AddStringToObject(mj, "label", dev.labels[best]);
    add_scores(mj, metrics, gold, maj, dev.n);
    cJSON *rj = cJSON_AddArrayToObject(json, "results");
    if (dump && !(df = fopen(dump, "w"))) {
        plm_error("%s: cannot write", dump);
        rc = PLM_EXIT_FAIL;
        goto fail;
    }
    printf("%-10s %4s %-10s %10s %8s %10s\n", "task", "k", "metric", "value", "n", "truncated");
    for (int q = 0; q < nk; q++) {
        int k = kv[q];
        plm_progress pb;
        char label[64];
        snprintf(label, sizeof label, "%s k=%d", glue ? glue->name : task, k);
        if (!quiet) plm_progress_start(&pb, label, (long)dev.n * L, 0);
        plm_prompt_opts o = {.k = k,
                             .sampling = smode,
                             .scoring = scmode,
                             .seed = seed,
                             .batch_size = batch_size,
                             .same_set = have_train && valid_file && train_file && !strcmp(valid_file, train_file),
                             .progress = quiet ? NULL : &pb};
        plm_prompt_result r;
        if (plm_prompt_evaluate(m, tok, &p, &dev, have_train ? &train : NULL, &o, &r) != 0) {
            plm_prompt_result_free(&r);
            if (!quiet) fputc('\n', stderr);
            goto fail;
        }
        if (!quiet) plm_progress_finish(&pb, NULL);
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "k", k);
        add_scores(e, metrics, gold, r.pred, dev.n);
        cJSON_AddNumberToObject(e, "n", dev.n);
        cJSON_AddNumberToObject(e, "truncated_prompts", (double)r.n_truncated);
        cJSON *pc = cJSON_AddObjectToObject(e, "predicted"); /* how often each label was predicted */
        for (int l = 0; l < L; l++) {
            int c = 0;
            for (int i = 0; i < dev.n; i++) c += r.pred[i] == l;
            cJSON_AddNumberToObject(pc, dev.labels[l], c);
        }
        cJSON_AddItemToArray(rj, e);
        printf("%-10s %4d %-10s %10.4f %8d %10ld\n", glue ? glue->name : task, k, "accuracy",
               plm_accuracy(gold, r.pred, (size_t)dev.n), dev.n, r.n_truncated);
        for (int j = 0; j < 2; j++)
            if (metrics[j] && strcmp(metrics[j], "accuracy"))
                printf("%-10s %4d %-10s %10.4f %8d %10ld\n", glue ? glue->name : task, k, metrics[j],
                       metric_value(metrics[j], gold, r.pred, dev.n), dev.n, r.n_truncated);
        if (df) dump_lines(df, k, &dev, &p, &r);
        plm_prompt_result_free(&r);
        fflush(stdout);
    }
    printf("%-10s %4s %-10s %10.4f %8d %10s\n", glue ? glue->name : task, "-", "majority",
           plm_accuracy(gold, maj, (size_t)dev.n), dev.n, "-");
    if (df) {
        if (fclose(df) != 0) {
            df = NULL;
            plm_error("%s: write failed", dump);
            rc = PLM_EXIT_FAIL;
            goto fail;
        }
        df = NULL;
    }
    if (output && write_json(json, output) != 0) {
        rc = PLM_EXIT_FAIL;
        goto fail;
    }
    rc = 0;
    goto out;
fail:
    cli_fail("prompt", rc);
out:
    if (df) fclose(df);
    cJSON_Delete(json);
    if (have_prompt) plm_prompt_free(&p);
    if (have_train) plm_dataset_free(&train);
    if (have_dev) plm_dataset_free(&dev);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    free(kv);
    free(gold);
    free(maj);
    args_list_free(&text_columns);
    args_list_free(&ks);
    return rc;
}
