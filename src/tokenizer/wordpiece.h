/* wordpiece.h - BERT WordPiece: HF tokenizers' BertNormalizer + BertPreTokenizer
 * (the "BasicTokenizer") and the WordPiece model (greedy longest-match-first with the
 * "##" continuation prefix), the vocab.txt loader and the WordPiece trainer
 * (wordpiece_train.c). Owns the Unicode rules these use and their byte offsets into
 * the original text. The public entry points are in tokenizer.h; the hook the common
 * layer calls (plm_wordpiece_encode_segment) is declared in internal.h. */
#ifndef PLM_WORDPIECE_H
#define PLM_WORDPIECE_H

#include "tokenizer/internal.h"

/* One pre-tokenized word after BERT normalisation: its normalised UTF-8 bytes and, for
 * every byte i, the original byte range [start[i], end[i]) of the character it came
 * from (HF's alignments). Return non-zero from the callback to stop. */
typedef int (*plm_wp_word_fn)(void *ctx, const char *word, int len, const int32_t *start, const int32_t *end);

/* Normalisation settings, as the wp_* fields of plm_tokenizer. */
typedef struct {
    bool clean_text, chinese_chars, lowercase, strip_accents;
} plm_wp_norm;

plm_wp_norm plm_wp_norm_of(const plm_tokenizer *t);

/* Runs BertNormalizer + BertPreTokenizer over text[0..len) and calls fn for each word.
 * Returns 0, the callback's non-zero value, or -1 with plm_error on invalid UTF-8. */
int plm_wp_pretokenize(const plm_wp_norm *nm, const char *text, size_t len, plm_wp_word_fn fn, void *ctx);

/* The normalised text alone (malloc'ed, NUL-terminated), or NULL on invalid UTF-8. */
char *plm_wp_normalize(const plm_wp_norm *nm, const char *text, size_t len, size_t *outlen);

/* Builds what the encoder matches with (a trie of the vocabulary, in t->wp_data, one
 * malloc block). Called by the loaders and the trainer, and by tokenizer_json.c once the
 * model vocabulary is filled, before added-only tokens are appended: those are not
 * WordPiece pieces in HF. Without it encoding is still correct, only slower. */
void plm_wordpiece_prepare(plm_tokenizer *t);

/* Parses a vocab.txt held in memory ("name" is used in error messages) into a new
 * WordPiece tokenizer. Errors name the line: empty line, duplicate token, invalid UTF-8. */
plm_tokenizer *plm_wordpiece_from_vocab_text(const char *name, const char *data, size_t len, bool lowercase);

/* Character classes of BERT's BasicTokenizer as HF implements them (exposed for tests). */
bool plm_wp_is_whitespace(uint32_t c); /* Rust char::is_whitespace + \t \n \r */
bool plm_wp_is_control(uint32_t c);    /* dropped by clean_text: Cc Cf Co as HF (not \t \n \r, not Cn) */
bool plm_wp_is_punct(uint32_t c);      /* ASCII 33-47 58-64 91-96 123-126 + Unicode P* */
bool plm_wp_is_cjk(uint32_t c);        /* the CJK ideograph blocks BERT isolates */

#endif
