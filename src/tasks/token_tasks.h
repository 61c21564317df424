/* token_tasks.h - the data and prediction side of token classification (NER, POS) and
 * extractive question answering (SQuAD v1.1), as Hugging Face's run_ner.py and run_qa.py
 * do it: words + tags -> sub-token features with aligned labels and back to one tag per
 * word; question + context -> overlapping windows with answer positions and back to an
 * answer span through the byte offsets. Owns the encoded feature sets (flat, grow-only
 * arrays: no allocation per token) and the padded [B, T] batches built from them.
 *
 * Special tokens follow the tokenizer, as HF's post-processors: WordPiece adds
 * [CLS] ... [SEP] (QA: [CLS] question [SEP] context [SEP]); byte-level BPE adds none. */
#ifndef PLM_TOKEN_TASKS_H
#define PLM_TOKEN_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tasks/datasets.h"
#include "tokenizer/tokenizer.h"

#define PLM_IGNORE_INDEX (-100) /* label of a position without a loss (HF's -100) */

/* ---- padded batches (both tasks) ---- */

/* Row-major [B, T], padded on the right: pad id, type 0, mask 0, label -100. Buffers only
 * grow, so a loop stops allocating after its largest batch. Fields map one to one onto
 * plm_batch (model/batch.h). */
typedef struct {
    int B, T;
    int32_t *input_ids;
    int32_t *token_type_ids;
    uint8_t *attention_mask;
    int32_t *labels;                          /* token classification: tag id or -100 */
    int32_t *start_positions, *end_positions; /* QA: [B] token positions (0 = [CLS]: no answer) */
    int *lengths;                             /* [B] real tokens per row */
    size_t cap_tokens;
    int cap_rows;
} plm_task_batch;

void plm_task_batch_init(plm_task_batch *b);
void plm_task_batch_free(plm_task_batch *b);

/* ---- token classification (run_ner.py's tokenize_and_align_labels) ---- */

typedef struct {
    int max_seq_length;    /* tokens per feature including [CLS]/[SEP]; 0 = no truncation. Default 128 */
    bool label_all_tokens; /* label every sub-token with its word's tag, not only the first (default false:
                              the other sub-tokens get -100, HF's default) */
    bool b_to_i_label;     /* with label_all_tokens: a continuation sub-token of a B-X word gets I-X
                              (when the tag set has I-X), as run_ner's b_to_i_label map */
} plm_tagging_opts;

void plm_tagging_opts_default(plm_tagging_opts *o);

/* One feature per sentence. Token i of feature f is at flat index tok_start[f] + i.
 *
 * Words are encoded one by one, as HF's is_split_into_words: WordPiece pre-tokenizes each
 * word alone (BERT's punctuation splitting still applies inside it: "U.S." -> u . s .,
 * all of word k); byte-level BPE encodes " " + word (HF requires add_prefix_space=True
 * for pre-split input, which puts a space before every word, the first one included).
 * A word whose text yields no token (only characters the normaliser drops) gets no
 * position; truncation cuts the last words off. Such words have no prediction: they are
 * counted in n_words_empty / n_words_truncated, and plm_tagging_decode gives them the
 * caller's default tag. */
typedef struct {
    const plm_tokenizer *tok;
    plm_tagging_opts opts;
    int n_tags;
    int32_t *b_to_i; /* [n_tags]: the I- tag of a B- tag, else the tag itself */
    int32_t pad_id;  /* [PAD], else the eos token (GPT-2), else 0 */
    bool bert;       /* [CLS] ... [SEP] around every feature */

    int n;              /* features */
    long *tok_start;    /* [n + 1] */
    int32_t *input_ids; /* flat, special tokens included */
    int32_t *labels;    /* flat: tag id or -100 ([CLS]/[SEP] and, by default, continuation sub-tokens) */
    int32_t *word_ids;  /* flat: word index in the sentence, -1 for [CLS]/[SEP] */
    int *n_words;       /* [n] words of the sentence */
    int *n_words_kept;  /* [n] words with at least one token left in the feature */
    int max_len;        /* longest feature */
    long n_tokens, n_words_total, n_words_truncated, n_words_empty;

    /* grow-only storage and scratch */
    long cap_tokens;
    int cap_feats;
    plm_encoding scratch;
    char *text;
    size_t cap_text;
} plm_tagging_features;

/* tag_names (n_tags) give b_to_i; opts NULL = defaults. */
void plm_tagging_init(plm_tagging_features *f, const plm_tokenizer *tok, const char *const *tag_names, int n_tags,
                      const plm_tagging_opts *opts);
void plm_tagging_free(plm_tagging_features *f);

/* Encodes one sentence (tags[k] in [0, n_tags), or NULL for unlabelled text: labels are
 * then -100 everywhere). Returns the feature index, or -1 with plm_error (invalid UTF-8
 * for WordPiece, a tag out of range, max_seq_length below the special tokens). */
int plm_tagging_add(plm_tagging_features *f, const char *const *words, const int *tags, int n_words);

/* Every sentence of a CoNLL / Brown set; pos = true tags with the CoNLL POS column (needs
 * keep_pos) instead of the NER tags. The tag names must be the set's own (init). */
int plm_tagging_add_set(plm_tagging_features *f, const plm_tagged_set *set, bool pos);

/* Rows features[0..B) as a batch; T = the longest of them (pad_to == 0) or pad_to. */
int plm_tagging_batch(const plm_tagging_features *f, const int *features, int B, int pad_to, plm_task_batch *out);

/* One tag per word of feature `feature` from its logits: row i of logits (K = n_tags
 * floats) belongs to the feature's token i (a batch row, as the TOKEN_CLS head's [B*T, K]
 * gives them; rows past the feature's length are not read). A word's tag is the argmax
 * (first maximum) over its first sub-token, HF's convention. Words without a token
 * (truncated or empty) get default_tag: HF's evaluation drops them from both gold and
 * prediction instead, which this cannot do and stay one tag per word; predicting "O"
 * turns a truncated entity into a miss, so scores are never better than HF's. */
void plm_tagging_decode(const plm_tagging_features *f, int feature, const float *logits, int default_tag,
                        int *word_tags);

/* ---- extractive QA (run_qa.py: prepare_*_features, postprocess_qa_predictions) ---- */

typedef struct {
    int max_seq_length;    /* default 384 */
    int doc_stride;        /* tokens shared by consecutive windows, default 128 */
    int n_best_size;       /* start and end candidates per feature, default 20 (at most 64) */
    int max_answer_length; /* tokens, default 30 */
} plm_qa_opts;

void plm_qa_opts_default(plm_qa_opts *o);

/* One window: [CLS] question [SEP] context tokens [win_start, win_start + win_len) [SEP]
 * (BPE: question then window, no specials). The window's token p (ctx_pos <= p <
 * ctx_pos + win_len) is context token win_start + p - ctx_pos, with byte offsets into the
 * context; only those positions can be part of an answer (HF's offset_mapping with None
 * outside the context). */
typedef struct {
    int example;
    int win_start, win_len;
    int ctx_pos; /* position of the window's first context token: question tokens + 2 for BERT */
    int len;     /* tokens of the feature */
    /* training labels: the answer's first and last token when the first gold answer lies
     * entirely inside the window, else cls_index (0) for both (SQuAD v1 training). An
     * answer starting in the window's last context token is labelled there; run_qa's scan
     * runs on over [SEP] and padding and labels the feature's last position instead. */
    int32_t start_position, end_position;
} plm_qa_feature;

/* Questions and their windows. Each context is encoded once and shared by its questions. */
typedef struct {
    const plm_tokenizer *tok;
    plm_qa_opts opts;
    int32_t pad_id;
    bool bert;

    int n_contexts;
    const char **ctx_text; /* borrowed: must outlive the set */
    size_t *ctx_len;
    long *ctx_tok_start; /* [n_contexts + 1] into ctx_ids / ctx_offsets */
    int32_t *ctx_ids;
    int32_t *ctx_offsets; /* 2 per token: byte [start, end) in the context */

    int n_examples;
    int *ex_context;
    long *ex_q_start; /* [n_examples + 1] into q_ids */
    int32_t *q_ids;
    int *ex_first_feature; /* [n_examples + 1]: the example's features are a contiguous run */
    int32_t *ex_answer;    /* 2 per example: byte [start, end) of the labelled answer, -1 if none */

    int n_features;
    plm_qa_feature *features;
    int max_len;
    long n_answers_labelled; /* examples with an answer */
    long n_answers_inside;   /* examples whose answer lies inside at least one window */

    long cap_ctx_tokens, cap_q_tokens;
    int cap_contexts, cap_examples, cap_features;
    plm_encoding scratch;
} plm_qa_features;

void plm_qa_init(plm_qa_features *f, const plm_tokenizer *tok, const plm_qa_opts *opts);
void plm_qa_free(plm_qa_features *f);

/* Registers a context (text borrowed, not copied) and encodes it; returns its index or -1.
 * Byte-level BPE tokens carry the space before a word ("Ġword"); their offsets are trimmed
 * of spaces at both ends, as HF's ByteLevel post-processor does (trim_offsets=True), so
 * that an answer never starts with the space before it. */
int plm_qa_add_context(plm_qa_features *f, const char *text, size_t len);
/* Adds a question on context ctx and its windows. answer_start/answer_len: byte span of the
 * gold answer in the context used for the training labels (answer_start < 0: none). The
 * question is left-stripped of whitespace as run_qa does. Returns the example index, or
 * -1 with plm_error (the question leaves no room for context, invalid UTF-8). */
int plm_qa_add_question(plm_qa_features *f, int ctx, const char *question, int answer_start, int answer_len);
/* Every question of a SQuAD set, labelled with its first answer (run_qa's answers[0]). */
int plm_qa_add_squad(plm_qa_features *f, const plm_squad_set *set);

/* Rows features[0..B) as a batch with start/end_positions; T as plm_tagging_batch. */
int plm_qa_batch(const plm_qa_features *f, const int *features, int B, int pad_to, plm_task_batch *out);

typedef struct {
    bool found;             /* false: no valid span in any window (HF then answers "empty") */
    int start, end;         /* byte span [start, end) in the context */
    float score;            /* start logit + end logit */
    int feature;            /* the window it came from */
    int start_tok, end_tok; /* positions in that window */
} plm_qa_answer;

/* The best span of example ex: logits[j] holds the [len, 2] (start, end) logits per
 * token of the example's j-th feature (feature ex_first_feature[ex] + j), as the QA head
 * lays them out per batch row. Candidates: the n_best_size highest start and end logits
 * of each feature's real tokens, both in the window's context, start <= end, at most
 * max_answer_length tokens; the highest start + end score over all windows wins; ties go
 * to the earlier window, then the higher-ranked start, then end (ranks break logit ties
 * by position), as run_qa's stable sort of its candidate list. */
plm_qa_answer plm_qa_best_answer(const plm_qa_features *f, int ex, const float *const *logits);

#endif
