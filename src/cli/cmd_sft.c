/* cmd_sft.c - `plm sft`, `dpo`, `reward` and `rloo`, instruction tuning of a causal LM.
 * sft: supervised fine-tuning on prompt/response or chat JSONL (TRL's SFTTrainer with completion-only
 * loss, train/sft.c); dpo: Direct Preference Optimization on {prompt, chosen, rejected}
 * JSONL (TRL's DPOTrainer, train/dpo.c), the starting checkpoint's log-probs computed once
 * as the frozen reference; reward: a reward model on the same pairs (TRL's RewardTrainer,
 * train/reward.c), and with --score the rewards of conversations; rloo: online RL of the
 * policy from such a reward model on {prompt} JSONL (TRL's RLOOTrainer, train/rloo.c). They
 * read and encode the data (tasks/chat.h), hold out a validation split when asked and run
 * the fine-tuning loop once per seed; they write the model, metrics.jsonl,
 * eval_results.json, checkpoints and loss.svg. */
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
#include "model/model_io.h"
#include "train/dpo.h"
#include "train/reward.h"
#include "train/ppo.h"
#include "train/rloo.h"
#include "train/sft.h"
#include "train/trainer.h"

/* A finished run's loss.svg, from its metrics.jsonl (rank 0 writes files). */
static void plot_loss(const plm_ft_args *a, const char *title) {
    if (!plm_dist_is_root()) return;
    char path[4200], svg[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
    snprintf(svg, sizeof svg, "%s/loss.svg", a->output_dir);
    plm_plot_metrics(path, svg, title);
}

/* One run's model: the checkpoint it resumes, or --model. */
static int load_run_model(const cli_ft_opts *o, const plm_ft_args *a, plm_model **m, plm_tokenizer **tok) {
    return cli_load_model(a->resume_from_checkpoint ? a->resume_from_checkpoint : o->model, m, tok);
}

/* The end of one run: its loss plot if it trained; its model and tokenizer go. */
static int end_run(int rc, const plm_ft_args *a, const char *title, plm_model *m, plm_tokenizer *tok) {
    if (rc == 0) plot_loss(a, title);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    return rc;
}

/* The end of a command's setup: the model and tokenizer it loaded to check and encode the
 * data go (each run loads its own), then the runs over seeds. */
static int run_seeds(cli_ft_opts *o, const char *cmd, plm_model **m, plm_tokenizer **tok, const char *const *metrics,
                     bool has_dev, cli_ft_run_fn run, void *ctx) {
    plm_model_free(*m);
    *m = NULL;
    plm_tokenizer_free(*tok);
    *tok = NULL;
    return cli_ft_run_seeds(o, cmd, 3, metrics, has_dev, run, ctx);
}

typedef struct {
    cli_ft_opts *o;
    const plm_sft_data *train, *valid; /* valid NULL: no evaluation */
    plm_chat_template t;
    bool packing;
} sft_run;

static int sft_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    sft_run *r = ctx;
    (void)si;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    int rc = load_run_model(r->o, a, &m, &tok);
    if (rc != 0) return rc;
    rc = plm_sft_train_ex(m, tok, r->train, r->valid, r->t, a, r->packing, best);
    return end_run(rc, a, "sft loss (response tokens)", m, tok);
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

/* Resolves *max_seq_length (0: 1024) against m's positions, with a warning when it cuts. */
static void resolve_max_len(const char *cmd, const plm_model *m, int *max_seq_length) {
    int positions = m->config.max_position_embeddings;
    if (*max_seq_length > positions)
        fprintf(stderr, "plm %s: warning: --max-seq-length %d is beyond the model's %d positions; using %d\n", cmd,
                *max_seq_length, positions, positions);
    *max_seq_length = *max_seq_length > 0 ? PLM_MIN(*max_seq_length, positions) : PLM_MIN(1024, positions);
}

/* The model plm sft and plm dpo train: a causal LM with an LM head. Resolves
 * *max_seq_length (resolve_max_len). Returns 0 or the exit code (the error set). */
static int load_causal_lm(const char *cmd, const char *dir, int *max_seq_length, plm_model **m, plm_tokenizer **tok) {
    int rc = cli_load_model(dir, m, tok);
    if (rc != 0) return rc;
    if (plm_model_head(*m, PLM_HEAD_LM) != 0 || (*m)->num_backbones != 1 || !(*m)->config.is_decoder) {
        plm_error("%s/config.json: a %s%s: %s needs a causal language model with an LM head", dir,
                  plm_model_architecture(*m), (*m)->config.is_decoder ? "" : " (is_decoder false)", cmd);
        return PLM_EXIT_INPUT;
    }
    resolve_max_len(cmd, *m, max_seq_length);
    return 0;
}

/* The defaults TRL's SFT, DPO and reward trainers share: batches of 8, linear decay
 * without warmup, no weight decay, and the sequence length from the model (TRL's
 * max_length 1024, cut at the model's positions: resolve_max_len). */
static void trl_defaults(cli_ft_opts *o) {
    cli_ft_opts_default(o);
    o->a.train_batch_size = 8;
    o->a.eval_batch_size = 8;
    o->a.warmup_ratio = 0.0f;
    o->a.opt.weight_decay = 0.0f;
    o->a.max_seq_length = 0;
}

int cmd_sft(int argc, char **argv) {
    cli_ft_opts o;
    trl_defaults(&o);
    /* TRL's SFTConfig: 3 epochs. Its learning rate, 2e-5, is for billion-parameter models;
     * the small models plm trains move too little at it (as in plm finetune), so 1e-4. */
    o.lr_help = "peak learning rate (default 1e-4; TRL's 2e-5 is for billion-parameter models, small ones need more)";
    const char *train_file = NULL, *valid_file = NULL, *template = "plain";
    float split = 0.0f;
    bool packing = false;
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
        {"--packing", ARG_FLAG, &packing,
         "pack several training examples into each row of --max-seq-length tokens (seeded first-fit-decreasing); "
         "each keeps its own positions and attends only to itself (TRL's packing without cross-contamination); "
         "evaluation stays one example per row"},
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
    sft_run r = {&o, &train, valid.n > 0 ? &valid : NULL, t, packing};
    if ((rc = run_seeds(&o, "sft", &m, &tok, plm_sft_metrics, r.valid != NULL, sft_run_one, &r)) != 0) goto fail;
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
    plm_dpo_loss_type type;
} dpo_run;

static int dpo_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    dpo_run *r = ctx;
    (void)si;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    int rc = load_run_model(r->o, a, &m, &tok);
    if (rc != 0) return rc;
    rc = plm_dpo_train(m, tok, r->train, r->valid, r->beta, r->type, r->t, a, best);
    return end_run(rc, a, "dpo loss", m, tok);
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

/* The training and validation pairs of plm dpo and plm reward: train_file's (its first
 * --max-train-samples), and valid_file's or a seeded --validation-split of train_file (its
 * first --max-eval-samples), cut at o->a.max_seq_length tokens; a set whose every response
 * is cut away is an error. Returns 0, or -1 with the error set. */
static int read_pair_sets(const cli_ft_opts *o, const char *train_file, const char *valid_file, float split,
                          const plm_tokenizer *tok, plm_chat_template t, plm_dpo_data *train, plm_dpo_data *valid) {
    int max_len = o->a.max_seq_length;
    if (read_pairs(train_file, o->max_train_samples, tok, t, max_len, train) != 0) return -1;
    if (valid_file) {
        if (read_pairs(valid_file, o->max_eval_samples, tok, t, max_len, valid) != 0) return -1;
    } else {
        plm_dpo_split(train, split, o->a.seed, valid);
        if (split > 0 && (valid->n == 0 || train->n == 0)) {
            plm_error("%s: --validation-split %g of %d pairs leaves an empty side", train_file, split,
                      train->n + valid->n);
            return -1;
        }
        if (o->max_eval_samples > 0 && valid->n > o->max_eval_samples) { /* as plm sft: the first pairs held out */
            valid->n = o->max_eval_samples;
            valid->seqs.n = 2 * valid->n;
        }
    }
    if (check_responses(&train->seqs, train->seqs.n, train_file, "training pair", max_len) != 0 ||
        check_responses(&valid->seqs, valid->seqs.n, valid_file ? valid_file : train_file, "validation pair",
                        max_len) != 0)
        return -1;
    return 0;
}

/* The reference model's log-probs of every sequence of d (dropout off). */
static int reference_logps(plm_model *ref, plm_dpo_data *d, int B, int32_t pad) {
    d->ref_logp = plm_malloc((size_t)PLM_MAX(d->seqs.n, 1) * sizeof(double));
    return d->seqs.n ? plm_dpo_logps(ref, &d->seqs, B, pad, d->ref_logp) : 0;
}

int cmd_dpo(int argc, char **argv) {
    cli_ft_opts o;
    trl_defaults(&o);
    /* TRL's DPOConfig: beta 0.1, batches of 8 pairs; its learning rate, 1e-6, is for
     * billion-parameter models. */
    o.a.opt.learning_rate = 5e-5f;
    o.lr_help = "peak learning rate (default 5e-5; TRL's 1e-6 is for billion-parameter models)";
    const char *train_file = NULL, *valid_file = NULL, *template = "plain", *loss_type = "sigmoid";
    float split = 0.0f, beta = 0.1f;
    const arg_spec own[] = {
        {"--train", ARG_STR, &train_file, "JSONL: {\"prompt\", \"chosen\", \"rejected\"} per line"},
        {"--validation", ARG_STR, &valid_file, "held-out pairs: eval loss, reward accuracy and margins"},
        {"--validation-split", ARG_FLOAT, &split, "hold out this share of --train's pairs instead (seeded; default 0)"},
        {"--beta", ARG_FLOAT, &beta, "DPO's beta: how far from the reference the model may move (default 0.1)"},
        {"--loss-type", ARG_STR, &loss_type,
         "TRL's loss_type: sigmoid (DPO, default), hinge (max(0, 1 - beta z)) or ipo ((z - 1/(2 beta))^2 on the "
         "responses' mean log-probs per token)"},
        {"--template", ARG_STR, &template, "chat template: plain (default) or chatml, as plm sft"},
        {"--max-seq-length", ARG_INT, &o.a.max_seq_length,
         "cut longer sequences at their end (default: 1024 or the model's positions, whichever is smaller)"},
    };
    int rc = cli_ft_parse_cmd("dpo",
                              "Direct Preference Optimization of a causal LM (TRL's DPOTrainer; sigmoid, hinge or ipo "
                              "loss): the starting checkpoint is the frozen reference.",
                              own, (int)PLM_ARRAY_LEN(own), &o, "pairs", argc, argv);
    if (rc >= 0) return rc;
    plm_chat_template t;
    plm_dpo_loss_type lt;
    if (!train_file || (valid_file && split > 0) || !(split >= 0 && split < 1) || o.a.max_seq_length < 0 ||
        !(beta > 0 && isfinite(beta)) || plm_chat_template_of(template, &t) != 0 ||
        plm_dpo_loss_of(loss_type, &lt) != 0) {
        fprintf(stderr, "plm dpo: --train FILE is required; --validation or --validation-split (in [0, 1)), not "
                        "both; finite --beta > 0; --loss-type sigmoid, hinge or ipo; --template plain or chatml; "
                        "--max-seq-length >= 0\n");
        return PLM_EXIT_USAGE;
    }
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_dpo_data train = {0}, valid = {0};
    if ((rc = load_causal_lm("dpo", o.model, &o.a.max_seq_length, &m, &tok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    int max_len = o.a.max_seq_length;
    if (read_pair_sets(&o, train_file, valid_file, split, tok, t, &train, &valid) != 0) goto fail;
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
                "dpo: %d training pairs, %d validation; template %s, beta %g; loss %s; model %s, %.2fM parameters; "
                "reference log-probs of %d sequences in %.1f s\n",
                train.n, valid.n, plm_chat_template_name(t), beta, plm_dpo_loss_name(lt), plm_model_architecture(m),
                (double)m->num_params / 1e6, train.seqs.n + valid.seqs.n, plm_now() - t0);
        fprintf(stderr, "dpo: %d training and %d validation sequences truncated to %d tokens\n", train.seqs.truncated,
                valid_file ? valid.seqs.truncated : 0, max_len);
    }
    dpo_run r = {&o, &train, valid.n > 0 ? &valid : NULL, t, beta, lt};
    if ((rc = run_seeds(&o, "dpo", &m, &tok, plm_dpo_metrics, r.valid != NULL, dpo_run_one, &r)) != 0) goto fail;
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

/* ---------------------------------------------------------------- plm reward */

/* TRL's reward model: AutoModelForSequenceClassification with num_labels 1 */
static const plm_head_spec reward_head = {PLM_HEAD_SEQ_CLS, 0, 1, 1.0f, PLM_SEQ_POOL_DEFAULT};

/* A reward model from dir: a causal LM's body with a new score head (initialised from seed,
 * HF's report on stderr unless quiet), or a sequence model's own head (a reward model
 * trained further; one with another number of outputs is refused); with trained, only the
 * latter. Returns 0 or the exit code (the error set, naming dir/config.json). */
static int load_reward_model(const char *dir, bool trained, uint64_t seed, bool quiet, plm_model **m,
                             plm_tokenizer **tok) {
    plm_model_spec s;
    if (plm_model_spec_load(&s, dir) != 0) return PLM_EXIT_INPUT;
    bool own = s.num_heads == 1 && s.heads[0].kind == PLM_HEAD_SEQ_CLS;
    if (trained && !own) {
        plm_error("%s/config.json: a %s, not a reward model (one sequence head with one output): train one with "
                  "plm reward",
                  dir, s.num_heads && s.heads[0].kind == PLM_HEAD_LM ? "language model" : "model without a score head");
        return PLM_EXIT_INPUT;
    }
    int rc = own ? cli_load_model(dir, m, tok) : cli_load_model_heads(dir, &reward_head, 1, seed, quiet, m, tok);
    if (rc != 0) return rc;
    if (plm_reward_check_model(*m) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", plm_last_error());
        plm_error("%s/config.json: %s", dir, msg);
        return PLM_EXIT_INPUT;
    }
    return 0;
}

typedef struct {
    cli_ft_opts *o;
    const plm_dpo_data *train, *valid; /* valid NULL: no evaluation */
    plm_chat_template t;
    float center;
} reward_run;

static int reward_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    reward_run *r = ctx;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    /* a checkpoint of this run holds its score head: anything else is named by its file */
    int rc = a->resume_from_checkpoint
                 ? load_reward_model(a->resume_from_checkpoint, true, a->seed, true, &m, &tok)
                 : load_reward_model(r->o->model, false, a->seed, r->o->quiet || si > 0, &m, &tok);
    if (rc != 0) return rc;
    rc = plm_reward_train(m, tok, r->train, r->valid, r->center, r->t, a, best);
    return end_run(rc, a, "reward loss (Bradley-Terry)", m, tok);
}

/* A string and a number of config.json's plm_task (NULL / 0 when absent). */
static void task_field(const cJSON *cfg, const char *key, const char **str, int *num) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(cfg, "plm_task"), key);
    if (str) *str = cJSON_IsString(v) ? v->valuestring : NULL;
    if (num) *num = cJSON_IsNumber(v) && v->valueint > 0 ? v->valueint : 0;
}

/* plm reward --score FILE: one reward per conversation of FILE, in file order. */
static int reward_score(int argc, char **argv) {
    const char *model = NULL, *file = NULL, *template = NULL, *output = NULL;
    int max_len = 0, B = 16;
    bool quiet = false;
    const arg_spec specs[] = {
        {"--model", ARG_STR, &model, "reward model directory (plm reward's output)"},
        {"--score", ARG_STR, &file,
         "JSONL of conversations, as plm sft reads: {\"prompt\", \"response\"} or {\"messages\": [...]} per line"},
        {"--template", ARG_STR, &template, "chat template (default: the one the model was trained with)"},
        {"--max-seq-length", ARG_INT, &max_len, "cut longer conversations at their end (default: the training length)"},
        {"--per-device-eval-batch-size", ARG_INT, &B, "conversations per batch (default 16)"},
        {"--output", ARG_STR, &output, "write the rewards here instead of stdout"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
    };
    int rc = args_parse("reward", "Score conversations with a reward model: one reward per line, in file order.", specs,
                        (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) return rc == 1 ? 0 : rc;
    if (!model || !file || B <= 0 || max_len < 0) {
        fprintf(stderr, "plm reward: --score FILE needs --model DIR; batch size positive, --max-seq-length >= 0\n");
        return PLM_EXIT_USAGE;
    }
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_chat_set set = {0};
    plm_sft_data seqs = {0}; /* plm_sft_encode initialises it */
    float *r = NULL;
    char *text = NULL;
    cJSON *cfg = cli_read_config(model);
    rc = PLM_EXIT_INPUT;
    if (!cfg) goto fail;
    const char *tname;
    int trained_len;
    task_field(cfg, "chat_template", &tname, NULL);
    task_field(cfg, "max_seq_length", NULL, &trained_len);
    plm_chat_template t;
    if (template && plm_chat_template_of(template, &t) != 0) {
        fprintf(stderr, "plm reward: --template plain or chatml\n");
        rc = PLM_EXIT_USAGE;
        goto out;
    }
    if (!template && plm_chat_template_of(tname ? tname : "plain", &t) != 0) { /* the file's fault, not an option's */
        plm_error("%s/config.json: unknown plm_task.chat_template \"%.40s\" (plain or chatml)", model, tname);
        goto fail;
    }
    if ((rc = load_reward_model(model, true, 0, true, &m, &tok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    if (max_len == 0) max_len = trained_len;
    resolve_max_len("reward", m, &max_len);
    if (plm_chat_read(&set, file) != 0 || plm_sft_encode(&seqs, &set, file, tok, t, max_len) != 0) goto fail;
    plm_ft_set_pad_id(m, tok);
    r = plm_malloc((size_t)PLM_MAX(seqs.n, 1) * sizeof *r);
    if (plm_reward_score(m, &seqs, B, plm_sft_pad_id(m, tok), quiet ? NULL : "reward score", r) != 0) goto fail;
    size_t cap = 32 * (size_t)PLM_MAX(seqs.n, 1), len = 0;
    text = plm_malloc(cap);
    for (int i = 0; i < seqs.n; i++) len += (size_t)snprintf(text + len, cap - len, "%.9g\n", r[i]);
    if (output) {
        if (plm_write_file_atomic(output, text, len) != 0) {
            rc = PLM_EXIT_FAIL;
            goto fail;
        }
    } else {
        fwrite(text, 1, len, stdout);
    }
    if (!quiet)
        fprintf(stderr, "reward: %d conversations scored (%d truncated to %d tokens)%s%s\n", seqs.n, seqs.truncated,
                max_len, output ? " -> " : "", output ? output : "");
    rc = 0;
    goto out;
fail:
    cli_fail("reward", rc);
out:
    cJSON_Delete(cfg);
    free(text);
    free(r);
    plm_sft_data_free(&seqs);
    plm_chat_set_free(&set);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    return rc;
}

int cmd_reward(int argc, char **argv) {
    for (int i = 1; i < argc; i++) /* --score FILE or --score=FILE (args.c takes both) */
        if (!strcmp(argv[i], "--score") || !strncmp(argv[i], "--score=", 8)) return reward_score(argc, argv);
    cli_ft_opts o;
    trl_defaults(&o); /* TRL's RewardConfig: batches of 8 pairs, learning rate 1e-4 */
    o.lr_help = "peak learning rate (default 1e-4, TRL's)";
    const char *train_file = NULL, *valid_file = NULL, *template = "plain", *score_file = NULL;
    float split = 0.0f, center = 0.0f;
    const arg_spec own[] = {
        {"--train", ARG_STR, &train_file, "JSONL: {\"prompt\", \"chosen\", \"rejected\"} per line, as plm dpo reads"},
        {"--validation", ARG_STR, &valid_file, "held-out pairs: eval loss, accuracy, margin, mean reward"},
        {"--validation-split", ARG_FLOAT, &split, "hold out this share of --train's pairs instead (seeded; default 0)"},
        {"--center-rewards-coefficient", ARG_FLOAT, &center,
         "TRL's: adds c (r_chosen + r_rejected)^2 to the loss, keeping rewards near 0 (default 0: off; TRL "
         "suggests 0.01)"},
        {"--template", ARG_STR, &template, "chat template: plain (default) or chatml, as plm sft"},
        {"--max-seq-length", ARG_INT, &o.a.max_seq_length,
         "cut longer sequences at their end (default: 1024 or the model's positions, whichever is smaller)"},
        {"--score", ARG_STR, &score_file,
         "score FILE's conversations with a trained reward model instead (plm reward --score FILE --help)"},
    };
    int rc = cli_ft_parse_cmd("reward",
                              "Train a reward model (TRL's RewardTrainer): a causal LM's body with a one-output score "
                              "head on the last token, Bradley-Terry loss on preference pairs.",
                              own, (int)PLM_ARRAY_LEN(own), &o, "pairs", argc, argv);
    if (rc >= 0) return rc;
    plm_chat_template t;
    if (!train_file || (valid_file && split > 0) || !(split >= 0 && split < 1) || o.a.max_seq_length < 0 ||
        !(center >= 0 && isfinite(center)) || plm_chat_template_of(template, &t) != 0) {
        fprintf(stderr, "plm reward: --train FILE is required; --validation or --validation-split (in [0, 1)), not "
                        "both; finite --center-rewards-coefficient >= 0; --template plain or chatml; "
                        "--max-seq-length >= 0\n");
        return PLM_EXIT_USAGE;
    }
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    plm_dpo_data train = {0}, valid = {0};
    if ((rc = load_reward_model(o.model, false, o.a.seed, true, &m, &tok)) != 0) goto fail;
    resolve_max_len("reward", m, &o.a.max_seq_length);
    rc = PLM_EXIT_INPUT;
    if (read_pair_sets(&o, train_file, valid_file, split, tok, t, &train, &valid) != 0) goto fail;
    if (!o.quiet) {
        fprintf(stderr, "reward: %d training pairs, %d validation; template %s; model %s, %.2fM parameters\n", train.n,
                valid.n, plm_chat_template_name(t), plm_model_architecture(m), (double)m->num_params / 1e6);
        fprintf(stderr, "reward: %d training and %d validation sequences truncated to %d tokens\n",
                train.seqs.truncated, valid_file ? valid.seqs.truncated : 0, o.a.max_seq_length);
    }
    reward_run r = {&o, &train, valid.n > 0 ? &valid : NULL, t, center};
    if ((rc = run_seeds(&o, "reward", &m, &tok, plm_reward_metrics, r.valid != NULL, reward_run_one, &r)) != 0)
        goto fail;
    goto out;
fail:
    cli_fail("reward", rc);
out:
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    plm_dpo_data_free(&train);
    plm_dpo_data_free(&valid);
    return rc;
}

/* ---------------------------------------------------------------- plm rloo */

typedef struct {
    cli_ft_opts *o;
    const plm_sft_data *prompts, *valid; /* valid NULL: no evaluation */
    plm_chat_template t;
    const plm_rloo_args *r;
} rloo_run;

static int rloo_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    rloo_run *r = ctx;
    (void)si;
    plm_model *m = NULL;
    plm_tokenizer *tok = NULL;
    /* a resumed run's policy is the checkpoint's; the reference stays --model */
    int rc = load_run_model(r->o, a, &m, &tok);
    if (rc != 0) return rc;
    rc = plm_rloo_train(m, tok, r->prompts, r->valid, r->r, r->t, a, best);
    return end_run(rc, a, "rloo loss", m, tok);
}

/* The reward model must read the policy's token ids as its own: the same vocabulary size,
 * and every prompt encoded to the same ids by both tokenizers. Returns 0 or -1 (error set). */
static int check_same_tokens(const char *rm_dir, const plm_model *m, const plm_tokenizer *tok, const plm_model *rm,
                             const plm_tokenizer *rtok, const plm_chat_set *set, const char *file, plm_chat_template t,
                             const plm_sft_data *prompts, int max_len) {
    if (rm->config.vocab_size != m->config.vocab_size ||
        plm_tokenizer_vocab_size(rtok) != plm_tokenizer_vocab_size(tok)) {
        plm_error("%s: the reward model's vocabulary (%d ids, tokenizer %d) is not the policy's (%d, tokenizer %d): it "
                  "must share the policy's tokenizer",
                  rm_dir, rm->config.vocab_size, plm_tokenizer_vocab_size(rtok), m->config.vocab_size,
                  plm_tokenizer_vocab_size(tok));
        return -1;
    }
    if (plm_chat_eos(rtok) != plm_chat_eos(tok)) {
        plm_error("%s: the reward model's tokenizer ends a response with id %d, the policy's with %d", rm_dir,
                  plm_chat_eos(rtok), plm_chat_eos(tok));
        return -1;
    }
    plm_sft_data mine;
    if (plm_rloo_encode_prompts(&mine, set, file, rtok, t, max_len) != 0) return -1;
    int bad = -1;
    for (int i = 0; i < prompts->n && bad < 0; i++) {
        size_t a = prompts->off[i], n = prompts->off[i + 1] - a;
        if (mine.off[i + 1] - mine.off[i] != n || memcmp(mine.ids + mine.off[i], prompts->ids + a, n * 4) != 0) bad = i;
    }
    int line = bad >= 0 ? prompts->line[bad] : 0;
    plm_sft_data_free(&mine);
    if (bad >= 0) {
        plm_error("%s: the reward model's tokenizer is not the policy's (%s:%d encodes to other ids)", rm_dir, file,
                  line);
        return -1;
    }
    return 0;
}

/* The held-out prompts of rloo and ppo: valid_file's, encoded as the training prompts, or a
 * seeded split of them; then the --max-*-samples caps. Returns 0 or -1 (error set). */
static int rl_valid_prompts(const char *train_file, const char *valid_file, float split, const cli_ft_opts *o,
                            const plm_tokenizer *tok, plm_chat_template t, int max_len, plm_chat_set *vset,
                            plm_sft_data *prompts, plm_sft_data *valid) {
    if (valid_file) {
        if (plm_chat_read_prompts(vset, valid_file) != 0 ||
            plm_rloo_encode_prompts(valid, vset, valid_file, tok, t, max_len) != 0)
            return -1;
    } else {
        plm_sft_split(prompts, split, o->a.seed, valid);
        if (split > 0 && (valid->n == 0 || prompts->n == 0)) {
            plm_error("%s: --validation-split %g of %d prompts leaves an empty side", train_file, split,
                      prompts->n + valid->n);
            return -1;
        }
    }
    if (o->max_train_samples > 0 && prompts->n > o->max_train_samples) prompts->n = o->max_train_samples;
    if (o->max_eval_samples > 0 && valid->n > o->max_eval_samples) valid->n = o->max_eval_samples;
    return 0;
}

int cmd_rloo(int argc, char **argv) {
    cli_ft_opts o;
    trl_defaults(&o);
    /* TRL's RLOOConfig: rloo_k 2, kl_coef 0.05, response_length 53; its learning rate, 3e-6,
     * is for billion-parameter models */
    o.a.opt.learning_rate = 1e-5f;
    o.a.logging_steps = 1; /* a metrics.jsonl line per step: the rewards are what one watches */
    o.lr_help = "peak learning rate (default 1e-5; TRL's 3e-6 is for billion-parameter models)";
    const char *train_file = NULL, *valid_file = NULL, *rm_dir = NULL, *template = "plain";
    float split = 0.0f;
    plm_rloo_args r = {.k = 2, .beta = 0.05f};
    plm_sampling_default(&r.s);
    r.s.max_new_tokens = 53;
    const arg_spec own[] = {
        {"--train", ARG_STR, &train_file,
         "JSONL of prompts: {\"prompt\": ...} per line (a DPO file's chosen / rejected are ignored)"},
        {"--validation", ARG_STR, &valid_file,
         "held-out prompts: eval_reward, eval_score, eval_kl of k samples each (the best model kept; checkpoints)"},
        {"--validation-split", ARG_FLOAT, &split,
         "hold out this share of --train's prompts instead (seeded; default 0)"},
        {"--reward-model", ARG_STR, &rm_dir,
         "reward model directory (plm reward's output); it must share the policy's tokenizer"},
        {"--rloo-k", ARG_INT, &r.k, "completions sampled per prompt, >= 2 (default 2, TRL's)"},
        {"--beta", ARG_FLOAT, &r.beta, "KL coefficient: reward = score - beta (logp - logp_ref) (default 0.05, TRL's)"},
        {"--max-new-tokens", ARG_INT, &r.s.max_new_tokens, "longest completion (default 53, TRL's response_length)"},
        {"--temperature", ARG_FLOAT, &r.s.temperature,
         "sampling temperature (default 1: the log-probs are the policy's own, the gradient unbiased)"},
        {"--top-k", ARG_INT, &r.s.top_k, "sample among the k most likely tokens (default 0: off)"},
        {"--top-p", ARG_FLOAT, &r.s.top_p, "nucleus sampling (default 1: off)"},
        {"--missing-eos-penalty", ARG_FLOAT, &r.missing_eos_penalty,
         "subtracted from the score of a completion without EOS (TRL's missing_eos_penalty; default 0: off)"},
        {"--template", ARG_STR, &template, "chat template: plain (default) or chatml, as plm sft"},
        {"--max-seq-length", ARG_INT, &o.a.max_seq_length,
         "prompt + completion at most this long (default: 1024 or the model's positions, whichever is smaller)"},
    };
    int rc = cli_ft_parse_cmd("rloo",
                              "Online RLHF of a causal LM from a reward model (TRL's RLOOTrainer: REINFORCE with the "
                              "leave-one-out baseline over k samples per prompt, a KL penalty to the starting model).",
                              own, (int)PLM_ARRAY_LEN(own), &o, "prompts", argc, argv);
    if (rc >= 0) return rc;
    plm_chat_template t;
    if (!train_file || !rm_dir || (valid_file && split > 0) || !(split >= 0 && split < 1) || r.k < 2 ||
        !(r.beta >= 0 && isfinite(r.beta)) || r.s.max_new_tokens < 1 ||
        !(r.missing_eos_penalty >= 0 && isfinite(r.missing_eos_penalty)) ||
        !(r.s.temperature > 0 && isfinite(r.s.temperature)) || r.s.top_k < 0 || !(r.s.top_p > 0 && r.s.top_p <= 1) ||
        o.a.max_seq_length < 0 || plm_chat_template_of(template, &t) != 0) {
        fprintf(stderr, "plm rloo: --train FILE and --reward-model DIR are required; --validation or "
                        "--validation-split (in [0, 1)), not both; --rloo-k >= 2; finite --beta >= 0; --max-new-tokens "
                        ">= 1; finite --missing-eos-penalty >= 0; --temperature > 0; --top-k >= 0; --top-p in (0, 1]; "
                        "--template plain or chatml; "
                        "--max-seq-length >= 0\n");
        return PLM_EXIT_USAGE;
    }
    if (o.resume && !valid_file && !(split > 0)) {
        fprintf(stderr, "plm rloo: --resume-from-checkpoint needs checkpoints, which rloo writes at evaluations "
                        "(--validation or --validation-split)\n");
        return PLM_EXIT_USAGE;
    }
    plm_model *m = NULL, *rm = NULL;
    plm_tokenizer *tok = NULL, *rtok = NULL;
    plm_chat_set set = {0}, vset = {0};
    plm_sft_data prompts = {0}, valid = {0};
    if ((rc = load_causal_lm("rloo", o.model, &o.a.max_seq_length, &m, &tok)) != 0) goto fail;
    if ((rc = load_reward_model(rm_dir, true, 0, true, &rm, &rtok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    int max_len = o.a.max_seq_length;
    if (plm_chat_read_prompts(&set, train_file) != 0 ||
        plm_rloo_encode_prompts(&prompts, &set, train_file, tok, t, max_len) != 0)
        goto fail;
    if (check_same_tokens(rm_dir, m, tok, rm, rtok, &set, train_file, t, &prompts, max_len) != 0) goto fail;
    if (rl_valid_prompts(train_file, valid_file, split, &o, tok, t, max_len, &vset, &prompts, &valid) != 0) goto fail;
    int longest = PLM_MIN(PLM_MAX(prompts.max_len, valid.max_len) + r.s.max_new_tokens, max_len);
    if (rm->config.max_position_embeddings < longest) {
        plm_error("%s: the reward model reads %d positions; prompt + completion may take %d (lower --max-new-tokens "
                  "or --max-seq-length)",
                  rm_dir, rm->config.max_position_embeddings, longest);
        goto fail;
    }
    plm_ft_set_pad_id(rm, rtok);
    r.rm = rm;
    r.rm_pad = plm_sft_pad_id(rm, rtok);
    r.rm_dir = rm_dir;
    r.ref = m; /* the starting checkpoint, frozen: each run loads its own policy */
    if (!o.quiet)
        fprintf(stderr,
                "rloo: %d prompts (longest %d tokens), %d validation; k %d, beta %g, up to %d new tokens; template "
                "%s; policy %s, %.2fM parameters; reward model %s\n",
                prompts.n, prompts.max_len, valid.n, r.k, r.beta, r.s.max_new_tokens, plm_chat_template_name(t),
                plm_model_architecture(m), (double)m->num_params / 1e6, rm_dir);
    plm_tokenizer_free(tok);
    tok = NULL;
    rloo_run run = {&o, &prompts, valid.n > 0 ? &valid : NULL, t, &r};
    if ((rc = cli_ft_run_seeds(&o, "rloo", 3, plm_rloo_metrics, run.valid != NULL, rloo_run_one, &run)) != 0) goto fail;
    rc = 0;
    goto out;
fail:
    cli_fail("rloo", rc);
out:
    plm_model_free(m);
    plm_model_free(rm);
    if (tok) plm_tokenizer_free(tok);
    if (rtok) plm_tokenizer_free(rtok);
    plm_sft_data_free(&prompts);
    plm_sft_data_free(&valid);
    plm_chat_set_free(&set);
    plm_chat_set_free(&vset);
    return rc;
}

/* ---------------------------------------------------------------- plm ppo */

typedef struct {
    cli_ft_opts *o;
    const plm_sft_data *prompts, *valid; /* valid NULL: no evaluation */
    plm_chat_template t;
    plm_ppo_args *r;
    const char *value_dir;
} ppo_run;

static int ppo_run_one(void *ctx, const plm_ft_args *a, int si, plm_ft_scores *best) {
    ppo_run *r = ctx;
    (void)si;
    plm_model *m = NULL, *vm = NULL;
    plm_tokenizer *tok = NULL, *vtok = NULL;
    /* a resumed run's policy is the checkpoint's (its value model comes from the checkpoint's
     * state); the reference stays --model; each run trains its own copy of the value model */
    int rc = load_run_model(r->o, a, &m, &tok);
    if (rc == 0) rc = load_reward_model(r->value_dir, true, 0, true, &vm, &vtok);
    if (rc == 0) {
        plm_ft_set_pad_id(vm, vtok);
        r->r->vm = vm;
        r->r->vtok = vtok;
        rc = plm_ppo_train(m, tok, r->prompts, r->valid, r->r, r->t, a, best);
    }
    plm_model_free(vm);
    if (vtok) plm_tokenizer_free(vtok);
    return end_run(rc, a, "ppo loss", m, tok);
}

int cmd_ppo(int argc, char **argv) {
    cli_ft_opts o;
    trl_defaults(&o);
    /* TRL's PPOConfig: kl_coef 0.05, cliprange 0.2, vf_coef 0.1, cliprange_value 0.2, gamma 1,
     * lam 0.95, num_ppo_epochs 4, num_mini_batches 1, temperature 0.7, response_length 53; its
     * learning rate, 3e-6, is for billion-parameter models */
    o.a.opt.learning_rate = 1e-5f;
    o.a.logging_steps = 1;
    o.lr_help = "peak learning rate (default 1e-5; TRL's 3e-6 is for billion-parameter models)";
    const char *train_file = NULL, *valid_file = NULL, *rm_dir = NULL, *value_dir = NULL, *template = "plain";
    float split = 0.0f;
    int whiten = 0;
    plm_ppo_args r = {.gae = {.kl_coef = 0.05f, .gamma = 1.0f, .lam = 0.95f},
                      .clip = {.cliprange = 0.2f, .cliprange_value = 0.2f, .vf_coef = 0.1f},
                      .num_ppo_epochs = 4,
                      .num_mini_batches = 1};
    plm_sampling_default(&r.s);
    r.s.max_new_tokens = 53;
    r.s.temperature = 0.7f;
    const arg_spec own[] = {
        {"--train", ARG_STR, &train_file,
         "JSONL of prompts: {\"prompt\": ...} per line (a DPO file's chosen / rejected are ignored)"},
        {"--validation", ARG_STR, &valid_file,
         "held-out prompts: eval_reward, eval_score, eval_kl of one sample each (the best model kept; checkpoints)"},
        {"--validation-split", ARG_FLOAT, &split,
         "hold out this share of --train's prompts instead (seeded; default 0)"},
        {"--reward-model", ARG_STR, &rm_dir,
         "reward model directory (plm reward's output); it must share the policy's tokenizer"},
        {"--value-model", ARG_STR, &value_dir,
         "the value model's starting point, a reward model directory (default: --reward-model, as TRL's examples)"},
        {"--kl-coef", ARG_FLOAT, &r.gae.kl_coef,
         "per-token KL penalty: reward -kl_coef (logp - logp_ref) (default 0.05)"},
        {"--cliprange", ARG_FLOAT, &r.clip.cliprange, "policy ratio clip (default 0.2)"},
        {"--cliprange-value", ARG_FLOAT, &r.clip.cliprange_value, "value clip around the rollout's (default 0.2)"},
        {"--vf-coef", ARG_FLOAT, &r.clip.vf_coef, "weight of the value loss (default 0.1)"},
        {"--gamma", ARG_FLOAT, &r.gae.gamma, "discount (default 1)"},
        {"--lam", ARG_FLOAT, &r.gae.lam, "GAE lambda (default 0.95)"},
        {"--whiten-rewards", ARG_FLAG, &whiten, "whiten the per-token rewards before GAE (default off)"},
        {"--num-ppo-epochs", ARG_INT, &r.num_ppo_epochs, "passes over each rollout batch (default 4)"},
        {"--num-mini-batches", ARG_INT, &r.num_mini_batches, "optimizer steps per pass (default 1)"},
        {"--missing-eos-penalty", ARG_FLOAT, &r.missing_eos_penalty,
         "subtracted from the score of a response without EOS (default 0: off)"},
        {"--max-new-tokens", ARG_INT, &r.s.max_new_tokens, "longest response (default 53, TRL's response_length)"},
        {"--temperature", ARG_FLOAT, &r.s.temperature,
         "sampling temperature; the log-probs are of logits / (temperature + 1e-7), as TRL (default 0.7)"},
        {"--template", ARG_STR, &template, "chat template: plain (default) or chatml, as plm sft"},
        {"--max-seq-length", ARG_INT, &o.a.max_seq_length,
         "prompt + response at most this long (default: 1024 or the model's positions, whichever is smaller)"},
    };
    int rc = cli_ft_parse_cmd("ppo",
                              "Online RLHF of a causal LM with a value model (TRL's PPOTrainer: PPO's clipped "
                              "objective on GAE advantages, a per-token KL penalty to the starting model).",
                              own, (int)PLM_ARRAY_LEN(own), &o, "prompts", argc, argv);
    if (rc >= 0) return rc;
    r.gae.whiten_rewards = whiten != 0;
    plm_chat_template t;
    if (!train_file || !rm_dir || (valid_file && split > 0) || !(split >= 0 && split < 1) ||
        !(r.gae.kl_coef >= 0 && isfinite(r.gae.kl_coef)) || !(r.gae.gamma >= 0 && r.gae.gamma <= 1) ||
        !(r.gae.lam >= 0 && r.gae.lam <= 1) || !(r.clip.cliprange > 0 && isfinite(r.clip.cliprange)) ||
        !(r.clip.cliprange_value > 0 && isfinite(r.clip.cliprange_value)) ||
        !(r.clip.vf_coef >= 0 && isfinite(r.clip.vf_coef)) || r.num_ppo_epochs < 1 || r.num_mini_batches < 1 ||
        !(r.missing_eos_penalty >= 0 && isfinite(r.missing_eos_penalty)) || r.s.max_new_tokens < 1 ||
        !(r.s.temperature > 0 && isfinite(r.s.temperature)) || o.a.max_seq_length < 0 ||
        plm_chat_template_of(template, &t) != 0) {
        fprintf(stderr, "plm ppo: --train FILE and --reward-model DIR are required; --validation or "
                        "--validation-split (in [0, 1)), not both; finite --kl-coef >= 0; --gamma and --lam in [0, 1]; "
                        "--cliprange and --cliprange-value > 0; --vf-coef >= 0; --num-ppo-epochs and "
                        "--num-mini-batches >= 1; finite --missing-eos-penalty >= 0; --max-new-tokens >= 1; "
                        "--temperature > 0; --template plain or chatml; --max-seq-length >= 0\n");
        return PLM_EXIT_USAGE;
    }
    if (o.resume && !valid_file && !(split > 0)) {
        fprintf(stderr, "plm ppo: --resume-from-checkpoint needs checkpoints, which ppo writes at evaluations "
                        "(--validation or --validation-split)\n");
        return PLM_EXIT_USAGE;
    }
    if (!value_dir) value_dir = rm_dir;
    plm_model *m = NULL, *rm = NULL, *vm = NULL;
    plm_tokenizer *tok = NULL, *rtok = NULL, *vtok = NULL;
    plm_chat_set set = {0}, vset = {0};
    plm_sft_data prompts = {0}, valid = {0};
    if ((rc = load_causal_lm("ppo", o.model, &o.a.max_seq_length, &m, &tok)) != 0) goto fail;
    if ((rc = load_reward_model(rm_dir, true, 0, true, &rm, &rtok)) != 0) goto fail;
    /* the value model is checked here once (each run loads its own copy) */
    if ((rc = load_reward_model(value_dir, true, 0, true, &vm, &vtok)) != 0) goto fail;
    rc = PLM_EXIT_INPUT;
    int max_len = o.a.max_seq_length;
    if (plm_chat_read_prompts(&set, train_file) != 0 ||
        plm_rloo_encode_prompts(&prompts, &set, train_file, tok, t, max_len) != 0)
        goto fail;
    if (check_same_tokens(rm_dir, m, tok, rm, rtok, &set, train_file, t, &prompts, max_len) != 0 ||
        check_same_tokens(value_dir, m, tok, vm, vtok, &set, train_file, t, &prompts, max_len) != 0)
        goto fail;
    if (rl_valid_prompts(train_file, valid_file, split, &o, tok, t, max_len, &vset, &prompts, &valid) != 0) goto fail;
    int longest = PLM_MIN(PLM_MAX(prompts.max_len, valid.max_len) + r.s.max_new_tokens, max_len);
    if (rm->config.max_position_embeddings < longest || vm->config.max_position_embeddings < longest) {
        plm_error("%s: the reward or value model reads %d positions; prompt + response may take %d (lower "
                  "--max-new-tokens or --max-seq-length)",
                  rm->config.max_position_embeddings < longest ? rm_dir : value_dir,
                  PLM_MIN(rm->config.max_position_embeddings, vm->config.max_position_embeddings), longest);
        goto fail;
    }
    plm_ft_set_pad_id(rm, rtok);
    r.rm = rm;
    r.rm_pad = plm_sft_pad_id(rm, rtok);
    r.rm_dir = rm_dir;
    r.ref = m; /* the starting checkpoint, frozen: each run loads its own policy */
    if (!o.quiet)
        fprintf(stderr,
                "ppo: %d prompts (longest %d tokens), %d validation; kl_coef %g, %d PPO epochs x %d minibatches, up "
                "to %d new tokens at temperature %g; template %s; policy %s, %.2fM parameters; reward model %s; "
                "value model %s\n",
                prompts.n, prompts.max_len, valid.n, r.gae.kl_coef, r.num_ppo_epochs, r.num_mini_batches,
                r.s.max_new_tokens, r.s.temperature, plm_chat_template_name(t), plm_model_architecture(m),
                (double)m->num_params / 1e6, rm_dir, value_dir);
    plm_model_free(vm);
    vm = NULL;
    plm_tokenizer_free(tok);
    tok = NULL;
    ppo_run run = {&o, &prompts, valid.n > 0 ? &valid : NULL, t, &r, value_dir};
    if ((rc = cli_ft_run_seeds(&o, "ppo", 3, plm_ppo_metrics, run.valid != NULL, ppo_run_one, &run)) != 0) goto fail;
    rc = 0;
    goto out;
fail:
    cli_fail("ppo", rc);
out:
    plm_model_free(m);
    plm_model_free(rm);
    plm_model_free(vm);
    if (tok) plm_tokenizer_free(tok);
    if (rtok) plm_tokenizer_free(rtok);
    if (vtok) plm_tokenizer_free(vtok);
    plm_sft_data_free(&prompts);
    plm_sft_data_free(&valid);
    plm_chat_set_free(&set);
    plm_chat_set_free(&vset);
    return rc;
}
