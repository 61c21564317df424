/* cmd_prepare.c - `plm prepare`: text files, folders or JSONL -> token shards (data/shards.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "core/common.h"
#include "data/shards.h"

int cmd_prepare(int argc, char **argv) {
    plm_prepare_opts o;
    plm_prepare_opts_default(&o);
    const char *tokenizer_path = NULL;
    arg_list inputs = {0};
    bool quiet = false, overwrite = false;
    arg_spec specs[] = {
        {"--input", ARG_LIST, &inputs,
         "text files (one document each), .jsonl files (one document per line) or folders (their .txt and .jsonl "
         "files, recursively)"},
        {"--tokenizer", ARG_STR, &tokenizer_path,
         "tokenizer.json, or a BERT vocab.txt (uncased) (required; saved into the output as tokenizer.json)"},
        {"--output-dir", ARG_STR, &o.output_dir, "where manifest.json, tokenizer.json and the shards go (required)"},
        {"--text-field", ARG_STR, &o.text_field, "JSONL: the field holding the text (default text)"},
        {"--validation-split", ARG_FLOAT, &o.validation_split,
         "share of the pieces (documents, 1 MB blocks of longer ones) held out for validation (default 0)"},
        {"--seed", ARG_U64, &o.seed, "which pieces are held out (default 42)"},
        {"--shard-tokens", ARG_LONG, &o.shard_tokens, "tokens per shard (default 16777216)"},
        {"--threads", ARG_INT, &o.num_threads, "tokenizer threads (default 2)"},
        {"--overwrite", ARG_FLAG, &overwrite, "replace prepared data already in --output-dir"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
    };
    int rc = args_parse("prepare",
                        "Tokenize a corpus into shards (uint16/uint32 ids + word/sentence/document flags) with a "
                        "manifest; train on them with plm pretrain --data DIR. Memory stays bounded: the input is "
                        "streamed.",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&inputs);
        return rc == 1 ? 0 : rc;
    }
    if (inputs.n == 0 || !tokenizer_path || !o.output_dir) {
        fprintf(stderr, "plm prepare: --input, --tokenizer and --output-dir are required (see plm prepare --help)\n");
        args_list_free(&inputs);
        return PLM_EXIT_USAGE;
    }
    o.inputs = (const char *const *)inputs.items;
    o.num_inputs = inputs.n;
    o.quiet = quiet;
    o.overwrite = overwrite;
    size_t tl = strlen(tokenizer_path);
    plm_tokenizer *tok = tl > 4 && strcmp(tokenizer_path + tl - 4, ".txt") == 0
                             ? plm_tokenizer_load_wordpiece(tokenizer_path, true)
                             : plm_tokenizer_load(tokenizer_path);
    if (!tok) {
        args_list_free(&inputs);
        return cli_fail("prepare", PLM_EXIT_INPUT);
    }
    plm_prepare_stats st;
    rc = plm_prepare(tok, &o, &st);
    if (rc != 0) {
        cli_fail("prepare", rc);
    } else {
        double mb = (double)st.bytes / 1e6;
        printf("{\"bytes\": %zu, \"documents\": %zu, \"train_tokens\": %zu, \"train_documents\": %zu, "
               "\"validation_tokens\": %zu, \"validation_documents\": %zu, \"shards\": %zu, \"seconds\": %.3f, "
               "\"mb_per_s\": %.2f, \"tokenizer_mb_per_s\": %.2f, \"threads\": %d}\n",
               st.bytes, st.documents, st.tokens[0], st.docs[0], st.tokens[1], st.docs[1], st.shards[0] + st.shards[1],
               st.seconds, mb / st.seconds, mb / st.encode_seconds, o.num_threads);
    }
    plm_tokenizer_free(tok);
    args_list_free(&inputs);
    return rc;
}
