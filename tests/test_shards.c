/* test_shards.c - plm prepare's shards (data/shards.h) on real text (../shared/data or
 * $PLM_DATA; missing data fails):
 *  - the shards of text files hold exactly plm_corpus_tokenize's stream (ids and word,
 *    sentence and document flags), i.e. the tokenizer's output for each file followed by
 *    the separator; JSONL documents decode to the tokenizer's output of their text field;
 *  - loaders over the shards give the same batches as over the in-memory stream (MLM with
 *    whole-word masking, MLM + NSP, CLM), with shards smaller than a window;
 *  - the validation split holds out pieces and keeps every token;
 *  - hostile input fails with one clear error naming the file: empty corpus, invalid
 *    UTF-8 (file and byte), a bad JSONL line (file:line), a truncated shard, a changed
 *    shard (sha256), a manifest for another tokenizer, no manifest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "data/dataloader.h"
#include "data/shards.h"
#include "test.h"

static const char *data_dir(void) {
    const char *d = getenv("PLM_DATA");
    return d ? d : "../shared/data";
}

static char tmpdir[256];

static char *tpath(const char *name) {
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_file(const char *path, const char *s, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(s, 1, n, f);
    fclose(f);
}

static int prepare(const plm_tokenizer *tok, const char **inputs, int n, const char *out, float vsplit, long shard) {
    plm_prepare_opts o;
    plm_prepare_opts_default(&o);
    o.inputs = inputs;
    o.num_inputs = n;
    o.output_dir = out;
    o.validation_split = vsplit;
    o.shard_tokens = shard;
    o.quiet = true;
    o.overwrite = true;
    plm_prepare_stats st;
    return plm_prepare(tok, &o, &st);
}

static bool same_batches(const plm_token_stream *a, const plm_token_stream *b, const plm_vocab_info *v,
                         plm_objective obj, plm_objective_opts *o) {
    enum { B = 8, T = 48 };
    plm_dataloader da, db;
    if (plm_dataloader_init(&da, a, obj, o, v, T, 9, true) != 0) return false;
    if (plm_dataloader_init(&db, b, obj, o, v, T, 9, true) != 0) {
        plm_dataloader_free(&da);
        return false;
    }
    static int32_t ia[B * T], ib[B * T], ta[B * T], tb[B * T], la[B * T], lb[B * T], sa[B], sb[B];
    static uint8_t ma[B * T], mb[B * T];
    bool same = da.num_windows == db.num_windows;
    for (int i = 0; i < 40 && same; i++) {
        plm_dataloader_next_seq(&da, B, ia, ta, ma, la, sa);
        plm_dataloader_next_seq(&db, B, ib, tb, mb, lb, sb);
        same = !memcmp(ia, ib, sizeof ia) && !memcmp(ta, tb, sizeof ta) && !memcmp(la, lb, sizeof la) &&
               !memcmp(ma, mb, sizeof ma) && !memcmp(sa, sb, sizeof sa);
    }
    plm_dataloader_free(&da);
    plm_dataloader_free(&db);
    return same;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "%s/plm-shards.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmpdir)) return 1;
    char p[1024], f1[1024], f2[1024], f3[1024];
    snprintf(p, sizeof p, "%s/tokenizers/bert-base-uncased-vocab.txt", data_dir());
    plm_tokenizer *tok = plm_tokenizer_load_wordpiece(p, true);
    TEST_CHECK(tok != NULL, "shards_tokenizer", "%s (tests read ../shared/data or $PLM_DATA)", plm_last_error());
    if (!tok) TEST_EXIT();
    plm_vocab_info v;
    plm_vocab_info_init(&v, tok);
    snprintf(f1, sizeof f1, "%s/tinyshakespeare/input.txt", data_dir());
    snprintf(f2, sizeof f2, "%s/sotu/1790_george_washington_n.txt", data_dir());
    snprintf(f3, sizeof f3, "%s/sotu/1861_abraham_lincoln_r.txt", data_dir());
    const char *files[] = {f2, f1, f3};

    /* shards == the in-memory stream */
    plm_token_stream mem, sh;
    int rc = plm_corpus_tokenize(tok, files, 3, v.sep, &mem, 0);
    TEST_CHECK(rc == 0, "shards_corpus", "%s", plm_last_error());
    if (rc) TEST_EXIT();
    rc = prepare(tok, files, 3, tpath("a"), 0.0f, 100000);
    TEST_CHECK(rc == 0, "shards_prepare", "%s", plm_last_error());
    rc = plm_shards_open(tpath("a"), "train", tok, true, &sh);
    TEST_CHECK(rc == 0, "shards_open", "%s", plm_last_error());
    if (rc) TEST_EXIT();
    int32_t *ids = plm_malloc(mem.n * sizeof(int32_t));
    uint8_t *fl = plm_malloc(mem.n);
    plm_stream_read(&sh, 0, sh.n, ids, fl);
    TEST_CHECK(sh.n == mem.n && !memcmp(ids, mem.ids, mem.n * 4) && !memcmp(fl, mem.flags, mem.n),
               "shards_equal_stream", "%zu vs %zu tokens, ids or flags differ", sh.n, mem.n);
    /* the first document decodes to the tokenizer's own output for the file */
    size_t len;
    char *text = plm_read_file(f2, &len);
    plm_encoding e;
    plm_encoding_init(&e);
    plm_tokenizer_encode(tok, text, len, &e);
    TEST_CHECK((size_t)e.n < sh.n && !memcmp(ids, e.ids, (size_t)e.n * 4) && ids[e.n] == v.sep &&
                   (fl[e.n + 1] & PLM_TOK_DOC_START),
               "shards_decode_tokenizer_output", "first document differs from encoding %s", f2);
    plm_encoding_free(&e);
    free(text);
    printf("# %zu tokens in %s\n", sh.n, tpath("a"));

    /* the same batches from both */
    plm_objective_opts o;
    plm_objective_opts_default(&o);
    o.masking = PLM_MASK_WHOLE_WORD;
    TEST_CHECK(same_batches(&mem, &sh, &v, PLM_OBJ_MLM, &o), "shards_same_batches_mlm_wwm", "batches differ");
    o.pair = PLM_PAIR_NSP;
    TEST_CHECK(same_batches(&mem, &sh, &v, PLM_OBJ_MLM, &o), "shards_same_batches_nsp", "batches differ");
    o.pair = PLM_PAIR_NONE;
    TEST_CHECK(same_batches(&mem, &sh, &v, PLM_OBJ_CLM, &o), "shards_same_batches_clm", "batches differ");
    plm_shards_close(&sh);
    /* shards of 9999 tokens: windows cross shard boundaries */
    rc = prepare(tok, files, 3, tpath("small"), 0.0f, 9999);
    rc = rc || plm_shards_open(tpath("small"), "train", tok, true, &sh);
    TEST_CHECK(rc == 0 && same_batches(&mem, &sh, &v, PLM_OBJ_MLM, &o), "shards_tiny_shards_same_batches", "%s",
               plm_last_error());
    plm_shards_close(&sh);

    /* validation split: every token lands in one split */
    plm_token_stream va;
    rc = prepare(tok, files, 3, tpath("split"), 0.3f, 1 << 20);
    rc = rc || plm_shards_open(tpath("split"), "train", tok, true, &sh) ||
         plm_shards_open(tpath("split"), "validation", tok, true, &va);
    TEST_CHECK(rc == 0 && va.n > 0 && sh.n > 0 && sh.n + va.n >= mem.n, "shards_validation_split",
               "train %zu + validation %zu vs %zu tokens: %s", sh.n, va.n, mem.n, plm_last_error());
    printf("# split: train %zu, validation %zu tokens\n", sh.n, va.n);
    plm_shards_close(&sh);
    plm_shards_close(&va);

    /* JSONL: one document per line, the text field */
    const char *jl = "{\"text\": \"Hello world. Caf\\u00e9 is open.\\nNew line\", \"id\": 1}\n\n"
                     "{\"id\": 2, \"text\": \"Second document!\"}\n";
    write_file(tpath("d.jsonl"), jl, strlen(jl));
    const char *jin[] = {tpath("d.jsonl")};
    rc = prepare(tok, jin, 1, tpath("j"), 0.0f, 1000);
    rc = rc || plm_shards_open(tpath("j"), "train", tok, true, &sh);
    bool jok = rc == 0;
    if (jok) {
        const char *docs[] = {"Hello world. Caf\xc3\xa9 is open.\nNew line", "Second document!"};
        size_t at = 0;
        for (int d = 0; d < 2; d++) {
            plm_encoding_init(&e);
            plm_tokenizer_encode(tok, docs[d], strlen(docs[d]), &e);
            int32_t got[64];
            uint8_t gf[64];
            plm_stream_read(&sh, at, (size_t)e.n + 1, got, gf);
            jok = jok && !memcmp(got, e.ids, (size_t)e.n * 4) && got[e.n] == v.sep && (gf[0] & PLM_TOK_DOC_START);
            at += (size_t)e.n + 1;
            plm_encoding_free(&e);
        }
        jok = jok && at == sh.n;
        plm_shards_close(&sh);
    }
    TEST_CHECK(jok, "shards_jsonl", "JSONL documents differ from the tokenizer's output: %s", plm_last_error());

    /* hostile input */
    write_file(tpath("empty.txt"), "", 0);
    const char *ein[] = {tpath("empty.txt")};
    rc = prepare(tok, ein, 1, tpath("e"), 0.0f, 1000);
    TEST_CHECK(rc == PLM_EXIT_INPUT && strstr(plm_last_error(), "empty corpus"), "shards_empty_corpus", "rc %d: %s", rc,
               plm_last_error());
    write_file(tpath("bad.txt"), "good line\nbad \xff byte\n", 20);
    const char *bin[] = {tpath("bad.txt")};
    rc = prepare(tok, bin, 1, tpath("e"), 0.0f, 1000);
    TEST_CHECK(rc == PLM_EXIT_INPUT && strstr(plm_last_error(), "bad.txt: invalid UTF-8 at byte 14"),
               "shards_invalid_utf8", "rc %d: %s", rc, plm_last_error());
    write_file(tpath("bad.jsonl"), "{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n", 30);
    const char *bj[] = {tpath("bad.jsonl")};
    rc = prepare(tok, bj, 1, tpath("e"), 0.0f, 1000);
    TEST_CHECK(rc == PLM_EXIT_INPUT && strstr(plm_last_error(), "bad.jsonl:2: no string field \"text\""),
               "shards_bad_jsonl", "rc %d: %s", rc, plm_last_error());
    TEST_CHECK(plm_shards_open(tpath("nothing"), "train", tok, true, &sh) != 0 &&
                   strstr(plm_last_error(), "no manifest.json"),
               "shards_no_manifest", "%s", plm_last_error());
    /* another tokenizer */
    snprintf(p, sizeof p, "%s/tokenizers/bert-base-uncased-vocab.txt", data_dir());
    plm_tokenizer *cased = plm_tokenizer_load_wordpiece(p, true);
    plm_tokenizer_add_special(cased, "[EXTRA]");
    TEST_CHECK(plm_shards_open(tpath("a"), "train", cased, true, &sh) != 0 &&
                   strstr(plm_last_error(), "another tokenizer"),
               "shards_tokenizer_mismatch", "%s", plm_last_error());
    plm_tokenizer_free(cased);
    /* a changed byte, then a truncated shard */
    FILE *f = fopen(tpath("a/train-00000.bin"), "r+b");
    fseek(f, 100, SEEK_SET);
    int c = fgetc(f);
    fseek(f, 100, SEEK_SET);
    fputc(c ^ 1, f);
    fclose(f);
    TEST_CHECK(plm_shards_open(tpath("a"), "train", tok, true, &sh) != 0 && strstr(plm_last_error(), "sha256") &&
                   strstr(plm_last_error(), "train-00000.bin"),
               "shards_sha256_mismatch", "%s", plm_last_error());
    if (truncate(tpath("a/train-00000.bin"), 1000) != 0) perror("truncate");
    TEST_CHECK(plm_shards_open(tpath("a"), "train", tok, false, &sh) != 0 && strstr(plm_last_error(), "truncated") &&
                   strstr(plm_last_error(), "train-00000.bin"),
               "shards_truncated", "%s", plm_last_error());

    free(ids);
    free(fl);
    plm_token_stream_free(&mem);
    plm_vocab_info_free(&v);
    plm_tokenizer_free(tok);
    plm_remove_tree(tmpdir);
    TEST_EXIT();
}
