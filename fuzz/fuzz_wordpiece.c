/* fuzz_wordpiece.c - libFuzzer target for WordPiece: the first input byte picks the mode.
 *   even: the input (after the mode byte) is a vocab.txt, loaded with plm_wordpiece_from_vocab_text;
 *         if it loads, a fixed text is encoded with it.
 *   odd:  the input is text, encoded with a small built-in vocabulary (cased and uncased),
 *         and the ids are decoded again. Offsets must stay inside the input.
 * Build: clang -fsanitize=fuzzer,address,undefined -Isrc fuzz/fuzz_wordpiece.c src/... */
#include "core/common.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/wordpiece.h"

#include <stdlib.h>
#include <string.h>

static const char vocab[] =
    "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n!\n,\n.\na\nb\nc\ne\nh\nl\no\nt\nhe\nthe\n##e\n##l\n##lo\n##o\n"
    "hello\n##s\n野\nca\n##fe\n##é\n";
static plm_tokenizer *tok[2];

static void check(const plm_tokenizer *t, const char *s, size_t n) {
    plm_encoding e;
    plm_encoding_init(&e);
    if (plm_tokenizer_encode(t, s, n, &e) == 0) {
        for (int i = 0; i < e.n; i++) {
            int32_t a = e.offsets[2 * i], b = e.offsets[2 * i + 1];
            if (a < 0 || b > (int32_t)n || a > b) abort();
        }
        size_t dl;
        free(plm_tokenizer_decode(t, e.ids, e.n, false, &dl));
    }
    plm_encoding_free(&e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!tok[0]) {
        tok[0] = plm_wordpiece_from_vocab_text("builtin", vocab, sizeof vocab - 1, true);
        tok[1] = plm_wordpiece_from_vocab_text("builtin", vocab, sizeof vocab - 1, false);
    }
    if (size == 0) return 0;
    const char *s = (const char *)data + 1;
    size_t n = size - 1;
    if (data[0] & 1) {
        check(tok[0], s, n);
        check(tok[1], s, n);
    } else {
        plm_tokenizer *t = plm_wordpiece_from_vocab_text("fuzz.txt", s, n, data[0] & 2);
        if (t) {
            check(t, "Hello, the café! 野 [MASK] xyz", strlen("Hello, the café! 野 [MASK] xyz"));
            plm_tokenizer_free(t);
        }
    }
    return 0;
}
