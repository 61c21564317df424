/* cmd_infer.c - `plm eval`, `plm generate` and `plm fill-mask`: using a trained model. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include <cjson/cJSON.h>

#include "args.h"
#include "cli.h"
#include "core/common.h"
#include "core/profile.h"
#include "data/corpus.h"
#include "data/dataloader.h"
#include "infer/generate.h"
#include "ft_common.h"
#include "infer/lm_score.h"
#include "tasks/chat.h"
#include "train/trainer.h"

/* eval, generate and fill-mask use a pretraining model: one backbone with an LM head
 * (generate also takes a T5 encoder-decoder). */
static int load_lm_ex(const char *dir, plm_model **m, plm_tokenizer **tok, bool allow_t5) {
    int rc = cli_load_model(dir, m, tok);
    if (rc != 0) return rc;
    bool t5 = allow_t5 && (*m)->config.arch == PLM_ARCH_T5;
    if (plm_model_head(*m, PLM_HEAD_LM) < 0 || ((*m)->num_backbones != 1 && !t5)) {
        plm_error("%s/config.json: a %s has no language-model head to use here (fine-tuned models: plm evaluate / "
                  "plm predict)",
                  dir, plm_model_architecture(*m));
        plm_model_free(*m);
        plm_tokenizer_free(*tok);
        *m = NULL;
        *tok = NULL;
        return PLM_EXIT_INPUT;
    }
    return 0;
}

static int load_lm(const char *dir, plm_model **m, plm_tokenizer **tok) { return load_lm_ex(dir, m, tok, false); }

/* fill-mask and unmask (cli.h) */
int cli_load_mlm(const char *dir, const char *cmd, plm_model **m, plm_tokenizer **tok) {
    int rc = load_lm(dir, m, tok);
    if (rc != 0) return rc;
    if ((*m)->config.is_decoder) {
        /* A causal model never sees the tokens after a mask, so it cannot fill one. */
        plm_error("%s/config.json: is_decoder is true (a causal model); %s needs a bidirectional MLM encoder, use plm "
                  "generate with this one",
                  dir, cmd);
        plm_model_free(*m);
        plm_tokenizer_free(*tok);
        *m = NULL;
        *tok = NULL;
        return PLM_EXIT_INPUT;
    }
    return 0;
}

int cmd_eval(int argc, char **argv) {
    const char *model_dir = NULL, *objective = NULL;
    arg_list files = {0};
    int batch_size = 8, seq_len = 0, max_batches = 1000000, stride = 0;
    uint64_t seed = 42;
    bool quiet = false, bf16 = false;
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "model directory (config.json, model.safetensors, tokenizer.json)"},
        {"--data", ARG_LIST, &files, "held-out text files"},
        {"--objective", ARG_STR, &objective, "clm (perplexity) or mlm (masked loss/accuracy); default from the model"},
        {"--batch-size", ARG_INT, &batch_size, "sequences per batch (default 8)"},
        {"--seq-len", ARG_INT, &seq_len,
         "tokens per window (default: CLM max_position_embeddings, MLM min(512, max_position_embeddings))"},
        {"--stride", ARG_INT, &stride,
         "CLM: a window every N tokens, scoring the tokens not scored before (default seq-len / 2; seq-len: "
         "disjoint windows)"},
        {"--max-batches", ARG_INT, &max_batches, "MLM: stop after N batches"},
        {"--seed", ARG_U64, &seed, "seed of the MLM masks (default 42)"},
        {"--quiet", ARG_FLAG, &quiet, "CLM: no progress bar"},
        {"--bf16", ARG_FLAG, &bf16, CLI_BF16_HELP},
    };
    int rc = args_parse("eval",
                        "Perplexity (CLM: sliding windows with a stride, as Hugging Face's perplexity guide) or "
                        "masked-token loss and accuracy (MLM) on held-out text.",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&files);
        return rc == 1 ? 0 : rc;
    }
    if (!model_dir || files.n == 0) {
        fprintf(stderr, "plm eval: --model DIR and --data FILE... are required (see plm eval --help)\n");
        args_list_free(&files);
        return PLM_EXIT_USAGE;
    }
    plm_model *m;
    plm_tokenizer *tok;
    if ((rc = load_lm(model_dir, &m, &tok)) != 0) {
        args_list_free(&files);
        return cli_fail("eval", rc);
    }
    if (bf16) cli_use_bf16(m);
    plm_objective obj = m->config.is_decoder ? PLM_OBJ_CLM : PLM_OBJ_MLM;
    if (objective && strcmp(objective, "mlm") == 0)
        obj = PLM_OBJ_MLM;
    else if (objective && strcmp(objective, "clm") == 0)
        obj = PLM_OBJ_CLM;
    else if (objective) {
        fprintf(stderr, "plm eval: --objective must be clm or mlm\n");
        rc = PLM_EXIT_USAGE;
        goto out;
    }
    if (seq_len <= 0)
        seq_len =
            obj == PLM_OBJ_CLM ? m->config.max_position_embeddings : PLM_MIN(512, m->config.max_position_embeddings);
    if (stride <= 0) stride = PLM_MAX(seq_len / 2, 1);
    if (batch_size <= 0 || seq_len > m->config.max_position_embeddings || stride > seq_len ||
        (obj == PLM_OBJ_CLM && seq_len < 2)) {
        fprintf(stderr, "plm eval: --seq-len must be in 2..max_position_embeddings (%d), --stride in 1..seq-len\n",
                m->config.max_position_embeddings);
        rc = PLM_EXIT_USAGE;
        goto out;
    }
    plm_token_stream s = {0};
    int32_t sep = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    if (sep < 0) sep = plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
    if (plm_corpus_tokenize(tok, (const char *const *)files.items, files.n, sep, &s, 0) != 0) {
        rc = cli_fail("eval", PLM_EXIT_INPUT);
        goto out;
    }
    if (obj == PLM_OBJ_CLM) {
        /* documents joined by end-of-text, none appended after the last (HF's guide
         * scores the joined text as it is) */
        if (s.n > 1 && sep >= 0 && s.ids[s.n - 1] == sep) s.n--;
        plm_ppl_result pr;
        plm_progress pb;
        long nw = s.n > (size_t)seq_len ? (long)((s.n - (size_t)seq_len + (size_t)stride - 1) / (size_t)stride) + 1 : 1;
        if (!quiet) plm_progress_start(&pb, "perplexity", nw, 0);
        if (plm_lm_perplexity(m, s.ids, s.n, seq_len, stride, batch_size, quiet ? NULL : &pb, &pr) != 0) {
            if (!quiet) fputc('\n', stderr);
            rc = cli_fail("eval", PLM_EXIT_INPUT);
        } else {
            if (!quiet) plm_progress_finish(&pb, NULL);
            double loss = pr.nll / (double)pr.tokens;
            printf(
                "{\"objective\": \"clm\", \"loss\": %.6f, \"perplexity\": %.4f, \"accuracy\": %.4f, \"tokens\": %ld, "
                "\"nll_sum\": %.6f, \"seq_len\": %d, \"stride\": %d, \"windows\": %ld}\n",
                loss, exp(loss), (double)pr.correct / (double)pr.tokens, pr.tokens, pr.nll, seq_len, stride,
                pr.windows);
        }
        plm_token_stream_free(&s);
        goto out;
    }
    plm_vocab_info v;
    plm_vocab_info_init(&v, tok);
    plm_objective_opts oo;
    plm_objective_opts_default(&oo);
    plm_dataloader d;
    if (plm_dataloader_init(&d, &s, obj, &oo, &v, seq_len, seed, false) != 0) {
        rc = cli_fail("eval", PLM_EXIT_INPUT);
    } else {
        plm_model_reserve(m, batch_size, seq_len);
        plm_eval_result e = plm_evaluate(m, &d, batch_size, max_batches, false);
        printf("{\"objective\": \"mlm\", \"loss\": %.6f, \"masked_accuracy\": %.4f, \"perplexity\": %.4f, "
               "\"masked_tokens\": %ld}\n",
               e.loss, e.accuracy, exp(e.loss), e.tokens);
        plm_dataloader_free(&d);
    }
    plm_vocab_info_free(&v);
    plm_token_stream_free(&s);
out:
    plm_model_free(m);
    plm_tokenizer_free(tok);
    args_list_free(&files);
    return rc;
}

/* The text of one generated token: special tokens dropped for a causal model; for T5 its
 * sentinels <extra_id_N> are special tokens but part of the answer, so only EOS and
 * padding are dropped. Ids the tokenizer does not have (a model vocabulary padded past
 * it) give nothing. Token by token, so that streamed and batched output are the same. */
static void token_text(const plm_tokenizer *tok, bool t5, int32_t id, char **buf, size_t *len, size_t *cap) {
    if (t5 && (id == plm_tokenizer_special(tok, PLM_SPECIAL_EOS) || id == plm_tokenizer_special(tok, PLM_SPECIAL_PAD)))
        return;
    size_t n;
    char *s = plm_tokenizer_decode(tok, &id, 1, !t5, &n);
    if (!s) return;
    if (*len + n + 1 > *cap) {
        *cap = (*len + n + 1) * 2;
        *buf = plm_realloc(*buf, *cap);
    }
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = 0;
    free(s);
}

typedef struct {
    const plm_tokenizer *tok;
    bool t5;
} stream_ctx;

static void print_token(int seq, int32_t id, void *p) {
    (void)seq;
    stream_ctx *c = p;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    token_text(c->tok, c->t5, id, &buf, &len, &cap);
    if (len) fwrite(buf, 1, len, stdout);
    free(buf);
    fflush(stdout);
}

/* One prompt or text per line (cli.h). */
int cli_read_lines(const char *path, arg_list *list, char **owned, int **lines) {
    size_t n;
    char *text = plm_read_file(path, &n);
    if (!text) return -1;
    *owned = text;
    int line = 0;
    for (char *p = text, *next; p < text + n; p = next) {
        line++;
        char *nl = memchr(p, '\n', (size_t)(text + n - p));
        next = nl ? nl + 1 : text + n;
        if (nl) *nl = 0;
        size_t l = strlen(p);
        if (l != (size_t)((nl ? nl : text + n) - p)) {
            plm_error("%s:%d: a NUL byte in the line", path, line);
            return -1;
        }
        if (l && p[l - 1] == '\r') p[--l] = 0;
        if (l == 0) continue;
        list->items = plm_realloc(list->items, (size_t)(list->n + 1) * sizeof(char *));
        *lines = plm_realloc(*lines, (size_t)(list->n + 1) * sizeof(int));
        (*lines)[list->n] = line;
        list->items[list->n++] = p;
    }
    return 0;
}

/* generate --chat's template: --template, else the one plm sft recorded in config.json
 * (plm_task.chat_template), else plain. Returns 0 or -1 with the error set. */
static int chat_template_of_model(const char *dir, const char *given, plm_chat_template *out) {
    *out = PLM_TEMPLATE_PLAIN;
    if (given) return plm_chat_template_of(given, out); /* checked with the options */
    cJSON *cfg = cli_read_config(dir);
    if (!cfg) return -1;
    const cJSON *v =
        cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "plm_task"), "chat_template");
    int rc = 0;
    if (cJSON_IsString(v) && plm_chat_template_of(v->valuestring, out) != 0) {
        plm_error("%s/config.json: unknown plm_task.chat_template \"%.40s\" (plain or chatml)", dir, v->valuestring);
        rc = -1;
    }
    cJSON_Delete(cfg);
    return rc;
}

int cmd_generate(int argc, char **argv) {
    const char *model_dir = NULL, *prompts_file = NULL;
    arg_list prompts = {0};
    bool greedy = false, json = false, quiet = false, ignore_eos = false, bf16 = false, chat = false;
    const char *template = NULL, *system = NULL;
    int batch_size = 32;
    plm_sampling s;
    plm_sampling_default(&s);
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "model directory"},
        {"--prompt", ARG_LIST, &prompts, "text to continue; repeat it (or give several) for a batch of prompts"},
        {"--prompts-file", ARG_STR, &prompts_file,
         "one prompt per line (blank lines skipped), after the --prompt ones"},
        {"--batch-size", ARG_INT, &batch_size, "prompts generated together, in one batch (default 32)"},
        {"--max-new-tokens", ARG_INT, &s.max_new_tokens, "tokens to generate per prompt (default 64)"},
        {"--temperature", ARG_FLOAT, &s.temperature, "softmax temperature (default 1.0)"},
        {"--top-k", ARG_INT, &s.top_k, "sample among the k most likely tokens (default 0 = all)"},
        {"--top-p", ARG_FLOAT, &s.top_p, "nucleus sampling: smallest set with this probability (default 1.0)"},
        {"--greedy", ARG_FLAG, &greedy, "always take the most likely token"},
        {"--seed", ARG_U64, &s.seed,
         "sampling seed (default 42); every prompt samples from its own stream of this seed, so its output does "
         "not depend on the rest of the batch"},
        {"--json", ARG_FLAG, &json,
         "one JSON object per prompt: {\"index\", \"prompt\", \"prompt_ids\", \"ids\" (the generated token ids), "
         "\"text\"}"},
        {"--ignore-eos", ARG_FLAG, &ignore_eos,
         "do not stop at the end-of-text token (benchmarks: always max-new-tokens)"},
        {"--chat", ARG_FLAG, &chat,
         "answer each prompt as a user message in the chat template plm sft trained with (the model's "
         "plm_task.chat_template, else plain); prints the answer only"},
        {"--template", ARG_STR, &template, "--chat: the template, plain or chatml (default: the model's)"},
        {"--system", ARG_STR, &system, "--chat: a system message before each prompt"},
        {"--quiet", ARG_FLAG, &quiet, "no tokens/s line on stderr"},
        {"--bf16", ARG_FLAG, &bf16, CLI_BF16_HELP},
    };
    int rc = args_parse("generate",
                        "Generate text from a causal model, or text-to-text from a T5 encoder-decoder (KV caches; "
                        "greedy, temperature, top-k, top-p). Several prompts run as one batch; the continuations "
                        "are printed in order, and prompt and generated tokens/s go to stderr at the end.",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&prompts);
        return rc == 1 ? 0 : rc;
    }
    if (!model_dir || (prompts.n == 0 && !prompts_file)) {
        fprintf(stderr, "plm generate: --model DIR and --prompt TEXT (or --prompts-file FILE) are required\n");
        args_list_free(&prompts);
        return PLM_EXIT_USAGE;
    }
    if (s.temperature <= 0 || s.top_p <= 0 || s.top_p > 1 || s.top_k < 0 || s.max_new_tokens < 0 || batch_size < 1) {
        fprintf(stderr, "plm generate: need --temperature > 0, 0 < --top-p <= 1, --top-k >= 0, --max-new-tokens >= 0, "
                        "--batch-size >= 1\n");
        args_list_free(&prompts);
        return PLM_EXIT_USAGE;
    }
    plm_chat_template tmpl = PLM_TEMPLATE_PLAIN;
    if ((template || system) && !chat) {
        fprintf(stderr, "plm generate: --template and --system go with --chat\n");
        args_list_free(&prompts);
        return PLM_EXIT_USAGE;
    }
    if (template && plm_chat_template_of(template, &tmpl) != 0) {
        fprintf(stderr, "plm generate: --template must be plain or chatml, got \"%s\"\n", template);
        args_list_free(&prompts);
        return PLM_EXIT_USAGE;
    }
    s.do_sample = !greedy;
    char *file_text = NULL;
    int n_cli = prompts.n, *lines = NULL; /* lines[i]: file line of prompt i >= n_cli */
    if (prompts_file) {
        if (cli_read_lines(prompts_file, &prompts, &file_text, &lines) != 0) {
            free(lines);
            free(file_text);
            args_list_free(&prompts);
            return cli_fail("generate", PLM_EXIT_INPUT);
        }
        if (prompts.n == 0) {
            plm_error("%s: no prompt in it (one per line)", prompts_file);
            free(lines);
            free(file_text);
            args_list_free(&prompts);
            return cli_fail("generate", PLM_EXIT_INPUT);
        }
    }
    plm_model *m;
    plm_tokenizer *tok;
    if ((rc = load_lm_ex(model_dir, &m, &tok, true)) != 0) {
        free(lines);
        free(file_text);
        args_list_free(&prompts);
        return cli_fail("generate", rc);
    }
    if (bf16) cli_use_bf16(m);
    bool t5 = m->config.arch == PLM_ARCH_T5;
    if (!m->config.is_decoder && !t5) {
        /* A bidirectional encoder never learned next-token prediction: its "continuation"
         * is noise. The model directory is the wrong input for this command. */
        plm_error("%s/config.json: is_decoder is false (a bidirectional MLM encoder); generate needs a causal "
                  "model, use plm fill-mask with this one",
                  model_dir);
        plm_model_free(m);
        plm_tokenizer_free(tok);
        free(lines);
        free(file_text);
        args_list_free(&prompts);
        return cli_fail("generate", PLM_EXIT_INPUT);
    }
    if (chat && (t5 || chat_template_of_model(model_dir, template, &tmpl) != 0)) {
        if (t5) plm_error("%s: --chat needs a causal model (plm sft's), not T5", model_dir);
        plm_model_free(m);
        plm_tokenizer_free(tok);
        free(lines);
        free(file_text);
        args_list_free(&prompts);
        return cli_fail("generate", PLM_EXIT_INPUT);
    }
    /* --chat: the turn ends with the template's end token (EOS, else SEP) */
    s.eos_token_id = chat ? plm_chat_eos(tok) : plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    int32_t eos = s.eos_token_id; /* T5 inputs end in it even with --ignore-eos */
    if (ignore_eos) s.eos_token_id = -1;
    /* tokenize every prompt first: a bad one stops the run before any work */
    int P = prompts.n;
    int32_t **ids = calloc((size_t)P, sizeof(int32_t *));
    int *lens = calloc((size_t)P, sizeof(int));
    plm_encoding e;
    plm_encoding_init(&e);
    plm_chat_tokens ct;
    plm_chat_tokens_init(&ct);
    for (int i = 0; i < P && rc == 0; i++) {
        plm_encoding_clear(&e);
        if (chat) {
            /* the prompt as training rendered it: [system,] user, then the assistant's header */
            plm_chat_msg msgs[2] = {{PLM_ROLE_SYSTEM, (char *)system}, {PLM_ROLE_USER, (char *)prompts.items[i]}};
            ct.n = 0;
            if (plm_chat_encode(tok, tmpl, system ? msgs : msgs + 1, system ? 2 : 1, true, &ct) != 0) {
                rc = cli_fail("generate", PLM_EXIT_INPUT);
                break;
            }
            ids[i] = plm_malloc((size_t)ct.n * sizeof(int32_t));
            memcpy(ids[i], ct.ids, (size_t)ct.n * sizeof(int32_t));
            lens[i] = ct.n;
        } else if (plm_tokenizer_encode(tok, prompts.items[i], strlen(prompts.items[i]), &e) != 0) {
            rc = cli_fail("generate", PLM_EXIT_INPUT);
        } else if (e.n == 0) {
            if (i >= n_cli)
                plm_error("%s:%d: the prompt is empty after tokenization", prompts_file, lines[i]);
            else
                plm_error("--prompt %d: empty after tokenization", i + 1);
            rc = cli_fail("generate", PLM_EXIT_INPUT);
        } else {
            /* a T5 encoder input ends in EOS, as T5's tokenizer writes it */
            ids[i] = plm_malloc((size_t)(e.n + 1) * sizeof(int32_t));
            memcpy(ids[i], e.ids, (size_t)e.n * sizeof(int32_t));
            lens[i] = e.n;
            if (t5 && eos >= 0) ids[i][lens[i]++] = eos;
        }
    }
    plm_encoding_free(&e);
    plm_chat_tokens_free(&ct);
    size_t cap = (size_t)PLM_MAX(s.max_new_tokens, 1);
    int32_t *out = plm_malloc((size_t)PLM_MIN(batch_size, P) * cap * sizeof(int32_t));
    int *n_out = plm_malloc((size_t)PLM_MIN(batch_size, P) * sizeof(int));
    stream_ctx ctx = {tok, t5};
    plm_gen_stats total = {0};
    /* one prompt in plain-text mode streams its tokens as they come; batches print each
     * prompt's continuation when the batch is done, in order */
    bool stream = P == 1 && !json;
    plm_gen_stats warm = {0}; /* the batches after the first */
    for (int b0 = 0; b0 < P && rc == 0; b0 += batch_size) {
        int nb = PLM_MIN(batch_size, P - b0);
        plm_gen_stats st;
        if (stream && !t5 && !chat) fputs(prompts.items[0], stdout);
        int r = t5 ? plm_generate_seq2seq_batch(m, (const int32_t *const *)ids + b0, lens + b0, nb, &s, out, n_out,
                                                stream ? print_token : NULL, &ctx, &st)
                   : plm_generate_batch(m, (const int32_t *const *)ids + b0, lens + b0, nb, &s, out, n_out,
                                        stream ? print_token : NULL, &ctx, &st);
        if (r != 0) {
            if (stream) putchar('\n');
            rc = cli_fail("generate", PLM_EXIT_INPUT);
            break;
        }
        total.prompt_tokens += st.prompt_tokens;
        total.new_tokens += st.new_tokens;
        total.prefill_s += st.prefill_s;
        total.decode_s += st.decode_s;
        if (b0 > 0) { /* warm: each GEMM shape has run once */
            warm.prompt_tokens += st.prompt_tokens;
            warm.prefill_s += st.prefill_s;
        }
        for (int i = 0; i < nb; i++) {
            const char *prompt = prompts.items[b0 + i];
            char *text = NULL;
            size_t len = 0, tcap = 0;
            for (int t = 0; t < n_out[i]; t++) token_text(tok, t5, out[(size_t)i * cap + t], &text, &len, &tcap);
            if (json) {
                cJSON *j = cJSON_CreateObject();
                cJSON_AddNumberToObject(j, "index", b0 + i);
                cJSON_AddStringToObject(j, "prompt", prompt);
                cJSON *pa = cJSON_AddArrayToObject(j, "prompt_ids");
                for (int t = 0; t < lens[b0 + i]; t++) cJSON_AddItemToArray(pa, cJSON_CreateNumber(ids[b0 + i][t]));
                cJSON *a = cJSON_AddArrayToObject(j, "ids");
                for (int t = 0; t < n_out[i]; t++)
                    cJSON_AddItemToArray(a, cJSON_CreateNumber(out[(size_t)i * cap + t]));
                cJSON_AddStringToObject(j, "text", text ? text : "");
                char *str = cJSON_PrintUnformatted(j);
                if (str) puts(str);
                free(str);
                cJSON_Delete(j);
            } else if (stream) {
                putchar('\n');
            } else {
                if (!t5 && !chat) fputs(prompt, stdout);
                if (len) fwrite(text, 1, len, stdout);
                putchar('\n');
            }
            free(text);
        }
        fflush(stdout);
    }
    if (rc == 0 && !quiet)
        fprintf(stderr,
                "generate: %d prompt(s), batch size %d: %ld prompt tokens in %.4f s (%.1f tokens/s), %ld generated "
                "tokens in %.3f s (%.1f tokens/s)\n",
                P, PLM_MIN(batch_size, P), total.prompt_tokens, total.prefill_s,
                total.prefill_s > 0 ? (double)total.prompt_tokens / total.prefill_s : 0.0, total.new_tokens,
                total.decode_s, total.decode_s > 0 ? (double)total.new_tokens / total.decode_s : 0.0);
    if (rc == 0 && !quiet && warm.prefill_s > 0)
        fprintf(stderr, "generate: after the first batch: %ld prompt tokens in %.4f s (%.1f tokens/s)\n",
                warm.prompt_tokens, warm.prefill_s, (double)warm.prompt_tokens / warm.prefill_s);
    if (rc == 0 && plm_prof_on()) { /* PLM_PROFILE=1: where prefill and decoding spent their time */
        fprintf(stderr, "per-op time of the whole generate call (prefill + decoding; untimed includes sampling)\n");
        plm_prof_report(stderr, 1, (total.prefill_s + total.decode_s) * 1e3);
    }
    free(out);
    free(n_out);
    for (int i = 0; i < P; i++) free(ids[i]);
    free(ids);
    free(lens);
    free(lines);
    free(file_text);
    args_list_free(&prompts);
    plm_model_free(m);
    plm_tokenizer_free(tok);
    return rc;
}

typedef struct {
    float p;
    int id;
} scored;

/* A token as text a person can read: quoted, with newlines and tabs escaped. */
static void visible(char *dst, size_t n, const char *s) {
    /* Quoted and escaped so that it is also a JSON string body: control characters as
     * \uXXXX, and a byte that is not valid UTF-8 (a byte-level BPE token can be half a
     * character) as U+FFFD, as Hugging Face's decode shows it. */
    size_t k = 0, len = s ? strlen(s) : 0;
    dst[k++] = '\'';
    for (size_t i = 0; i < len && k + 8 < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t m = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(len - i), &cp);
        if (m <= 0) {
            memcpy(dst + k, "\xef\xbf\xbd", 3);
            k += 3, i++;
        } else if (cp == '\n' || cp == '\r' || cp == '\t' || cp == '"' || cp == '\\') {
            dst[k++] = '\\';
            dst[k++] = cp == '\n' ? 'n' : cp == '\r' ? 'r' : cp == '\t' ? 't' : (char)cp;
            i++;
        } else if (cp < 0x20 || cp == 0x7f) {
            k += (size_t)snprintf(dst + k, n - k, "\\u%04x", (unsigned)cp);
            i++;
        } else {
            memcpy(dst + k, s + i, (size_t)m);
            k += (size_t)m, i += (size_t)m;
        }
    }
    dst[k++] = '\'';
    dst[k] = 0;
}

/* Keeps the k most likely tokens in top[0..*n), most likely first, as p arrives in id
 * order: a tie keeps the lower id first. One pass over the vocabulary instead of a sort
 * of all of it (a 50257-entry qsort per mask was a tenth of a fill-mask run). */
static void top_insert(scored *top, int *n, int k, float p, int id) {
    if (*n == k && p <= top[k - 1].p) return;
    int r = *n < k ? (*n)++ : k - 1;
    for (; r > 0 && top[r - 1].p < p; r--) top[r] = top[r - 1];
    top[r] = (scored){p, id};
}

/* Prints the predictions at the np masks of one sentence from their logits [np, V]:
 * a softmax per mask and its top_k tokens, as a table or one JSON object per mask. */
static void print_predictions(const plm_tokenizer *tok, const char *text, const float *logits, int np, int V, int top_k,
                              bool json, scored *sc) {
    if (!json) printf("%s\n", text);
    for (int j = 0; j < np; j++) {
        const float *z = logits + (size_t)j * V;
        float mx = -INFINITY;
        for (int v = 0; v < V; v++) mx = fmaxf(mx, z[v]);
        double sum = 0;
        for (int v = 0; v < V; v++) sum += expf(z[v] - mx);
        int nk = 0;
        for (int v = 0; v < V; v++) top_insert(sc, &nk, PLM_MIN(top_k, V), (float)(expf(z[v] - mx) / sum), v);
        if (json) {
            char qt[1024];
            visible(qt, sizeof qt, text);
            qt[strlen(qt) - 1] = 0;
            printf("{\"text\": \"%s\", \"mask\": %d, \"predictions\": [", qt + 1, j);
        }
        for (int r = 0; r < nk; r++) {
            size_t len;
            char *s = plm_tokenizer_decode(tok, &sc[r].id, 1, false, &len), shown[128];
            visible(shown, sizeof shown, s);
            if (json) { /* the quoted form minus its quotes is a valid JSON string body */
                shown[strlen(shown) - 1] = 0;
                printf("%s{\"token\": \"%s\", \"id\": %d, \"score\": %.6f}", r ? ", " : "", shown + 1, sc[r].id,
                       sc[r].p);
            } else {
                printf("  [MASK] %d  %5.1f%%  %s\n", j + 1, 100.0 * sc[r].p, shown);
            }
            free(s);
        }
        if (json) printf("]}\n");
    }
}

/* [CLS] ids [SEP] of one encoded sentence into row (at most Tmax tokens), the row offset
 * of each of its masks appended to pos[*np..]; the row's length, or -1 with the error set. */
static int fill_mask_row(const plm_tokenizer *tok, const char *text, const plm_encoding *e, int Tmax, int32_t *row,
                         int32_t *pos, int *np) {
    int mask = plm_tokenizer_special(tok, PLM_SPECIAL_MASK), cls = plm_tokenizer_special(tok, PLM_SPECIAL_CLS),
        sep = plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
    int T = e->n + (cls >= 0) + (sep >= 0), k = 0, n0 = *np;
    if (T > Tmax) {
        plm_error("--text: %d tokens exceed max_position_embeddings", T);
        return -1;
    }
    if (cls >= 0) row[k++] = cls;
    for (int i = 0; i < e->n; i++) {
        if (e->ids[i] == mask) pos[(*np)++] = k;
        row[k++] = e->ids[i];
    }
    if (sep >= 0) row[k++] = sep;
    if (*np == n0) {
        plm_error("--text \"%s\": no %s token in it", text,
                  mask >= 0 ? plm_tokenizer_id_to_token(tok, mask) : "[MASK]");
        return -1;
    }
    return k;
}

int cmd_fill_mask(int argc, char **argv) {
    const char *model_dir = NULL;
    arg_list texts = {0};
    int top_k = 5, batch_size = 32;
    bool json = false, bf16 = false;
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "model directory (an MLM-trained encoder)"},
        {"--text", ARG_LIST, &texts, "sentences containing the mask token, e.g. \"The [MASK] sat on the mat.\""},
        {"--top-k", ARG_INT, &top_k, "predictions per mask (default 5)"},
        {"--batch-size", ARG_INT, &batch_size, "sentences per forward pass, padded to the longest (default 32)"},
        {"--json", ARG_FLAG, &json, "one JSON object per mask instead of a table"},
        {"--bf16", ARG_FLAG, &bf16, CLI_BF16_HELP},
    };
    int rc = args_parse("fill-mask", "Predict the tokens behind each [MASK] with their probabilities.", specs,
                        (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&texts);
        return rc == 1 ? 0 : rc;
    }
    if (!model_dir || texts.n == 0 || top_k <= 0 || batch_size <= 0) {
        fprintf(stderr, "plm fill-mask: --model DIR and --text \"...[MASK]...\" are required; --top-k and "
                        "--batch-size must be positive\n");
        args_list_free(&texts);
        return PLM_EXIT_USAGE;
    }
    plm_model *m;
    plm_tokenizer *tok;
    if ((rc = cli_load_mlm(model_dir, "fill-mask", &m, &tok)) != 0) {
        args_list_free(&texts);
        return cli_fail("fill-mask", rc);
    }
    if (bf16) cli_use_bf16(m);
    /* Sentences go through the encoder batch_size at a time, right-padded to the longest of
     * their batch (the attention mask hides the padding): the weights, the tied word
     * embeddings of the LM head above all (vocab x hidden), are read once per batch
     * instead of once per sentence. */
    int V = m->config.vocab_size, Tmax = m->config.max_position_embeddings, B = PLM_MIN(batch_size, texts.n);
    int pad = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    plm_encoding e;
    plm_encoding_init(&e);
    int32_t *rows = plm_malloc((size_t)B * Tmax * sizeof(int32_t)), *lens = plm_malloc((size_t)B * sizeof(int32_t));
    int32_t *first = plm_malloc((size_t)(B + 1) * sizeof(int32_t)); /* each sentence's first mask in pos */
    /* no NSP label either: a BertForPreTraining checkpoint's NSP head runs on nothing */
    int32_t *no_seq_label = plm_malloc((size_t)B * sizeof(int32_t));
    for (int b = 0; b < B; b++) no_seq_label[b] = PLM_IGNORE_INDEX;
    int32_t *pos = NULL, *ids = plm_malloc((size_t)B * Tmax * sizeof(int32_t));
    int32_t *none = plm_malloc((size_t)B * Tmax * sizeof(int32_t)); /* no loss: the LM head skips every row */
    for (size_t i = 0; i < (size_t)B * Tmax; i++) none[i] = PLM_IGNORE_INDEX;
    uint8_t *attn = plm_malloc((size_t)B * Tmax);
    float *logits = NULL;
    scored *sc = plm_malloc((size_t)PLM_MIN(top_k, V) * sizeof(scored)); /* the top_k kept, best first */
    int npos_cap = 0;
    for (int start = 0; start < texts.n && rc == 0; start += B) {
        /* encode the batch's sentences; on a bad one, the sentences before it still print */
        int nb = 0, np = 0, T = 0;
        for (; nb < B && start + nb < texts.n; nb++) {
            const char *text = texts.items[start + nb];
            plm_encoding_clear(&e);
            int k = -1;
            if (plm_tokenizer_encode(tok, text, strlen(text), &e) == 0) {
                if (npos_cap < np + e.n) pos = plm_realloc(pos, (size_t)(npos_cap = 2 * (np + e.n)) * sizeof(int32_t));
                first[nb] = np;
                k = fill_mask_row(tok, text, &e, Tmax, rows + (size_t)nb * Tmax, pos, &np);
            }
            if (k < 0) {
                rc = cli_fail("fill-mask", PLM_EXIT_INPUT);
                break;
            }
            lens[nb] = k;
            T = PLM_MAX(T, k);
        }
        first[nb] = np;
        if (nb == 0) break;
        /* [nb, T] right-padded, and the masks' rows in it */
        for (int b = 0; b < nb; b++) {
            for (int i = 0; i < T; i++) {
                size_t r = (size_t)b * T + i;
                ids[r] = i < lens[b] ? rows[(size_t)b * Tmax + i] : (pad >= 0 ? pad : 0);
                attn[r] = i < lens[b];
            }
            for (int j = first[b]; j < first[b + 1]; j++) pos[j] += b * T;
        }
        plm_batch batch = {.B = nb,
                           .T = T,
                           .input_ids = ids,
                           .attention_mask = attn,
                           .labels = none,
                           .seq_labels = no_seq_label,
                           .causal = false};
        if (plm_model_reserve(m, nb, T) != 0 || plm_model_run(m, 0, &batch, false, 1.0f) != 0) {
            rc = cli_fail("fill-mask", PLM_EXIT_FAIL);
        } else {
            logits = plm_realloc(logits, (size_t)np * V * sizeof(float));
            plm_model_logits_at(m, pos, np, logits);
            for (int b = 0; b < nb; b++)
                print_predictions(tok, texts.items[start + b], logits + (size_t)first[b] * V, first[b + 1] - first[b],
                                  V, top_k, json, sc);
        }
    }
    free(no_seq_label);
    free(sc);
    free(logits);
    free(rows);
    free(lens);
    free(first);
    free(pos);
    free(ids);
    free(none);
    free(attn);
    plm_encoding_free(&e);
    plm_model_free(m);
    plm_tokenizer_free(tok);
    args_list_free(&texts);
    return rc;
}
