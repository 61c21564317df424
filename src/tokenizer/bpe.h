/* bpe.h - byte-level BPE as GPT-2 / HF ByteLevel: owns the byte <-> unicode map, the
 * GPT-2 pre-tokenizer, the merge table and the merge-applying encoder with its cache,
 * and the loaders of GPT-2 encoder.json + vocab.bpe and tiktoken rank files. */
#ifndef PLM_BPE_H
#define PLM_BPE_H

#include "tokenizer/internal.h"

#include <stdatomic.h>

#define PLM_BPE_NCACHE 8 /* caches, one per concurrently encoding thread */

typedef struct plm_bpe_cache plm_bpe_cache;

typedef struct plm_bpe {
    int32_t byte_id[256]; /* id of the one-byte token of each byte, -1 if absent */
    /* Merge table: pair (left id, right id) -> rank and id of the merged token.
     * Open addressing on the 64-bit key left << 32 | right; empty key = UINT64_MAX. */
    uint64_t *mkey;
    int32_t *mrank, *mnew;
    uint32_t mslots;
    int nmerges; /* pairs in the table */
    /* Merges in rank order (for saving): left/right ids. Ranks can repeat (tiktoken). */
    int32_t *mleft, *mright;
    int nlist, caplist;
    /* id -> raw bytes (model tokens decoded through the byte map; added tokens as is). */
    char **raw;
    int32_t *rawlen;
    int nraw;
    bool add_prefix_space; /* ByteLevel pre-tokenizer option (GPT-2: false) */
    /* Word caches, taken by one thread at a time (atomic flag), so encode is
     * thread-safe on a const tokenizer and never blocks: no free cache = no cache. */
    plm_bpe_cache *cache[PLM_BPE_NCACHE];
    atomic_flag cache_busy[PLM_BPE_NCACHE];
} plm_bpe;

/* The GPT-2 byte -> unicode map: bytes of printable latin-1 map to themselves, the
 * other 68 to U+0100... in byte order. UTF-8 of the char of byte b (1 or 2 bytes). */
const char *plm_bpe_byte_char(uint8_t b, int *len);
/* Inverse: a token in byte-level form -> raw bytes in out (capacity >= len). Returns
 * the raw length, or -1 if some char is not one of the 256 byte chars. */
int plm_bpe_unbyte(const char *s, size_t len, char *out);
/* Byte-level form of raw bytes, malloc'ed and NUL-terminated. */
char *plm_bpe_to_byte_level(const char *raw, size_t len, size_t *outlen);

/* GPT-2 pre-tokenizer: end of the pre-token starting at i (i < len). Implements
 * 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with Oniguruma's Unicode \s (HF uses Oniguruma); each byte of invalid UTF-8 counts as
 * one [^\s\p{L}\p{N}] char so every byte string splits losslessly. */
size_t plm_bpe_pretok_next(const uint8_t *s, size_t len, size_t i);

plm_bpe *plm_bpe_new(void);
void plm_bpe_free(plm_bpe *b);
/* Adds merge (left, right) -> merged with the next rank (or the given rank if >= 0).
 * A pair listed twice takes its later rank, as HF. Returns 0. */
int plm_bpe_add_merge(plm_bpe *b, int32_t left, int32_t right, int32_t merged, int32_t rank);
/* Looks a pair up: rank or -1; *merged set. */
int32_t plm_bpe_pair(const plm_bpe *b, int32_t left, int32_t right, int32_t *merged);
/* After the vocabulary, merges and added tokens are in: builds raw bytes per id and
 * the byte ids. Returns 0 or -1 (plm_error). Call again after adding tokens. */
int plm_bpe_finish(plm_tokenizer *t);

/* Applies the merges to one pre-token of raw bytes; writes ids and token byte lengths
 * (capacity len each) and returns their count. */
int plm_bpe_merge_word(const plm_bpe *b, const uint8_t *w, int len, int32_t *ids, int32_t *lens);

#endif
