/* cmd_unmask.c - `plm unmask`: non-autoregressive generation from an MLM encoder by
 * iterative unmasking (Mask-Predict and the confidence-ordered variant, infer/unmask.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>

#include "args.h"
#include "cli.h"
#include "core/common.h"
#include "core/progress.h"
#include "infer/unmask.h"

/* A growable string. */
typedef struct {
    char *s;
    size_t n, cap;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = (b->n + n + 1) * 2;
        b->s = plm_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

/* Appends s [n] with every byte that is not valid UTF-8 as U+FFFD, as Hugging Face's
 * decode shows a byte-level BPE token that is half a character (and so the JSON
 * output stays valid). */
static void sb_add_utf8(strbuf *b, const char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) {
            sb_add(b, "\xef\xbf\xbd", 3);
            i++;
        } else {
            sb_add(b, s + i, (size_t)k);
            i += (size_t)k;
        }
    }
}

/* The text of ids [n] with the positions flagged in masked (NULL: none) shown as the
 * mask token, special tokens kept (HF's decode without skip_special_tokens). WordPiece:
 * one decode with the masks in place (its decoder spaces words and attaches "##" pieces
 * and punctuation as HF's). Byte-level BPE: the mask token took the space before it
 * when the text was encoded (lstrip), so decoding it in place would glue it to the
 * words ("The[MASK][MASK] sat"); there the runs between masks are decoded apart and a
 * mask gets a space on either side unless the neighbouring text has one. */
static void render(const plm_tokenizer *tok, const int32_t *ids, const uint8_t *masked, int n, int32_t mask_id,
                   strbuf *out) {
    out->n = 0;
    sb_add(out, "", 0);
    if (plm_tokenizer_kind(tok) == PLM_TOK_WORDPIECE) {
        int32_t *shown = plm_malloc((size_t)PLM_MAX(n, 1) * sizeof(int32_t));
        for (int i = 0; i < n; i++) shown[i] = masked && masked[i] ? mask_id : ids[i];
        size_t len = 0;
        char *s = plm_tokenizer_decode(tok, shown, n, false, &len);
        if (s) sb_add_utf8(out, s, len);
        free(s);
        free(shown);
        return;
    }
    const char *mask_str = plm_tokenizer_id_to_token(tok, mask_id);
    bool after_mask = false;
    for (int i = 0; i < n;) {
        if (masked && masked[i]) {
            if (out->n && out->s[out->n - 1] != ' ') sb_str(out, " ");
            sb_str(out, mask_str);
            after_mask = true;
            i++;
            continue;
        }
        int j = i;
        while (j < n && !(masked && masked[j])) j++;
        size_t len = 0;
        char *s = plm_tokenizer_decode(tok, ids + i, j - i, false, &len);
        if (s && len) {
            if (after_mask && s[0] != ' ') sb_str(out, " ");
            sb_add_utf8(out, s, len);
        }
        free(s);
        after_mask = false;
        i = j;
    }
}

/* One input: its text, its ids and what unmask reports back. */
typedef struct {
    const char *text;
    int32_t *ids;
    int n;
    float *prob;  /* [n]: final probability of each generated position */
    uint8_t *gen; /* [n]: 1 at the positions to generate (the input's mask tokens) */
    strbuf steps; /* plain --show-steps lines */
    cJSON *jsteps;
} item;

typedef struct {
    item *items; /* the batch */
    const plm_tokenizer *tok;
    int32_t mask_id;
    int first; /* content is ids[first .. n - last) */
    int last;
    bool json;
    strbuf tmp;
} step_ctx;

static void on_step(int seq, int t, const int32_t *ids, const uint8_t *masked, const float *prob, int n, void *p) {
    step_ctx *c = p;
    item *it = &c->items[seq];
    if (c->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "iteration", t);
        cJSON *mp = cJSON_AddArrayToObject(o, "masked"), *ia = cJSON_AddArrayToObject(o, "ids"),
              *pa = cJSON_AddArrayToObject(o, "probs");
        for (int i = 0; i < n; i++) {
            if (masked[i]) cJSON_AddItemToArray(mp, cJSON_CreateNumber(i));
            cJSON_AddItemToArray(ia, cJSON_CreateNumber(ids[i]));
            if (it->gen[i]) cJSON_AddItemToArray(pa, cJSON_CreateNumber(prob[i]));
        }
        cJSON_AddItemToArray(it->jsteps, o);
    } else {
        char head[32];
        snprintf(head, sizeof head, "t=%d: ", t);
        render(c->tok, ids + c->first, masked + c->first, n - c->first - c->last, c->mask_id, &c->tmp);
        sb_str(&it->steps, head);
        sb_add(&it->steps, c->tmp.s, c->tmp.n);
        sb_str(&it->steps, "\n");
    }
}

static int usage_error(const char *msg) {
    fprintf(stderr, "plm unmask: %s (see plm unmask --help)\n", msg);
    return PLM_EXIT_USAGE;
}

int cmd_unmask(int argc, char **argv) {
    const char *model_dir = NULL, *input = NULL, *strategy = "mask-predict";
    arg_list texts = {0}, prompts = {0};
    int length = 0, batch_size = 32, top_k = -1;
    float temperature = NAN, top_p = NAN;
    bool sample = false, show_steps = false, json = false, quiet = false, bf16 = false;
    plm_unmask_opts o;
    plm_unmask_opts_default(&o);
    arg_spec specs[] = {
        {"--model", ARG_STR, &model_dir, "model directory (an MLM-trained encoder)"},
        {"--text", ARG_LIST, &texts,
         "a text with mask tokens to fill, e.g. \"The [MASK] [MASK] sat on the mat.\"; repeat it for a batch"},
        {"--prompt", ARG_LIST, &prompts, "a text that --length mask tokens are appended to (before [SEP])"},
        {"--length", ARG_INT, &length,
         "mask tokens appended to every input before [SEP] (needed with --prompt; default 0)"},
        {"--input", ARG_STR, &input, "one text per line (blank lines skipped), after the --text and --prompt ones"},
        {"--iterations", ARG_INT, &o.iterations,
         "N: iteration t = 1..N-1 masks again floor(L (N - t) / N) of the L generated tokens (default 10)"},
        {"--strategy", ARG_STR, &strategy,
         "mask-predict (default: mask again the least probable of all generated tokens) or confidence (only "
         "among those predicted last: the most probable are kept for good)"},
        {"--sample", ARG_FLAG, &sample, "sample each token instead of taking the most likely one (greedy)"},
        {"--temperature", ARG_FLOAT, &temperature, "sampling temperature (implies --sample; default 1.0)"},
        {"--top-k", ARG_INT, &top_k, "sample among the k most likely tokens (implies --sample; default 0 = all)"},
        {"--top-p", ARG_FLOAT, &top_p,
         "nucleus sampling: smallest set with this probability (implies --sample; default 1.0)"},
        {"--seed", ARG_U64, &o.sampling.seed,
         "sampling seed (default 42); every input samples from its own stream of it, whatever the batch"},
        {"--batch-size", ARG_INT, &batch_size, "inputs run through the model together (default 32)"},
        {"--show-steps", ARG_FLAG, &show_steps,
         "print each iteration's input (the tokens masked again shown as the mask token) before the result"},
        {"--json", ARG_FLAG, &json,
         "one JSON object per input: index, text, input_ids, ids, output, positions (the generated ones), probs, "
         "score (their mean log-probability); with --show-steps, steps [{iteration, masked, ids, probs}]"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
        {"--bf16", ARG_FLAG, &bf16, CLI_BF16_HELP},
    };
    int rc = args_parse("unmask",
                        "Non-autoregressive generation with a masked-language encoder: every mask token is predicted "
                        "at once, then the least confident predictions are masked again and predicted again with the "
                        "rest as context, --iterations times (Mask-Predict, Ghazvininejad et al. 2019).",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&texts);
        args_list_free(&prompts);
        return rc == 1 ? 0 : rc;
    }
    int st = plm_unmask_strategy_parse(strategy);
    const char *bad = NULL;
    if (!model_dir || (texts.n == 0 && prompts.n == 0 && !input))
        bad = "--model DIR and --text TEXT, --prompt TEXT --length N or --input FILE are required";
    else if (prompts.n > 0 && length < 1)
        bad = "--prompt needs --length N >= 1 (the mask tokens to append)";
    else if (length < 0 || o.iterations < 1 || batch_size < 1)
        bad = "need --length >= 0, --iterations >= 1, --batch-size >= 1";
    else if (st < 0)
        bad = "--strategy must be mask-predict or confidence";
    else if ((!isnan(temperature) && !(temperature > 0 && isfinite(temperature))) ||
             (!isnan(top_p) && !(top_p > 0 && top_p <= 1)) || top_k < -1)
        bad = "need --temperature > 0, 0 < --top-p <= 1, --top-k >= 0";
    if (bad) {
        args_list_free(&texts);
        args_list_free(&prompts);
        return usage_error(bad);
    }
    o.strategy = (plm_unmask_strategy)st;
    o.sampling.do_sample = sample || !isnan(temperature) || top_k >= 0 || !isnan(top_p);
    if (!isnan(temperature)) o.sampling.temperature = temperature;
    if (!isnan(top_p)) o.sampling.top_p = top_p;
    if (top_k >= 0) o.sampling.top_k = top_k;
    /* every input in one list: --text, then --prompt, then the file's lines */
    arg_list all = {0};
    int n_text = texts.n, n_cli = texts.n + prompts.n, *lines = NULL;
    char *file_text = NULL;
    all.items = plm_malloc((size_t)PLM_MAX(n_cli, 1) * sizeof(char *));
    for (int i = 0; i < texts.n; i++) all.items[all.n++] = texts.items[i];
    for (int i = 0; i < prompts.n; i++) all.items[all.n++] = prompts.items[i];
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    if (input && cli_read_lines(input, &all, &file_text, &lines) != 0) {
        rc = cli_fail("unmask", PLM_EXIT_INPUT);
        goto out;
    }
    if (input && all.n == n_cli) {
        plm_error("%s: no text in it (one per line)", input);
        rc = cli_fail("unmask", PLM_EXIT_INPUT);
        goto out;
    }
    if ((rc = cli_load_mlm(model_dir, "unmask", &m, &tok)) != 0) {
        rc = cli_fail("unmask", rc);
        goto out;
    }
    if (bf16) cli_use_bf16(m);
    o.mask_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_MASK);
    o.pad_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    if (o.mask_token_id < 0 || o.mask_token_id >= m->config.vocab_size) {
        plm_error("%s/tokenizer.json: no mask token (an MLM tokenizer has [MASK] or <mask>)", model_dir);
        rc = cli_fail("unmask", PLM_EXIT_INPUT);
        goto out;
    }
    int cls = plm_tokenizer_special(tok, PLM_SPECIAL_CLS), sep = plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
    const char *mask_str = plm_tokenizer_id_to_token(tok, o.mask_token_id);
    /* tokenize every input first: a bad one stops the run before any work */
    int P = all.n;
    item *items = plm_calloc((size_t)P, sizeof(item));
    plm_encoding e;
    plm_encoding_init(&e);
    for (int i = 0; i < P && rc == 0; i++) {
        item *it = &items[i];
        it->text = all.items[i];
        char where[600]; /* for messages: "--text 2", "prompts.txt:7" */
        if (i < n_text)
            snprintf(where, sizeof where, "--text %d", i + 1);
        else if (i < n_cli)
            snprintf(where, sizeof where, "--prompt %d", i - n_text + 1);
        else
            snprintf(where, sizeof where, "%.500s:%d", input, lines[i]);
        plm_encoding_clear(&e);
        if (plm_tokenizer_encode(tok, it->text, strlen(it->text), &e) != 0) {
            char why[512];
            snprintf(why, sizeof why, "%s", plm_last_error());
            plm_error("%s: %s", where, why);
            rc = cli_fail("unmask", PLM_EXIT_INPUT);
            break;
        }
        /* long long: --length is any int, and prompt + length + 2 must not wrap to a negative size */
        long long TL = (long long)e.n + length + (cls >= 0) + (sep >= 0);
        if (TL > m->config.max_position_embeddings) {
            plm_error("%s: %lld tokens exceed max_position_embeddings (%d)", where, TL,
                      m->config.max_position_embeddings);
            rc = cli_fail("unmask", PLM_EXIT_INPUT);
            break;
        }
        int T = (int)TL;
        it->ids = plm_malloc((size_t)T * sizeof(int32_t));
        it->prob = plm_malloc((size_t)T * sizeof(float));
        it->gen = plm_malloc((size_t)T);
        int k = 0, masks = 0;
        if (cls >= 0) it->ids[k++] = cls;
        for (int t = 0; t < e.n; t++) it->ids[k++] = e.ids[t];
        for (int t = 0; t < length; t++) it->ids[k++] = o.mask_token_id;
        if (sep >= 0) it->ids[k++] = sep;
        it->n = k;
        for (int t = 0; t < k; t++) masks += it->gen[t] = it->ids[t] == o.mask_token_id;
        if (masks == 0) {
            plm_error("%s: no %s token in it (or give --length N)", where, mask_str);
            rc = cli_fail("unmask", PLM_EXIT_INPUT);
        }
        if (json && show_steps) it->jsteps = cJSON_CreateArray();
    }
    plm_encoding_free(&e);
    int first = cls >= 0, last = sep >= 0;
    step_ctx sc = {.tok = tok, .mask_id = o.mask_token_id, .first = first, .last = last, .json = json};
    int32_t **bids = plm_malloc((size_t)PLM_MIN(batch_size, P) * sizeof(int32_t *));
    float **bprob = plm_malloc((size_t)PLM_MIN(batch_size, P) * sizeof(float *));
    int *blen = plm_malloc((size_t)PLM_MIN(batch_size, P) * sizeof(int));
    strbuf text = {0};
    plm_progress pb;
    bool bar = !quiet && P > batch_size;
    if (bar && rc == 0) plm_progress_start(&pb, "unmask", P, 0);
    for (int b0 = 0; b0 < P && rc == 0; b0 += batch_size) {
        int nb = PLM_MIN(batch_size, P - b0);
        for (int i = 0; i < nb; i++) {
            bids[i] = items[b0 + i].ids;
            blen[i] = items[b0 + i].n;
            bprob[i] = items[b0 + i].prob;
        }
        sc.items = items + b0;
        o.first_index = b0; /* input i samples from stream i, whatever --batch-size */
        if (plm_unmask_batch(m, bids, blen, nb, &o, bprob, show_steps ? on_step : NULL, &sc) != 0) {
            if (bar) fputc('\n', stderr);
            rc = cli_fail("unmask", PLM_EXIT_FAIL);
            break;
        }
        if (bar) plm_progress_update(&pb, b0 + nb, NULL);
        for (int i = 0; i < nb; i++) {
            item *it = &items[b0 + i];
            render(tok, it->ids + first, NULL, it->n - first - last, o.mask_token_id, &text);
            if (!json) {
                if (show_steps) fputs(it->steps.s ? it->steps.s : "", stdout);
                printf("%s%s\n", show_steps ? "=> " : "", text.s);
                continue;
            }
            /* score: the mean log-probability of the generated tokens, Mask-Predict's
             * score of a candidate */
            cJSON *j = cJSON_CreateObject();
            cJSON_AddNumberToObject(j, "index", b0 + i);
            strbuf in = {0}; /* a byte-level BPE takes any bytes; JSON needs UTF-8 */
            sb_add_utf8(&in, it->text, strlen(it->text));
            cJSON_AddStringToObject(j, "text", in.s ? in.s : "");
            free(in.s);
            cJSON *ia = cJSON_AddArrayToObject(j, "input_ids"), *oa = cJSON_AddArrayToObject(j, "ids");
            cJSON *pa = cJSON_AddArrayToObject(j, "positions"), *pr = cJSON_AddArrayToObject(j, "probs");
            double lp = 0.0;
            int L = 0;
            for (int t = 0; t < it->n; t++) {
                cJSON_AddItemToArray(ia, cJSON_CreateNumber(it->gen[t] ? o.mask_token_id : it->ids[t]));
                cJSON_AddItemToArray(oa, cJSON_CreateNumber(it->ids[t]));
                if (!it->gen[t]) continue;
                cJSON_AddItemToArray(pa, cJSON_CreateNumber(t));
                cJSON_AddItemToArray(pr, cJSON_CreateNumber(it->prob[t]));
                lp += log(it->prob[t]);
                L++;
            }
            cJSON_AddStringToObject(j, "output", text.s);
            cJSON_AddNumberToObject(j, "score", lp / L);
            cJSON_AddStringToObject(j, "strategy", plm_unmask_strategy_name(o.strategy));
            cJSON_AddNumberToObject(j, "iterations", o.iterations);
            if (it->jsteps) {
                cJSON_AddItemToObject(j, "steps", it->jsteps);
                it->jsteps = NULL;
            }
            char *str = cJSON_PrintUnformatted(j);
            if (str) puts(str);
            free(str);
            cJSON_Delete(j);
        }
        fflush(stdout);
    }
    if (bar && rc == 0) plm_progress_finish(&pb, NULL);
    free(text.s);
    free(bids);
    free(bprob);
    free(blen);
    for (int i = 0; i < P; i++) {
        free(items[i].ids);
        free(items[i].prob);
        free(items[i].gen);
        free(items[i].steps.s);
        cJSON_Delete(items[i].jsteps);
    }
    free(items);
    free(sc.tmp.s);
out:
    plm_model_free(m);
    plm_tokenizer_free(tok);
    free(all.items);
    free(lines);
    free(file_text);
    args_list_free(&texts);
    args_list_free(&prompts);
    return rc;
}
