/* corpus.h - a tokenized corpus: raw text files turned into one stream of token ids,
 * each file a document followed by a separator token (GPT-2's <|endoftext|>). Checks
 * the input (missing or empty files, invalid UTF-8) with errors naming file and byte. */
#ifndef PLM_CORPUS_H
#define PLM_CORPUS_H

#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

typedef struct {
    int32_t *ids;
    size_t n;
} plm_token_stream;

/* Tokenizes files in order into out, appending doc_sep after each document when
 * doc_sep >= 0. Files are split at line boundaries where GPT-2's and BERT's
 * pre-tokenizers split anyway, and chunks are encoded in parallel, so the ids equal
 * encoding each file whole. Returns 0 or -1 (error set). */
int plm_corpus_tokenize(const plm_tokenizer *tok, const char *const *files, int nfiles, int32_t doc_sep,
                        plm_token_stream *out, int verbose);
void plm_token_stream_free(plm_token_stream *s);

/* Byte offset of the first invalid UTF-8 sequence, or -1 when valid. */
long plm_utf8_check(const char *s, size_t n);

#endif
