/* tok_train.c - trains a byte-level BPE tokenizer for the trainer comparison scripts.
 * Usage: tok_train OUT.json VOCAB_SIZE (observed|bytes) FILE...  (no special tokens, as
 * HF's default trainer). Prints "PLM_TRAIN_SECONDS x". Not a test itself. */
#include "core/common.h"
#include "tokenizer/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 5) {
        fprintf(stderr, "usage: tok_train OUT.json VOCAB_SIZE (observed|bytes) FILE...\n");
        return 2;
    }
    plm_tokenizer_train_opts o;
    plm_tokenizer_train_opts_default(&o);
    o.vocab_size = atoi(argv[2]);
    o.bpe_observed_alphabet = !strcmp(argv[3], "observed");
    o.show_progress = getenv("PLM_PROGRESS") != NULL;
    double t0 = plm_now();
    plm_tokenizer *t = plm_tokenizer_train_bpe((const char *const *)argv + 4, argc - 4, &o);
    double dt = plm_now() - t0;
    if (!t || plm_tokenizer_save(t, argv[1]) != 0) {
        fprintf(stderr, "tok_train: %s\n", plm_last_error());
        return 1;
    }
    printf("PLM_TRAIN_SECONDS %.2f\n", dt);
    plm_tokenizer_free(t);
    return 0;
}
