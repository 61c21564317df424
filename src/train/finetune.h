/* finetune.h - fine-tuning: the one training loop of every task (plm_ft_train: epochs
 * over a task's rows in a seeded per-epoch order, AdamW with linear warmup and decay,
 * evaluation on the dev set with the task's metrics, the best model kept, early stopping,
 * JSONL metrics, checkpoints that resume bit for bit), and the sequence classifier /
 * regressor on it (GLUE-style tasks: dynamically padded pair batches, collate.h).
 * finetune_tokens.h puts NER, POS and SQuAD on the same loop. Owns the loop, the
 * sequence tasks' prediction pass shared by `plm evaluate` / `plm predict`, and the
 * fine-tuned model directory (config.json with the label names, as HF's run_glue writes
 * it). Names follow HF's TrainingArguments. */
#ifndef PLM_FINETUNE_H
#define PLM_FINETUNE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "adamw.h"
#include "data/collate.h"
#include "model/model.h"
#include "tasks/datasets.h"
#include "tokenizer/tokenizer.h"

/* What is being learned and how it is scored. */
typedef struct {
    const char *name; /* "sst2", ... or the custom task's name; config.json's finetuning_task */
    plm_task_type type;
    int num_labels;            /* 1 for regression */
    const char *const *labels; /* label names (classification), index = class id */
    const char *metrics[2];    /* "accuracy", "f1", "mcc", "pearson", "spearman"; [0] picks the best
                                  model; [1] may be NULL */
    /* columns of a custom task, recorded in config.json so evaluate/predict can default to
     * them (NULL for GLUE tasks) */
    const char *text_a_column, *text_b_column, *label_column;
} plm_ft_task;

#define PLM_FT_MAX_METRICS 3

/* Scores of one pass over a labelled set (sequence and token tasks). */
typedef struct {
    double loss;                      /* mean loss per example (cross-entropy or squared error) */
    double value[PLM_FT_MAX_METRICS]; /* in the order of the task's metrics; NaN past them */
    int n;                            /* examples (sentences, questions) */
} plm_ft_scores;

typedef struct {
    const char *output_dir;
    int train_batch_size; /* per_device_train_batch_size, default 32 */
    int eval_batch_size;  /* default 64 */
    int max_seq_length;   /* default 128 */
    float num_train_epochs;
    long max_steps; /* > 0: this many steps instead of num_train_epochs */
    plm_adamw_hparams opt;
    float warmup_ratio; /* of the total steps, rounded up (HF) */
    float max_grad_norm;
    float layerwise_lr_decay; /* ELECTRA's layer-wise learning-rate decay (adamw.h); 1 = off */
    long logging_steps;
    long eval_steps;             /* evaluate (and checkpoint) every n steps; 0: once per epoch */
    int early_stopping_patience; /* stop after this many evaluations without improvement; 0: never */
    int save_total_limit;        /* newest checkpoint-N directories kept (default 1) */
    uint64_t seed;
    const char *resume_from_checkpoint; /* a complete checkpoint directory (plm_find_checkpoint) */
    bool quiet;
} plm_ft_args;

void plm_ft_args_default(plm_ft_args *a);

/* Collate options for a model: truncation to max_len, and for a tokenizer without a pad
 * token (GPT-2) the eos id as padding, as one sets tokenizer.pad_token = eos_token for
 * GPT2ForSequenceClassification. The head reads the last real token by the attention mask. */
void plm_ft_collate_opts(plm_collate_opts *o, const plm_tokenizer *tok, int max_len);

/* The model's forward pass over ds in file order, dropout off. Fills pred_label[i] (argmax,
 * classification) or pred_value[i] (regression); either may be NULL. *loss (may be NULL)
 * gets the mean loss over labelled examples (NaN without labels). Returns 0, or -1 with
 * the error set (a row the tokenizer or model rejects). */
int plm_ft_predict(plm_model *m, const plm_tokenizer *tok, const plm_dataset *ds, const plm_collate_opts *co, int B,
                   int *pred_label, float *pred_value, double *loss);

/* Predicts ds (which must be labelled) and scores it with the task's metrics. */
int plm_ft_evaluate(plm_model *m, const plm_tokenizer *tok, const plm_dataset *ds, const plm_ft_task *t,
                    const plm_collate_opts *co, int B, plm_ft_scores *out);

/* Writes a fine-tuned model directory: config.json (the model's, plus id2label / label2id
 * with the label names, finetuning_task, problem_type and plm_task, which records
 * max_seq_length when it is > 0: evaluate / predict truncate there by default),
 * model.safetensors, tokenizer.json. meta_kv as plm_model_save. */
int plm_ft_save_model(const plm_model *m, const plm_tokenizer *tok, const plm_ft_task *t, int max_seq_length,
                      const char *dir, const char *const *meta_kv, int n_meta);

/* The order of epoch `epoch`'s examples: a Fisher-Yates shuffle of 0..n-1 drawn from a
 * generator seeded with (seed, epoch), so an epoch's order needs no saved state. */
void plm_ft_epoch_order(int *order, int n, uint64_t seed, long epoch);

/* ---------------------------------------------------------------- shared with finetune_tokens.h */

/* GPT-2 has no pad token: HF's GPT2ForSequenceClassification needs config.pad_token_id,
 * set to eos as the usual recipe does (tokenizer.pad_token = tokenizer.eos_token). Leaves a
 * model that has a pad_token_id as it is. */
void plm_ft_set_pad_id(plm_model *m, const plm_tokenizer *tok);

/* A key of config.json's plm_task after its metrics: a string, or a number when str is NULL. */
typedef struct {
    const char *key;
    const char *str;
    double num;
} plm_ft_config_kv;

/* The task keys a fine-tuned model's config.json gets, in the order they are written. */
typedef struct {
    const char *name;          /* finetuning_task and plm_task.name */
    const char *problem_type;  /* NULL: the key is left as plm_model_save wrote it */
    int n_labels;              /* id2label / label2id from labels[0..n_labels) */
    const char *const *labels; /* NULL: left as plm_model_save wrote them (LABEL_i) */
    const char *type;          /* plm_task.type */
    const char *kind;          /* plm_task.kind; NULL: none */
    int n_metrics;             /* plm_task.metrics: the non-NULL metrics[0..n_metrics) */
    const char *const *metrics;
    int n_extra; /* further plm_task keys, in order */
    const plm_ft_config_kv *extra;
} plm_ft_config_task;

/* Rewrites dir/config.json (as plm_model_save wrote it) with the task keys of c. Returns 0
 * or -1 with the error set. */
int plm_ft_patch_config(const char *dir, const plm_ft_config_task *c);

/* A fine-tuned model directory: model.safetensors (meta_kv as plm_model_save), config.json
 * with the task keys of c (plm_ft_patch_config) and tokenizer.json. Returns 0 or -1. */
int plm_ft_save_dir(const plm_model *m, const plm_tokenizer *tok, const plm_ft_config_task *c, const char *dir,
                    const char *const *meta_kv, int n_meta);

/* The scores of one evaluation as metrics.jsonl and eval_results.json hold them: eval_loss,
 * eval_<names[k]> for each non-NULL names[k] (k < n_metrics), eval_samples. */
typedef struct {
    double loss;
    int n_metrics;
    const char *const *names;
    const double *values;
    int samples;
} plm_ft_named_scores;

/* One metrics.jsonl line of an evaluation at step / epoch. */
void plm_ft_log_scores(FILE *log, long step, double epoch, const plm_ft_named_scores *e);

/* One metrics.jsonl line of a training step; extra (may be NULL) is appended before the
 * closing brace (", \"key\": value" pairs). */
void plm_ft_log_step(FILE *log, long step, double epoch, double loss, float lr, double grad_norm, double elapsed_s,
                     const char *extra);

/* dir/eval_results.json: the task's name, the best scores e, the best step, the steps and
 * epochs trained; final_newline ends the file with a newline. Returns 0 or -1. */
int plm_ft_write_results(const char *dir, const char *task, const plm_ft_named_scores *e, long best_step, long steps,
                         double epochs, bool final_newline);

/* ---------------------------------------------------------------- the training loop
 * One loop serves every task: a task hands it training batches (rows of its own data,
 * encoded by the task) and an evaluation of its dev set, and the loop does the rest:
 * the seeded per-epoch order of the rows, AdamW with linear warmup and decay, gradient
 * clipping, metrics.jsonl, evaluation every epoch or eval_steps, the best model kept
 * (by metrics[0], higher is better unless the task says lower), early stopping, checkpoint-N directories that
 * resume bit for bit, and the final model directory with eval_results.json. */
typedef struct {
    const char *name;           /* progress label, eval_results.json's task */
    int n_metrics;              /* <= PLM_FT_MAX_METRICS; metrics[k] may be NULL (not reported) */
    const char *const *metrics; /* [0] picks the best model */
    bool lower_is_better;       /* metrics[0] is better when lower (perplexity); default higher */
    int n_train;                /* training rows (examples, sentences or QA windows) */
    int max_len;                /* longest row in tokens: the model is reserved for [B, max_len] */
    int rows_per_item;          /* model rows per training row (DPO: 2, chosen and rejected); 0: 1 */
    bool has_dev;               /* false: no evaluation, the last model is kept */
    void *ctx;                  /* the task's own state, passed to the callbacks */
    /* Encodes training rows rows[0..n) into *out (its memory is the task's) with dropout
     * seeded by dropout_seed; it may run m first (DPO's log-probs). Returns 0, or -1 with
     * the error set. */
    int (*train_batch)(void *ctx, plm_model *m, const int *rows, int n, uint64_t dropout_seed, plm_batch *out);
    /* Scores the dev set with batches of B rows. Returns 0, or -1 with the error set. */
    int (*evaluate)(void *ctx, plm_model *m, int B, plm_ft_scores *out);
    /* Writes the model directory (checkpoints and the final model) to dir. Returns 0 or -1. */
    int (*save_model)(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta);
    /* Optional, for an objective whose loss is not the model's (DPO weights the LM loss): the
     * loss of the last training batch (NULL: m->loss), and more fields for its metrics.jsonl
     * line, written into buf as ", \"key\": value" pairs (NULL: none). */
    double (*batch_loss)(void *ctx);
    void (*step_fields)(void *ctx, char *buf, size_t size);
    /* Optional, for a step that is not one batch through m (PPO: a rollout, then several
     * updates of m and of a second model): replaces train_batch, the backward pass, the
     * clipping and the AdamW update of the step. It gets the loop's optimizer of m, its
     * hyperparameters, the step's learning rate and the clipping norm, and leaves the last
     * update's gradient norm in *grad_norm. Single process only. Returns 0 or -1 (error set). */
    int (*step)(void *ctx, plm_model *m, const int *rows, int n, uint64_t seed, plm_adamw *opt,
                const plm_adamw_hparams *hp, float lr, float max_grad_norm, double *grad_norm);
    /* Optional, the task's own training state (PPO's value model and its optimizer): written
     * into each checkpoint directory, read back from it on resume; keep_best(ctx, false)
     * marks the current state as the best so far, keep_best(ctx, true) restores the best
     * before the final model is written. Return 0 or -1 (error set). */
    int (*save_state)(void *ctx, const char *dir);
    int (*load_state)(void *ctx, const char *dir);
    void (*keep_best)(void *ctx, bool restore);
} plm_ft_loop_task;

/* Runs the loop on m; best (may be NULL) gets the best dev scores. Returns 0 or an exit
 * code (core/common.h) with the error set. */
int plm_ft_train(plm_model *m, const plm_ft_loop_task *lt, const plm_ft_args *a, plm_ft_scores *best);

/* Fine-tunes m (a model with one sequence-classification head of t->num_labels) on train,
 * evaluating on dev (may be NULL: no evaluation, the last model is kept). Writes the best
 * model (by t->metrics[0]) to output_dir with eval_results.json, metrics.jsonl and
 * checkpoint-N directories. best (may be NULL) gets the best dev scores. Returns 0 or an
 * exit code (core/common.h) with the error set. */
int plm_finetune(plm_model *m, const plm_tokenizer *tok, const plm_dataset *train, const plm_dataset *dev,
                 const plm_ft_task *t, const plm_ft_args *a, plm_ft_scores *best);

#endif
