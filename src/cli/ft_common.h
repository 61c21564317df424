/* ft_common.h - what `plm finetune / evaluate / predict` share between sequence tasks
 * (cmd_finetune.c) and token tasks (cmd_finetune_tokens.c): one table of the training
 * hyperparameters (HF TrainingArguments names) with its validation, the --seeds loop that
 * reports mean +- std and writes seeds.json, and reading / writing JSON files. */
#ifndef PLM_CLI_FT_COMMON_H
#define PLM_CLI_FT_COMMON_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "args.h"
#include "train/finetune.h"

/* The options every fine-tuning command takes. */
typedef struct {
    const char *model; /* --model: the checkpoint to fine-tune */
    plm_ft_args a;
    int seeds;          /* --seeds N: seeds a.seed, a.seed + 1, ... */
    const char *resume; /* --resume-from-checkpoint: a checkpoint-N directory or the output directory */
    bool quiet;
    bool bf16; /* --bf16: GEMM inputs in bf16 where the CPU has it */
    int max_train_samples, max_eval_samples;
    const char *lr_help; /* --learning-rate's help, naming the command's default */
} cli_ft_opts;

void cli_ft_opts_default(cli_ft_opts *o);
/* Parses `plm finetune`'s options: --model, the task's own[0..n_own), then the shared
 * hyperparameters (targets in o; `unit` names a training row in the help: "examples",
 * "sentences / questions"), and checks them. Returns -1 to go on, else the exit code
 * (0 after --help; PLM_EXIT_USAGE after printing why). */
int cli_ft_parse(const char *summary, const arg_spec *own, int n_own, cli_ft_opts *o, const char *unit, int argc,
                 char **argv);
/* The same for another command (cmd: "sft"): its name in the usage and the errors; the
 * defaults shown in the help are o's values when called. */
int cli_ft_parse_cmd(const char *cmd, const char *summary, const arg_spec *own, int n_own, cli_ft_opts *o,
                     const char *unit, int argc, char **argv);

/* One run of a --seeds loop: fine-tune with a (seed, output_dir and resume set) into
 * best. Returns 0 or an exit code with the error set. */
typedef int (*cli_ft_run_fn)(void *ctx, const plm_ft_args *a, int seed_index, plm_ft_scores *best);

/* Runs run() once per seed (OUTPUT/seed-S when there are several, resuming from
 * o->resume for a single run), prints each run's best dev scores (has_dev) and, for
 * several, "TASK eval_METRIC over N seeds: mean +- std" with OUTPUT/seeds.json. Returns 0
 * or an exit code (the error set, not printed). */
int cli_ft_run_seeds(cli_ft_opts *o, const char *task, int n_metrics, const char *const *metrics, bool has_dev,
                     cli_ft_run_fn run, void *ctx);

/* `plm evaluate`'s report: a table (task, metric, value, n) on stdout with the loss last,
 * and with output the same as JSON {"model", "results": [{task, split, n, eval_loss,
 * metrics: {name: value}}]}. Returns 0 or PLM_EXIT_FAIL (the error set). */
int cli_ft_report_eval(const char *model_dir, const char *task, const char *split, int n_metrics,
                       const char *const *metrics, const plm_ft_scores *e, const char *output);

/* dir/config.json parsed, or NULL with the error set. */
cJSON *cli_read_config(const char *dir);
/* Writes o as JSON to path, atomically, and deletes o. Returns 0 or -1. */
int cli_write_json(cJSON *o, const char *path);

#endif
