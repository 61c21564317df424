/* wordpiece_bench.c - BERT WordPiece encode throughput: reads the files, splits them into
 * lines and encodes every line (no special tokens) on N threads, reporting MB/s of input.
 * Usage: wordpiece_bench VOCAB THREADS FILE... */
#include "core/common.h"
#include "tokenizer/tokenizer.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: wordpiece_bench VOCAB THREADS FILE...\n");
        return 2;
    }
    plm_tokenizer *t = plm_tokenizer_load_wordpiece(argv[1], true);
    if (!t) {
        fprintf(stderr, "%s\n", plm_last_error());
        return 3;
    }
    int threads = atoi(argv[2]);
    size_t nl = 0, cap = 1 << 20, bytes = 0;
    const char **ls = plm_malloc(cap * sizeof *ls);
    size_t *ln = plm_malloc(cap * sizeof *ln);
    for (int f = 3; f < argc; f++) {
        size_t len;
        char *buf = plm_read_file(argv[f], &len);
        if (!buf) return 3;
        bytes += len;
        for (char *p = buf, *end = buf + len; p < end;) {
            char *q = memchr(p, '\n', (size_t)(end - p));
            if (nl == cap) {
                cap *= 2;
                ls = plm_realloc(ls, cap * sizeof *ls);
                ln = plm_realloc(ln, cap * sizeof *ln);
            }
            ls[nl] = p;
            ln[nl++] = q ? (size_t)(q - p) : (size_t)(end - p);
            p = q ? q + 1 : end;
        }
    }
    long long ntok = 0;
    double t0 = plm_now();
#pragma omp parallel num_threads(threads) reduction(+ : ntok)
    {
        plm_encoding e;
        plm_encoding_init(&e);
#pragma omp for schedule(dynamic, 256)
        for (size_t i = 0; i < nl; i++) {
            plm_encoding_clear(&e);
            if (plm_tokenizer_encode(t, ls[i], ln[i], &e) == 0) ntok += e.n;
        }
        plm_encoding_free(&e);
    }
    double dt = plm_now() - t0;
    printf("plm wordpiece: %d thread(s): %.1f MB in %.2fs = %.2f MB/s, %lld tokens\n", threads, bytes / 1e6, dt,
           bytes / 1e6 / dt, ntok);
    plm_tokenizer_free(t);
    return 0;
}
