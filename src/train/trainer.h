/* trainer.h - the pretraining loop: batches from the dataloader, forward/backward with
 * gradient accumulation, global-norm clipping, AdamW with a warmup schedule, periodic
 * validation, JSONL metrics, checkpoints that resume bit-exactly, and a loss plot.
 * Argument names follow HF's TrainingArguments. */
#ifndef PLM_TRAINER_H
#define PLM_TRAINER_H

#include <stdbool.h>
#include <stdint.h>

#include "adamw.h"
#include "dist.h"
#include "data/dataloader.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef struct {
    const char *output_dir;
    plm_objective objective;
    plm_objective_opts obj;
    int per_device_train_batch_size;
    int max_seq_length;
    int gradient_accumulation_steps;
    long max_steps;
    plm_adamw_hparams opt;
    long warmup_steps;
    plm_scheduler lr_scheduler_type;
    double decay_fraction;      /* wsd: share of max_steps in the final decay (default 0.2) */
    plm_decay_shape decay_type; /* wsd: 1-sqrt (default) or linear */
    float max_grad_norm;
    long logging_steps;             /* metrics line every n steps */
    long eval_steps;                /* validation every n steps (0: only at the end) */
    int eval_batches;               /* at most this many validation batches */
    long save_steps;                /* checkpoint-N every n steps (0: only the final model) */
    int save_total_limit;           /* keep only the newest n checkpoint-N directories (0: all) */
    double clm_fraction;            /* clm+mlm: share of max_steps trained causally on CLM first (0.25) */
    bool reset_optimizer_at_switch; /* clm+mlm: zero AdamW's moments (and its step) at the switch */
    uint64_t seed;
    const char *resume_from_checkpoint;
    bool quiet;
    plm_dist_opts dist; /* under mpirun: how the ranks reduce gradients (dist.h) */
} plm_train_args;

void plm_train_args_default(plm_train_args *a);

typedef struct {
    double loss;              /* mean loss per predicted token */
    double accuracy;          /* top-1 accuracy on predicted tokens */
    long tokens;              /* predicted tokens */
    double majority_accuracy; /* of always predicting one token (the corpus' most frequent): the
                                 context-free baseline; NAN when none was given */
    /* MLM, on the predicted positions whose input shows [MASK] only (the others show the
     * original or a random token; copying the input scores on the first): accuracy, the
     * constant prediction's, and their count. NAN / 0 for CLM. */
    double mask_accuracy, mask_majority_accuracy;
    long mask_tokens;
} plm_eval_result;

/* Runs the model over up to max_batches batches of a non-shuffled loader (dropout off). */
plm_eval_result plm_evaluate(plm_model *m, plm_dataloader *d, int batch_size, int max_batches, bool causal);
/* The same, also scoring the constant prediction majority_token (-1: none). */
plm_eval_result plm_evaluate_ex(plm_model *m, plm_dataloader *d, int batch_size, int max_batches, bool causal,
                                int32_t majority_token);

/* The phase of step (0-based) in a run of these arguments: CLM or MLM for the two-phase
 * schedule (CLM while step < round(clm_fraction * max_steps)), else the objective. */
plm_objective plm_train_phase(const plm_train_args *a, long step);

/* Trains m in place. tok is saved next to every checkpoint. valid may be NULL.
 * Returns 0, or an exit code (core/common.h) with the error set. */
int plm_train(plm_model *m, const plm_tokenizer *tok, const plm_token_stream *train, const plm_token_stream *valid,
              const plm_train_args *a);

/* The checkpoint to resume from for --resume-from-checkpoint dir: the complete checkpoint
 * (tokenizer.json, config.json, model.safetensors and training_state.safetensors that load
 * and agree on the step) with the highest step among dir itself and dir/checkpoint-N, as
 * HF's resume_from_checkpoint=True. Returns a malloc'ed path and its step, or NULL with the
 * error set. Incomplete checkpoints are skipped with a warning on stderr. */
char *plm_find_checkpoint(const char *dir, long *step);

/* A resumed run redoes the steps after its checkpoint: drops the lines of metrics.jsonl
 * (path) whose "step" is beyond step (and a torn last line), or they would appear twice.
 * A missing file is not an error. Returns 0 or -1. */
int plm_truncate_metrics(const char *path, long step);

/* Writes an SVG plot of train and eval loss from a metrics.jsonl file. */
int plm_plot_metrics(const char *metrics_jsonl, const char *svg_path, const char *title);

#endif
