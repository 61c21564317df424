/* embed.h - sentence embeddings from any plm checkpoint, encoder (BERT, ELECTRA's
 * discriminator) or decoder (GPT-2): texts are encoded with the tokenizer's model-input
 * encoding, batched with right padding (data/collate.h), run through backbone 0, and
 * their final hidden states pooled into one vector per text and L2-normalised, as
 * sentence-transformers' Pooling + Normalize modules do. Owns the pooling maths and the
 * .npy writer (NPY format v1.0). */
#ifndef PLM_EMBED_H
#define PLM_EMBED_H

#include <stdbool.h>
#include <stdint.h>

#include "core/progress.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

typedef enum {
    PLM_POOL_MEAN, /* mean of the hidden states of the real tokens (attention_mask 1, specials included) */
    PLM_POOL_CLS,  /* the first token's state ([CLS] for BERT; the first word piece for GPT-2) */
    PLM_POOL_LAST, /* the last real token's state: what a causal model has read everything by */
} plm_pooling;

/* "mean", "cls", "last" -> 0 and *p; -1 for anything else. */
int plm_pooling_parse(const char *s, plm_pooling *p);
const char *plm_pooling_name(plm_pooling p);

typedef struct {
    plm_pooling pooling; /* default mean */
    int max_seq_length;  /* truncation (default 128; capped at max_position_embeddings) */
    int batch_size;      /* texts per forward pass (default 32) */
    bool normalize;      /* L2-normalise (default true) */
} plm_embed_opts;

void plm_embed_opts_default(plm_embed_opts *o);

/* Pools hidden states h[B, T, C] of rows with lengths[b] real tokens (right padding) into
 * out[B, C]. A row of length 0 pools to zeros. */
void plm_pool(const float *h, const int *lengths, int B, int T, int C, plm_pooling p, float *out);
/* Scales each of the n rows of v[n, dim] to unit L2 norm (a zero row stays zero). */
void plm_l2_normalize(float *v, int n, int dim);

/* Embeds texts[0..n) into out[n, hidden_size] with m's backbone 0 (dropout off; causal
 * attention when the model is a decoder). The model's heads are not run usefully: load
 * it without heads (plm_model_load_with_heads with none). prog (may be NULL) advances by
 * texts. Returns 0, or -1 with the error set ("text 12: ..." for a row the tokenizer or
 * model rejects, or that tokenizes to nothing). */
int plm_embed_texts(plm_model *m, const plm_tokenizer *tok, const char *const *texts, int n, const plm_embed_opts *o,
                    float *out, plm_progress *prog);

/* Writes a float32 matrix [rows, cols] as .npy, format version 1.0: the magic "\x93NUMPY",
 * version 1 0, a little-endian uint16 header length, then the header dict
 * {'descr': '<f4', 'fortran_order': False, 'shape': (rows, cols), } padded with spaces
 * and a final newline so that the data starts at a multiple of 64 bytes, then the data
 * in C order, little-endian. Atomic. Returns 0 or -1 with the error set. */
int plm_npy_write_f32(const char *path, const float *data, long rows, long cols);

#endif
