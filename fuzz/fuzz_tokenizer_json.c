/* fuzz_tokenizer_json.c - libFuzzer target for the loaders: the input is written to a
 * file and read as tokenizer.json, GPT-2 vocab.bpe (with the real encoder.json),
 * encoder.json, a tiktoken file and a BERT vocab.txt (first byte picks). A loader must
 * return a tokenizer or NULL with an error message; a loaded tokenizer must encode,
 * decode and save. */
#include "core/common.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    char path[64];
    snprintf(path, sizeof path, "/tmp/plm_fuzz_tok_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    fwrite(data + 1, 1, size - 1, f);
    fclose(f);
    /* small partner files, so each run is fast: the fuzzed file is the other half */
    static char enc[64], merges[64];
    if (!enc[0]) {
        snprintf(enc, sizeof enc, "/tmp/plm_fuzz_enc_%d.json", (int)getpid());
        snprintf(merges, sizeof merges, "/tmp/plm_fuzz_merges_%d.bpe", (int)getpid());
        FILE *g = fopen(enc, "wb");
        if (!g) return 0;
        fputs("{\"a\": 0, \"b\": 1, \"ab\": 2, \"\u0120\": 3, \"t\": 4, \"\u0120t\": 5, \"h\": 6, \"e\": 7, "
              "\"he\": 8, \"<|endoftext|>\": 9}",
              g);
        fclose(g);
        g = fopen(merges, "wb");
        if (!g) return 0;
        fputs("#version: 0.2\na b\n\xc4\xa0 t\nh e\n", g);
        fclose(g);
    }
    plm_tokenizer *t = NULL;
    switch (data[0] % 5) {
    case 0:
        t = plm_tokenizer_load(path);
        break;
    case 1:
        t = plm_tokenizer_load_gpt2(enc, path);
        break;
    case 2:
        t = plm_tokenizer_load_gpt2(path, merges);
        break;
    case 3:
        t = plm_tokenizer_load_tiktoken(path);
        break;
    case 4:
        t = plm_tokenizer_load_wordpiece(path, data[0] & 8);
        break;
    }
    if (!t) {
        if (!plm_last_error()[0]) abort(); /* failure must say why */
    } else {
        plm_encoding e;
        plm_encoding_init(&e);
        const char *txt = "Hello world! [MASK] caf\xc3\xa9 \xff 12345 <|endoftext|>";
        if (plm_tokenizer_encode(t, txt, strlen(txt), &e) == 0) {
            size_t dl;
            free(plm_tokenizer_decode(t, e.ids, e.n, true, &dl));
        }
        plm_encoding_free(&e);
        char out[80];
        snprintf(out, sizeof out, "%s.out.json", path);
        if (plm_tokenizer_save(t, out) == 0) {
            plm_tokenizer *u = plm_tokenizer_load(out);
            plm_tokenizer_free(u);
        }
        unlink(out);
        plm_tokenizer_free(t);
    }
    unlink(path);
    return 0;
}
