/* cmd_embed.c - `plm embed` (sentence vectors from any checkpoint, as .npy or
 * safetensors) and `plm retrieval-eval` (SQuAD dev questions -> their paragraphs, ranked
 * by cosine similarity of those vectors or by a TF-IDF baseline; recall@1, recall@10,
 * nDCG@10, MRR@10). The maths is tasks/embed.c and tasks/retrieval.c. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "args.h"
#include "cli.h"
#include "commands.h"
#include "core/common.h"
#include "core/progress.h"
#include "data/corpus.h"
#include "tasks/datasets.h"
#include "tasks/embed.h"
#include "tasks/retrieval.h"
#include "train/finetune_embed.h"
#include "train/safetensors.h"

/* The backbone of any model directory, without its heads (a pretraining checkpoint's LM
 * head, a fine-tuned classifier's head): their tensors are left unused. */
static int load_backbone(const char *dir, plm_model **m, plm_tokenizer **tok) {
    plm_head_spec none = {0};
    return cli_load_model_heads(dir, &none, 0, 0, true, m, tok);
}

/* `plm CMD MODEL_DIR --opts`: a first argument that is not an option is the model. */
static const char *positional_model(int *argc, char ***argv) {
    if (*argc >= 2 && strncmp((*argv)[1], "-", 1) != 0) {
        const char *dir = (*argv)[1];
        (*argv)[1] = (*argv)[0];
        (*argc)--;
        (*argv)++;
        return dir;
    }
    return NULL;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

/* ---------------------------------------------------------------- reading texts */

typedef struct {
    const char **texts;
    int *lines; /* line of each text in the file, for messages */
    int n;
    char *buf;      /* lines mode: the file, split in place */
    plm_dataset ds; /* column mode */
    bool have_ds;
} text_input;

static void text_input_free(text_input *in) {
    free(in->texts);
    free(in->lines);
    free(in->buf);
    if (in->have_ds) plm_dataset_free(&in->ds);
}

/* One text per line (a final newline optional, CR before LF and a UTF-8 BOM dropped).
 * Empty files, NUL bytes, invalid UTF-8 and empty lines are errors naming the line. */
static int read_lines(const char *path, text_input *in) {
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return -1;
    in->buf = buf;
    size_t at = len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0;
    if (len == at) {
        plm_error("%s: empty input (no lines to embed)", path);
        return -1;
    }
    const char *nul = memchr(buf, 0, len);
    long bad = plm_utf8_check(buf, len);
    if (nul || bad >= 0) {
        size_t pos = nul ? (size_t)(nul - buf) : (size_t)bad;
        int line = 1;
        for (size_t i = 0; i < pos; i++) line += buf[i] == '\n';
        plm_error("%s:%d: %s", path, line, nul ? "NUL byte" : "invalid UTF-8");
        return -1;
    }
    int cap = 1024, line = 0;
    in->texts = plm_malloc((size_t)cap * sizeof *in->texts);
    in->lines = plm_malloc((size_t)cap * sizeof *in->lines);
    while (at < len) {
        char *s = buf + at, *nl = memchr(s, '\n', len - at);
        size_t n = nl ? (size_t)(nl - s) : len - at;
        at += n + (nl != NULL);
        line++;
        if (n > 0 && s[n - 1] == '\r') n--;
        s[n] = 0;
        if (n == 0) {
            plm_error("%s:%d: empty line (each line is one text to embed)", path, line);
            return -1;
        }
        if (in->n == cap) {
            cap *= 2;
            in->texts = plm_realloc(in->texts, (size_t)cap * sizeof *in->texts);
            in->lines = plm_realloc(in->lines, (size_t)cap * sizeof *in->lines);
        }
        in->lines[in->n] = line;
        in->texts[in->n++] = s;
    }
    return 0;
}

/* The column of a TSV, CSV or JSONL file (datasets.h's reader and its checks). */
static int read_column(const char *path, const char *column, text_input *in) {
    plm_table_spec spec = {.format = plm_format_from_path(path), .text_a = column, .type = PLM_TASK_CLASSIFICATION};
    if (plm_dataset_read(&in->ds, path, &spec, NULL) != 0) return -1;
    in->have_ds = true;
    if (in->ds.n == 0) {
        plm_error("%s: empty input (no rows to embed)", path);
        return -1;
    }
    in->n = in->ds.n;
    in->texts = plm_malloc((size_t)in->n * sizeof *in->texts);
    in->lines = plm_malloc((size_t)in->n * sizeof *in->lines);
    for (int i = 0; i < in->n; i++) {
        in->texts[i] = in->ds.examples[i].text_a;
        in->lines[i] = in->ds.examples[i].line;
    }
    return 0;
}

/* ---------------------------------------------------------------- plm embed */

static int write_vectors(const char *path, const float *v, int n, int dim, const char *model, const char *pooling) {
    if (ends_with(path, ".npy")) return plm_npy_write_f32(path, v, n, dim);
    plm_st_writer w;
    plm_st_writer_init(&w);
    int64_t shape[2] = {n, dim};
    plm_st_add(&w, "embeddings", PLM_DT_F32, 2, shape, v);
    plm_st_add_meta(&w, "model", model);
    plm_st_add_meta(&w, "pooling", pooling);
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    return rc;
}

int cmd_embed(int argc, char **argv) {
    const char *model_dir = positional_model(&argc, &argv), *input = NULL, *column = NULL, *output = NULL;
    const char *pooling = "mean";
    bool quiet = false, no_normalize = false, bf16 = false;
    plm_embed_opts o;
    plm_embed_opts_default(&o);
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "model directory (or give it first: plm embed MODEL_DIR ...)"},
        {"--input", ARG_STR, &input, "texts: one per line, or a TSV/CSV/JSONL file with --column"},
        {"--column", ARG_STR, &column, "the text column (TSV/CSV header name or JSONL key)"},
        {"--output", ARG_STR, &output, "out.npy (float32 [n, hidden_size]) or out.safetensors (tensor embeddings)"},
        {"--pooling", ARG_STR, &pooling, "mean (default; over the attention mask), cls or last (last real token)"},
        {"--max-seq-length", ARG_INT, &o.max_seq_length, "truncate texts to this many tokens (default 128)"},
        {"--batch-size", ARG_INT, &o.batch_size, "texts per forward pass, padded to the longest (default 32)"},
        {"--no-normalize", ARG_FLAG, &no_normalize, "keep the pooled vectors as they are (default: unit L2 norm)"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
        {"--bf16", ARG_FLAG, &bf16, CLI_BF16_HELP},
    };
    int rc = args_parse("embed",
                        "Sentence embeddings from any checkpoint (encoder or decoder): pooled final hidden states, "
                        "L2-normalised, one row per text.\nusage: plm embed MODEL_DIR --input FILE --output out.npy",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model_dir || !input || !output) {
        fprintf(stderr, "plm embed: MODEL_DIR, --input FILE and --output FILE are required (see plm embed --help)\n");
        return PLM_EXIT_USAGE;
    }
    if (!ends_with(output, ".npy") && !ends_with(output, ".safetensors")) {
        fprintf(stderr, "plm embed: --output %s: the file name must end in .npy or .safetensors\n", output);
        return PLM_EXIT_USAGE;
    }
    if (plm_pooling_parse(pooling, &o.pooling) != 0) {
        fprintf(stderr, "plm embed: --pooling must be mean, cls or last, got \"%s\"\n", pooling);
        return PLM_EXIT_USAGE;
    }
    if (o.max_seq_length <= 0 || o.batch_size <= 0) {
        fprintf(stderr, "plm embed: --max-seq-length and --batch-size must be positive\n");
        return PLM_EXIT_USAGE;
    }
    o.normalize = !no_normalize;
    plm_format f = plm_format_from_path(input);
    if (!column && (f == PLM_FORMAT_JSONL || f == PLM_FORMAT_CSV)) {
        fprintf(stderr, "plm embed: --input %s is a table: name the text column with --column\n", input);
        return PLM_EXIT_USAGE;
    }
    text_input in = {0};
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    float *vec = NULL;
    rc = PLM_EXIT_INPUT;
    if ((column ? read_column(input, column, &in) : read_lines(input, &in)) != 0) goto fail;
    if ((rc = load_backbone(model_dir, &m, &tok)) != 0) goto fail;
    if (bf16) cli_use_bf16(m);
    int C = m->config.hidden_size;
    vec = plm_malloc((size_t)in.n * C * sizeof *vec);
    plm_progress p;
    if (!quiet) plm_progress_start(&p, "embed", in.n, 0);
    if (plm_embed_texts(m, tok, in.texts, in.n, &o, vec, quiet ? NULL : &p) != 0) {
        /* "text N: ..." -> the input's line N */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", plm_last_error());
        int k = 0;
        if (sscanf(msg, "text %d:", &k) == 1 && k >= 1 && k <= in.n)
            plm_error("%s:%d: %s", input, in.lines[k - 1], strchr(msg, ':') + 2);
        else
            plm_error("%s: %s", input, msg);
        rc = PLM_EXIT_INPUT;
        goto fail;
    }
    if (!quiet) plm_progress_finish(&p, NULL);
    if (write_vectors(output, vec, in.n, C, model_dir, plm_pooling_name(o.pooling)) != 0) {
        rc = PLM_EXIT_FAIL;
        goto fail;
    }
    if (!quiet)
        fprintf(stderr, "wrote %d x %d %s-pooled%s vectors to %s\n", in.n, C, plm_pooling_name(o.pooling),
                o.normalize ? ", normalised" : "", output);
    rc = 0;
    goto out;
fail:
    cli_fail("embed", rc);
out:
    free(vec);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    text_input_free(&in);
    return rc;
}

/* ---------------------------------------------------------------- plm retrieval-eval */

static bool file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The SQuAD dev files of a folder: dev-v1.1.json, or its two halves. */
static int squad_dev_files(const char *dir, char store[2][4200], arg_list *out) {
    snprintf(store[0], 4200, "%s/dev-v1.1.json", dir);
    if (file_exists(store[0])) {
        out->n = 1;
    } else {
        snprintf(store[0], 4200, "%s/dev-v1.1.part1.json", dir);
        snprintf(store[1], 4200, "%s/dev-v1.1.part2.json", dir);
        if (!file_exists(store[0])) {
            plm_error("%s: no dev-v1.1.json or dev-v1.1.part1.json", dir);
            return -1;
        }
        out->n = file_exists(store[1]) ? 2 : 1;
    }
    out->items = plm_malloc(2 * sizeof *out->items);
    out->items[0] = store[0];
    out->items[1] = store[1];
    return 0;
}

/* Ranks of the relevant paragraphs by the cosine of the model's sentence vectors. */
static int rank_with_model(const char *dir, const plm_retrieval_set *r, const plm_embed_opts *o, bool quiet,
                           long *ranks, int *dim) {
    plm_model *m;
    plm_tokenizer *tok;
    int rc = load_backbone(dir, &m, &tok);
    if (rc != 0) return rc;
    int C = m->config.hidden_size;
    *dim = C;
    float *qv = plm_malloc((size_t)r->n_queries * C * sizeof *qv), *dv = plm_malloc((size_t)r->n_docs * C * sizeof *dv);
    plm_progress p;
    if (!quiet) plm_progress_start(&p, "paragraphs", r->n_docs, 0);
    rc = plm_embed_texts(m, tok, r->docs, r->n_docs, o, dv, quiet ? NULL : &p);
    if (rc == 0) {
        if (!quiet) {
            plm_progress_finish(&p, NULL);
            plm_progress_start(&p, "questions", r->n_queries, 0);
        }
        rc = plm_embed_texts(m, tok, r->queries, r->n_queries, o, qv, quiet ? NULL : &p);
        if (rc == 0 && !quiet) plm_progress_finish(&p, NULL);
    }
    if (rc == 0) plm_retrieval_rank_dense(qv, r->n_queries, dv, r->n_docs, C, r->relevant, ranks);
    free(qv);
    free(dv);
    plm_model_free(m);
    plm_tokenizer_free(tok);
    return rc == 0 ? 0 : PLM_EXIT_INPUT;
}

static int rank_with_tfidf(const plm_retrieval_set *r, long *ranks, int *vocab) {
    plm_tfidf *t = plm_tfidf_fit(r->docs, r->n_docs);
    if (!t) return PLM_EXIT_FAIL;
    *vocab = plm_tfidf_vocab_size(t);
    double *s = plm_malloc((size_t)r->n_docs * sizeof *s);
    for (int i = 0; i < r->n_queries; i++) {
        plm_tfidf_scores(t, r->queries[i], s);
        ranks[i] = plm_retrieval_rank(s, r->n_docs, r->relevant[i]);
    }
    free(s);
    plm_tfidf_free(t);
    return 0;
}

int cmd_retrieval_eval(int argc, char **argv) {
    const char *model_dir = positional_model(&argc, &argv), *baseline = NULL, *data_dir = NULL, *output = NULL;
    const char *pooling = "mean", *ranks_out = NULL;
    arg_list files = {0};
    int max_questions = 0;
    bool quiet = false;
    plm_embed_opts o;
    plm_embed_opts_default(&o);
    o.max_seq_length = 256; /* SQuAD paragraphs run to ~150 words */
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "model directory (or give it first), encoder or decoder"},
        {"--baseline", ARG_STR, &baseline, "tfidf: rank by TF-IDF cosine instead of a model (no --model)"},
        {"--data-dir", ARG_STR, &data_dir, "SQuAD folder: dev-v1.1.json or dev-v1.1.part1/part2.json"},
        {"--data", ARG_LIST, &files, "SQuAD v1.1 JSON files instead (read into one set)"},
        {"--max-questions", ARG_INT, &max_questions, "the first N questions as queries (every paragraph stays)"},
        {"--pooling", ARG_STR, &pooling, "mean (default), cls or last"},
        {"--max-seq-length", ARG_INT, &o.max_seq_length, "truncate questions and paragraphs (default 256)"},
        {"--batch-size", ARG_INT, &o.batch_size, "texts per forward pass (default 32)"},
        {"--output", ARG_STR, &output, "also write the results as JSON to this file"},
        {"--ranks", ARG_STR, &ranks_out, "write each question's id and its paragraph's rank (TSV)"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
    };
    int rc = args_parse("retrieval-eval",
                        "Dense retrieval on SQuAD: each question ranks every distinct dev paragraph by cosine "
                        "similarity; recall@1, recall@10, nDCG@10 and MRR@10 of its own paragraph. Ties rank the "
                        "question's paragraph after every paragraph of equal score (pessimistic).",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&files);
        return rc == 1 ? 0 : rc;
    }
    plm_squad_set s = {0};
    plm_retrieval_set r = {0};
    long *ranks = NULL;
    char store[2][4200];
    rc = PLM_EXIT_USAGE;
    if (!model_dir == !baseline) {
        fprintf(stderr, "plm retrieval-eval: give a model directory or --baseline tfidf (one of them)\n");
        goto out;
    }
    if (baseline && strcmp(baseline, "tfidf") != 0) {
        fprintf(stderr, "plm retrieval-eval: --baseline must be tfidf, got \"%s\"\n", baseline);
        goto out;
    }
    if (!data_dir == !files.n) {
        fprintf(stderr, "plm retrieval-eval: give --data-dir DIR or --data FILE... (one of them)\n");
        goto out;
    }
    if (plm_pooling_parse(pooling, &o.pooling) != 0 || o.max_seq_length <= 0 || o.batch_size <= 0 ||
        max_questions < 0) {
        fprintf(stderr, "plm retrieval-eval: --pooling is mean, cls or last; sizes must be positive\n");
        goto out;
    }
    rc = PLM_EXIT_INPUT;
    if (data_dir && squad_dev_files(data_dir, store, &files) != 0) goto fail;
    for (int i = 0; i < files.n; i++)
        if (plm_squad_read(&s, files.items[i]) != 0) goto fail;
    if (s.n == 0) {
        plm_error("%s: no questions", files.items[0]);
        goto fail;
    }
    plm_retrieval_from_squad(&r, &s, max_questions);
    if (!quiet)
        fprintf(stderr, "retrieval: %d questions, %d distinct paragraphs (%s)\n", r.n_queries, r.n_docs,
                baseline ? "TF-IDF baseline" : model_dir);
    ranks = plm_malloc((size_t)r.n_queries * sizeof *ranks);
    int dim = 0, vocab = 0;
    double t0 = plm_now();
    rc = baseline ? rank_with_tfidf(&r, ranks, &vocab) : rank_with_model(model_dir, &r, &o, quiet, ranks, &dim);
    if (rc != 0) goto fail;
    double secs = plm_now() - t0;
    plm_retrieval_scores sc;
    plm_retrieval_score_ranks(ranks, r.n_queries, &sc);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "task", "squad-retrieval");
    cJSON_AddStringToObject(j, "ranker", baseline ? "tfidf" : "dense");
    if (model_dir) {
        cJSON_AddStringToObject(j, "model", model_dir);
        cJSON_AddStringToObject(j, "pooling", plm_pooling_name(o.pooling));
        cJSON_AddNumberToObject(j, "max_seq_length", o.max_seq_length);
        cJSON_AddNumberToObject(j, "dim", dim);
    } else {
        cJSON_AddNumberToObject(j, "vocab_size", vocab);
    }
    cJSON_AddNumberToObject(j, "n_queries", r.n_queries);
    cJSON_AddNumberToObject(j, "n_docs", r.n_docs);
    cJSON_AddStringToObject(j, "ties", "pessimistic");
    cJSON_AddNumberToObject(j, "recall@1", sc.recall_at_1);
    cJSON_AddNumberToObject(j, "recall@10", sc.recall_at_10);
    cJSON_AddNumberToObject(j, "ndcg@10", sc.ndcg_at_10);
    cJSON_AddNumberToObject(j, "mrr@10", sc.mrr_at_10);
    cJSON_AddNumberToObject(j, "seconds", secs);
    char *line = cJSON_PrintUnformatted(j);
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    if (output) {
        char *txt = cJSON_Print(j);
        int wrc = plm_write_file_atomic(output, txt, strlen(txt));
        free(txt);
        if (wrc != 0) {
            cJSON_Delete(j);
            rc = PLM_EXIT_FAIL;
            goto fail;
        }
    }
    cJSON_Delete(j);
    if (ranks_out) {
        size_t cap = 64 + (size_t)r.n_queries * 64, len = 0;
        char *buf = plm_malloc(cap);
        len += (size_t)snprintf(buf, cap, "id\trank\n");
        for (int i = 0; i < r.n_queries; i++) {
            size_t need = strlen(s.qs[i].id) + 32;
            if (len + need > cap) buf = plm_realloc(buf, cap = 2 * cap + need);
            len += (size_t)snprintf(buf + len, cap - len, "%s\t%ld\n", s.qs[i].id, ranks[i]);
        }
        int wrc = plm_write_file_atomic(ranks_out, buf, len);
        free(buf);
        if (wrc != 0) {
            rc = PLM_EXIT_FAIL;
            goto fail;
        }
    }
    rc = 0;
    goto out;
fail:
    cli_fail("retrieval-eval", rc);
out:
    free(ranks);
    plm_retrieval_set_free(&r);
    plm_squad_free(&s);
    args_list_free(&files); /* squad_dev_files' array too */
    return rc;
}

/* ---------------------------------------------------------------- plm finetune-embed */

/* The SQuAD training files of a folder: train-v1.1.json, else the files named
 * train-v1.1*.json that plm knows (the du2017 test subset). */
static int squad_train_files(const char *dir, char store[2][4200], arg_list *out) {
    snprintf(store[0], 4200, "%s/train-v1.1.json", dir);
    if (!file_exists(store[0])) snprintf(store[0], 4200, "%s/train-v1.1.du2017-test-subset.json", dir);
    if (!file_exists(store[0])) {
        plm_error("%s: no train-v1.1.json or train-v1.1.du2017-test-subset.json", dir);
        return -1;
    }
    out->items = plm_malloc(sizeof *out->items);
    out->items[0] = store[0];
    out->n = 1;
    return 0;
}

int cmd_finetune_embed(int argc, char **argv) {
    const char *model_dir = positional_model(&argc, &argv), *data_dir = NULL, *pooling = "mean";
    arg_list files = {0};
    int max_train = 0;
    plm_embed_ft_args a;
    plm_embed_ft_args_default(&a);
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "model directory (or give it first), encoder or decoder"},
        {"--data-dir", ARG_STR, &data_dir, "SQuAD folder: train-v1.1.json (or the du2017 train subset)"},
        {"--train", ARG_LIST, &files, "SQuAD v1.1 JSON files of (question, paragraph) pairs instead"},
        {"--output-dir", ARG_STR, &a.output_dir, "where the fine-tuned model and metrics.jsonl go"},
        {"--max-train-samples", ARG_INT, &max_train, "use the first N questions"},
        {"--pooling", ARG_STR, &pooling, "mean (default), cls or last: use the same with embed / retrieval-eval"},
        {"--temperature", ARG_FLOAT, &a.temperature, "InfoNCE temperature tau (default 0.05)"},
        {"--per-device-train-batch-size", ARG_INT, &a.batch_size,
         "pairs per step (default 32); each query's negatives are the other B - 1 passages"},
        {"--max-seq-length", ARG_INT, &a.max_seq_length, "truncate questions and paragraphs (default 128)"},
        {"--learning-rate", ARG_FLOAT, &a.opt.learning_rate, "peak learning rate (default 1e-4)"},
        {"--num-train-epochs", ARG_FLOAT, &a.num_train_epochs, "epochs over the pairs (default 1)"},
        {"--max-steps", ARG_LONG, &a.max_steps, "train this many steps instead"},
        {"--warmup-ratio", ARG_FLOAT, &a.warmup_ratio, "share of the steps for linear warmup (default 0.1)"},
        {"--weight-decay", ARG_FLOAT, &a.opt.weight_decay, "AdamW decoupled weight decay (default 0.01)"},
        {"--max-grad-norm", ARG_FLOAT, &a.max_grad_norm, "clip gradients to this global norm; 0 = off (default 1)"},
        {"--logging-steps", ARG_LONG, &a.logging_steps, "metrics.jsonl line every N steps (default 10)"},
        {"--seed", ARG_U64, &a.seed, "seed of the data order and dropout (default 42)"},
        {"--quiet", ARG_FLAG, &a.quiet, "no progress bar"},
    };
    int rc = args_parse("finetune-embed",
                        "Contrastive fine-tuning of a sentence embedder on SQuAD (question, paragraph) pairs: "
                        "InfoNCE over in-batch negatives, queries -> passages (asymmetric).",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&files);
        return rc == 1 ? 0 : rc;
    }
    plm_squad_set s = {0};
    plm_retrieval_set r = {0};
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    const char **passages = NULL;
    char store[2][4200];
    rc = PLM_EXIT_USAGE;
    if (!model_dir || !data_dir == !files.n) {
        fprintf(stderr, "plm finetune-embed: a model directory and --data-dir DIR or --train FILE... are required\n");
        goto out;
    }
    if (plm_pooling_parse(pooling, &a.pooling) != 0 || !(a.temperature > 0) || a.batch_size < 2 ||
        a.max_seq_length <= 0 || a.logging_steps <= 0 || max_train < 0 || a.warmup_ratio < 0 || a.warmup_ratio > 1) {
        fprintf(stderr, "plm finetune-embed: --pooling is mean, cls or last; --temperature > 0; batch size >= 2; "
                        "--warmup-ratio in [0, 1]; other sizes positive\n");
        goto out;
    }
    rc = PLM_EXIT_INPUT;
    if (data_dir && squad_train_files(data_dir, store, &files) != 0) goto fail;
    for (int i = 0; i < files.n; i++)
        if (plm_squad_read(&s, files.items[i]) != 0) goto fail;
    plm_retrieval_from_squad(&r, &s, max_train);
    if (r.n_queries < 2) {
        plm_error("%s: %d questions; contrastive training needs at least 2", files.items[0], r.n_queries);
        goto fail;
    }
    passages = plm_malloc((size_t)r.n_queries * sizeof *passages);
    for (int i = 0; i < r.n_queries; i++) passages[i] = r.docs[r.relevant[i]];
    if ((rc = load_backbone(model_dir, &m, &tok)) != 0) goto fail;
    if (!a.quiet)
        fprintf(stderr,
                "finetune-embed: %d (question, paragraph) pairs over %d paragraphs; %s, %.2fM parameters; "
                "batch %d, tau %g, %s pooling\n",
                r.n_queries, r.n_docs, plm_model_architecture(m), (double)m->num_params / 1e6, a.batch_size,
                a.temperature, plm_pooling_name(a.pooling));
    plm_pair_set ps = {r.queries, passages, r.relevant, r.n_queries};
    if ((rc = plm_finetune_embed(m, tok, &ps, &a)) != 0) goto fail;
    if (!a.quiet) fprintf(stderr, "wrote %s\n", a.output_dir);
    rc = 0;
    goto out;
fail:
    cli_fail("finetune-embed", rc);
out:
    free(passages);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    plm_retrieval_set_free(&r);
    plm_squad_free(&s);
    args_list_free(&files);
    return rc;
}
