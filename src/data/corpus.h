/* corpus.h - a tokenized corpus: raw text files turned into one stream of token ids,
 * each file a document followed by a separator token (GPT-2's <|endoftext|>), with one
 * flag byte per token: word start (whole-word masking), sentence start (NSP/SOP
 * segments) and document start. Checks the input (missing or empty files, invalid
 * UTF-8) with errors naming file and byte. A stream lives in memory (ids, flags) or in
 * prepared shards read through mmap (shards.h); plm_stream_read reads either. */
#ifndef PLM_CORPUS_H
#define PLM_CORPUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

/* Flag bits of a token.
 *  WORD_START  the first token of a pre-tokenizer word (the tokenizer's word_ids change):
 *              WordPiece's non-"##" pieces, byte-level BPE's pre-tokens (" the", ",").
 *  SENT_START  the first non-whitespace token after a line break or after a sentence end
 *              (. ! ? plus closing quotes/brackets, then whitespace): the simple splitter
 *              that cuts NSP/SOP segments. One sentence per line (google-research/bert's
 *              format) is the special case of text without sentence ends inside lines.
 *  DOC_START   the first token of a document (every token of a document is before the
 *              next DOC_START; the separator token ends the document). */
enum { PLM_TOK_WORD_START = 1, PLM_TOK_SENT_START = 2, PLM_TOK_DOC_START = 4 };

struct plm_shards;

typedef struct {
    int32_t *ids;
    size_t n;
    uint8_t *flags;                  /* [n] or NULL: every token a word start, EOS/SEP ends documents */
    const struct plm_shards *shards; /* set: ids/flags are NULL, tokens live in mmapped shards */
} plm_token_stream;

/* Copies tokens [pos, pos + n) of s into ids and (when not NULL) their flags (a stream
 * without flags gives WORD_START). The range must lie inside the stream. */
void plm_stream_read(const plm_token_stream *s, size_t pos, size_t n, int32_t *ids, uint8_t *flags);

/* Flags of the n tokens of one encoding of text (raw encode of a whole document or of a
 * chunk that starts at a line start): word starts from e->word_ids, sentence starts from
 * the text around e->offsets. doc_start marks the first token as a document start. */
void plm_token_flags(const char *text, size_t len, const plm_encoding *e, bool doc_start, uint8_t *flags);

/* Tokenizes files in order into out (ids and flags), appending doc_sep after each
 * document when doc_sep >= 0. Files are split at line boundaries where GPT-2's and BERT's
 * pre-tokenizers split anyway, and chunks are encoded in parallel, so the ids equal
 * encoding each file whole. Returns 0 or -1 (error set). */
int plm_corpus_tokenize(const plm_tokenizer *tok, const char *const *files, int nfiles, int32_t doc_sep,
                        plm_token_stream *out, int verbose);
void plm_token_stream_free(plm_token_stream *s);

/* The first safe split point of t at or after from (just after a '\n' followed by a
 * non-whitespace byte: both pre-tokenizers end a token there), or len. Encoding the
 * pieces between split points gives the ids of encoding the whole text. */
size_t plm_corpus_next_split(const char *t, size_t len, size_t from);

/* Byte offset of the first invalid UTF-8 sequence, or -1 when valid. */
long plm_utf8_check(const char *s, size_t n);

#endif
