/* test_bpe.c - byte-level BPE: GPT-2 ids against known HF output, exact round trips on
 * arbitrary bytes, tiktoken loader, trainer, tokenizer.json save/load, special-token
 * roles, model inputs, and clear errors on malformed files. */
#include "core/common.h"
#include "tokenizer/tokenizer.h"
#include "test.h"

#include <string.h>
#include <unistd.h>

/* Datasets: $PLM_DATA, default ../shared/data relative to the repo root (tests/run.sh
 * runs from there). A missing file fails the checks that need it. */
static const char *datadir(void) {
    const char *d = getenv("PLM_DATA");
    return d ? d : "../shared/data";
}

static plm_tokenizer *gpt2(void) {
    char e[512], v[512];
    snprintf(e, sizeof e, "%s/tokenizers/gpt2-encoder.json", datadir());
    snprintf(v, sizeof v, "%s/tokenizers/gpt2-vocab.bpe", datadir());
    return plm_tokenizer_load_gpt2(e, v);
}

static bool ids_equal(const plm_encoding *e, const int32_t *want, int n) {
    if (e->n != n) return false;
    for (int i = 0; i < n; i++)
        if (e->ids[i] != want[i]) return false;
    return true;
}

static bool roundtrip(const plm_tokenizer *t, const char *s, size_t n) {
    plm_encoding e;
    plm_encoding_init(&e);
    bool ok = plm_tokenizer_encode(t, s, n, &e) == 0;
    size_t dl = 0;
    char *d = ok ? plm_tokenizer_decode(t, e.ids, e.n, false, &dl) : NULL;
    ok = d && dl == n && memcmp(d, s, n) == 0;
    free(d);
    plm_encoding_free(&e);
    return ok;
}

static void write_file(const char *path, const char *s) {
    FILE *f = fopen(path, "wb");
    fputs(s, f);
    fclose(f);
}

int main(void) {
    plm_tokenizer *t = gpt2();
    TEST_CHECK(t != NULL, "gpt2_load", "%s", plm_last_error());
    if (!t) TEST_EXIT();
    TEST_CHECK(plm_tokenizer_vocab_size(t) == 50257, "gpt2_vocab_size", "%d", plm_tokenizer_vocab_size(t));
    TEST_CHECK(plm_tokenizer_special(t, PLM_SPECIAL_EOS) == 50256 && plm_tokenizer_special(t, PLM_SPECIAL_BOS) == 50256,
               "gpt2_roles", "eos %d", plm_tokenizer_special(t, PLM_SPECIAL_EOS));
    TEST_CHECK(plm_tokenizer_token_to_id(t, "\xc4\xa0the") == 262, "gpt2_token_to_id", "%d",
               plm_tokenizer_token_to_id(t, "\xc4\xa0the"));

    /* ids as given by HF tokenizers (npm) on the same strings */
    struct {
        const char *s;
        int32_t ids[24];
        int n;
    } cases[] = {
        {"Hello world! It's a test.", {15496, 995, 0, 632, 338, 257, 1332, 13}, 8},
        {"  multiple   spaces", {220, 3294, 220, 220, 9029}, 5},
        {"\xc3\xbc\xc3\xb1\xc3\xad\xc3\xa7\xc3\xb8\x64\xc3\xa9 \xe4\xbd\xa0\xe5\xa5\xbd "
         "\xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
         {9116, 12654, 8836, 16175, 24172, 67, 2634, 220, 19526, 254, 25001, 121, 30325, 222, 41840, 235, 8582, 237,
          121},
         19},
        {"<|endoftext|>foo", {50256, 21943}, 2},
    };
    plm_encoding e;
    plm_encoding_init(&e);
    for (size_t i = 0; i < PLM_ARRAY_LEN(cases); i++) {
        plm_encoding_clear(&e);
        int rc = plm_tokenizer_encode(t, cases[i].s, strlen(cases[i].s), &e);
        char name[64];
        snprintf(name, sizeof name, "gpt2_ids_%zu", i);
        TEST_CHECK(rc == 0 && ids_equal(&e, cases[i].ids, cases[i].n), name, "got %d tokens", e.n);
    }
    /* offsets of "Hello world!" and word ids */
    plm_encoding_clear(&e);
    plm_tokenizer_encode(t, "Hello world!", 12, &e);
    TEST_CHECK(e.n == 3 && e.offsets[2] == 5 && e.offsets[3] == 11 && e.word_ids[2] == 2, "gpt2_offsets", "n=%d", e.n);

    /* exact round trip on random bytes, invalid UTF-8 included, and long runs */
    srand(1);
    bool all = true;
    char buf[4096];
    for (int k = 0; k < 300 && all; k++) {
        size_t n = (size_t)(rand() % 300);
        for (size_t i = 0; i < n; i++) buf[i] = (char)(rand() % 4 == 0 ? rand() % 256 : " a1\n'\xc3\xa9"[rand() % 8]);
        all = roundtrip(t, buf, n);
    }
    TEST_CHECK(all, "gpt2_roundtrip_random_bytes", "mismatch");
    size_t big = 200000;
    char *run = plm_malloc(big);
    memset(run, ' ', big);
    TEST_CHECK(roundtrip(t, run, big), "gpt2_roundtrip_long_space_run", "mismatch");
    for (size_t i = 0; i < big; i++) run[i] = (char)('0' + i % 10);
    TEST_CHECK(roundtrip(t, run, big), "gpt2_roundtrip_long_digit_run", "mismatch");
    free(run);

    /* tiktoken loader gives the same ids */
    char path[512];
    snprintf(path, sizeof path, "%s/tokenizers/r50k_base.tiktoken", datadir());
    plm_tokenizer *tk = plm_tokenizer_load_tiktoken(path);
    TEST_CHECK(tk != NULL, "tiktoken_load", "%s", plm_last_error());
    if (tk) {
        plm_encoding e2;
        plm_encoding_init(&e2);
        const char *s = cases[2].s;
        plm_tokenizer_encode(tk, s, strlen(s), &e2);
        TEST_CHECK(ids_equal(&e2, cases[2].ids, cases[2].n), "tiktoken_ids", "n=%d", e2.n);
        plm_encoding_free(&e2);
        plm_tokenizer_free(tk);
    }

    /* model inputs: truncation and padding */
    plm_encode_opts o;
    plm_encode_opts_default(&o);
    o.max_length = 5;
    o.pad_to_max_length = true;
    const char *A = "one two three four five six", *B = "seven eight";
    TEST_CHECK(plm_tokenizer_encode_full(t, A, strlen(A), B, strlen(B), &o, &e) == 0 && e.n == 5 && e.seq_ids[0] == 0 &&
                   e.seq_ids[4] == 1 && e.type_ids[4] == 1,
               "gpt2_pair_longest_first", "n=%d", e.n);
    o.max_length = 10;
    TEST_CHECK(plm_tokenizer_encode_full(t, B, strlen(B), NULL, 0, &o, &e) == 0 && e.n == 10 &&
                   e.attention_mask[9] == 0 && e.attention_mask[1] == 1 && e.ids[9] == 50256,
               "gpt2_padding", "n=%d", e.n);
    o.truncation = PLM_TRUNC_ONLY_SECOND;
    o.max_length = 3;
    TEST_CHECK(plm_tokenizer_encode_full(t, A, strlen(A), B, strlen(B), &o, &e) != 0, "gpt2_only_second_too_short",
               "should fail");
    plm_tokenizer_free(t);

    /* trainer on a small corpus, with the demo's special tokens */
    const char *specials[] = {"<|endoftext|>", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"};
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    to.vocab_size = test_sanitized() ? 600 : 4000;
    to.special_tokens = specials;
    to.n_special = 6;
    to.num_threads = 2;
    snprintf(path, sizeof path, "%s/tinyshakespeare/input.txt", datadir());
    const char *files[] = {path};
    double t0 = plm_now();
    plm_tokenizer *tr = plm_tokenizer_train_bpe(files, 1, &to);
    double dt = plm_now() - t0;
    TEST_CHECK(tr != NULL, "train_bpe", "%s", plm_last_error());
    if (tr) {
        printf("# trained %d tokens on %s in %.2fs\n", plm_tokenizer_vocab_size(tr), path, dt);
        TEST_CHECK(plm_tokenizer_vocab_size(tr) == to.vocab_size, "train_bpe_vocab_size", "%d",
                   plm_tokenizer_vocab_size(tr));
        TEST_CHECK(test_sanitized() || dt < 10, "train_bpe_fast", "%.1fs", dt);
        int want[PLM_SPECIAL_COUNT] = {
            [PLM_SPECIAL_PAD] = 1,  [PLM_SPECIAL_UNK] = 5, [PLM_SPECIAL_CLS] = 2, [PLM_SPECIAL_SEP] = 3,
            [PLM_SPECIAL_MASK] = 4, [PLM_SPECIAL_BOS] = 0, [PLM_SPECIAL_EOS] = 0};
        bool roles = true;
        for (int r = 0; r < PLM_SPECIAL_COUNT; r++) roles &= plm_tokenizer_special(tr, (plm_special_role)r) == want[r];
        TEST_CHECK(roles, "train_bpe_roles", "pad=%d", plm_tokenizer_special(tr, PLM_SPECIAL_PAD));
        const char *s = "First Citizen:\nBefore we proceed any further, hear me speak.[MASK] <|endoftext|>\xff\xfe";
        TEST_CHECK(roundtrip(tr, s, strlen(s)), "train_bpe_roundtrip", "mismatch");
        plm_encoding_clear(&e);
        plm_tokenizer_encode(tr, s, strlen(s), &e);
        int n_before = e.n;
        bool has_mask = false;
        for (int i = 0; i < e.n; i++) has_mask |= e.ids[i] == 4;
        TEST_CHECK(has_mask, "train_bpe_special_matched", "no [MASK] id");
        TEST_CHECK(e.n < (int)strlen(s) / 2, "train_bpe_compresses", "%d tokens for %zu bytes", e.n, strlen(s));
        /* the mask takes the space before it (lstrip, as RoBERTa's <mask>): no lone "Ġ" */
        const char *masked = "The [MASK] of";
        plm_encoding_clear(&e);
        plm_tokenizer_encode(tr, masked, strlen(masked), &e);
        TEST_CHECK(e.n == 3 && e.ids[1] == 4 && e.offsets[2] == 3 && e.offsets[3] == 10, "train_bpe_mask_lstrip",
                   "%d tokens, second %d at %d..%d", e.n, e.n > 1 ? e.ids[1] : -1, e.n > 1 ? e.offsets[2] : -1,
                   e.n > 1 ? e.offsets[3] : -1);

        /* save / load keeps ids and roles, also a role set by hand */
        plm_tokenizer_set_special(tr, PLM_SPECIAL_BOS, "[CLS]");
        char tj[] = "/tmp/plm_test_bpe_XXXXXX";
        int fd = mkstemp(tj);
        close(fd);
        TEST_CHECK(plm_tokenizer_save(tr, tj) == 0, "save_json", "%s", plm_last_error());
        plm_tokenizer *ld = plm_tokenizer_load(tj);
        TEST_CHECK(ld != NULL, "load_json", "%s", plm_last_error());
        if (ld) {
            plm_encoding_clear(&e);
            plm_tokenizer_encode(ld, s, strlen(s), &e);
            TEST_CHECK(e.n == n_before && plm_tokenizer_vocab_size(ld) == plm_tokenizer_vocab_size(tr),
                       "load_json_same_ids", "%d vs %d", e.n, n_before);
            TEST_CHECK(plm_tokenizer_special(ld, PLM_SPECIAL_BOS) == 2 &&
                           plm_tokenizer_special(ld, PLM_SPECIAL_EOS) == 0 &&
                           plm_tokenizer_special(ld, PLM_SPECIAL_MASK) == 4,
                       "load_json_roles", "bos=%d", plm_tokenizer_special(ld, PLM_SPECIAL_BOS));
            plm_encoding_clear(&e);
            plm_tokenizer_encode(ld, masked, strlen(masked), &e);
            TEST_CHECK(e.n == 3 && e.ids[1] == 4 && e.offsets[2] == 3, "load_json_keeps_lstrip", "%d tokens", e.n);
            int id = plm_tokenizer_add_special(ld, "<|user|>");
            TEST_CHECK(id == to.vocab_size, "add_special_new_id", "%d", id);
            plm_encoding_clear(&e);
            plm_tokenizer_encode(ld, "a<|user|>b", 10, &e);
            TEST_CHECK(e.n == 3 && e.ids[1] == id && e.offsets[2] == 1 && e.offsets[3] == 9, "add_special_matched",
                       "n=%d", e.n);
            size_t dl;
            char *d = plm_tokenizer_decode(ld, e.ids, e.n, true, &dl);
            TEST_CHECK(d && !strcmp(d, "ab"), "decode_skip_special", "%s", d ? d : "NULL");
            free(d);
            plm_tokenizer_free(ld);
        }
        unlink(tj);
        plm_tokenizer_free(tr);
    }

    /* malformed inputs: NULL and an error naming file and line */
    char bad[] = "/tmp/plm_test_bad_XXXXXX";
    int fd = mkstemp(bad);
    close(fd);
    char enc[512];
    snprintf(enc, sizeof enc, "%s/tokenizers/gpt2-encoder.json", datadir());
    write_file(bad, "#version: 0.2\n\xc4\xa0 t\nno_space_here\n");
    plm_tokenizer *x = plm_tokenizer_load_gpt2(enc, bad);
    TEST_CHECK(!x && strstr(plm_last_error(), ":3:"), "bad_merges_line", "%s", plm_last_error());
    write_file(bad, "{\n \"a\": 0,\n \"b\": oops\n}\n");
    x = plm_tokenizer_load_gpt2(bad, bad);
    TEST_CHECK(!x && strstr(plm_last_error(), ":3:"), "bad_encoder_json_line", "%s", plm_last_error());
    write_file(bad, "IQ== 0\nIg== x\n");
    x = plm_tokenizer_load_tiktoken(bad);
    TEST_CHECK(!x && strstr(plm_last_error(), ":2:"), "bad_tiktoken_line", "%s", plm_last_error());
    write_file(bad, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]},\n"
                    "\"pre_tokenizer\": {\"type\": \"ByteLevel\"}}");
    x = plm_tokenizer_load(bad);
    TEST_CHECK(!x && strstr(plm_last_error(), "merges[0]"), "bad_tokenizer_json_merge", "%s", plm_last_error());
    write_file(bad, "{\"model\": [1, 2,\n\n ]]");
    x = plm_tokenizer_load(bad);
    TEST_CHECK(!x && strstr(plm_last_error(), ":3:"), "bad_tokenizer_json_syntax", "%s", plm_last_error());
    unlink(bad);
    plm_encoding_free(&e);
    TEST_EXIT();
}
