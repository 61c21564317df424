/* ft_common.c - see ft_common.h */
#include "ft_common.h"

#include "model/gemm.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "model/bf16_rate.h"
#include "model/gemm.h"
#include "train/dist.h"
#include "train/trainer.h"

void cli_ft_opts_default(cli_ft_opts *o) {
    memset(o, 0, sizeof *o);
    plm_ft_args_default(&o->a);
    o->seeds = 1;
    o->lr_help = "peak learning rate (default 1e-4: small models need more than BERT-base's 2e-5..5e-5)";
}

/* Appends the shared option specs to specs[*n]. */
static void ft_specs(arg_spec *specs, int *n, cli_ft_opts *o, const char *unit) {
    static char h_train[96], h_eval[96], h_max_train[96], h_max_eval[96], h_epochs[64], h_warmup[96], h_wd[96];
    plm_ft_args *a = &o->a; /* the defaults shown are the command's (sft has its own) */
    snprintf(h_train, sizeof h_train, "%s per step (default %d)", unit, a->train_batch_size);
    snprintf(h_eval, sizeof h_eval, "%s per evaluation batch (default %d)", unit, a->eval_batch_size);
    snprintf(h_max_train, sizeof h_max_train, "use the first N training %s", unit);
    snprintf(h_max_eval, sizeof h_max_eval, "use the first N dev %s", unit);
    snprintf(h_epochs, sizeof h_epochs, "epochs over the training set (default %g)", a->num_train_epochs);
    snprintf(h_warmup, sizeof h_warmup, "share of the steps for linear warmup (default %g)", a->warmup_ratio);
    snprintf(h_wd, sizeof h_wd, "AdamW decoupled weight decay (default %g)", a->opt.weight_decay);
    const arg_spec common[] = {
        {"--output-dir", ARG_STR, &a->output_dir, "where the fine-tuned model, metrics.jsonl and checkpoints go"},
        {"--per-device-train-batch-size", ARG_INT, &a->train_batch_size, h_train},
        {"--per-device-eval-batch-size", ARG_INT, &a->eval_batch_size, h_eval},
        {"--learning-rate", ARG_FLOAT, &a->opt.learning_rate, o->lr_help},
        {"--num-train-epochs", ARG_FLOAT, &a->num_train_epochs, h_epochs},
        {"--max-steps", ARG_LONG, &a->max_steps, "train this many steps instead (default: from the epochs)"},
        {"--warmup-ratio", ARG_FLOAT, &a->warmup_ratio, h_warmup},
        {"--weight-decay", ARG_FLOAT, &a->opt.weight_decay, h_wd},
        {"--max-grad-norm", ARG_FLOAT, &a->max_grad_norm, "clip gradients to this global norm; 0 = off (default 1)"},
        {"--layerwise-lr-decay", ARG_FLOAT, &a->layerwise_lr_decay,
         "ELECTRA's layer-wise learning-rate decay: layer l of L trains at lr x X^(L + 1 - l), the embeddings at "
         "lr x X^(L + 2), the head at lr (default 1: off; ELECTRA-Small used 0.8)"},
        {"--logging-steps", ARG_LONG, &a->logging_steps, "metrics.jsonl line every N steps (default 10)"},
        {"--eval-steps", ARG_LONG, &a->eval_steps, "evaluate and checkpoint every N steps (default: every epoch)"},
        {"--early-stopping-patience", ARG_INT, &a->early_stopping_patience,
         "stop after N evaluations without a better dev score (default: never)"},
        {"--save-total-limit", ARG_INT, &a->save_total_limit, "checkpoint-N directories kept (default 1)"},
        {"--max-train-samples", ARG_INT, &o->max_train_samples, h_max_train},
        {"--max-eval-samples", ARG_INT, &o->max_eval_samples, h_max_eval},
        {"--seed", ARG_U64, &a->seed, "seed of the head's initialisation, data order and dropout (default 42)"},
        {"--seeds", ARG_INT, &o->seeds, "run N seeds (seed, seed+1, ...) into OUTPUT/seed-S; report mean +- std"},
        {"--resume-from-checkpoint", ARG_STR, &o->resume,
         "continue an interrupted run: a checkpoint-N directory or the output directory (its newest)"},
        {"--bf16", ARG_FLAG, &o->bf16,
         "bf16 mixed precision: matrix-product inputs in bf16 with fp32 sums (oneDNN; attention's tiles with "
         "AVX512_BF16), weights, gradients, softmax and AdamW in fp32; on a CPU without AVX512_BF16 / AMX-BF16 it "
         "says so and runs fp32; where the bf16 dot product is slower than fp32 (Intel without AMX) it says that"},
        {"--quiet", ARG_FLAG, &o->quiet, "no progress bar"},
    };
    for (size_t i = 0; i < PLM_ARRAY_LEN(common); i++) specs[(*n)++] = common[i];
}

static int ft_check(const char *cmd, cli_ft_opts *o) {
    const plm_ft_args *a = &o->a;
    if (!plm_dist_is_root()) o->quiet = true; /* under mpirun rank 0 reports; the others only fail */
    o->a.quiet = o->quiet;
    if (o->bf16 && plm_gemm_set_bf16(true) && plm_dist_is_root()) plm_bf16_training_note();
    if (o->seeds < 1 || (o->seeds > 1 && o->resume)) {
        fprintf(stderr,
                "plm %s: --seeds must be >= 1, and a multi-seed run cannot be resumed (resume each OUTPUT/seed-S "
                "run on its own)\n",
                cmd);
        return PLM_EXIT_USAGE;
    }
    if (a->logging_steps <= 0 || a->eval_steps < 0 || a->early_stopping_patience < 0 || a->save_total_limit < 0 ||
        a->warmup_ratio < 0 || a->warmup_ratio > 1 || o->max_train_samples < 0 || o->max_eval_samples < 0 ||
        !(a->layerwise_lr_decay > 0 && a->layerwise_lr_decay <= 1)) {
        fprintf(stderr,
                "plm %s: --logging-steps must be positive, --warmup-ratio and --layerwise-lr-decay in [0, 1] (the "
                "decay above 0), and --eval-steps, "
                "--early-stopping-patience, --save-total-limit, --max-*-samples >= 0\n",
                cmd);
        return PLM_EXIT_USAGE;
    }
    return 0;
}

int cli_ft_parse(const char *summary, const arg_spec *own, int n_own, cli_ft_opts *o, const char *unit, int argc,
                 char **argv) {
    return cli_ft_parse_cmd("finetune", summary, own, n_own, o, unit, argc, argv);
}

int cli_ft_parse_cmd(const char *cmd, const char *summary, const arg_spec *own, int n_own, cli_ft_opts *o,
                     const char *unit, int argc, char **argv) {
    arg_spec specs[64];
    int n = 0;
    specs[n++] = (arg_spec){"--model", ARG_STR, &o->model,
                            "checkpoint directory (config.json, model.safetensors, tokenizer.json)"};
    for (int i = 0; i < n_own && n < 40; i++) specs[n++] = own[i];
    ft_specs(specs, &n, o, unit);
    int rc = args_parse(cmd, summary, specs, n, argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!o->model) {
        fprintf(stderr, "plm %s: --model DIR is required (see plm %s --help)\n", cmd, cmd);
        return PLM_EXIT_USAGE;
    }
    return ft_check(cmd, o) ? PLM_EXIT_USAGE : -1;
}

/* The sample mean and (n - 1) standard deviation. */
static double mean_std(const double *v, int n, double *std) {
    double s = 0, q = 0;
    for (int i = 0; i < n; i++) s += v[i];
    double mu = s / n;
    for (int i = 0; i < n; i++) q += (v[i] - mu) * (v[i] - mu);
    *std = n > 1 ? sqrt(q / (n - 1)) : 0.0;
    return mu;
}

int cli_ft_run_seeds(cli_ft_opts *o, const char *task, int n_metrics, const char *const *metrics, bool has_dev,
                     cli_ft_run_fn run, void *ctx) {
    int rc = 0;
    char *resume_dir = NULL;
    if (o->resume) {
        long step;
        if (!(resume_dir = plm_find_checkpoint(o->resume, &step))) return PLM_EXIT_INPUT;
        if (!o->quiet) fprintf(stderr, "resuming from %s (step %ld)\n", resume_dir, step);
    }
    int S = o->seeds;
    double *results = plm_calloc((size_t)S, sizeof *results);
    char seed_dir[4096];
    for (int si = 0; si < S && rc == 0; si++) {
        plm_ft_args as = o->a;
        as.seed = o->a.seed + (uint64_t)si;
        as.resume_from_checkpoint = resume_dir;
        if (S > 1) {
            snprintf(seed_dir, sizeof seed_dir, "%s/seed-%llu", o->a.output_dir, (unsigned long long)as.seed);
            as.output_dir = seed_dir;
        }
        plm_ft_scores best = {0};
        if ((rc = run(ctx, &as, si, &best)) != 0) break;
        results[si] = best.value[0];
        if (has_dev && plm_dist_is_root()) {
            printf("%s seed %llu: best eval_%s %.4f", task, (unsigned long long)as.seed, metrics[0], best.value[0]);
            for (int k = 1; k < n_metrics; k++)
                if (metrics[k]) printf(", %s %.4f", metrics[k], best.value[k]);
            printf(" (n=%d) -> %s\n", best.n, as.output_dir);
        }
        fflush(stdout);
    }
    if (rc == 0 && S > 1 && has_dev && plm_dist_is_root()) {
        double sd, mu = mean_std(results, S, &sd);
        printf("%s eval_%s over %d seeds: %.4f +- %.4f\n", task, metrics[0], S, mu, sd);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "task", task);
        cJSON_AddStringToObject(j, "metric", metrics[0]);
        cJSON_AddNumberToObject(j, "mean", mu);
        cJSON_AddNumberToObject(j, "std", sd);
        cJSON *arr = cJSON_AddArrayToObject(j, "values");
        for (int i = 0; i < S; i++) cJSON_AddItemToArray(arr, cJSON_CreateNumber(results[i]));
        char path[4200];
        snprintf(path, sizeof path, "%s/seeds.json", o->a.output_dir);
        if (cli_write_json(j, path) != 0) rc = PLM_EXIT_FAIL;
    }
    free(results);
    free(resume_dir);
    return rc;
}

int cli_ft_report_eval(const char *model_dir, const char *task, const char *split, int n_metrics,
                       const char *const *metrics, const plm_ft_scores *e, const char *output) {
    printf("%-10s %-12s %10s %8s\n", "task", "metric", "value", "n");
    for (int k = 0; k < n_metrics; k++)
        if (metrics[k]) printf("%-10s %-12s %10.4f %8d\n", task, metrics[k], e->value[k], e->n);
    printf("%-10s %-12s %10.4f %8d\n", task, "loss", e->loss, e->n);
    if (!output) return 0;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", model_dir);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "task", task);
    cJSON_AddStringToObject(r, "split", split);
    cJSON_AddNumberToObject(r, "n", e->n);
    cJSON_AddNumberToObject(r, "eval_loss", e->loss);
    cJSON *ms = cJSON_AddObjectToObject(r, "metrics");
    for (int k = 0; k < n_metrics; k++)
        if (metrics[k]) cJSON_AddNumberToObject(ms, metrics[k], e->value[k]);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "results"), r);
    return cli_write_json(o, output) != 0 ? PLM_EXIT_FAIL : 0;
}

cJSON *cli_read_config(const char *dir) {
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

int cli_write_json(cJSON *o, const char *path) {
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    int rc = plm_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}
