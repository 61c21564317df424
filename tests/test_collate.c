/* test_collate.c - padded batches (src/data/collate.c) with bert-base-uncased and GPT-2:
 * the [B, T] layout, right padding as HF pads an Encoding, dynamic and max_length
 * padding, pad_to_multiple_of, rows equal to the tokenizer's own pair encoding, buffer
 * reuse, and the errors (empty batch, rejected rows, GPT-2 without a pad token). HF
 * conformance on GLUE pairs is tests/collate_conformance.sh. Reads ../shared/data (or
 * $PLM_DATA) and fails when it is missing. */
#include "test.h"
#include "core/common.h"
#include "data/collate.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static char tokdir[1024];

static plm_tokenizer *load_bert(void) {
    char p[1100];
    snprintf(p, sizeof p, "%s/bert-base-uncased-vocab.txt", tokdir);
    return plm_tokenizer_load_wordpiece(p, true);
}

static plm_tokenizer *load_gpt2(void) {
    char a[1100], b[1100];
    snprintf(a, sizeof a, "%s/gpt2-encoder.json", tokdir);
    snprintf(b, sizeof b, "%s/gpt2-vocab.bpe", tokdir);
    return plm_tokenizer_load_gpt2(a, b);
}

/* Row r's first k ids as "id id ...". */
static const char *row_ids(const plm_encoded_batch *b, int r, int k) {
    static char s[2048];
    size_t n = 0;
    s[0] = 0;
    for (int j = 0; j < k && n < sizeof s - 16; j++)
        n += (size_t)snprintf(s + n, sizeof s - n, j ? " %d" : "%d", b->input_ids[r * b->T + j]);
    return s;
}

/* Every position past lengths[r] is padding exactly as HF pads: pad id, type 0, mask 0,
 * special 1, no word, no sequence, offsets (0, 0); every position before is a real token. */
static bool padded_like_hf(const plm_encoded_batch *b, int32_t pad_id) {
    for (int r = 0; r < b->B; r++) {
        for (int j = 0; j < b->T; j++) {
            size_t x = (size_t)r * (size_t)b->T + (size_t)j;
            bool real = j < b->lengths[r];
            if (b->attention_mask[x] != real) return false;
            if (real) continue;
            if (b->input_ids[x] != pad_id || b->token_type_ids[x] != 0 || b->special_tokens_mask[x] != 1 ||
                b->word_ids[x] != -1 || b->sequence_ids[x] != -1 || b->offset_mapping[2 * x] != 0 ||
                b->offset_mapping[2 * x + 1] != 0)
                return false;
        }
    }
    return true;
}

static void test_bert_layout(const plm_tokenizer *t) {
    const char *a[] = {"Hello world", "hi", "a b c d e"};
    const char *bs[] = {"how are you", NULL, "f"};
    plm_collate_opts o;
    plm_collate_opts_default(&o);
    plm_encoded_batch b;
    plm_encoded_batch_init(&b);
    int rc = plm_collate_pairs(t, a, NULL, bs, NULL, 3, &o, &b);
    TEST_CHECK(rc == 0 && b.B == 3 && b.T == 9, "collate_longest_shape", "rc %d B %d T %d: %s", rc, b.B, b.T,
               plm_last_error());
    if (rc != 0) return;
    TEST_CHECK(!strcmp(row_ids(&b, 0, 9), "101 7592 2088 102 2129 2024 2017 102 0"), "collate_pair_ids", "%s",
               row_ids(&b, 0, 9));
    TEST_CHECK(!strcmp(row_ids(&b, 1, 9), "101 7632 102 0 0 0 0 0 0") && b.lengths[1] == 3,
               "collate_single_in_pair_batch", "%s (length %d)", row_ids(&b, 1, 9), b.lengths[1]);
    int32_t want_types[] = {0, 0, 0, 0, 1, 1, 1, 1, 0};
    TEST_CHECK(!memcmp(b.token_type_ids, want_types, sizeof want_types), "collate_token_type_ids",
               "row 0 types differ");
    TEST_CHECK(padded_like_hf(&b, 0), "collate_right_padding_as_hf", "a pad position differs from HF's padding");
    TEST_CHECK(b.word_ids[1] == 0 && b.word_ids[4] == 0 && b.sequence_ids[4] == 1 && b.offset_mapping[2 * 2] == 6 &&
                   b.offset_mapping[2 * 2 + 1] == 11,
               "collate_word_ids_offsets", "word %d %d seq %d offsets %d %d", b.word_ids[1], b.word_ids[4],
               b.sequence_ids[4], b.offset_mapping[4], b.offset_mapping[5]);

    /* Each row is the tokenizer's own pair encoding, unpadded, followed by padding. */
    plm_encode_opts eo;
    plm_encode_opts_default(&eo);
    plm_encoding e;
    plm_encoding_init(&e);
    bool same = true;
    for (int r = 0; r < 3; r++) {
        plm_tokenizer_encode_full(t, a[r], strlen(a[r]), bs[r], bs[r] ? strlen(bs[r]) : 0, &eo, &e);
        same = same && e.n == b.lengths[r] && !memcmp(e.ids, b.input_ids + r * b.T, (size_t)e.n * 4) &&
               !memcmp(e.type_ids, b.token_type_ids + r * b.T, (size_t)e.n * 4) &&
               !memcmp(e.word_ids, b.word_ids + r * b.T, (size_t)e.n * 4);
    }
    plm_encoding_free(&e);
    TEST_CHECK(same, "collate_rows_are_encode_full", "a row differs from plm_tokenizer_encode_full");

    /* texts_b NULL: single sentences; lens_a: texts need not be NUL-terminated */
    const char *raw[] = {"hello worldXXXX", "hi"};
    size_t lens[] = {11, 2};
    rc = plm_collate_pairs(t, raw, lens, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == 0 && b.T == 4 && !strcmp(row_ids(&b, 0, 4), "101 7592 2088 102") &&
                   !strcmp(row_ids(&b, 1, 4), "101 7632 102 0"),
               "collate_singles_with_lengths", "rc %d T %d: %s", rc, b.T, row_ids(&b, 0, b.T));

    o.add_special_tokens = false;
    rc = plm_collate_pairs(t, raw, lens, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == 0 && b.T == 2 && !strcmp(row_ids(&b, 0, 2), "7592 2088") && !strcmp(row_ids(&b, 1, 2), "7632 0"),
               "collate_no_special_tokens", "rc %d T %d: %s", rc, b.T, row_ids(&b, 0, b.T));
    plm_encoded_batch_free(&b);
}

static void test_bert_lengths(const plm_tokenizer *t) {
    const char *a[] = {"one two three four five six seven eight nine ten eleven twelve thirteen fourteen", "short"};
    const char *bs[] = {"and a second sentence that is long as well, with more words than fit", "pair"};
    plm_collate_opts o;
    plm_collate_opts_default(&o);
    plm_encoded_batch b;
    plm_encoded_batch_init(&b);

    o.max_length = 16;
    int rc = plm_collate_pairs(t, a, NULL, bs, NULL, 2, &o, &b);
    TEST_CHECK(rc == 0 && b.T == 16 && b.lengths[0] == 16 && b.lengths[1] == 5 && b.input_ids[15] == 102,
               "collate_truncate_longest_first", "rc %d T %d lengths %d %d", rc, b.T, b.lengths[0], b.lengths[1]);

    o.padding = PLM_PAD_MAX_LENGTH;
    o.max_length = 24;
    const char *s[] = {"short", "pair"};
    rc = plm_collate_pairs(t, s, NULL, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == 0 && b.T == 24 && b.lengths[0] == 3 && padded_like_hf(&b, 0), "collate_pad_to_max_length",
               "rc %d T %d", rc, b.T);

    o.pad_to_multiple_of = 16; /* HF rounds the fixed length up too: 24 -> 32 */
    rc = plm_collate_pairs(t, s, NULL, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == 0 && b.T == 32, "collate_max_length_multiple_of", "rc %d T %d", rc, b.T);

    o.padding = PLM_PAD_LONGEST;
    o.pad_to_multiple_of = 8;
    rc = plm_collate_pairs(t, a, NULL, bs, NULL, 2, &o, &b); /* longest 24 stays 24; 25.. would be 32 */
    TEST_CHECK(rc == 0 && b.T == 24 && b.T % 8 == 0, "collate_longest_multiple_of", "rc %d T %d", rc, b.T);
    o.max_length = 21;
    rc = plm_collate_pairs(t, a, NULL, bs, NULL, 2, &o, &b);
    TEST_CHECK(rc == 0 && b.T == 24 && b.lengths[0] == 21 && padded_like_hf(&b, 0), "collate_longest_rounded_up",
               "rc %d T %d length %d", rc, b.T, b.lengths[0]);

    o.max_length = 20;
    o.pad_to_multiple_of = 0;
    o.truncation = PLM_TRUNC_ONLY_SECOND; /* A stays whole: [CLS] A [SEP] are the type-0 tokens */
    plm_encoding ea;
    plm_encoding_init(&ea);
    plm_tokenizer_encode(t, a[0], strlen(a[0]), &ea);
    rc = plm_collate_pairs(t, a, NULL, bs, NULL, 2, &o, &b);
    int zeros = 0;
    for (int j = 0; rc == 0 && j < b.lengths[0]; j++) zeros += b.token_type_ids[j] == 0;
    TEST_CHECK(rc == 0 && b.lengths[0] == 20 && zeros == ea.n + 2, "collate_truncate_only_second",
               "rc %d length %d, %d type-0 tokens for A of %d", rc, b.lengths[0], zeros, ea.n);
    plm_encoding_free(&ea);
    plm_encoded_batch_free(&b);
}

/* A training loop's batches stop allocating once the largest has been seen. */
static void test_reuse(const plm_tokenizer *t) {
    const char *big[32], *small[] = {"a", "b c"};
    for (int i = 0; i < 32; i++) big[i] = i % 2 ? "a somewhat longer sentence with several words" : "tiny";
    plm_collate_opts o;
    plm_collate_opts_default(&o);
    plm_encoded_batch b;
    plm_encoded_batch_init(&b);
    plm_collate_pairs(t, big, NULL, big, NULL, 32, &o, &b);
    void *ids = b.input_ids, *mask = b.attention_mask, *rows = b.rows, *row0 = b.rows[0].ids;
    size_t cap = b.cap_tokens;
    bool same = true;
    for (int step = 0; step < 5; step++) {
        int rc = step % 2 ? plm_collate_pairs(t, small, NULL, NULL, NULL, 2, &o, &b)
                          : plm_collate_pairs(t, big, NULL, big, NULL, 32, &o, &b);
        same = same && rc == 0 && b.input_ids == ids && b.attention_mask == mask && b.rows == rows &&
               b.rows[0].ids == row0 && b.cap_tokens == cap;
    }
    TEST_CHECK(same && b.B == 32, "collate_buffers_reused", "a buffer moved or grew after warm-up");
    plm_encoded_batch_free(&b);
    TEST_CHECK(b.input_ids == NULL && b.cap_tokens == 0, "collate_free", "free left state behind");
    plm_encoded_batch_free(&b); /* freeing twice is harmless */
}

static void test_errors(const plm_tokenizer *bert, const plm_tokenizer *gpt2) {
    plm_collate_opts o;
    plm_collate_opts_default(&o);
    plm_encoded_batch b;
    plm_encoded_batch_init(&b);
    const char *a[] = {"hello", NULL}, *pair[] = {"x", "y"};

    int rc = plm_collate_pairs(bert, a, NULL, NULL, NULL, 0, &o, &b);
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "empty batch"), "collate_error_empty_batch", "rc %d: %s", rc,
               plm_last_error());
    rc = plm_collate_pairs(bert, a, NULL, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "row 1") && b.B == 0 && b.T == 0, "collate_error_null_text",
               "rc %d: %s", rc, plm_last_error());
    o.max_length = 2; /* shorter than [CLS] A [SEP] B [SEP]: the tokenizer's error, with the row */
    rc = plm_collate_pairs(bert, pair, NULL, pair, NULL, 2, &o, &b);
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "row 0") && strstr(plm_last_error(), "max_length"),
               "collate_error_row_rejected", "rc %d: %s", rc, plm_last_error());
    o.max_length = 0;
    o.padding = PLM_PAD_MAX_LENGTH;
    rc = plm_collate_pairs(bert, pair, NULL, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "max_length"), "collate_error_max_length_padding_needs_length",
               "rc %d: %s", rc, plm_last_error());
    o.padding = PLM_PAD_LONGEST;
    o.pad_id = 1 << 30;
    rc = plm_collate_pairs(bert, pair, NULL, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "outside the vocabulary"), "collate_error_pad_id_range",
               "rc %d: %s", rc, plm_last_error());

    /* GPT-2 has no pad token: an error (as transformers), even for a batch that would need
     * no padding, unless the caller names one */
    o.pad_id = -1;
    const char *g[] = {"Hello world, this is GPT-2.", "Hi"};
    rc = plm_collate_pairs(gpt2, g, NULL, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == -1 && strstr(plm_last_error(), "pad token") && strstr(plm_last_error(), "pad_id"),
               "collate_gpt2_no_pad_token", "rc %d: %s", rc, plm_last_error());
    rc = plm_collate_pairs(gpt2, g, NULL, NULL, NULL, 1, &o, &b);
    TEST_CHECK(rc == -1, "collate_gpt2_no_pad_token_even_unpadded", "rc %d", rc);
    int eos = plm_tokenizer_special(gpt2, PLM_SPECIAL_EOS);
    o.pad_id = eos;
    rc = plm_collate_pairs(gpt2, g, NULL, NULL, NULL, 2, &o, &b);
    TEST_CHECK(rc == 0 && b.T == 10 && !strcmp(row_ids(&b, 1, 3), "17250 50256 50256") && padded_like_hf(&b, eos) &&
                   b.token_type_ids[0] == 0,
               "collate_gpt2_pad_with_eos", "rc %d T %d: %s / %s", rc, b.T, row_ids(&b, 0, b.T), plm_last_error());
    plm_encoded_batch_free(&b);
}

int main(void) {
    const char *data = getenv("PLM_DATA") ? getenv("PLM_DATA") : "../shared/data";
    snprintf(tokdir, sizeof tokdir, "%s/tokenizers", data);
    plm_tokenizer *bert = load_bert(), *gpt2 = load_gpt2();
    if (!bert || !gpt2) {
        printf("FAIL collate_tokenizers: %s (tests read ../shared/data or $PLM_DATA)\n", plm_last_error());
        plm_tokenizer_free(bert);
        plm_tokenizer_free(gpt2);
        return 1;
    }
    test_bert_layout(bert);
    test_bert_lengths(bert);
    test_reuse(bert);
    test_errors(bert, gpt2);
    plm_tokenizer_free(bert);
    plm_tokenizer_free(gpt2);
    TEST_EXIT();
}
