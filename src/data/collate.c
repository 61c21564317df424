/* collate.c - see collate.h */
#include "collate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

void plm_collate_opts_default(plm_collate_opts *o) {
    memset(o, 0, sizeof *o);
    o->padding = PLM_PAD_LONGEST;
    o->truncation = PLM_TRUNC_LONGEST_FIRST;
    o->pad_id = -1;
    o->add_special_tokens = true;
}

void plm_encoded_batch_init(plm_encoded_batch *b) { memset(b, 0, sizeof *b); }

void plm_encoded_batch_free(plm_encoded_batch *b) {
    free(b->input_ids);
    free(b->token_type_ids);
    free(b->attention_mask);
    free(b->special_tokens_mask);
    free(b->word_ids);
    free(b->sequence_ids);
    free(b->offset_mapping);
    free(b->lengths);
    for (int i = 0; i < b->cap_rows; i++) plm_encoding_free(&b->rows[i]);
    free(b->rows);
    memset(b, 0, sizeof *b);
}

static void reserve_rows(plm_encoded_batch *b, int n) {
    if (n <= b->cap_rows) return;
    b->rows = plm_realloc(b->rows, (size_t)n * sizeof *b->rows);
    b->lengths = plm_realloc(b->lengths, (size_t)n * sizeof *b->lengths);
    for (int i = b->cap_rows; i < n; i++) plm_encoding_init(&b->rows[i]);
    b->cap_rows = n;
}

static void reserve_tokens(plm_encoded_batch *b, size_t n) {
    if (n <= b->cap_tokens) return;
    b->input_ids = plm_realloc(b->input_ids, n * sizeof *b->input_ids);
    b->token_type_ids = plm_realloc(b->token_type_ids, n * sizeof *b->token_type_ids);
    b->attention_mask = plm_realloc(b->attention_mask, n);
    b->special_tokens_mask = plm_realloc(b->special_tokens_mask, n);
    b->word_ids = plm_realloc(b->word_ids, n * sizeof *b->word_ids);
    b->sequence_ids = plm_realloc(b->sequence_ids, n);
    b->offset_mapping = plm_realloc(b->offset_mapping, 2 * n * sizeof *b->offset_mapping);
    b->cap_tokens = n;
}

/* Copies one encoding into row r of the [B, T] arrays and pads the rest. */
static void put_row(plm_encoded_batch *b, int r, const plm_encoding *e, int32_t pad_id) {
    size_t at = (size_t)r * (size_t)b->T, n = (size_t)e->n, pad = (size_t)b->T - n;
    memcpy(b->input_ids + at, e->ids, n * sizeof *e->ids);
    memcpy(b->token_type_ids + at, e->type_ids, n * sizeof *e->type_ids);
    memcpy(b->attention_mask + at, e->attention_mask, n);
    memcpy(b->special_tokens_mask + at, e->special_mask, n);
    memcpy(b->word_ids + at, e->word_ids, n * sizeof *e->word_ids);
    memcpy(b->sequence_ids + at, e->seq_ids, n);
    memcpy(b->offset_mapping + 2 * at, e->offsets, 2 * n * sizeof *e->offsets);
    at += n;
    for (size_t i = 0; i < pad; i++) {
        b->input_ids[at + i] = pad_id;
        b->token_type_ids[at + i] = 0; /* HF's pad_type_id default, and BERT's */
        b->word_ids[at + i] = -1;
    }
    memset(b->attention_mask + at, 0, pad);
    memset(b->special_tokens_mask + at, 1, pad);
    memset(b->sequence_ids + at, -1, pad);
    memset(b->offset_mapping + 2 * at, 0, 2 * pad * sizeof *b->offset_mapping);
    b->lengths[r] = e->n;
}

int plm_collate_pairs(const plm_tokenizer *tok, const char *const *texts_a, const size_t *lens_a,
                      const char *const *texts_b, const size_t *lens_b, int n, const plm_collate_opts *o,
                      plm_encoded_batch *out) {
    plm_collate_opts def;
    if (!o) {
        plm_collate_opts_default(&def);
        o = &def;
    }
    out->B = out->T = 0;
    if (n <= 0 || !texts_a) {
        plm_error("collate: empty batch (%d sequences)", n);
        return -1;
    }
    if (o->padding == PLM_PAD_MAX_LENGTH && o->max_length <= 0) {
        plm_error("collate: padding to max_length needs max_length > 0 (got %d)", o->max_length);
        return -1;
    }
    if (o->pad_to_multiple_of < 0) {
        plm_error("collate: pad_to_multiple_of must be >= 0 (got %d)", o->pad_to_multiple_of);
        return -1;
    }
    /* Checked before encoding, whether or not this batch needs padding, so a run fails on
     * its first batch rather than on the first one whose lengths differ. */
    int32_t pad_id = o->pad_id >= 0 ? o->pad_id : plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    if (pad_id < 0) {
        plm_error("collate: padding needs a pad token, and the tokenizer has none (GPT-2 has none); set "
                  "plm_collate_opts.pad_id, e.g. to the eos id %d",
                  plm_tokenizer_special(tok, PLM_SPECIAL_EOS));
        return -1;
    }
    if (pad_id >= plm_tokenizer_vocab_size(tok)) {
        plm_error("collate: pad id %d is outside the vocabulary (%d tokens)", pad_id, plm_tokenizer_vocab_size(tok));
        return -1;
    }

    plm_encode_opts eo;
    plm_encode_opts_default(&eo);
    eo.add_special_tokens = o->add_special_tokens;
    eo.max_length = o->max_length;
    eo.truncation = o->truncation;
    eo.pad_to_max_length = false; /* padded here, with the batch's own length and pad id */

    /* Encoded into per-row scratch first: T is known only once every row is. */
    reserve_rows(out, n);
    int longest = 0;
    for (int i = 0; i < n; i++) {
        const char *a = texts_a[i], *b = texts_b ? texts_b[i] : NULL;
        if (!a) {
            plm_error("collate: row %d: text is NULL", i);
            return -1;
        }
        size_t alen = lens_a ? lens_a[i] : strlen(a);
        size_t blen = b ? (lens_b ? lens_b[i] : strlen(b)) : 0;
        if (plm_tokenizer_encode_full(tok, a, alen, b, blen, &eo, &out->rows[i]) != 0) {
            char why[512];
            snprintf(why, sizeof why, "%s", plm_last_error());
            plm_error("collate: row %d: %s", i, why);
            return -1;
        }
        longest = PLM_MAX(longest, out->rows[i].n);
    }

    int T = o->padding == PLM_PAD_MAX_LENGTH ? o->max_length : longest;
    int m = o->pad_to_multiple_of;
    if (m > 0 && T % m) T += m - T % m;
    reserve_tokens(out, (size_t)n * (size_t)T);
    out->B = n;
    out->T = T;
    for (int i = 0; i < n; i++) put_row(out, i, &out->rows[i], pad_id);
    return 0;
}
