/* tok_tool.c - a small driver for the conformance scripts and benchmarks: loads a
 * tokenizer and encodes every line of a file (without its newline) to one output line.
 * Usage: tok_tool (gpt2 ENC.json VOCAB.bpe | tiktoken F | wordpiece VOCAB.txt [cased]
 *                  | json TOKENIZER.json) (ids|offsets|roundtrip) FILE...
 * ids: space-separated ids; offsets: "id:start:end" with byte offsets; roundtrip:
 * prints "OK" or "BAD" per line after decode(encode(line)). Not a test itself. */
#include "core/common.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: see tok_tool.c\n");
        return 2;
    }
    plm_tokenizer *t = NULL;
    int a = 1;
    if (!strcmp(argv[a], "gpt2") && argc > a + 2) {
        t = plm_tokenizer_load_gpt2(argv[a + 1], argv[a + 2]);
        a += 3;
    } else if (!strcmp(argv[a], "tiktoken")) {
        t = plm_tokenizer_load_tiktoken(argv[a + 1]);
        a += 2;
    } else if (!strcmp(argv[a], "wordpiece")) {
        bool lower = true;
        if (argc > a + 2 && !strcmp(argv[a + 2], "cased")) lower = false;
        t = plm_tokenizer_load_wordpiece(argv[a + 1], lower);
        a += lower ? 2 : 3;
    } else if (!strcmp(argv[a], "json")) {
        t = plm_tokenizer_load(argv[a + 1]);
        a += 2;
    } else {
        fprintf(stderr, "unknown kind %s\n", argv[a]);
        return 2;
    }
    if (!t) {
        fprintf(stderr, "load: %s\n", plm_last_error());
        return 3;
    }
    if (a >= argc) return 2;
    const char *mode = argv[a++];
    plm_encoding e;
    plm_encoding_init(&e);
    char *obuf = malloc(1 << 20);
    setvbuf(stdout, obuf, _IOFBF, 1 << 20);
    int rc = 0;
    for (; a < argc; a++) {
        size_t len;
        char *buf = plm_read_file(argv[a], &len);
        if (!buf) {
            fprintf(stderr, "%s\n", plm_last_error());
            return 3;
        }
        char *p = buf, *end = buf + len;
        while (p < end) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            plm_encoding_clear(&e);
            if (plm_tokenizer_encode(t, p, n, &e) != 0) {
                printf("ERROR %s\n", plm_last_error());
                rc = 1;
            } else if (!strcmp(mode, "ids")) {
                for (int i = 0; i < e.n; i++) printf(i ? " %d" : "%d", e.ids[i]);
                putchar('\n');
            } else if (!strcmp(mode, "offsets")) {
                for (int i = 0; i < e.n; i++)
                    printf(i ? " %d:%d:%d" : "%d:%d:%d", e.ids[i], e.offsets[2 * i], e.offsets[2 * i + 1]);
                putchar('\n');
            } else {
                size_t dl;
                char *d = plm_tokenizer_decode(t, e.ids, e.n, false, &dl);
                puts(d && dl == n && memcmp(d, p, n) == 0 ? "OK" : "BAD");
                free(d);
            }
            p = nl ? nl + 1 : end;
        }
        free(buf);
    }
    fflush(stdout);
    plm_encoding_free(&e);
    plm_tokenizer_free(t);
    return rc;
}
