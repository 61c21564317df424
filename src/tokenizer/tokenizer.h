/* tokenizer.h - the public tokenizer API: GPT-2 byte-level BPE and BERT WordPiece,
 * loaded from their original vocab files or from HF tokenizer.json, trained on raw
 * text, and encoding text into model inputs with offsets. Owns plm_tokenizer and
 * plm_encoding. Ids are identical to Hugging Face tokenizers' on any input. */
#ifndef PLM_TOKENIZER_H
#define PLM_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

typedef enum { PLM_TOK_BPE = 1, PLM_TOK_WORDPIECE = 2 } plm_tok_kind;

/* Special-token roles a model needs; plm_tokenizer_special() maps a role to an id
 * (or -1 when the vocabulary has none). GPT-2: eos = bos = <|endoftext|>.
 * BERT: pad [PAD], unk [UNK], cls [CLS], sep [SEP], mask [MASK]. */
typedef enum {
    PLM_SPECIAL_PAD,
    PLM_SPECIAL_UNK,
    PLM_SPECIAL_CLS,
    PLM_SPECIAL_SEP,
    PLM_SPECIAL_MASK,
    PLM_SPECIAL_BOS,
    PLM_SPECIAL_EOS,
    PLM_SPECIAL_COUNT
} plm_special_role;

typedef struct plm_tokenizer plm_tokenizer;

/* One encoded sequence. Arrays have n valid entries (capacity cap). Offsets are byte
 * offsets [start, end) into the text that was encoded (for a pair, into its own
 * segment; see seq_ids); special and pad tokens get (0, 0). word_ids is the index of
 * the pre-tokenized word a token came from (-1 for special/pad tokens). */
typedef struct {
    int n, cap;
    int32_t *ids;
    int32_t *type_ids;       /* token_type_ids: 0 for segment A, 1 for B */
    uint8_t *attention_mask; /* 1 for real tokens, 0 for padding */
    uint8_t *special_mask;   /* 1 for special tokens added by post-processing and pads */
    int32_t *offsets;        /* 2*n: start, end */
    int32_t *word_ids;
    int8_t *seq_ids; /* 0 for segment A, 1 for B, -1 for special/pad */
} plm_encoding;

void plm_encoding_init(plm_encoding *e);
void plm_encoding_free(plm_encoding *e);
void plm_encoding_clear(plm_encoding *e); /* n = 0, keeps the buffers */

/* ---- loading and saving ---- */
/* HF tokenizer.json (BPE/ByteLevel or WordPiece/BertPreTokenizer). */
plm_tokenizer *plm_tokenizer_load(const char *tokenizer_json_path);
/* GPT-2's original encoder.json + vocab.bpe. */
plm_tokenizer *plm_tokenizer_load_gpt2(const char *encoder_json, const char *vocab_bpe);
/* tiktoken ranks file ("base64 rank" per line), e.g. r50k_base.tiktoken. */
plm_tokenizer *plm_tokenizer_load_tiktoken(const char *path);
/* BERT vocab.txt; lowercase also strips accents (bert-base-uncased). */
plm_tokenizer *plm_tokenizer_load_wordpiece(const char *vocab_txt, bool lowercase);
/* Writes HF tokenizer.json atomically. */
int plm_tokenizer_save(const plm_tokenizer *t, const char *tokenizer_json_path);
void plm_tokenizer_free(plm_tokenizer *t);

/* ---- training ---- */
typedef struct {
    int vocab_size;              /* default 30000, as HF's trainers */
    int min_frequency;           /* default 0 */
    const char **special_tokens; /* added first, in order, ids 0.. */
    int n_special;
    bool lowercase;             /* WordPiece only: BERT uncased normalisation */
    int limit_alphabet;         /* WordPiece/BPE: 0 = no limit */
    bool show_progress;         /* progress bar on stderr */
    int num_threads;            /* 0 = all cores */
    bool bpe_observed_alphabet; /* BPE: start from the bytes seen in the corpus (HF's default
                                   BpeTrainer) instead of all 256, which encode any input */
} plm_tokenizer_train_opts;

void plm_tokenizer_train_opts_default(plm_tokenizer_train_opts *o);
/* Trains on raw text files, streaming: memory is bounded by the word counts. */
plm_tokenizer *plm_tokenizer_train_bpe(const char *const *files, int nfiles, const plm_tokenizer_train_opts *o);
plm_tokenizer *plm_tokenizer_train_wordpiece(const char *const *files, int nfiles, const plm_tokenizer_train_opts *o);

/* ---- vocabulary ---- */
plm_tok_kind plm_tokenizer_kind(const plm_tokenizer *t);
int plm_tokenizer_vocab_size(const plm_tokenizer *t);                     /* including added tokens */
const char *plm_tokenizer_id_to_token(const plm_tokenizer *t, int id);    /* NULL if out of range */
int plm_tokenizer_token_to_id(const plm_tokenizer *t, const char *token); /* -1 if absent */
int plm_tokenizer_special(const plm_tokenizer *t, plm_special_role role);
/* Registers an added special token (matched before pre-tokenization, never split);
 * returns its id, appending it to the vocabulary when new. */
int plm_tokenizer_add_special(plm_tokenizer *t, const char *token);
/* Assigns a role to an existing token, e.g. the mask token of a BPE vocabulary. */
int plm_tokenizer_set_special(plm_tokenizer *t, plm_special_role role, const char *token);

/* ---- encoding ---- */
/* Raw encoding: no special tokens added, no truncation/padding. Added special tokens
 * that appear literally in the text (e.g. "[MASK]", "<|endoftext|>") are recognised.
 * Invalid UTF-8 is an error for WordPiece (returns -1) and is encoded byte-exactly by
 * byte-level BPE. Appends to out. */
int plm_tokenizer_encode(const plm_tokenizer *t, const char *text, size_t len, plm_encoding *out);

typedef enum { PLM_TRUNC_LONGEST_FIRST, PLM_TRUNC_ONLY_FIRST, PLM_TRUNC_ONLY_SECOND } plm_truncation;

typedef struct {
    bool add_special_tokens; /* BERT: [CLS] A [SEP] (B [SEP]); GPT-2: none, as HF */
    int max_length;          /* 0 = no truncation */
    plm_truncation truncation;
    bool pad_to_max_length; /* pad with the pad token up to max_length */
} plm_encode_opts;

void plm_encode_opts_default(plm_encode_opts *o);
/* Full model-input encoding of one text (b == NULL) or a pair. Clears out first. */
int plm_tokenizer_encode_full(const plm_tokenizer *t, const char *a, size_t alen, const char *b, size_t blen,
                              const plm_encode_opts *o, plm_encoding *out);

/* Decodes ids back to text (malloc'ed, NUL-terminated, *len set). Byte-level BPE is
 * exact: decode(encode(x)) == x for every byte string, except the whitespace an
 * lstrip/rstrip added token absorbed (as HF: a trained tokenizer's mask token takes the
 * space before it). skip_special drops special tokens.
 * WordPiece joins "##" continuations, as HF's WordPiece decoder. */
char *plm_tokenizer_decode(const plm_tokenizer *t, const int32_t *ids, int n, bool skip_special, size_t *len);

#endif
