/* shards.h - prepared corpora (`plm prepare`): token shards on disk, read through mmap.
 *
 * A prepared directory holds
 *   manifest.json       counts, dtype, the tokenizer's hash, every shard's size and sha256;
 *                       written last, so its presence marks a complete directory
 *   tokenizer.json      the tokenizer the shards were made with
 *   train-NNNNN.bin     shards of the training split
 *   validation-NNNNN.bin
 * A shard is the 16-byte header "PLMSHRD1" + uint32 LE id width (2 or 4) + uint32 0, then
 * n token ids (uint16 when the vocabulary has <= 65536 tokens, else uint32, little
 * endian), then n flag bytes (corpus.h: word, sentence and document starts). The token
 * stream of a split is its shards in order: exactly what plm_corpus_tokenize gives for
 * the same documents (each followed by the separator token).
 *
 * Opening checks everything against the manifest and fails with one line naming the
 * file: a missing or truncated shard (size != header + n * (width + 1)), a sha256 that
 * differs, a bad header, a tokenizer whose hash differs from the one the data was
 * prepared with. Reading maps the shards; memory stays bounded by the page cache. */
#ifndef PLM_SHARDS_H
#define PLM_SHARDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "corpus.h"

struct plm_shards;
typedef struct plm_shards plm_shards;

/* Tokens [pos, pos + n) of the concatenated shards, as int32 ids and flag bytes. */
void plm_shards_read(const plm_shards *s, size_t pos, size_t n, int32_t *ids, uint8_t *flags);

/* Opens split ("train" or "validation") of a prepared directory as a stream (out->shards
 * set, ids/flags NULL). tok may be NULL (no tokenizer check). verify: check every
 * shard's sha256 (reads the whole split once). A split with no tokens opens as an empty
 * stream (n == 0). Returns 0, or -1 with the error set. */
int plm_shards_open(const char *dir, const char *split, const plm_tokenizer *tok, bool verify, plm_token_stream *out);
void plm_shards_close(plm_token_stream *s);

/* The tokenizer's identity: sha256 (hex) over its kind and every token string in id
 * order. Two tokenizers with the same hash map text to the same ids only if their
 * normalisation agrees too; it catches a different or resized vocabulary. out: 65 bytes. */
void plm_tokenizer_hash(const plm_tokenizer *t, char out[65]);

/* ---- writing (plm prepare) ---- */
typedef struct {
    const char *const *inputs; /* files or folders (their .txt and .jsonl files, recursively, in name order) */
    int num_inputs;
    const char *text_field; /* JSONL: the field holding a document's text (default "text") */
    const char *output_dir; /* created; must not hold a manifest.json already (unless overwrite) */
    float validation_split; /* share of the pieces (documents, or 1 MB blocks of longer ones) held out */
    uint64_t seed;          /* which pieces are held out */
    long shard_tokens;      /* tokens per shard (default 1 << 24) */
    int num_threads;        /* tokenizer threads (default 2) */
    bool overwrite;         /* replace an existing prepared directory */
    bool quiet;             /* no progress bar */
} plm_prepare_opts;

void plm_prepare_opts_default(plm_prepare_opts *o);

typedef struct {
    size_t bytes, documents;
    size_t tokens[2], docs[2], shards[2]; /* train, validation */
    double seconds, encode_seconds;       /* wall time; of it, inside the tokenizer */
} plm_prepare_stats;

/* Tokenizes the inputs into shards (see above), streaming: memory is bounded by a few
 * blocks of text and one shard's flags, never the corpus. Text files are one document
 * each; a .jsonl file has one document per line (an object whose text_field is a
 * string). Returns 0, or an exit code (core/common.h) with the error set. */
int plm_prepare(const plm_tokenizer *tok, const plm_prepare_opts *o, plm_prepare_stats *st);

#endif
