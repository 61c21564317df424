/* sft.h - supervised fine-tuning of a causal LM on instruction data (plm sft), as TRL's
 * SFTTrainer with completion-only loss: conversations rendered by a chat template
 * (tasks/chat.h), the loss only on the assistant's tokens, on the fine-tuning loop of
 * finetune.h (seeded epochs, AdamW with linear decay, clipping, evaluation, the best
 * model kept, checkpoints that resume bit for bit, metrics.jsonl). Owns the encoded
 * examples (plm_sft_data), their batches and the response-token evaluation.
 *
 * Labels. The model reads ids[0..n); position t predicts ids[t+1], so a batch's labels
 * are pre-shifted (batch.h): labels[t] = ids[t+1] when token t+1 is trained, else -100;
 * the last position and the padding get -100. The loss is the mean cross-entropy over
 * the batch's trained tokens (HF's mean over the labelled tokens). Rows are padded on
 * the right with the pad token (GPT-2: EOS), attention mask 0; causal attention makes
 * the padding invisible to the real tokens. An example longer than max_seq_length loses
 * its end (TRL's truncation).
 *
 * Packing (--packing, TRL's packing=True with per-document attention, i.e. HF's
 * DataCollatorWithFlattening / flash-attention varlen): the examples, shuffled with the
 * seed, are packed first-fit-decreasing into rows of max_seq_length tokens. In a row each
 * document keeps its own labels (its last position gets -100, so no target crosses into
 * the next document), its position_ids restart at 0 and seq_idx numbers it, so no token
 * attends to another document: each document computes what it computes alone in a row. */
#ifndef PLM_SFT_H
#define PLM_SFT_H

#include <stdbool.h>
#include <stdint.h>

#include "finetune.h"
#include "model/model.h"
#include "tasks/chat.h"
#include "tokenizer/tokenizer.h"

/* Encoded examples: example i is ids[off[i]..off[i+1]) with its train flags. */
typedef struct {
    int n, cap;
    size_t *off; /* [n + 1] */
    int32_t *ids;
    uint8_t *train;
    int *line; /* the file line of each example (0: none) */
    size_t cap_tok;
    int max_len;   /* longest example (after truncation) */
    int truncated; /* examples cut at the length limit */
    int no_target; /* examples left without a trained token by the cut */
    long targets;  /* labelled positions: trained tokens after the first position */
} plm_sft_data;

void plm_sft_data_init(plm_sft_data *d);
void plm_sft_data_free(plm_sft_data *d);
/* Appends one example of n tokens (train[k] = 1: learned), cut to max_len (> 0). */
void plm_sft_data_add(plm_sft_data *d, const int32_t *ids, const uint8_t *train, int n, int max_len, int line);
/* Renders and encodes every conversation of set with template t, cut to max_len tokens.
 * Returns 0, or -1 with the error set ("name:line: ..."). */
int plm_sft_encode(plm_sft_data *out, const plm_chat_set *set, const char *name, const plm_tokenizer *tok,
                   plm_chat_template t, int max_len);
/* The same; with prompts, each conversation is rendered up to the generation prompt (the
 * prompts plm rloo completes) and one of max_len tokens or more is an error. */
int plm_sft_encode_ex(plm_sft_data *out, const plm_chat_set *set, const char *name, const plm_tokenizer *tok,
                      plm_chat_template t, int max_len, bool prompts);
/* Moves round(fraction * n) examples, drawn with a seeded shuffle (HF's train_test_split),
 * from d into valid (kept in file order in both). Returns the number moved. */
int plm_sft_split(plm_sft_data *d, double fraction, uint64_t seed, plm_sft_data *valid);

/* A batch's buffers, grown on demand (nothing is allocated once they are big enough). */
typedef struct {
    int32_t *ids, *labels;
    uint8_t *mask;
    int32_t *position_ids, *seq_idx; /* packed batches */
    size_t cap;
} plm_sft_batch;

void plm_sft_batch_free(plm_sft_batch *b);
/* Makes room for batches of up to n_tokens (rows x longest row): plm_sft_train reserves
 * train_batch_size x max_len before the loop, so no training step allocates. */
void plm_sft_batch_reserve(plm_sft_batch *b, size_t n_tokens);
/* Examples rows[0..n) of d as one causal batch, right-padded with pad_id to the longest. */
void plm_sft_collate(const plm_sft_data *d, const int *rows, int n, int32_t pad_id, plm_sft_batch *bb, plm_batch *out);

/* Packed rows: row r holds the examples ex[off[r]..off[r + 1]) of a plm_sft_data, in order. */
typedef struct {
    int n;       /* rows */
    int *off;    /* [n + 1] */
    int *ex;     /* [examples] */
    int *len;    /* [n] tokens of each row */
    int max_len; /* the longest row */
    long tokens; /* real tokens in all rows */
} plm_sft_packs;

/* Shuffles d's examples with seed (every example at most max_len tokens), then packs them
 * first-fit-decreasing into rows of at most max_len tokens: longest first (ties in the
 * shuffled order), each into the first row with room, found in O(log rows) with a
 * max-segment tree over the rows' free space. */
void plm_sft_pack(const plm_sft_data *d, int max_len, uint64_t seed, plm_sft_packs *out);
void plm_sft_packs_free(plm_sft_packs *p);
/* Real tokens / (rows x max_len). */
double plm_sft_packing_efficiency(const plm_sft_packs *p, int max_len);
/* Rows rows[0..n) of p (packs of d's examples) as one causal batch with position_ids and
 * seq_idx (batch.h), right-padded with pad_id to the longest row (padding: mask 0,
 * label -100, position 0). */
void plm_sft_collate_packed(const plm_sft_data *d, const plm_sft_packs *p, const int *rows, int n, int32_t pad_id,
                            plm_sft_batch *bb, plm_batch *out);

/* The most frequent trained token of d (the context-free baseline's answer), or -1. */
int32_t plm_sft_majority_token(const plm_sft_data *d, int vocab_size);

typedef struct {
    double loss;              /* mean cross-entropy per trained token */
    double accuracy;          /* top-1 accuracy on trained tokens */
    double majority_accuracy; /* of always answering the majority token */
    long tokens;              /* trained tokens scored */
} plm_sft_scores;

/* Scores every example of d in batches of B (dropout off). Returns 0 or -1 (error set). */
int plm_sft_evaluate(plm_model *m, const plm_sft_data *d, int B, int32_t pad_id, int32_t majority, plm_sft_scores *out);

/* The pad id batches use: the model's pad_token_id, else the tokenizer's pad, else EOS. */
int32_t plm_sft_pad_id(const plm_model *m, const plm_tokenizer *tok);

/* Fine-tunes m (a causal model with an LM head) on train, evaluating on valid (may be
 * NULL) every epoch or a->eval_steps: eval_loss and eval_perplexity over the response
 * tokens, eval_token_accuracy and eval_majority_token_accuracy; the model with the
 * lowest eval perplexity is kept (the last one without valid). Writes output_dir as
 * finetune.h's loop does, config.json recording the template. Returns 0 or an exit
 * code (core/common.h) with the error set. */
int plm_sft_train(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *train, const plm_sft_data *valid,
                  plm_chat_template t, const plm_ft_args *a, plm_ft_scores *best);
/* The same; with packing the training rows are packs of train (plm_sft_pack with a->seed
 * and a->max_seq_length; evaluation stays one example per row), the packing efficiency is
 * printed and each step's line of metrics.jsonl has its batch's as packing_efficiency. */
int plm_sft_train_ex(plm_model *m, const plm_tokenizer *tok, const plm_sft_data *train, const plm_sft_data *valid,
                     plm_chat_template t, const plm_ft_args *a, bool packing, plm_ft_scores *best);

/* The metrics plm_sft_train reports, in plm_ft_scores.value order. */
extern const char *const plm_sft_metrics[3];

#endif
