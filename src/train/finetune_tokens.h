/* finetune_tokens.h - fine-tuning for token classification (NER, POS) and extractive
 * question answering (SQuAD v1.1), as HF's run_ner.py and run_qa.py: the encoded
 * features of tasks/token_tasks.h in a seeded per-epoch order, AdamW with linear warmup
 * and decay (finetune.h's plm_ft_args), evaluation on the dev set with the task's metric
 * (conlleval entity F1, word accuracy, SQuAD EM/F1), the best model kept, early stopping,
 * checkpoints that resume bit for bit: finetune.h's loop (plm_ft_train) with the token
 * tasks' batches and evaluation. Owns the encoded splits, the prediction pass that turns
 * the TOKEN_CLS / QA logits into word tags or answer spans, their scores, and the task
 * keys of the fine-tuned model's config.json. */
#ifndef PLM_FINETUNE_TOKENS_H
#define PLM_FINETUNE_TOKENS_H

#include <stdbool.h>

#include "finetune.h"
#include "model/model.h"
#include "tasks/datasets.h"
#include "tasks/token_tasks.h"
#include "tokenizer/tokenizer.h"

typedef enum { PLM_TT_NER, PLM_TT_POS, PLM_TT_QA } plm_tt_kind;

/* What is learned and how it is scored. */
typedef struct {
    const char *name; /* "conll2003", "pos", "squad" or the custom name; config.json's finetuning_task */
    plm_tt_kind kind;
    int n_tags; /* tagging: tag names, index = class id (the training set's, sorted) */
    const char *const *tags;
    const char *metrics[3]; /* NER: f1 precision recall; POS: accuracy; QA: f1 exact_match. [0] picks the best */
    plm_tagging_opts tag_opts;
    plm_qa_opts qa_opts;
} plm_tt_task;

/* One split, encoded for the model: a tagged set (NER/POS) or a SQuAD set (QA), both borrowed. */
typedef struct {
    const plm_tagged_set *tagged;
    const plm_squad_set *squad;
    int n; /* sentences or questions used (the first n of the set) */
    plm_tagging_features tf;
    plm_qa_features qf;
    long *word_start; /* tagging: [n + 1] offset of each sentence's words in flat word arrays */
} plm_tt_data;

/* Encodes the first n (0: all) sentences / questions of a set. Returns 0 or -1 with plm_error. */
int plm_tt_data_init(plm_tt_data *d, const plm_tt_task *t, const plm_tokenizer *tok, const plm_tagged_set *tagged,
                     const plm_squad_set *squad, int n);
void plm_tt_data_free(plm_tt_data *d);

/* Predictions of one pass: a tag per word (flat, word_start order) or an answer per question. */
typedef struct {
    int *word_tags;
    plm_qa_answer *answers;
} plm_tt_pred;

void plm_tt_pred_free(plm_tt_pred *p);

/* value[] in the order of plm_tt_task.metrics; QA in percent, as evaluate-v1.1.py; n:
 * sentences or questions. */
typedef plm_ft_scores plm_tt_scores;

/* The forward pass over d in order, dropout off. out gets the predictions (freed with
 * plm_tt_pred_free), *loss (may be NULL) the mean loss. Returns 0 or -1. */
int plm_tt_predict(plm_model *m, const plm_tt_task *t, plm_tt_data *d, int B, plm_tt_pred *out, double *loss);
/* Scores predictions against the gold tags / answers of d. */
int plm_tt_score(const plm_tt_task *t, const plm_tt_data *d, const plm_tt_pred *p, plm_tt_scores *out);
/* The text of the answer to question q (a pointer into the context, *len bytes; "" when none). */
const char *plm_tt_answer_text(const plm_tt_data *d, const plm_tt_pred *p, int q, int *len);

/* model.safetensors, tokenizer.json and config.json with id2label (tagging),
 * finetuning_task and plm_task {name, type: token-classification | qa, metrics, lengths}. */
int plm_tt_save_model(const plm_model *m, const plm_tokenizer *tok, const plm_tt_task *t, const char *dir,
                      const char *const *meta_kv, int n_meta);

/* Fine-tunes m (a TOKEN_CLS head of t->n_tags, or a QA head) on train, evaluating dev
 * (may be NULL) every epoch or a->eval_steps; writes the best model by metrics[0] to
 * a->output_dir with metrics.jsonl, eval_results.json and checkpoint-N directories
 * (a->resume_from_checkpoint continues one). Returns 0 or an exit code. */
int plm_finetune_tokens(plm_model *m, const plm_tokenizer *tok, plm_tt_data *train, plm_tt_data *dev,
                        const plm_tt_task *t, const plm_ft_args *a, plm_tt_scores *best);

#endif
