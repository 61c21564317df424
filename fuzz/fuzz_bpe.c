/* fuzz_bpe.c - libFuzzer target: byte-level BPE encode/decode on arbitrary bytes (the
 * first byte picks plain encode, encode_full with a pair, truncation and padding, or a
 * trained tokenizer with added specials) and checks decode(encode(x)) == x. */
#include "core/common.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plm_tokenizer *gpt2;

/* The GPT-2 vocabulary from $PLM_DATA, else ../shared/data (scripts/fuzz.sh runs from the repo root). */
static void init(void) {
    const char *d = getenv("PLM_DATA");
    char e[512], v[512];
    snprintf(e, sizeof e, "%s/tokenizers/gpt2-encoder.json", d ? d : "../shared/data");
    snprintf(v, sizeof v, "%s/tokenizers/gpt2-vocab.bpe", d ? d : "../shared/data");
    gpt2 = plm_tokenizer_load_gpt2(e, v);
    if (!gpt2) {
        fprintf(stderr, "fuzz_bpe: %s\n", plm_last_error());
        abort();
    }
    plm_tokenizer_add_special(gpt2, "[MASK]");
    plm_tokenizer_add_special(gpt2, "<|endoftext|><|x|>");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!gpt2) init();
    if (size == 0) return 0;
    uint8_t mode = data[0];
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    plm_encoding e;
    plm_encoding_init(&e);
    if (mode & 1) {
        plm_encode_opts o;
        plm_encode_opts_default(&o);
        o.max_length = (mode >> 1) & 31;
        o.truncation = (plm_truncation)((mode >> 6) % 3);
        o.pad_to_max_length = mode & 0x80;
        size_t half = n / 2;
        plm_tokenizer_encode_full(gpt2, s, half, (mode & 2) ? s + half : NULL, n - half, &o, &e);
        for (int i = 0; i < e.n; i++)
            if (e.ids[i] < 0 || e.ids[i] >= plm_tokenizer_vocab_size(gpt2)) abort();
    } else {
        if (plm_tokenizer_encode(gpt2, s, n, &e) != 0) abort();
        size_t dl;
        char *d = plm_tokenizer_decode(gpt2, e.ids, e.n, false, &dl);
        if (!d || dl != n || memcmp(d, s, n) != 0) abort(); /* byte-exact round trip */
        for (int i = 0; i < e.n; i++) {
            int a = e.offsets[2 * i], b = e.offsets[2 * i + 1];
            if (a < 0 || b < a || (size_t)b > n) abort();
        }
        free(d);
    }
    plm_encoding_free(&e);
    return 0;
}
