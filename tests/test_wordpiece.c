/* test_wordpiece.c - unit tests of the WordPiece tokenizer: bert-base-uncased ids and
 * offsets on known cases, [UNK] rules, the vocab.txt loader's errors, hostile inputs
 * (invalid UTF-8, control characters, huge words, random bytes), decode and the trainer. */
#include "test.h"
#include "core/common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/wordpiece.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* $PLM_DATA, default ../shared/data relative to the repo root (tests/run.sh runs from
 * there); a missing vocabulary fails the checks that load it. */
static const char *vocab_path(void) {
    static char path[1024];
    const char *d = getenv("PLM_DATA");
    snprintf(path, sizeof path, "%s/tokenizers/bert-base-uncased-vocab.txt", d ? d : "../shared/data");
    return path;
}

/* Encodes s and compares with "id:start:end ..." */
static void expect(const plm_tokenizer *t, const char *name, const char *s, const char *want) {
    plm_encoding e;
    plm_encoding_init(&e);
    char got[4096] = "";
    if (plm_tokenizer_encode(t, s, strlen(s), &e) != 0) {
        snprintf(got, sizeof got, "ERROR %s", plm_last_error());
    } else {
        size_t k = 0;
        for (int i = 0; i < e.n && k < sizeof got - 64; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, i ? " %d:%d:%d" : "%d:%d:%d", e.ids[i], e.offsets[2 * i],
                                  e.offsets[2 * i + 1]);
    }
    TEST_CHECK(!strcmp(got, want), name, "got \"%s\", want \"%s\"", got, want);
    plm_encoding_free(&e);
}

static plm_tokenizer *from_text(const char *text) {
    return plm_wordpiece_from_vocab_text("v.txt", text, strlen(text), true);
}

static void test_loader_errors(void) {
    plm_tokenizer *t = from_text("[UNK]\na\nb\na\n");
    TEST_CHECK(!t && strstr(plm_last_error(), "v.txt:4:") && strstr(plm_last_error(), "duplicate"), "vocab_duplicate",
               "%s", plm_last_error());
    t = from_text("[UNK]\n\nb\n");
    TEST_CHECK(!t && strstr(plm_last_error(), "v.txt:2:") && strstr(plm_last_error(), "empty"), "vocab_empty_line",
               "%s", plm_last_error());
    t = from_text("[UNK]\nok\nbad\xff\n");
    TEST_CHECK(!t && strstr(plm_last_error(), "v.txt:3:") && strstr(plm_last_error(), "UTF-8"), "vocab_bad_utf8", "%s",
               plm_last_error());
    t = from_text("[UNK]\n\xed\xa0\x80\n"); /* a surrogate */
    TEST_CHECK(!t && strstr(plm_last_error(), "v.txt:2:"), "vocab_surrogate", "%s", plm_last_error());
    t = from_text("");
    TEST_CHECK(!t, "vocab_empty_file", "loaded an empty vocabulary");
    t = plm_wordpiece_from_vocab_text("v.txt", "[UNK]\na\0b\n", 10, true);
    TEST_CHECK(!t && strstr(plm_last_error(), "v.txt:2:"), "vocab_nul", "%s", plm_last_error());
    t = plm_tokenizer_load_wordpiece("/nonexistent/vocab.txt", true);
    TEST_CHECK(!t && strstr(plm_last_error(), "/nonexistent/vocab.txt"), "vocab_missing_file", "%s", plm_last_error());
    /* CRLF and no final newline are fine */
    t = from_text("[UNK]\r\nhello\r\n##s");
    TEST_CHECK(t && plm_tokenizer_vocab_size(t) == 3 && plm_tokenizer_token_to_id(t, "##s") == 2, "vocab_crlf", "%s",
               t ? "wrong size" : plm_last_error());
    if (t) expect(t, "tiny_vocab_encode", "Hellos hello", "1:0:5 2:5:6 1:7:12");
    plm_tokenizer_free(t);
    /* trailing Unicode whitespace is trimmed, as HF's trim_end */
    t = from_text("[UNK]\nab\xc2\xa0\ncd\xe3\x80\x80 \r\n");
    TEST_CHECK(t && plm_tokenizer_token_to_id(t, "ab") == 1 && plm_tokenizer_token_to_id(t, "cd") == 2,
               "vocab_trims_unicode_whitespace", "%s", t ? "not trimmed" : plm_last_error());
    plm_tokenizer_free(t);
    /* a vocabulary without [UNK]: an unknown word is an error, not a crash */
    t = from_text("a\nb\n");
    if (t) {
        plm_encoding e;
        plm_encoding_init(&e);
        int rc = plm_tokenizer_encode(t, "a c", 3, &e);
        TEST_CHECK(rc == -1 && strstr(plm_last_error(), "unk"), "no_unk_token", "rc %d: %s", rc, plm_last_error());
        plm_encoding_free(&e);
        plm_tokenizer_free(t);
    }
}

static void test_hostile(const plm_tokenizer *t) {
    plm_encoding e;
    plm_encoding_init(&e);
    /* invalid UTF-8 is an error naming the byte */
    const char *bad[] = {"ab\xff", "\xc0\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "x\xe2\x82", "\x80"};
    bool ok = true;
    for (size_t i = 0; i < PLM_ARRAY_LEN(bad); i++) {
        plm_encoding_clear(&e);
        if (plm_tokenizer_encode(t, bad[i], strlen(bad[i]), &e) != -1) ok = false;
    }
    TEST_CHECK(ok, "invalid_utf8_rejected", "an invalid sequence was accepted");
    /* a huge word: one [UNK] spanning it; a huge line of words */
    size_t n = 1 << 20;
    char *big = plm_malloc(n + 1);
    memset(big, 'a', n);
    big[n] = 0;
    plm_encoding_clear(&e);
    int rc = plm_tokenizer_encode(t, big, n, &e);
    TEST_CHECK(rc == 0 && e.n == 1 && e.ids[0] == 100 && e.offsets[1] == (int32_t)n, "huge_word_unk", "rc %d n %d", rc,
               e.n);
    for (size_t i = 0; i < n; i += 2) big[i] = ' ';
    plm_encoding_clear(&e);
    rc = plm_tokenizer_encode(t, big, n, &e);
    TEST_CHECK(rc == 0 && e.n == (int)(n / 2), "many_words", "rc %d n %d", rc, e.n);
    /* random bytes: never crash; valid results have sane offsets and word ids */
    uint32_t seed = 12345;
    int bad_offsets = 0, accepted = 0;
    int iters = test_sanitized() ? 2000 : 20000;
    for (int it = 0; it < iters; it++) {
        int len = (int)(seed % 64);
        for (int i = 0; i < len; i++) {
            seed = seed * 1664525u + 1013904223u;
            uint32_t r = seed >> 24;
            big[i] = (char)(r < 250 ? (r % 3 == 0 ? ' ' : 'a' + r % 26) : r); /* mostly text, a few raw high bytes */
        }
        seed = seed * 1664525u + 1013904223u;
        plm_encoding_clear(&e);
        if (plm_tokenizer_encode(t, big, (size_t)len, &e) != 0) continue;
        accepted++;
        for (int i = 0; i < e.n; i++) {
            int32_t s = e.offsets[2 * i], en = e.offsets[2 * i + 1];
            if (s < 0 || en > len || s >= en ||
                (i > 0 && (s < e.offsets[2 * i - 2] || e.word_ids[i] < e.word_ids[i - 1])))
                bad_offsets++;
        }
    }
    TEST_CHECK(bad_offsets == 0 && accepted > 0, "random_bytes", "%d bad offsets, %d accepted", bad_offsets, accepted);
    free(big);
    plm_encoding_free(&e);
}

static void test_train(void) {
    char path[] = "/tmp/plm_wp_train_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    for (int i = 0; i < 200; i++) fputs("The quick brown fox jumps over the lazy dog. Unbelievable! Ça va? 東京\n", f);
    fclose(f);
    plm_tokenizer_train_opts o;
    plm_tokenizer_train_opts_default(&o);
    static const char *sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    o.special_tokens = sp;
    o.n_special = 5;
    o.vocab_size = 120;
    o.lowercase = true;
    const char *files[] = {path};
    plm_tokenizer *t = plm_tokenizer_train_wordpiece(files, 1, &o);
    TEST_CHECK(t != NULL, "train_small", "%s", plm_last_error());
    if (t) {
        TEST_CHECK(plm_tokenizer_vocab_size(t) <= 120 && plm_tokenizer_token_to_id(t, "[PAD]") == 0 &&
                       plm_tokenizer_token_to_id(t, "[MASK]") == 4 && plm_tokenizer_special(t, PLM_SPECIAL_UNK) == 1,
                   "train_specials_first", "size %d", plm_tokenizer_vocab_size(t));
        TEST_CHECK(plm_tokenizer_token_to_id(t, "the") >= 0 && plm_tokenizer_token_to_id(t, "##a") >= 0 &&
                       plm_tokenizer_token_to_id(t, "東") >= 0,
                   "train_alphabet_and_merges", "missing expected tokens");
        plm_encoding e;
        plm_encoding_init(&e);
        const char *s = "the lazy dog unbelievable ca va";
        int rc = plm_tokenizer_encode(t, s, strlen(s), &e);
        int unk = 0;
        for (int i = 0; i < e.n; i++) unk += e.ids[i] == 1;
        TEST_CHECK(rc == 0 && unk == 0 && e.n > 0, "train_encodes_training_text", "rc %d unk %d", rc, unk);
        plm_encoding_free(&e);
        plm_tokenizer_free(t);
    }
    o.limit_alphabet = 10;
    o.n_special = 0;
    t = plm_tokenizer_train_wordpiece(files, 1, &o);
    int singles = 0;
    for (int i = 0; t && i < plm_tokenizer_vocab_size(t); i++) {
        const char *tok = plm_tokenizer_id_to_token(t, i);
        if (strlen(tok) == 1) singles++;
    }
    TEST_CHECK(t && singles == 10, "train_limit_alphabet", "%d single-char tokens", singles);
    plm_tokenizer_free(t);
    f = fopen(path, "w");
    fputs("good line\nbad \xff line\n", f);
    fclose(f);
    t = plm_tokenizer_train_wordpiece(files, 1, &o);
    char want[64];
    snprintf(want, sizeof want, "%s:2:", path);
    TEST_CHECK(!t && strstr(plm_last_error(), want), "train_bad_utf8_names_line", "%s", plm_last_error());
    plm_tokenizer_free(t);
    const char *missing[] = {"/nonexistent/corpus.txt"};
    t = plm_tokenizer_train_wordpiece(missing, 1, &o);
    TEST_CHECK(!t && strstr(plm_last_error(), "/nonexistent/corpus.txt"), "train_missing_file", "%s", plm_last_error());
    unlink(path);
}

int main(void) {
    plm_tokenizer *t = plm_tokenizer_load_wordpiece(vocab_path(), true);
    TEST_CHECK(t != NULL, "load_bert_uncased", "%s", plm_last_error());
    if (!t) TEST_EXIT();
    TEST_CHECK(plm_tokenizer_vocab_size(t) == 30522 && plm_tokenizer_kind(t) == PLM_TOK_WORDPIECE &&
                   plm_tokenizer_special(t, PLM_SPECIAL_UNK) == 100 &&
                   plm_tokenizer_special(t, PLM_SPECIAL_CLS) == 101 &&
                   plm_tokenizer_special(t, PLM_SPECIAL_MASK) == 103 && plm_tokenizer_special(t, PLM_SPECIAL_PAD) == 0,
               "bert_uncased_specials", "size %d", plm_tokenizer_vocab_size(t));
    /* expected values are HF tokenizers' (npm), byte offsets */
    expect(t, "basic", "Hello, World!", "7592:0:5 1010:5:6 2088:7:12 999:12:13");
    expect(t, "accents_offsets", "Héllo wörld", "7592:0:6 2088:7:13");
    expect(t, "subwords", "unaffable tokenization", "14477:0:3 20961:3:6 3468:6:9 19204:10:15 3989:15:22");
    expect(t, "cjk_isolated", "野口 Rika", "1963:0:3 1788:3:6 15544:7:9 2912:9:11");
    expect(t, "control_and_whitespace", "\x01\t a\xc2\xa0\xe2\x80\x8b b\r\n", "1037:3:4 1038:10:11");
    expect(t, "empty", "", "");
    expect(t, "only_spaces", " \t\r\n ", "");
    expect(t, "added_token_mask", "x[MASK]y", "1060:0:1 103:1:7 1061:7:8");
    expect(t, "turkish_dotted_i", "İstanbul", "9960:0:9");
    expect(t, "emoji_unk", "a 👍 b", "1037:0:1 100:2:6 1038:7:8");
    {
        char w[202];
        memset(w, 'a', 101);
        w[101] = 0;
        expect(t, "max_input_chars_101_unk", w, "100:0:101");
    }
    /* decode joins "##" pieces */
    {
        int32_t ids[] = {101, 14477, 20961, 3468, 999, 102};
        size_t dl;
        char *d = plm_tokenizer_decode(t, ids, 6, true, &dl);
        TEST_CHECK(d && !strcmp(d, "unaffable!"), "decode_skip_special", "got \"%s\"", d ? d : plm_last_error());
        free(d);
    }
    test_hostile(t);
    plm_tokenizer_free(t);

    /* cased: no lowercasing, no accent stripping */
    t = plm_tokenizer_load_wordpiece(vocab_path(), false);
    if (t) {
        expect(t, "cased_keeps_case", "Hello hello", "100:0:5 7592:6:11");
        expect(t, "cased_keeps_accents", "café", "100:0:5");
        plm_tokenizer_free(t);
    }
    test_loader_errors();
    test_train();
    TEST_EXIT();
}
