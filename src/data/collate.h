/* collate.h - padded batches for fine-tuning: encodes B texts or text pairs with the
 * tokenizer's model-input encoding ([CLS] A [SEP] B [SEP] for BERT, truncated by
 * strategy) and lays them out as a rectangular [B, T] batch padded on the right, as
 * Hugging Face's tokenizer(..., padding=...) / DataCollatorWithPadding do. Owns
 * plm_encoded_batch, whose buffers only grow, so a training loop stops allocating for
 * the batch once it has seen its largest one. Field names follow HF's BatchEncoding. */
#ifndef PLM_COLLATE_H
#define PLM_COLLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

typedef enum {
    PLM_PAD_LONGEST,    /* T = the longest sequence of the batch (dynamic padding) */
    PLM_PAD_MAX_LENGTH, /* T = max_length for every batch */
} plm_padding;

typedef struct {
    plm_padding padding;       /* default PLM_PAD_LONGEST */
    int max_length;            /* truncation limit (0 = none); PLM_PAD_MAX_LENGTH needs it */
    plm_truncation truncation; /* default longest_first */
    int pad_to_multiple_of;    /* round T up to a multiple of this (0 = off), as HF */
    int32_t pad_id;            /* -1 (default): the tokenizer's pad token, else this id */
    bool add_special_tokens;   /* default true */
} plm_collate_opts;

void plm_collate_opts_default(plm_collate_opts *o);

/* Row-major [B, T]; row r's real tokens are [0, lengths[r]) and the rest is padding:
 * input_ids = pad id, token_type_ids 0, attention_mask 0, special_tokens_mask 1,
 * word_ids and sequence_ids -1, offset_mapping (0, 0) - HF's padding of an Encoding. */
typedef struct {
    int B, T;
    int32_t *input_ids;
    int32_t *token_type_ids;      /* 0 for segment A (and [CLS], first [SEP]), 1 for B */
    uint8_t *attention_mask;      /* 1 real token, 0 padding */
    uint8_t *special_tokens_mask; /* 1 for [CLS]/[SEP] and padding */
    int32_t *word_ids;            /* word index within its own segment; -1 special/pad */
    int8_t *sequence_ids;         /* 0 segment A, 1 segment B, -1 special/pad */
    int32_t *offset_mapping;      /* [B, T, 2] byte offsets [start, end) into its own text */
    int *lengths;                 /* [B] real tokens per row */
    /* reused between calls: capacities and one scratch encoding per row */
    size_t cap_tokens;
    int cap_rows;
    plm_encoding *rows;
} plm_encoded_batch;

void plm_encoded_batch_init(plm_encoded_batch *b);
void plm_encoded_batch_free(plm_encoded_batch *b);

/* Encodes texts_a[i] (with texts_b[i] as its pair, when texts_b and texts_b[i] are not
 * NULL) for i < n into out, replacing its previous contents. lens_a / lens_b give byte
 * lengths; NULL means the texts are NUL-terminated. Returns 0, or -1 with plm_error set
 * (empty batch, a row the tokenizer rejects, padding without a pad token); out is then
 * empty (B = T = 0). Padding is requested for every batch, so a tokenizer without a pad
 * token (GPT-2) is an error even when a batch happens to need none, as in transformers:
 * set opts.pad_id (e.g. to the eos id) for those. */
int plm_collate_pairs(const plm_tokenizer *tok, const char *const *texts_a, const size_t *lens_a,
                      const char *const *texts_b, const size_t *lens_b, int n, const plm_collate_opts *o,
                      plm_encoded_batch *out);

#endif
