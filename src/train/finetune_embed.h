/* finetune_embed.h - contrastive fine-tuning of a sentence embedder on (query, passage)
 * pairs with in-batch negatives (train/contrastive.h): epochs in a seeded per-epoch order,
 * each step one padded batch of the step's n queries and n passages through backbone 0
 * (dropout on), AdamW with linear warmup and decay and global-norm clipping, JSONL
 * metrics. Owns the loop and the saved model directory (the backbone without heads, its
 * tokenizer). Names follow HF's TrainingArguments and sentence-transformers. */
#ifndef PLM_FINETUNE_EMBED_H
#define PLM_FINETUNE_EMBED_H

#include <stdbool.h>
#include <stdint.h>

#include "adamw.h"
#include "model/model.h"
#include "tasks/embed.h"
#include "tokenizer/tokenizer.h"

/* n pairs; group[i] names pair i's passage (pairs sharing it are not each other's
 * negatives); NULL: all distinct. */
typedef struct {
    const char *const *queries;
    const char *const *passages;
    const int *group;
    int n;
} plm_pair_set;

typedef struct {
    const char *output_dir;
    int batch_size;     /* pairs per step (default 32): 2 x batch_size rows per forward */
    int max_seq_length; /* default 128 */
    float num_train_epochs;
    long max_steps; /* > 0: this many steps instead */
    plm_adamw_hparams opt;
    float warmup_ratio;  /* default 0.1 */
    float max_grad_norm; /* default 1 */
    float temperature;   /* default 0.05 (sentence-transformers' scale 20) */
    plm_pooling pooling; /* default mean */
    long logging_steps;  /* default 10 */
    uint64_t seed;
    bool quiet;
} plm_embed_ft_args;

void plm_embed_ft_args_default(plm_embed_ft_args *a);

/* Fine-tunes m (a model without heads: plm_model_load_with_heads with none) on pairs and
 * writes output_dir/{config.json, model.safetensors, tokenizer.json, metrics.jsonl}.
 * Returns 0 or an exit code with the error set. */
int plm_finetune_embed(plm_model *m, const plm_tokenizer *tok, const plm_pair_set *train, const plm_embed_ft_args *a);

#endif
