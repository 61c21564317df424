/* collate_tool.c - prints plm's padded batches for tests/collate_conformance.sh, in the
 * format tests/ref/hf_pairs_batch.js prints HF's:
 *   collate_tool TOKDIR (bert|gpt2) MAXLEN (longest_first|only_first|only_second)
 *                (longest|max_length) MULTIPLE PADID (full|ids) FILE
 * FILE has one example per line, "A" or "A<TAB>B". Batch k (from 0) takes the next
 * 8 + 7k mod 25 lines, so sizes run over 8..32. One output line per example:
 * "id,type,attention[,special,word,seq,start,end] ..." over all T positions of its row
 * (full adds the last five), or "ERROR" for each row of a batch plm rejects. PADID -1
 * means the tokenizer's pad token. */
#include "core/common.h"
#include "data/collate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static plm_tokenizer *load(const char *dir, const char *kind) {
    char a[4096], b[4096];
    if (!strcmp(kind, "bert")) {
        snprintf(a, sizeof a, "%s/bert-base-uncased-vocab.txt", dir);
        return plm_tokenizer_load_wordpiece(a, true);
    }
    snprintf(a, sizeof a, "%s/gpt2-encoder.json", dir);
    snprintf(b, sizeof b, "%s/gpt2-vocab.bpe", dir);
    return plm_tokenizer_load_gpt2(a, b);
}

int main(int argc, char **argv) {
    if (argc != 10) {
        fprintf(stderr, "usage: collate_tool TOKDIR (bert|gpt2) MAXLEN STRATEGY (longest|max_length) MULTIPLE "
                        "PADID (full|ids) FILE\n");
        return 2;
    }
    plm_tokenizer *t = load(argv[1], argv[2]);
    size_t len;
    char *buf = t ? plm_read_file(argv[9], &len) : NULL;
    if (!buf) {
        fprintf(stderr, "%s\n", plm_last_error());
        plm_tokenizer_free(t);
        return 3;
    }
    plm_collate_opts o;
    plm_collate_opts_default(&o);
    o.max_length = atoi(argv[3]);
    o.truncation = !strcmp(argv[4], "only_first")    ? PLM_TRUNC_ONLY_FIRST
                   : !strcmp(argv[4], "only_second") ? PLM_TRUNC_ONLY_SECOND
                                                     : PLM_TRUNC_LONGEST_FIRST;
    o.padding = !strcmp(argv[5], "max_length") ? PLM_PAD_MAX_LENGTH : PLM_PAD_LONGEST;
    o.pad_to_multiple_of = atoi(argv[6]);
    o.pad_id = atoi(argv[7]);
    bool full = !strcmp(argv[8], "full");

    /* Split into lines and segments in place: each line's tab and newline become NULs. */
    int n = 0, cap = 1024;
    const char **as = plm_malloc((size_t)cap * sizeof *as), **bs = plm_malloc((size_t)cap * sizeof *bs);
    for (char *p = buf, *end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *tab = memchr(p, '\t', (size_t)(le - p));
        *le = 0;
        if (tab) *tab = 0;
        if (n == cap) {
            cap *= 2;
            as = plm_realloc(as, (size_t)cap * sizeof *as);
            bs = plm_realloc(bs, (size_t)cap * sizeof *bs);
        }
        as[n] = p;
        bs[n++] = tab ? tab + 1 : NULL;
        p = le + 1;
    }

    plm_encoded_batch batch;
    plm_encoded_batch_init(&batch);
    for (int k = 0, i = 0; i < n; k++) {
        int bsz = PLM_MIN(8 + (7 * k) % 25, n - i);
        if (plm_collate_pairs(t, as + i, NULL, bs + i, NULL, bsz, &o, &batch) != 0) {
            fprintf(stderr, "batch %d: %s\n", k, plm_last_error());
            for (int r = 0; r < bsz; r++) puts("ERROR");
            i += bsz;
            continue;
        }
        for (int r = 0; r < bsz; r++) {
            for (int j = 0; j < batch.T; j++) {
                size_t x = (size_t)r * (size_t)batch.T + (size_t)j;
                printf(j ? " %d,%d,%d" : "%d,%d,%d", batch.input_ids[x], batch.token_type_ids[x],
                       batch.attention_mask[x]);
                if (full)
                    printf(",%d,%d,%d,%d,%d", batch.special_tokens_mask[x], batch.word_ids[x], batch.sequence_ids[x],
                           batch.offset_mapping[2 * x], batch.offset_mapping[2 * x + 1]);
            }
            putchar('\n');
        }
        i += bsz;
    }
    plm_encoded_batch_free(&batch);
    free(as);
    free(bs);
    free(buf);
    plm_tokenizer_free(t);
    return 0;
}
