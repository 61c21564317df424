/* dataloader.h - turns a token stream into training batches for the pretraining
 * objectives, and owns BERT's masking.
 *   CLM: windows of T+1 tokens; inputs are the first T, labels the next-token shift.
 *        Right-to-left CLM reverses each window first.
 *   MLM: windows of T-2 tokens wrapped as [CLS] ... [SEP] (document separators become
 *        [SEP]); each non-special token is selected with mlm_probability, and selected
 *        tokens become [MASK] (mask_replace_prob), a random token (random_replace_prob)
 *        or stay; labels hold the original id at selected positions, -100 elsewhere.
 *   T5:  windows of expanded_inputs_length tokens, span-corrupted (span_corruption.h):
 *        encoder inputs of exactly T tokens, targets (labels) and the decoder inputs
 *        (targets shifted right) of t5_targets_length tokens; plm_dataloader_next_t5.
 * Windows are visited in a seeded random order per epoch. The data position (epoch,
 * index) and the seed determine every batch, masks included, so a resumed run sees
 * exactly the batches it would have seen. Dynamic masking (RoBERTa) draws a new mask
 * each epoch; static masking (original BERT) fixes one mask per window. */
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

typedef struct {
    float mlm_probability;          /* 0.15 */
    float mask_replace_prob;        /* 0.8: selected -> [MASK] */
    float random_replace_prob;      /* 0.1: selected -> random token; the rest stay */
    bool static_masking;            /* one fixed mask per window instead of per epoch */
    bool right_to_left;             /* CLM: predict the previous token */
    float noise_density;            /* T5: share of corrupted tokens (0.15) */
    float mean_noise_span_length;   /* T5: mean corrupted span (3) */
    int32_t decoder_start_token_id; /* T5: first decoder input (pad, 0 in HF's T5) */
} plm_objective_opts;

void plm_objective_opts_default(plm_objective_opts *o);

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

/* BERT masking of ids[0..T) in place (see above). Returns the number selected. */
int plm_mlm_mask(int32_t *ids, int32_t *labels, int T, const plm_vocab_info *v, const plm_objective_opts *o,
                 plm_rng *r);

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
    size_t pos;                              /* next window within the epoch */
    int t5_tokens_length, t5_targets_length; /* T5: window (expanded) and target lengths */
    uint8_t *t5_noise;                       /* T5: one window's noise mask */
} plm_dataloader;

int plm_dataloader_init(plm_dataloader *d, const plm_token_stream *s, plm_objective obj, const plm_objective_opts *o,
                        const plm_vocab_info *v, int T, uint64_t seed, bool shuffle);
void plm_dataloader_free(plm_dataloader *d);
/* Moves to a data position (used when resuming). */
void plm_dataloader_seek(plm_dataloader *d, uint64_t epoch, size_t pos);
/* Fills one [B, T] batch; token_type_ids are 0 and attention_mask 1 (windows are full). */
void plm_dataloader_next(plm_dataloader *d, int B, int32_t *ids, int32_t *type_ids, uint8_t *attn_mask,
                         int32_t *labels);

/* T5: fills enc_ids [B, T], dec_ids and labels [B, t5_targets_length]. */
void plm_dataloader_next_t5(plm_dataloader *d, int B, int32_t *enc_ids, int32_t *dec_ids, int32_t *labels);

#endif
