/* internal.h - what the tokenizer's parts share and the public API hides: the
 * plm_tokenizer struct, the token <-> id vocabulary table, the encoding-append
 * helper and the per-kind hooks tokenizer.c dispatches to (bpe.c, wordpiece.c). */
#ifndef PLM_TOKENIZER_INTERNAL_H
#define PLM_TOKENIZER_INTERNAL_H

#include "tokenizer/tokenizer.h"

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <string.h>

/* ---- vocabulary: id -> token bytes and token bytes -> id ----
 * Tokens are byte strings (NUL-terminated for convenience; a BPE token never contains
 * NUL since byte 0 maps to U+0100). Ids are dense 0..n-1; a file with gaps in its ids
 * leaves NULL holes that lookups skip. */
typedef struct {
    int n, cap;
    char **tok;      /* id -> token, NULL for a hole */
    int32_t *len;    /* id -> token length in bytes */
    int32_t *slots;  /* open-addressing hash table of ids, -1 = empty */
    uint32_t nslots; /* power of two */
} plm_vocab;

void plm_vocab_init(plm_vocab *v);
void plm_vocab_free(plm_vocab *v);
uint64_t plm_hash_bytes(const void *p, size_t n); /* FNV-1a 64, shared by all hash tables */
/* -1 when absent. */
int32_t plm_vocab_find(const plm_vocab *v, const char *s, size_t len);
/* Appends s with the next id, or returns the existing id if s is already there. */
int32_t plm_vocab_add(plm_vocab *v, const char *s, size_t len);
/* Puts s at a given id (loaders with explicit ids). Returns -1 if the id is taken or
 * s is already present under another id (the caller reports file:line). */
int plm_vocab_put(plm_vocab *v, int32_t id, const char *s, size_t len);

/* ---- added tokens (HF "added_tokens"): matched literally in the raw text before
 * pre-tokenization, leftmost-longest, never split. ---- */
typedef struct {
    int32_t id;
    bool special; /* dropped by decode(skip_special) */
    /* HF AddedToken.lstrip / rstrip: the token also takes the whitespace run before /
     * after it, so no stray space token is left beside it (RoBERTa's <mask>: "a <mask>"
     * must look like the masked word "Ġword" did in training). */
    bool lstrip, rstrip;
} plm_added_token;

struct plm_bpe; /* bpe.h */

struct plm_tokenizer {
    plm_tok_kind kind;
    plm_vocab vocab;                    /* model vocabulary and added tokens */
    int32_t special[PLM_SPECIAL_COUNT]; /* role -> id, -1 when none */

    int n_added, cap_added;
    plm_added_token *added;
    uint8_t added_first[256]; /* 1 if some added token starts with this byte */

    /* Byte-level BPE (kind == PLM_TOK_BPE). */
    struct plm_bpe *bpe;

    /* WordPiece (kind == PLM_TOK_WORDPIECE): HF's BertNormalizer + BertPreTokenizer +
     * WordPiece model settings, so tokenizer_json.c can read and write them. */
    bool wp_clean_text;     /* drop control chars and U+FFFD, map whitespace to ' ' */
    bool wp_chinese_chars;  /* spaces around CJK ideographs */
    bool wp_lowercase;      /* lowercase */
    bool wp_strip_accents;  /* NFD + drop Mn; HF: follows lowercase when null */
    int32_t wp_unk_id;      /* id of the model's unk_token ("[UNK]") */
    char wp_prefix[16];     /* continuing_subword_prefix, "##" */
    int wp_max_input_chars; /* max_input_chars_per_word, 100 */
    void *wp_data;          /* free for the WordPiece helper (e.g. a cache); freed with free() */
};

/* A new empty tokenizer of a kind, with HF's default settings for it. */
plm_tokenizer *plm_tokenizer_new(plm_tok_kind kind);
/* Registers id as an added token (HF added_tokens entry). */
void plm_tokenizer_add_added(plm_tokenizer *t, int32_t id, bool special);
/* Sets lstrip / rstrip of the added token id (no-op if id is not an added token). */
void plm_tokenizer_set_added_strip(plm_tokenizer *t, int32_t id, bool lstrip, bool rstrip);
/* Maps roles to ids by the conventional names, for roles still unset:
 * <|endoftext|> -> bos, eos; [PAD] pad; [UNK] unk; [CLS] cls; [SEP] sep; [MASK] mask;
 * also <pad>, <unk>, <s>/</s> (bos/eos), <mask>. Called by every loader and trainer. */
void plm_tokenizer_map_special_roles(plm_tokenizer *t);

/* ---- encodings ---- */
/* Appends one token of segment A: type 0, attention 1, not special, seq 0. */
void plm_encoding_push(plm_encoding *e, int32_t id, int32_t start, int32_t end, int32_t word_id);
void plm_encoding_reserve(plm_encoding *e, int n);

/* ---- per-kind hooks ----
 * Encode text[0..len), a stretch of input with no added token in it, appending to out.
 * Offsets are byte offsets into text plus base. *word is the running word index (the
 * index of the pre-token across the whole input, as HF's word_ids): the hook gives
 * each pre-token the current value and increments it. Return 0, or -1 with plm_error. */
int plm_bpe_encode_segment(const plm_tokenizer *t, const char *text, size_t len, int32_t base, int32_t *word,
                           plm_encoding *out);
int plm_wordpiece_encode_segment(const plm_tokenizer *t, const char *text, size_t len, int32_t base, int32_t *word,
                                 plm_encoding *out);

/* 64-bit hash of a byte string (a pre-tokenized word): the BPE word cache and the
 * trainer's word counts both key on it. */
static inline uint64_t plm_word_hash(const uint8_t *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t v;
        memcpy(&v, s + i, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    uint64_t v = 0;
    memcpy(&v, s + i, n - i);
    h = (h ^ v) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

#endif
