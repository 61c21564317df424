/* cmd_sft.c - `plm sft` and `plm dpo`, instruction tuning of a causal LM. sft: supervised
 * fine-tuning on prompt/response or chat JSONL (TRL's SFTTrainer with completion-only
 * loss, train/sft.c); dpo: Direct Preference Optimization on {prompt, chosen, rejected}
 * JSONL (TRL's DPOTrainer, train/dpo.c), the starting checkpoint's log-probs computed once
 * as the frozen reference. Both read and encode the data (tasks/chat.h), hold out a
 * validation split when asked and run the fine-tuning loop once per seed; they write the
 * model, metrics.jsonl, eval_results.json, checkpoints and loss.svg. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "ft_common.h"
#include "core/common.h"
#include "tasks/chat.h"
#include "train/dist.h"
#include "train/dpo.h"
#include "train/sft.h"
#include "train/trainer.h"

typedef struct {
    cli_ft_opts *o;
    const plm_sft_data *train, *valid; /* valid NULL: no evaluation */
    plm_chat_template t;
} sft_run;

static int sft_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    sft_run *r = ctx;
    (void)si;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    int rc = cli_load_model(a->resume_from_checkpoint ? a->resume_from_checkpoint : r->o->model, &m, &tok);
    if (rc != 0) return rc;
    rc = plm_sft_train(m, tok, r->train, r->valid, r->t, a, best);
    if (rc == 0 && plm_dist_is_root()) {
        char path[4200], svg[4200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
        snprintf(svg, sizeof svg, "%s/loss.svg", a->output_dir);
        plm_plot_metrics(path, svg, "sft loss (response tokens)");
    }
    plm_model_free(m);
    plm_tokenizer_free(tok);
    return rc;
}

/* The labelled positions of d's first n examples: trained tokens after the first one. */
static long response_tokens(const plm_sft_data *d, int n) {
    long k = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = d->off[i] + 1; j < d->off[i + 1]; j++) k += d->train[j] != 0;
    return k;
}

/* A data set whose every response was cut away by --max-seq-length has no labelled token:
 * training would run on NaN losses (all labels -100) and write NaN scores, so it is an
 * error naming the file. Returns 0, or -1 with the error set. */
static int check_responses(const plm_sft_data *d, int n, const char *path, const char *what, int max_len) {
    if (n == 0 || response_tokens(d, n) > 0) return 0;
    plm_error("%s: no %s keeps a response token within its first %d tokens (--max-seq-length): every response is "
              "cut away",
              path, what, max_len);
    return -1;
}

/* Reads and encodes a file, keeping its first max_n conversations (0: all). */
static int read_encode(const char *path, int max_n, const plm_tokenizer *tok, plm_chat_template t, int max_len,
                       plm_sft_data *out) {
    plm_chat_set set;
    if (plm_chat_read(&set, path) != 0) return -1;
    if (max_n > 0 && set.n > max_n) {
        for (int i = max_n; i < set.n; i++) {
            for (int k = 0; k < set.items[i].n; k++) free(set.items[i].msgs[k].content);
            free(set.items[i].msgs);
        }
        set.n = max_n;
    }
    int rc = plm_sft_encode(out, &set, path, tok, t, max_len);
    plm_chat_set_free(&set);
    return rc;
}

/* The model plm sft and plm dpo train: a causal LM with an LM head. Resolves
 * *max_seq_length (0: 1024) against its positions, with a warning when it cuts. Returns
 * 0 or the exit code (the error set). */
static int load_causal_lm(const char *cmd, const char *dir, int *max_seq_length, plm_model **m, plm_tokenizer **tok) {
    int rc = cli_load_model(dir, m, tok);
    if (rc != 0) return rc;
    if (plm_model_head(*m, PLM_HEAD_LM) != 0 || (*m)->num_backbones != 1 || !(*m)->config.is_decoder) {
        plm_error("%s/config.json: a %s%s: %s needs a causal language model with an LM head", dir,
                  plm_model_architecture(*m), (*m)->config.is_decoder ? "" : " (is_decoder false)", cmd);
        return PLM_EXIT_INPUT;
    }
    int positions = (*m)->config.max_position_embeddings;
    if (*max_seq_length > positions)
        fprintf(stderr, "plm %s: warning: --max-seq-length %d is beyond the model's %d positions; using %d\n", cmd,
                *max_seq_length, positions, positions);
    *max_seq_length = *max_seq_length > 0 ? PLM_MIN(*max_seq_length, positions) : PLM_MIN(1024, positions);
    return 0;
}

int cmd_sft(int argc, char **argv) {
    cli_ft_opts o;
    cli_ft_opts_default(&o);
    /* TRL's SFTConfig: batch 8, 3 epochs, linear decay without warmup, no weight decay,
     * max_length 1024. Its learning rate, 2e-5, is for billion-parameter models; the small
     * models plm trains move too little at it (as in plm finetune), so 1e-4. */
    o.a.train_batch_size = 8;
    o.a.eval_batch_size = 8;
    o.a.warmup_ratio = 0.0f;
    o.a.opt.weight_decay = 0.0f;
    o.a.max_seq_length = 0;
    o.lr_help = "peak learning rate (default 1e-4; TRL's 2e-5 is for billion-parameter models, small ones need more)";
    const char *train_file = NULL, *valid_file = NULL, *template = "plain";
    float split = 0.0f;
    const arg_spec own[] = {
        {"--train", ARG_STR, &train_file,
         "JSONL: {\"prompt\", \"response\"} or {\"messages\": [{\"role\", \"content\"}, ...]} per line"},
        {"--validation", ARG_STR, &valid_file, "held-out JSONL of the same form: eval loss / perplexity / accuracy"},
        {"--validation-split", ARG_FLOAT, &split,
         "hold out this share of --train instead (a seeded draw, as HF's train_test_split; default 0)"},
        {"--template", ARG_STR, &template,
         "chat template: plain (\"User: ...\\nAssistant: ...<eos>\", default) or chatml (<|im_start|>role ...)"},
        {"--max-seq-length", ARG_INT, &o.a.max_seq_length,
         "cut longer examples at their end (default: 1024 or the model's positions, whichever is smaller)"},
    };
    int rc = cli_ft_parse_cmd("sft",
                              "Supervised fine-tuning of a causal LM on instructions: the loss only on the response "
                              "(assistant) tokens, as TRL's SFTTrainer with completion-only loss.",
                              own, (int)PLM_ARRAY_LEN(own), &o, "examples", argc, argv);
    if (rc >= 0) return rc;
    plm_chat_template t;
    if (!train_file || (valid_file && split > 0) || !(split >= 0 && split < 1) || o.a.max_seq_length < 0 ||
        plm_chat_template_of(template, &t) != 0) {
        fprintf(stderr, "plm sft: --train FILE is required; --validation or --validation-split (in [0, 1)), not "
                        "both; --template plain or chatml; --max-seq-length >= 0\n");
        return PLM_EXIT_USAGE;
    }
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_sft_data train, valid;
    plm_sft_data_init(&train);
    plm_sft_data_init(&valid);
    if ((rc = load_causal_lm("sft", o.model, &o.a.max_seq_length, &m, &tok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    int max_len = o.a.max_seq_length;
    plm_sft_data_free(&train);
    plm_sft_data_free(&valid);
    if (read_encode(train_file, o.max_train_samples, tok, t, max_len, &train) != 0) goto fail;
    if (valid_file) {
        if (read_encode(valid_file, o.max_eval_samples, tok, t, max_len, &valid) != 0) goto fail;
    } else {
        plm_sft_split(&train, split, o.a.seed, &valid);
        if (split > 0 && (valid.n == 0 || train.n == 0)) {
            plm_error("%s: --validation-split %g of %d examples leaves an empty side", train_file, split,
                      train.n + valid.n);
            goto fail;
        }
        if (o.max_eval_samples > 0 && valid.n > o.max_eval_samples) valid.n = o.max_eval_samples;
    }
    if (check_responses(&train, train.n, train_file, "training example", max_len) != 0 ||
        check_responses(&valid, valid.n, valid_file ? valid_file : train_file, "validation example", max_len) != 0)
        goto fail;
    if (!o.quiet) {
        fprintf(stderr,
                "sft: %d training examples (%ld response tokens), %d validation; template %s; model %s, %.2fM "
                "parameters\n",
                train.n, train.targets, valid.n, plm_chat_template_name(t), plm_model_architecture(m),
                (double)m->num_params / 1e6);
        fprintf(stderr, "sft: %d training and %d validation examples truncated to %d tokens", train.truncated,
                valid_file ? valid.truncated : 0, max_len);
        if (train.no_target + valid.no_target > 0)
            fprintf(stderr, " (%d lost their whole response and teach nothing)", train.no_target + valid.no_target);
        fprintf(stderr, "\n");
    }
    plm_model_free(m);
    m = NULL;
    plm_tokenizer_free(tok);
    tok = NULL;
    sft_run r = {&o, &train, valid.n > 0 ? &valid : NULL, t};
    if ((rc = cli_ft_run_seeds(&o, "sft", 3, plm_sft_metrics, r.valid != NULL, sft_run_one, &r)) != 0) goto fail;
    rc = 0;
    goto out;
fail:
    cli_fail("sft", rc);
out:
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    plm_sft_data_free(&train);
    plm_sft_data_free(&valid);
    return rc;
}

/* ---------------------------------------------------------------- plm dpo */

typedef struct {
    cli_ft_opts *o;
    const plm_dpo_data *train, *valid; /* valid NULL: no evaluation */
    plm_chat_template t;
    float beta;
} dpo_run;

static int dpo_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    dpo_run *r = ctx;
    (void)si;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    int rc = cli_load_model(a->resume_from_checkpoint ? a->resume_from_checkpoint : r->o->model, &m, &tok);
    if (rc != 0) return rc;
    rc = plm_dpo_train(m, tok, r->train, r->valid, r->beta, r->t, a, best);
    if (rc == 0 && plm_dist_is_root()) {
        char path[4200], svg[4200];
        snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
        snprintf(svg, sizeof svg, "%s/loss.svg", a->output_dir);
        plm_plot_metrics(path, svg, "dpo loss");
    }
    plm_model_free(m);
    plm_tokenizer_free(tok);
    return rc;
}

/* Reads and encodes a preference file, keeping its first max_n pairs (0: all). */
static int read_pairs(const char *path, int max_n, const plm_tokenizer *tok, plm_chat_template t, int max_len,
                      plm_dpo_data *out) {
    plm_chat_set ch, rj;
    if (plm_chat_read_preferences(&ch, &rj, path) != 0) return -1;
    for (int s = 0; s < 2 && max_n > 0; s++) {
        plm_chat_set *set = s ? &rj : &ch;
        for (int i = max_n; i < set->n; i++) {
            for (int k = 0; k < set->items[i].n; k++) free(set->items[i].msgs[k].content);
            free(set->items[i].msgs);
        }
        set->n = PLM_MIN(set->n, max_n);
    }
    int rc = plm_dpo_encode(out, &ch, &rj, path, tok, t, max_len);
    plm_chat_set_free(&ch);
    plm_chat_set_free(&rj);
    return rc;
}

/* The reference model's log-probs of every sequence of d (dropout off). */
static int reference_logps(plm_model *ref, plm_dpo_data *d, int B, int32_t pad) {
    d->ref_logp = plm_malloc((size_t)PLM_MAX(d->seqs.n, 1) * sizeof(double));
    return d->seqs.n ? plm_dpo_logps(ref, &d->seqs, B, pad, d->ref_logp) : 0;
}

int cmd_dpo(int argc, char **argv) {
    cli_ft_opts o;
    cli_ft_opts_default(&o);
    /* TRL's DPOConfig: beta 0.1, batch 8 pairs, linear decay without warmup, no weight decay,
     * max_length 1024; its learning rate, 1e-6, is for billion-parameter models. */
    o.a.train_batch_size = 8;
    o.a.eval_batch_size = 8;
    o.a.warmup_ratio = 0.0f;
    o.a.opt.weight_decay = 0.0f;
    o.a.opt.learning_rate = 5e-5f;
    o.a.max_seq_length = 0;
    o.lr_help = "peak learning rate (default 5e-5; TRL's 1e-6 is for billion-parameter models)";
    const char *train_file = NULL, *valid_file = NULL, *template = "plain";
    float split = 0.0f, beta = 0.1f;
    const arg_spec own[] = {
        {"--train", ARG_STR, &train_file, "JSONL: {\"prompt\", \"chosen\", \"rejected\"} per line"},
        {"--validation", ARG_STR, &valid_file, "held-out pairs: eval loss, reward accuracy and margins"},
        {"--validation-split", ARG_FLOAT, &split, "hold out this share of --train's pairs instead (seeded; default 0)"},
        {"--beta", ARG_FLOAT, &beta, "DPO's beta: how far from the reference the model may move (default 0.1)"},
        {"--template", ARG_STR, &template, "chat template: plain (default) or chatml, as plm sft"},
        {"--max-seq-length", ARG_INT, &o.a.max_seq_length,
         "cut longer sequences at their end (default: 1024 or the model's positions, whichever is smaller)"},
    };
    int rc = cli_ft_parse_cmd("dpo",
                              "Direct Preference Optimization of a causal LM (TRL's DPOTrainer, sigmoid loss): the "
                              "starting checkpoint is the frozen reference.",
                              own, (int)PLM_ARRAY_LEN(own), &o, "pairs", argc, argv);
    if (rc >= 0) return rc;
    plm_chat_template t;
    if (!train_file || (valid_file && split > 0) || !(split >= 0 && split < 1) || o.a.max_seq_length < 0 ||
        !(beta > 0 && isfinite(beta)) || plm_chat_template_of(template, &t) != 0) {
        fprintf(stderr, "plm dpo: --train FILE is required; --validation or --validation-split (in [0, 1)), not "
                        "both; finite --beta > 0; --template plain or chatml; --max-seq-length >= 0\n");
        return PLM_EXIT_USAGE;
    }
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_dpo_data train = {0}, valid = {0};
    if ((rc = load_causal_lm("dpo", o.model, &o.a.max_seq_length, &m, &tok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    int max_len = o.a.max_seq_length;
    if (read_pairs(train_file, o.max_train_samples, tok, t, max_len, &train) != 0) goto fail;
    if (valid_file) {
        if (read_pairs(valid_file, o.max_eval_samples, tok, t, max_len, &valid) != 0) goto fail;
    } else {
        plm_dpo_split(&train, split, o.a.seed, &valid);
        if (split > 0 && (valid.n == 0 || train.n == 0)) {
            plm_error("%s: --validation-split %g of %d pairs leaves an empty side", train_file, split,
                      train.n + valid.n);
            goto fail;
        }
        if (o.max_eval_samples > 0 && valid.n > o.max_eval_samples) { /* as plm sft: the first pairs held out */
            valid.n = o.max_eval_samples;
            valid.seqs.n = 2 * valid.n;
        }
    }
    if (check_responses(&train.seqs, train.seqs.n, train_file, "training pair", max_len) != 0 ||
        check_responses(&valid.seqs, valid.seqs.n, valid_file ? valid_file : train_file, "validation pair", max_len) !=
            0)
        goto fail;
    /* the frozen reference: the starting checkpoint's log-probs, once per sequence (a run
     * resumed from a checkpoint computes them from --model again: the same numbers) */
    double t0 = plm_now();
    int B = 2 * PLM_MAX(o.a.eval_batch_size, 1);
    int32_t pad = plm_sft_pad_id(m, tok);
    if (plm_model_reserve(m, B, PLM_MAX(PLM_MAX(train.seqs.max_len, valid.seqs.max_len), 1)) != 0 ||
        reference_logps(m, &train, B, pad) != 0 || reference_logps(m, &valid, B, pad) != 0)
        goto fail;
    if (!o.quiet) {
        fprintf(stderr,
                "dpo: %d training pairs, %d validation; template %s, beta %g; model %s, %.2fM parameters; reference "
                "log-probs of %d sequences in %.1f s\n",
                train.n, valid.n, plm_chat_template_name(t), beta, plm_model_architecture(m),
                (double)m->num_params / 1e6, train.seqs.n + valid.seqs.n, plm_now() - t0);
        fprintf(stderr, "dpo: %d training and %d validation sequences truncated to %d tokens\n", train.seqs.truncated,
                valid_file ? valid.seqs.truncated : 0, max_len);
    }
    plm_model_free(m);
    m = NULL;
    plm_tokenizer_free(tok);
    tok = NULL;
    dpo_run r = {&o, &train, valid.n > 0 ? &valid : NULL, t, beta};
    if ((rc = cli_ft_run_seeds(&o, "dpo", 3, plm_dpo_metrics, r.valid != NULL, dpo_run_one, &r)) != 0) goto fail;
    rc = 0;
    goto out;
fail:
    cli_fail("dpo", rc);
out:
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    plm_dpo_data_free(&train);
    plm_dpo_data_free(&valid);
    return rc;
}
