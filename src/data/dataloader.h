/* dataloader.h - turns a token stream into training batches for the pretraining
 * objectives, and owns BERT's masking.
 *   CLM: windows of T+1 tokens packed across documents (each document ends in EOS, as
 *        HF run_clm's group_texts); inputs are the first T, labels the next-token shift.
 *        Right-to-left CLM reverses each window first.
 *   MLM: [CLS] chunk [SEP], the chunk up to T-2 tokens of ONE document: documents are cut
 *        into consecutive chunks and a document's last chunk is padded (attention_mask 0),
 *        as google-research/bert's instances, which never cross a document; so no
 *        [CLS]/[SEP] appears inside a chunk (HF run_mlm's group_texts puts them there).
 *   MLM + NSP / SOP (pairs.h): [CLS] A [SEP] B [SEP] with token_type_ids 0 for
 *        "[CLS] A [SEP]" and 1 for "B [SEP]", built as google-research/bert's
 *        create_instances_from_document; seq_labels hold the NSP/SOP label.
 *   T5:  windows of expanded_inputs_length tokens, span-corrupted (span_corruption.h):
 *        encoder inputs of exactly T tokens, targets (labels) and the decoder inputs
 *        (targets shifted right) of t5_targets_length tokens; plm_dataloader_next_t5.
 * Masking (plm_mlm_mask_words): each eligible unit is selected, and selected tokens
 * become [MASK] (mask_replace_prob), a random token (random_replace_prob) or stay; labels
 * hold the original id at selected positions, -100 elsewhere. The unit is
 *   token       each non-special token with probability mlm_probability (HF's collator);
 *   whole word  each word with probability mlm_probability, all its tokens together
 *               (google-research/bert's --do_whole_word_mask; HF's DataCollatorForWholeWordMask).
 *               Words are runs from a WORD_START token (corpus.h), so WordPiece's "##"
 *               pieces and BPE's pieces after a "Ġ" token join their word; a word cut by
 *               the window's edge is the part inside the window, masked as one word;
 *   span        SpanBERT: spans of whole words with geometric lengths (p = span_p,
 *               clipped at max_span_length words), drawn until mlm_probability of the
 *               eligible tokens are selected; the 80/10/10 choice is made per span.
 * Windows are visited in a seeded random order per epoch. The data position (epoch,
 * index) and the seed determine every batch, masks included, so a resumed run sees
 * exactly the batches it would have seen. Dynamic masking (RoBERTa) draws a new mask
 * each epoch; static masking (original BERT) uses dupe_factor fixed masks per window,
 * mask k = epoch mod dupe_factor (the masks are pre-drawn in the sense that they are a
 * pure function of seed, k and window: create_pretraining_data's dupe_factor copies
 * without storing them). */
#ifndef PLM_DATALOADER_H
#define PLM_DATALOADER_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rng.h"
#include "corpus.h"

/* ELECTRA trains on MLM batches (the trainer corrupts them, train/electra.h); CLM_MLM is
 * the two-phase schedule (CLM, then MLM on the same weights); T5 is span corruption on an
 * encoder-decoder. A dataloader is CLM, MLM or T5. */
typedef enum {
    PLM_OBJ_CLM = 0,
    PLM_OBJ_MLM = 1,
    PLM_OBJ_ELECTRA = 2,
    PLM_OBJ_CLM_MLM = 3,
    PLM_OBJ_T5 = 4
} plm_objective;

typedef enum { PLM_MASK_TOKEN = 0, PLM_MASK_WHOLE_WORD, PLM_MASK_SPAN } plm_mask_unit;

/* The sentence-pair objective that goes with MLM (--objective mlm+nsp / mlm+sop). */
typedef enum { PLM_PAIR_NONE = 0, PLM_PAIR_NSP, PLM_PAIR_SOP } plm_pair_objective;

typedef struct {
    float mlm_probability;          /* 0.15; 0.05 .. 0.5 */
    float mask_replace_prob;        /* 0.8: selected -> [MASK] */
    float random_replace_prob;      /* 0.1: selected -> random token; the rest stay */
    bool static_masking;            /* dupe_factor fixed masks instead of a new one per epoch */
    int dupe_factor;                /* 10, as create_pretraining_data.py */
    plm_mask_unit masking;          /* token, whole word or span */
    float span_p;                   /* 0.2: geometric span length parameter (SpanBERT) */
    int max_span_length;            /* 10 words */
    plm_pair_objective pair;        /* NSP or SOP next to MLM */
    float short_seq_prob;           /* 0.1: a pair instance's target length is random in [2, T-3] */
    bool right_to_left;             /* CLM: predict the previous token */
    float noise_density;            /* T5: share of corrupted tokens (0.15) */
    float mean_noise_span_length;   /* T5: mean corrupted span (3) */
    int32_t decoder_start_token_id; /* T5: first decoder input (pad, 0 in HF's T5) */
} plm_objective_opts;

void plm_objective_opts_default(plm_objective_opts *o);
/* Checks the ranges (mlm_probability 0.05..0.5, shares, span parameters). Returns 0 or
 * -1 with the error set. */
int plm_objective_opts_check(const plm_objective_opts *o);

/* Token ids the objectives need; -1 when absent. */
typedef struct {
    int vocab_size;
    int32_t cls, sep, mask, pad, eos;
    uint8_t *is_special;  /* [vocab_size]: never selected, never a random replacement */
    int32_t *random_pool; /* non-special ids */
    int num_random;
} plm_vocab_info;

int plm_vocab_info_init(plm_vocab_info *v, const plm_tokenizer *tok);
void plm_vocab_info_free(plm_vocab_info *v);

/* Masking of ids[0..T) in place (see above) with o->masking as the unit; word_start
 * (flags, corpus.h) may be NULL (every token a word). Returns the number selected. */
int plm_mlm_mask_words(int32_t *ids, const uint8_t *word_start, int32_t *labels, int T, const plm_vocab_info *v,
                       const plm_objective_opts *o, plm_rng *r);
/* Token-level masking (HF's DataCollatorForLanguageModeling). */
int plm_mlm_mask(int32_t *ids, int32_t *labels, int T, const plm_vocab_info *v, const plm_objective_opts *o,
                 plm_rng *r);

/* One training sequence of MLM or a pair objective: token ranges of the stream. */
typedef struct {
    uint64_t a_start, b_start;
    uint32_t a_len, b_len; /* b_len 0: a single segment (MLM) */
    uint32_t a_doc, b_doc; /* document indices (b_doc != a_doc for a random next) */
    int32_t label;         /* NSP: 0 is next, 1 random; SOP: 0 in order, 1 swapped */
} plm_window;

/* Documents of a stream: [start, end) without the separator token that ends each. */
typedef struct {
    uint64_t *start, *end;
    uint64_t *sent;       /* sentence starts of all documents, ascending */
    uint64_t *first_sent; /* [num_docs + 1]: doc d's sentences are sent[first_sent[d] ..] */
    size_t num_docs, num_sent;
} plm_documents;

typedef struct {
    const plm_token_stream *stream;
    plm_objective objective;
    plm_objective_opts opts;
    const plm_vocab_info *vocab;
    int T;
    uint64_t seed;
    bool shuffle;
    size_t num_windows;
    uint32_t *order; /* window order of the current epoch */
    uint64_t epoch;
    size_t pos; /* next window within the epoch */
    /* MLM and pairs */
    plm_documents docs;
    plm_window *windows;  /* MLM: fixed; pairs: rebuilt for each epoch (or dupe) */
    uint64_t windows_key; /* the epoch key the pair windows were built for */
    size_t windows_cap;
    int32_t *tmp_ids;   /* [T + 1] */
    uint8_t *tmp_flags; /* [T + 1] */
    /* T5 */
    int t5_tokens_length, t5_targets_length; /* window (expanded) and target lengths */
    uint8_t *t5_noise;                       /* one window's noise mask */
} plm_dataloader;

int plm_dataloader_init(plm_dataloader *d, const plm_token_stream *s, plm_objective obj, const plm_objective_opts *o,
                        const plm_vocab_info *v, int T, uint64_t seed, bool shuffle);
void plm_dataloader_free(plm_dataloader *d);
/* Moves to a data position (used when resuming). */
void plm_dataloader_seek(plm_dataloader *d, uint64_t epoch, size_t pos);
/* Fills one [B, T] batch. Padding (the last chunk of a document, short pairs) has the
 * pad id, attention_mask 0 and label -100. */
void plm_dataloader_next(plm_dataloader *d, int B, int32_t *ids, int32_t *type_ids, uint8_t *attn_mask,
                         int32_t *labels);
/* The same with seq_labels [B] (NSP/SOP labels; -100 without a pair objective). */
void plm_dataloader_next_seq(plm_dataloader *d, int B, int32_t *ids, int32_t *type_ids, uint8_t *attn_mask,
                             int32_t *labels, int32_t *seq_labels);
/* The window w of the current epoch (tests). */
const plm_window *plm_dataloader_window(const plm_dataloader *d, size_t w);

/* T5: fills enc_ids [B, T], dec_ids and labels [B, t5_targets_length]. */
void plm_dataloader_next_t5(plm_dataloader *d, int B, int32_t *enc_ids, int32_t *dec_ids, int32_t *labels);

#endif
