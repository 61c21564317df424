/* tokenizer_bench.c - plm encode throughput: every line of the given files encoded
 * with 1..N threads (OpenMP over blocks of lines), printing MB/s.
 * Usage: tokenizer_bench (gpt2 ENC VOCAB | wordpiece VOCAB.txt) THREADS FILE... */
#include "core/common.h"
#include "tokenizer/tokenizer.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 5) return 2;
    int a = 1;
    plm_tokenizer *t;
    if (!strcmp(argv[a], "gpt2")) {
        t = plm_tokenizer_load_gpt2(argv[a + 1], argv[a + 2]);
        a += 3;
    } else {
        t = plm_tokenizer_load_wordpiece(argv[a + 1], true);
        a += 2;
    }
    if (!t) {
        fprintf(stderr, "%s\n", plm_last_error());
        return 3;
    }
    int threads = atoi(argv[a++]);
    size_t total = 0, cap = 1 << 24;
    char *all = plm_malloc(cap);
    for (; a < argc; a++) {
        size_t n;
        char *b = plm_read_file(argv[a], &n);
        if (!b) return 3;
        if (total + n + 1 > cap) all = plm_realloc(all, cap = 2 * (total + n + 1));
        memcpy(all + total, b, n);
        total += n;
        if (n && b[n - 1] != '\n') all[total++] = '\n';
        free(b);
    }
    /* line starts */
    size_t nl = 0, lcap = 1 << 20;
    size_t *ls = plm_malloc(lcap * sizeof *ls);
    for (size_t p = 0; p < total;) {
        if (nl + 2 > lcap) ls = plm_realloc(ls, (lcap *= 2) * sizeof *ls);
        ls[nl++] = p;
        char *q = memchr(all + p, '\n', total - p);
        p = q ? (size_t)(q - all) + 1 : total;
    }
    ls[nl] = total;
    long ntok = 0;
    double t0 = plm_now();
#pragma omp parallel num_threads(threads) reduction(+ : ntok)
    {
        plm_encoding e;
        plm_encoding_init(&e);
#pragma omp for schedule(dynamic, 1024)
        for (size_t i = 0; i < nl; i++) {
            plm_encoding_clear(&e);
            plm_tokenizer_encode(t, all + ls[i], ls[i + 1] - ls[i] - 1, &e);
            ntok += e.n;
        }
        plm_encoding_free(&e);
    }
    double dt = plm_now() - t0;
    printf("plm %s threads=%d: %.1f MB in %.2fs = %.2f MB/s (%ld tokens)\n",
           plm_tokenizer_kind(t) == PLM_TOK_BPE ? "gpt2" : "bert-uncased", threads, total / 1e6, dt, total / 1e6 / dt,
           ntok);
    plm_tokenizer_free(t);
    free(all);
    free(ls);
    return 0;
}
